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
from django_tasks.lifecycle import DEFAULTS, TaskSettings
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
        task, backend_type, settings = (tasks or TaskCache()).resolve(db_result)
        task_result = task_result_for(db_result, task)
    except BaseException as e:  # ImportError, SuspiciousOperation, bad arguments...
        status = _save_failure(db_result, e, worker_id, save)
        worker_logger.exception("Task id=%s failed unexpectedly", normalize_uuid(db_result.pk))
        return status

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
        status = _save_failure(db_result, e, worker_id, save, settings)
        if status != ResultStatus.FAILED:
            return status  # waiting to retry (no task_finished yet), or not ours
        finished = finished_result_for(db_result, task, task_result)
        signals.finished.send(sender=backend_type, task_result=finished)
        return ResultStatus.FAILED
    if not saved:
        return None
    finished = finished_result_for(db_result, task, task_result)
    signals.finished.send(sender=backend_type, task_result=finished)
    return ResultStatus.COMPLETE


class TaskCache:
    """Resolve rows' tasks and their lifecycle settings, each (path, priority, queue,
    run_after, backend) once.

    For one worker's lifetime, over which settings don't change: importing and
    validating a task costs more than running a no-op one.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._tasks: dict[tuple[Any, ...], tuple[Task[Any, Any], type[Any], TaskSettings]] = {}

    def resolve(self, db_result: DBTaskResult) -> tuple[Task[Any, Any], type[Any], TaskSettings]:
        """Return the row's task, its backend's class and the task's settings there.

        Import errors propagate.
        """
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
            backend = task.get_backend()
            resolved = (task, type(backend), settings_for(backend, task))
            if len(self._tasks) >= self.size:
                self._tasks.clear()
            self._tasks[key] = resolved
        return resolved


def settings_for(backend: Any, task: Any) -> TaskSettings:
    """The lifecycle settings of ``task`` on ``backend`` (the defaults on other backends)."""
    options = getattr(backend, "db_options", None)
    return options.settings_for(task) if options is not None else DEFAULTS


def fail_task(
    db_result: DBTaskResult,
    exc: BaseException,
    *,
    worker_id: UUID | str | None = None,
    settings: TaskSettings | None = None,
) -> ResultStatus | None:
    """Record ``exc`` as the outcome of a RUNNING row held by ``worker_id``.

    With the task's ``settings``, the attempt is retried if they allow it (the
    row goes back to NEW).  Returns the status saved: FAILED, NEW, or None when
    the row was no longer ours.  Sends no signal.
    """
    return _save_failure(db_result, exc, worker_id, _call, settings)


def _call(write: Callable[[], bool]) -> bool:
    return write()


def _retry_delay(
    db_result: DBTaskResult, exc: BaseException, settings: TaskSettings | None
) -> float | None:
    """Seconds until the next attempt, or None if this failure is final."""
    attempt = len(db_result.attempts or []) + 1
    if settings is None or attempt >= db_result.max_attempts or not settings.retries(exc):
        return None
    try:
        return settings.delay(attempt, exc)
    except Exception as e:
        note = f"Not retried: the backoff {settings.backoff!r} failed with {e!r}"
        exc.add_note(note)
        worker_logger.error("Task id=%s %s", normalize_uuid(db_result.pk), note)
        return None


def _save_failure(
    db_result: DBTaskResult,
    exc: BaseException,
    worker_id: UUID | str | None,
    save: Callable[[Callable[[], bool]], bool],
    settings: TaskSettings | None = None,
) -> ResultStatus | None:
    """Record a failed attempt: FAILED, or back to NEW when ``settings`` retry it."""
    delay = _retry_delay(db_result, exc, settings)
    if db_result.api == django_api.DJANGO:
        exception_data = django_api.exception_data(exc)  # errors[] needs no arguments
    else:
        exception_data = exception_data_for(db_result.pk, exc)

    def outcome(data: Any) -> Outcome:
        if delay is None:
            return Outcome.failed(data, started_at=db_result.started_at)
        return Outcome.retry(db_result, data, delay=delay, worker_id=worker_id)

    try:
        saved = save(
            lambda: record_outcome(db_result, outcome(exception_data), worker_id=worker_id)
        )
    except Exception:
        if exception_data is None:
            raise
        # The database refused the exception's text (e.g. a NUL byte on PostgreSQL).
        logger.exception("Task id=%s unable to save exception", normalize_uuid(db_result.pk))
        fallback = None
        if db_result.api == django_api.DJANGO:  # errors[] keeps the class path and traceback
            fallback = django_api.without_nul(exception_data)
        saved = save(lambda: record_outcome(db_result, outcome(fallback), worker_id=worker_id))
    if not saved:
        return None
    if delay is None:
        return ResultStatus.FAILED
    worker_logger.warning(
        "Task id=%s path=%s state=%s attempt=%s/%s error=%r: retrying in %.1f s",
        normalize_uuid(db_result.pk),
        db_result.task_path,
        ResultStatus.NEW,
        len(db_result.attempts or []),
        db_result.max_attempts,
        exc,
        delay,
    )
    return ResultStatus.NEW
