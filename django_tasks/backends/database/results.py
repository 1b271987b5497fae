"""The TaskResult the database backend returns, built from a row in its API's shape.

Rows enqueued through ``django_tasks`` give this module's ``TaskResult``; rows
enqueued through Django 6's ``django.tasks`` give Django's ``TaskResult``, whose
``errors`` and ``worker_ids`` list every attempt, the earlier ones from the
row's attempt history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django_tasks import django_api
from django_tasks.task import ResultStatus, Task
from django_tasks.task import TaskResult as BaseTaskResult

from .utils import normalize_uuid

if TYPE_CHECKING:
    from .models import DBTaskResult

T = TypeVar("T")


@dataclass(frozen=True)
class TaskResult(BaseTaskResult[T]):
    """A TaskResult that knows its database row."""

    db_result: DBTaskResult


def task_result_for(row: DBTaskResult, task: Task[Any, Any]) -> TaskResult[Any]:
    """Build the row's TaskResult around an already resolved task, in the row's API."""
    if row.api == django_api.DJANGO:
        return django_task_result_for(row, task)  # type: ignore[no-any-return]
    args_kwargs = row.args_kwargs
    result = TaskResult.__new__(TaskResult)
    # Twice per task in the worker: filling __dict__ skips the frozen dataclass's
    # __setattr__ per field, with the same fields and values as its __init__.
    result.__dict__.update(
        db_result=row,
        task=task,
        id=normalize_uuid(row.pk),
        status=ResultStatus(row.status),
        enqueued_at=row.enqueued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        args=args_kwargs["args"],
        kwargs=args_kwargs["kwargs"],
        backend=row.backend_name,
        _return_value=row.return_value,
        _exception_data=row.exception_data,
    )
    return result


def django_task_result_for(row: DBTaskResult, task: Any) -> Any:
    """Build Django's ``TaskResult`` for a row enqueued through ``django.tasks``."""
    errors: list[tuple[str, str]] = []
    worker_ids: list[str] = []
    history = row.attempt_history if row.attempts else []
    for attempt in history:
        worker_ids.append(attempt.worker_id or "")
        if attempt.exception_class_path:
            errors.append(
                (attempt.exception_class_path, attempt.traceback or attempt.message or "")
            )
    # Django's started_at is the first attempt's start, last_attempted_at the latest's
    # (a retried or recovered row is READY again, its earlier attempts in the history).
    starts = [attempt.started_at for attempt in history if attempt.started_at is not None]
    started_at = starts[0] if starts else row.started_at
    last_attempted_at = row.started_at or (starts[-1] if starts else None)
    if row.started_at is not None:
        worker_ids.append(normalize_uuid(row.worker_id) if row.worker_id else "")
    data = row.exception_data
    if row.status == ResultStatus.FAILED and isinstance(data, dict) and data.get("exc_type"):
        errors.append((data["exc_type"], data.get("exc_traceback") or ""))
    args_kwargs = row.args_kwargs
    return django_api.django_result(
        task=task,
        id=normalize_uuid(row.pk),
        status=ResultStatus(row.status),
        enqueued_at=row.enqueued_at,
        started_at=started_at,
        last_attempted_at=last_attempted_at,
        finished_at=row.finished_at,
        args=args_kwargs["args"],
        kwargs=args_kwargs["kwargs"],
        backend=row.backend_name,
        errors=errors,
        worker_ids=worker_ids,
        return_value=row.return_value,
    )


def finished_result_for(row: DBTaskResult, task: Any, started: Any) -> Any:
    """The result ``task_finished`` carries, after the worker recorded the row's outcome.

    ``started`` is the result ``task_started`` carried.  For ``django.tasks`` rows it
    is brought up to date and sent again, as Django's own backends do (a second full
    build would cost the worker more than the rest of a no-op task's bookkeeping);
    rows of ``django_tasks`` get a fresh result, as SPEC section 6 says.
    """
    if row.api != django_api.DJANGO:
        return task_result_for(row, task)
    django_api.finish_result(
        started,
        status=ResultStatus(row.status),
        finished_at=row.finished_at,
        return_value=row.return_value,
        exception_data=row.exception_data,
    )
    return started


def context_result_for(row: DBTaskResult, task: Any, task_result: Any) -> Any:
    """The result a ``django.tasks`` task's ``TaskContext`` holds, or None if it takes none.

    Django's TaskResult of the row: ``task_result`` itself, except for a row
    enqueued through ``django_tasks`` before its module moved to ``django.tasks``.
    """
    if not (django_api.is_django_task(task) and task.takes_context):
        return None
    if row.api == django_api.DJANGO:
        return task_result
    return django_task_result_for(row, task)
