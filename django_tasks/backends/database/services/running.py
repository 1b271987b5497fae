"""Running: calling a claimed task, recording its outcome and sending the signals.

The conditional outcome UPDATE (only while the row is still the worker's), the
task cache, and building a row's TaskResult.  Owned by the worker engineer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import connections, router
from django.utils import timezone

from django_tasks.backends.database.utils import db_value, normalize_uuid
from django_tasks.backends.database.writes import execute_write
from django_tasks.signals import task_finished, task_started
from django_tasks.task import ResultStatus, Task
from django_tasks.utils import exception_to_dict, json_normalize

if TYPE_CHECKING:
    from django_tasks.backends.database.backend import TaskResult
    from django_tasks.backends.database.models import DBTaskResult

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
    db_result.started_at = timezone.now()
    try:
        task, backend_type = (tasks or TaskCache()).resolve(db_result)
        task_result = _task_result(db_result, task)
    except BaseException as e:  # ImportError, SuspiciousOperation, bad arguments...
        saved = _save_failure(db_result, e, worker_id, save)
        worker_logger.exception("Task id=%s failed unexpectedly", normalize_uuid(db_result.pk))
        return ResultStatus.FAILED if saved else None

    worker_logger.info(
        "Task id=%s path=%s state=%s", task_result.id, db_result.task_path, ResultStatus.RUNNING
    )
    try:
        task_started.send(sender=backend_type, task_result=task_result)
        with call_guard():
            return_value = task.call(*task_result.args, **task_result.kwargs)
        outcome = _outcome(db_result, return_value=json_normalize(return_value))
        saved = save(lambda: _save_outcome(db_result, worker_id, outcome))
    except BaseException as e:
        if not _save_failure(db_result, e, worker_id, save):
            return None
        task_finished.send(sender=backend_type, task_result=_task_result(db_result, task))
        return ResultStatus.FAILED
    if not saved:
        return None
    task_finished.send(sender=backend_type, task_result=_task_result(db_result, task))
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
    outcome = _outcome(db_result, exception_data=_exception_data(db_result, exc))
    return _save_outcome(db_result, worker_id, outcome)


def _call(write: Callable[[], bool]) -> bool:
    return write()


def _save_failure(
    db_result: DBTaskResult,
    exc: BaseException,
    worker_id: UUID | str | None,
    save: Callable[[Callable[[], bool]], bool],
) -> bool:
    exception_data = _exception_data(db_result, exc)
    outcome = _outcome(db_result, exception_data=exception_data)
    try:
        return save(lambda: _save_outcome(db_result, worker_id, outcome))
    except Exception:
        if exception_data is None:
            raise
    # The database refused the exception's text (e.g. a NUL byte on PostgreSQL).
    logger.exception("Task id=%s unable to save exception", normalize_uuid(db_result.pk))
    outcome = _outcome(db_result, exception_data=None)
    return save(lambda: _save_outcome(db_result, worker_id, outcome))


def _exception_data(db_result: DBTaskResult, exc: BaseException) -> Any:
    try:
        return exception_to_dict(exc)
    except Exception:
        logger.exception("Task id=%s unable to save exception", normalize_uuid(db_result.pk))
        return None


_NOTHING: Any = object()


def _outcome(
    db_result: DBTaskResult, *, return_value: Any = None, exception_data: Any = _NOTHING
) -> dict[str, Any]:
    """The columns recording a run: COMPLETE, or FAILED when ``exception_data`` is given."""
    failed = exception_data is not _NOTHING
    return {
        "status": ResultStatus.FAILED if failed else ResultStatus.COMPLETE,
        "started_at": db_result.started_at,
        "finished_at": timezone.now(),
        "return_value": None if failed else return_value,
        "exception_data": exception_data if failed else None,
    }


def _save_outcome(
    db_result: DBTaskResult, worker_id: UUID | str | None, outcome: dict[str, Any]
) -> bool:
    """Write ``outcome`` if the row is still RUNNING for ``worker_id``; False if it isn't.

    One UPDATE written out by hand: this runs once per task, and building it
    with the ORM costs more than the round trip.
    """
    from django_tasks.backends.database.models import DBTaskResult

    using = router.db_for_write(DBTaskResult)
    connection = connections[using]
    meta = DBTaskResult._meta
    columns = list(outcome)
    key = (connection.vendor, tuple(columns), worker_id is not None)
    sql = _OUTCOME_SQL.get(key)
    if sql is None:
        qn = connection.ops.quote_name

        def column(name: str) -> str:
            field: Any = meta.get_field(name)
            return str(qn(field.column))

        assignments = ", ".join(f"{column(name)} = %s" for name in columns)
        sql = (
            f"UPDATE {qn(meta.db_table)} SET {assignments} WHERE {column('id')} = %s"
            f" AND {column('status')} = '{ResultStatus.RUNNING}'"
        )
        if worker_id is not None:
            sql += f" AND {column('worker_id')} = %s"
        _OUTCOME_SQL[key] = sql
    params = [db_value(name, value, connection) for name, value in outcome.items()]
    params.append(db_value("id", db_result.pk, connection))
    if worker_id is not None:
        params.append(db_value("worker_id", worker_id, connection))
    if not execute_write(connection, sql, params):
        # A retry after a lost reply may find its own earlier write (same finished_at).
        rows = DBTaskResult.objects.using(using).filter(pk=db_result.pk)
        if worker_id is not None:
            rows = rows.filter(worker_id=worker_id)
        if not rows.filter(status=outcome["status"], finished_at=outcome["finished_at"]).exists():
            worker_logger.warning(
                "Task id=%s was recovered by another worker while it ran: its outcome (%s) "
                "was not saved",
                normalize_uuid(db_result.pk),
                outcome["status"],
            )
            return False
    for name, value in outcome.items():
        setattr(db_result, name, value)
    return True


_OUTCOME_SQL: dict[tuple[Any, ...], str] = {}


def _task_result(db_result: DBTaskResult, task: Task[Any, Any]) -> TaskResult[Any]:
    """Build the row's TaskResult around an already resolved task."""
    from django_tasks.backends.database.backend import TaskResult

    fields = {
        "db_result": db_result,
        "task": task,
        "id": normalize_uuid(db_result.pk),
        "status": ResultStatus(db_result.status),
        "enqueued_at": db_result.enqueued_at,
        "started_at": db_result.started_at,
        "finished_at": db_result.finished_at,
        "args": db_result.args_kwargs["args"],
        "kwargs": db_result.args_kwargs["kwargs"],
        "backend": db_result.backend_name,
        "_return_value": db_result.return_value,
        "_exception_data": db_result.exception_data,
    }
    result = TaskResult.__new__(TaskResult)
    # Twice per task: filling __dict__ skips the frozen dataclass's setattr per field.
    result.__dict__.update(fields)
    return result
