"""What the dashboard shows of db_worker processes: heartbeat state, current tasks, memory.

A worker is "late" as soon as its heartbeat is older than two heartbeat intervals,
and "lost" past the backend's ``heartbeat_timeout`` (when recovery acts on its tasks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models.functions import Now
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.backends.database.services import heartbeat_timeout_for
from django_tasks.backends.database.worker.db_calls import MAX_BACKOFF
from django_tasks.task import ResultStatus

from .formatting import task_name

OK, LATE, LOST = "ok", "late", "lost"


def heartbeat_interval(heartbeat_timeout: float) -> float:
    """Seconds between a worker's heartbeats, as ``WorkerOptions.heartbeat_interval`` counts them."""
    return min(max(heartbeat_timeout / 5, 0.1), MAX_BACKOFF)


def heartbeat_state(age: timedelta, heartbeat_timeout: float) -> str:
    """Return "ok"; "late" past two heartbeat intervals; "lost" past the timeout."""
    seconds = age.total_seconds()
    if seconds > heartbeat_timeout:
        return LOST
    if seconds > 2 * heartbeat_interval(heartbeat_timeout):
        return LATE
    return OK


@dataclass(frozen=True, slots=True, kw_only=True)
class CurrentTask:
    """A RUNNING result held by a worker, and how long it has run."""

    id: Any
    name: str
    task_path: str
    queue_name: str
    started_at: datetime | None
    running_for: timedelta | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerState:
    """What the Workers page shows of one worker."""

    worker: DBWorker
    state: str
    heartbeat_age: timedelta
    uptime: timedelta
    heartbeat_timeout: float
    tasks: list[CurrentTask]

    @property
    def late_after(self) -> float:
        """Seconds of silence after which the heartbeat counts as late."""
        return 2 * heartbeat_interval(self.heartbeat_timeout)


def worker_states() -> list[WorkerState]:
    """Every registered worker with its state and current tasks, in two queries.

    Ages are measured with the database's clock, which stamps the heartbeats.
    """
    workers = list(DBWorker.objects.annotate(db_now=Now()).order_by("backend_name", "started_at"))
    now: datetime = workers[0].db_now if workers else timezone.now()
    running: dict[str, list[CurrentTask]] = {}
    if workers:
        rows = (
            DBTaskResult.objects.filter(
                status=ResultStatus.RUNNING, worker_id__in=[w.pk for w in workers]
            )
            .order_by("started_at")
            .values_list("pk", "task_path", "queue_name", "started_at", "worker_id")
        )
        for pk, path, queue, started_at, worker_id in rows:
            running.setdefault(str(worker_id), []).append(
                CurrentTask(
                    id=pk,
                    name=task_name(path)[0],
                    task_path=path,
                    queue_name=queue,
                    started_at=started_at,
                    running_for=now - started_at if started_at else None,
                )
            )
    timeouts: dict[str, float] = {}
    states = []
    for worker in workers:
        timeout = timeouts.get(worker.backend_name)
        if timeout is None:
            timeout = timeouts[worker.backend_name] = heartbeat_timeout_for(worker.backend_name)
        age = max(now - worker.last_heartbeat_at, timedelta(0))
        states.append(
            WorkerState(
                worker=worker,
                state=heartbeat_state(age, timeout),
                heartbeat_age=age,
                uptime=max(now - worker.started_at, timedelta(0)),
                heartbeat_timeout=timeout,
                tasks=running.get(str(worker.pk), []),
            )
        )
    return states
