"""Workers: registration, heartbeats, lost workers and the recovery of their tasks.

Also their settings (read from the backend's parsed options) and what the dashboard shows of them.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db.models import JSONField, QuerySet, Value
from django.db.models.functions import Now
from django.utils import timezone

from django_tasks.backends.database.attempts import Attempt
from django_tasks.backends.database.claims import release_tasks
from django_tasks.backends.database.models import DBTaskResult, DBTaskResultQuerySet, DBWorker
from django_tasks.backends.database.options import (
    DEFAULT_HEARTBEAT_TIMEOUT as DEFAULT_HEARTBEAT_TIMEOUT,  # re-exported by services
)
from django_tasks.backends.database.options import (
    LOST_TASK_POLICIES as LOST_TASK_POLICIES,  # re-exported by services
)
from django_tasks.backends.database.options import options_for
from django_tasks.backends.database.services.failing import fail_rows
from django_tasks.backends.database.utils import normalize_uuid
from django_tasks.exceptions import InvalidTaskBackendError
from django_tasks.task import ResultStatus

worker_logger = logging.getLogger("django_tasks.backends.database.db_worker")


class WorkerLost(Exception):
    """The worker running a task stopped sending heartbeats."""

    # Results record this path (exc_type, attempts): keep the one it always had.
    __module__ = "django_tasks.backends.database.services"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryOutcome:
    """What recover_lost_tasks() did."""

    failed: int
    requeued: int
    workers_removed: int


def heartbeat_timeout_for(backend_name: str | None) -> float:
    """Return the backend's ``OPTIONS["heartbeat_timeout"]`` in seconds (or the default)."""
    if backend_name is None:
        return DEFAULT_HEARTBEAT_TIMEOUT
    try:
        return options_for(backend_name).heartbeat_timeout
    except InvalidTaskBackendError:
        return DEFAULT_HEARTBEAT_TIMEOUT


def lost_task_policy_for(backend_name: str) -> str:
    """Return the backend's ``OPTIONS["lost_tasks"]``: "fail" (default) or "requeue"."""
    options = options_for(backend_name)
    options.require_valid("lost_tasks")
    return options.lost_tasks


# Workers: registration, heartbeats, recovery, and what the dashboard reads.


def register_worker(
    *,
    worker_id: UUID | str,
    backend_name: str,
    queue_names: Sequence[str] | None,
    threads: int,
    waiting: bool = False,
) -> None:
    """Record a starting worker process (timestamps from the database's clock)."""
    DBWorker.objects.create(
        id=worker_id,
        backend_name=backend_name,
        host=socket.gethostname(),
        pid=os.getpid(),
        queues=["*"] if queue_names is None else list(queue_names),
        threads=threads,
        started_at=Now(),
        last_heartbeat_at=Now(),
        waiting=waiting,
    )


def heartbeat(
    *, worker_id: UUID | str, tasks_done: int = 0, tasks_failed: int = 0, waiting: bool = False
) -> bool:
    """Refresh a worker's heartbeat, counters, waiting flag and memory; False if its row is gone.

    The worker process calls it itself: the memory recorded is the caller's.
    """
    return bool(
        DBWorker.objects.filter(pk=worker_id).update(
            last_heartbeat_at=Now(),
            tasks_done=tasks_done,
            tasks_failed=tasks_failed,
            waiting=waiting,
            rss_bytes=current_rss_bytes(),
        )
    )


def current_rss_bytes() -> int | None:
    """Return this process's resident memory in bytes, or None where /proc is not available."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def set_worker_waiting(*, worker_id: UUID | str, waiting: bool) -> None:
    """Say whether the worker is idle and waits for a notification (PostgreSQL)."""
    DBWorker.objects.filter(pk=worker_id).update(waiting=waiting)


def unregister_worker(*, worker_id: UUID | str) -> int:
    """Release the worker's unstarted claims and delete its row; return claims released."""
    released = release_tasks(worker_id=worker_id)
    DBWorker.objects.filter(pk=worker_id).delete()
    return released


def _cutoff(heartbeat_timeout: float) -> Any:
    return Now() - timedelta(seconds=heartbeat_timeout)


def live_workers(
    *, backend_name: str | None = None, heartbeat_timeout: float | None = None
) -> QuerySet[DBWorker]:
    """Return workers whose last heartbeat is within the timeout."""
    timeout = heartbeat_timeout or heartbeat_timeout_for(backend_name)
    workers = DBWorker.objects.filter(last_heartbeat_at__gte=_cutoff(timeout))
    return workers if backend_name is None else workers.filter(backend_name=backend_name)


def lost_workers(
    *, backend_name: str | None = None, heartbeat_timeout: float | None = None
) -> QuerySet[DBWorker]:
    """Return workers whose heartbeat is older than the timeout (not yet cleaned up)."""
    timeout = heartbeat_timeout or heartbeat_timeout_for(backend_name)
    workers = DBWorker.objects.filter(last_heartbeat_at__lt=_cutoff(timeout))
    return workers if backend_name is None else workers.filter(backend_name=backend_name)


def orphaned_tasks(
    *, backend_name: str | None = None, heartbeat_timeout: float | None = None
) -> DBTaskResultQuerySet:
    """Return RUNNING rows whose worker is lost or unregistered (what recovery acts on)."""
    timeout = heartbeat_timeout or heartbeat_timeout_for(backend_name)
    live = DBWorker.objects.filter(last_heartbeat_at__gte=_cutoff(timeout)).values("pk")
    rows = DBTaskResult.objects.running().filter(worker_id__isnull=False)
    rows = rows.exclude(worker_id__in=live)
    return rows if backend_name is None else rows.filter(backend_name=backend_name)


def recover_lost_tasks(
    *,
    backend_name: str,
    heartbeat_timeout: float | None = None,
    policy: str | None = None,
) -> RecoveryOutcome:
    """Recover RUNNING tasks of lost workers, then delete those workers' rows.

    A worker is lost when its heartbeat is older than ``heartbeat_timeout``
    (default: the backend's ``OPTIONS["heartbeat_timeout"]``) or its row is gone.
    ``policy`` (default ``OPTIONS["lost_tasks"]``): "fail" records each task
    FAILED with a WorkerLost "worker lost" error (so nothing runs twice
    silently) and sends ``task_finished``; "requeue" puts it back to NEW
    (at-least-once), noting the lost attempt in ``attempts``.
    """
    timeout = heartbeat_timeout or heartbeat_timeout_for(backend_name)
    policy = policy or lost_task_policy_for(backend_name)
    if policy not in LOST_TASK_POLICIES:
        raise ValueError(f"policy must be one of {', '.join(LOST_TASK_POLICIES)}")
    cutoff = _cutoff(timeout)

    lost = orphaned_tasks(backend_name=backend_name, heartbeat_timeout=timeout)
    by_worker: dict[Any, list[Any]] = {}
    for pk, worker_id in lost.values_list("pk", "worker_id"):
        by_worker.setdefault(worker_id, []).append(pk)
    workers = DBWorker.objects.in_bulk(list(by_worker))
    live = DBWorker.objects.filter(last_heartbeat_at__gte=cutoff).values("pk")

    failed = requeued = 0
    for worker_id, pks in by_worker.items():
        message = _worker_lost_message(worker_id, workers.get(worker_id), timeout)
        # Repeat the conditions: a row finished, or a worker back, meanwhile is left alone.
        held = DBTaskResult.objects.filter(
            pk__in=pks, status=ResultStatus.RUNNING, worker_id=worker_id
        ).exclude(worker_id__in=live)
        if policy == "fail":
            failed += _fail_lost(held, message)
        else:
            back, ended = _requeue_lost(held, message)
            requeued += back
            failed += ended
        worker_logger.warning(
            "Recovered tasks of a lost worker (%s): %s",
            "failed" if policy == "fail" else "requeued",
            message,
        )

    removed, _ = (
        DBWorker.objects.filter(backend_name=backend_name, last_heartbeat_at__lt=cutoff)
        .exclude(
            pk__in=DBTaskResult.objects.running()
            .filter(worker_id__isnull=False)
            .values("worker_id")
        )
        .delete()
    )
    return RecoveryOutcome(failed=failed, requeued=requeued, workers_removed=removed)


def _worker_lost_message(worker_id: Any, worker: DBWorker | None, timeout: float) -> str:
    if worker is None:
        return f"worker lost: worker {normalize_uuid(worker_id)} is no longer registered"
    return (
        f"worker lost: worker {normalize_uuid(worker_id)} ({worker.host} pid {worker.pid}) "
        f"sent no heartbeat for more than {timeout:g}s"
    )


def _fail_lost(held: DBTaskResultQuerySet, message: str) -> int:
    """Mark ``held`` FAILED with a WorkerLost error; send task_finished for each."""
    return fail_rows(held, WorkerLost(message))


def _requeue_lost(held: DBTaskResultQuerySet, message: str) -> tuple[int, int]:
    """Put ``held`` back to NEW, appending the lost attempt to each row's ``attempts``.

    Returns how many were requeued and how many failed.
    A lost run counts as an attempt: rows of tasks with ``max_attempts`` set (above
    one) whose last attempt this was are failed instead, with WorkerLost.
    """
    now = timezone.now()
    count = 0
    last: list[Any] = []
    for pk, worker_id, attempts, enqueued_at, started_at, max_attempts in held.values_list(
        "pk", "worker_id", "attempts", "enqueued_at", "started_at", "max_attempts"
    ):
        if max_attempts > 1 and len(attempts or []) + 1 >= max_attempts:
            last.append(pk)
            continue
        record = Attempt(
            exception_class_path=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
            message=message,
            traceback=None,
            enqueued_at=enqueued_at,
            started_at=started_at,
            finished_at=now,
            worker_id=normalize_uuid(worker_id) if worker_id else None,
        ).to_json()
        count += held.filter(pk=pk).update(
            status=ResultStatus.NEW,
            started_at=None,
            worker_id=None,
            attempts=Value([*(attempts or []), record], output_field=JSONField()),
        )
    ended = 0
    if last:
        ended = fail_rows(held.filter(pk__in=last), WorkerLost(f"{message} (its last attempt)"))
    return count, ended
