"""A backend that stores results and never runs them: for tests."""

from __future__ import annotations

from collections.abc import Iterable
from copy import deepcopy
from typing import Any, TypeVar
from uuid import uuid4

from django.utils import timezone

from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.signals import task_enqueued
from django_tasks.task import ResultStatus, Task, TaskResult

from .base import BaseTaskBackend

T = TypeVar("T")


class DummyBackend(BaseTaskBackend):
    """Keep enqueued results in memory without running them."""

    # Deferred tasks are accepted (and never run).
    supports_defer = True
    # Coroutine functions are accepted (and never run).
    supports_async_task = True

    def __init__(
        self,
        options: dict[str, Any] | str | None = None,
        params: dict[str, Any] | None = None,
        *,
        alias: str | None = None,
    ) -> None:
        super().__init__(options, params, alias=alias)
        self.results: list[TaskResult[Any]] = []

    def _store_result(self, result: TaskResult[Any]) -> None:
        object.__setattr__(result, "enqueued_at", timezone.now())
        self.results.append(result)
        task_enqueued.send(type(self), task_result=result)

    def enqueue(
        self, task: Task[Any, T], args: Iterable[Any], kwargs: dict[str, Any]
    ) -> TaskResult[T]:
        """Store a NEW result for ``task``."""
        self.validate_task(task)
        norm_args, norm_kwargs = self._normalize_arguments(args, kwargs)
        result = TaskResult[T](
            task=task,
            id=str(uuid4()),
            status=ResultStatus.NEW,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            args=norm_args,
            kwargs=norm_kwargs,
            backend=self.alias,
        )
        self._enqueue_or_defer(task, lambda: self._store_result(result))
        # A copy, so the caller sees later changes only after refresh().
        return deepcopy(result)

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """Return the stored result with this id."""
        try:
            return next(result for result in self.results if result.id == result_id)
        except StopIteration:
            raise ResultDoesNotExist(result_id) from None

    async def aget_result(self, result_id: str) -> TaskResult[Any]:
        """Return the stored result with this id."""
        return self.get_result(result_id)

    def clear(self) -> None:
        """Forget every stored result."""
        self.results.clear()
