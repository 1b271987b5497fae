"""The TaskResult the database backend returns, built from a row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

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
    """Build the row's TaskResult around an already resolved task."""
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
