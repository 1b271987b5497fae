"""Running: calling a claimed task, recording its outcome and sending the signals."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from uuid import UUID

from django.utils import timezone

from django_tasks import django_api
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.outcomes import Outcome, exception_data_for, record_outcome
from django_tasks.backends.database.results import (
    context_result_for,
    finished_result_for,
    task_result_for,
)
from django_tasks.backends.database.utils import normalize_uuid
from django_tasks.django_api import call, signals_for
from django_tasks.task import ResultStatus, Task
from django_tasks.utils import json_normalize

logger = logging.getLogger("django_tasks.backends.database")
worker_logger = logging.getLogger("django_tasks.backends.database.db_worker")


def run_task(
    db_result: DBTaskResult,
    *,
    worker_id: UUID | str | None = None,
    call_guard: Callable[[], AbstractContextManager[Any]] = nullcontext,
    db_retry: Callable[[Callable[[], bool]], bool] | None = None,
    tasks: TaskCache | None = None,
) -> ResultStatus | None:
    """Run a claimed task, record its outcome and send the signals; never raise for it.

    Sends ``task_started``, calls the task (inside ``call_guard()``), then records
    COMPLETE or FAILED with one conditional UPDATE (only while the row is still
    RUNNING for ``worker_id``) and sends ``task_finished`` -- for failures from
    inside the ``except`` block, so receivers can log the traceback.  A row whose
    task can't be imported, or isn't a Task, ends FAILED with an ERROR log.
    ``db_retry(write)`` wraps each write (the worker retries connection errors);
    ``tasks`` remembers resolved tasks across calls.  Returns the status saved, or
    None when the row was no longer ours to save.
    """
    save = db_retry or _call
    db_result.started_at = started_at = timezone.now()
    try:
        task, backend_type = (tasks or TaskCache()).resolve(db_result)
        task_result = task_result_for(db_result, task)
    except BaseException as e:  # ImportError, SuspiciousOperation, bad arguments...
        saved = _save_failure(db_result, e, worker_id, save)
        worker_logger.exception("Task id=%s failed unexpectedly", normalize_uuid(db_result.pk))
        return ResultStatus.FAILED if saved else None

    worker_logger.info(
        "Task id=%s path=%s state=%s", task_result.id, db_result.task_path, ResultStatus.RUNNING
    )
    signals = signals_for(db_result.api)
    try:
        signals.started.send(sender=backend_type, task_result=task_result)
        with call_guard():
            return_value = call(task, task_result, context_result_for(db_result, task, task_result))
        outcome = Outcome.complete(json_normalize(return_value), started_at=started_at)
        saved = save(lambda: record_outcome(db_result, outcome, worker_id=worker_id))
    except BaseException as e:
        if not _save_failure(db_result, e, worker_id, save):
            return None
        finished = finished_result_for(db_result, task, task_result)
        signals.finished.send(sender=backend_type, task_result=finished)
        return ResultStatus.FAILED
    if not saved:
        return None
    finished = finished_result_for(db_result, task, task_result)
    signals.finished.send(sender=backend_type, task_result=finished)
    return ResultStatus.COMPLETE


class TaskCache:
    """Resolve rows' tasks, each (path, priority, queue, run_after, backend) once.

    For one worker's lifetime, over which settings don't change: importing and
    validating a task costs more than running a no-op one.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._tasks: dict[tuple[Any, ...], tuple[Task[Any, Any], type[Any]]] = {}

    def resolve(self, db_result: DBTaskResult) -> tuple[Task[Any, Any], type[Any]]:
        """Return the row's task and its backend's class (import errors propagate)."""
        key = (
            db_result.task_path,
            db_result.priority,
            db_result.queue_name,
            db_result.run_after,
            db_result.backend_name,
        )
        resolved = self._tasks.get(key)
        if resolved is None:
            task = db_result.task
            resolved = (task, type(task.get_backend()))
            if len(self._tasks) >= self.size:
                self._tasks.clear()
            self._tasks[key] = resolved
        return resolved


def fail_task(
    db_result: DBTaskResult, exc: BaseException, *, worker_id: UUID | str | None = None
) -> bool:
    """Record ``exc`` as the outcome of a RUNNING row held by ``worker_id``."""
    return _save_failure(db_result, exc, worker_id, _call)


def _call(write: Callable[[], bool]) -> bool:
    return write()


def _save_failure(
    db_result: DBTaskResult,
    exc: BaseException,
    worker_id: UUID | str | None,
    save: Callable[[Callable[[], bool]], bool],
) -> bool:
    if db_result.api == django_api.DJANGO:
        exception_data = django_api.exception_data(exc)  # errors[] needs no arguments
    else:
        exception_data = exception_data_for(db_result.pk, exc)
    outcome = Outcome.failed(exception_data, started_at=db_result.started_at)
    try:
        return save(lambda: record_outcome(db_result, outcome, worker_id=worker_id))
    except Exception:
        if exception_data is None:
            raise
    # The database refused the exception's text (e.g. a NUL byte on PostgreSQL).
    logger.exception("Task id=%s unable to save exception", normalize_uuid(db_result.pk))
    fallback = None
    if db_result.api == django_api.DJANGO:  # errors[] keeps the class path and traceback
        fallback = django_api.without_nul(exception_data)
    outcome = Outcome.failed(fallback, started_at=db_result.started_at)
    return save(lambda: record_outcome(db_result, outcome, worker_id=worker_id))
