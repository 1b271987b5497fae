"""A backend that runs each task at once, in the enqueuing thread."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from inspect import iscoroutinefunction
from typing import Any, TypeVar
from uuid import uuid4

from asgiref.sync import async_to_sync
from django.utils import timezone

from django_tasks.signals import task_enqueued, task_finished, task_started
from django_tasks.task import ResultStatus, Task, TaskResult
from django_tasks.utils import exception_to_dict, json_normalize

from .base import BaseTaskBackend

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ImmediateBackend(BaseTaskBackend):
    """Run tasks synchronously when they are enqueued."""

    # Coroutine functions run through async_to_sync.
    supports_async_task = True

    def _execute_task(self, task_result: TaskResult[Any]) -> None:
        """Run the task, recording its outcome on ``task_result``; never raise."""
        backend_type = type(self)
        object.__setattr__(task_result, "enqueued_at", timezone.now())
        task_enqueued.send(backend_type, task_result=task_result)

        task = task_result.task
        calling_task_func = (
            async_to_sync(task.func) if iscoroutinefunction(task.func) else task.func
        )
        object.__setattr__(task_result, "started_at", timezone.now())
        task_started.send(backend_type, task_result=task_result)
        try:
            raw_return_value = calling_task_func(*task_result.args, **task_result.kwargs)
            object.__setattr__(
                task_result,
                "_return_value",
                json_normalize(raw_return_value, name="Task return value"),
            )
        except KeyboardInterrupt:
            # The user asked to stop: do not swallow it.
            raise
        except BaseException as e:
            object.__setattr__(task_result, "finished_at", timezone.now())
            try:
                exception_data = exception_to_dict(e)
            except Exception:
                logger.exception("Task id=%s unable to save exception", task_result.id)
                exception_data = None
            object.__setattr__(task_result, "_exception_data", exception_data)
            object.__setattr__(task_result, "status", ResultStatus.FAILED)
            # Sent inside the handler so receivers can log the active traceback.
            task_finished.send(backend_type, task_result=task_result)
        else:
            object.__setattr__(task_result, "finished_at", timezone.now())
            object.__setattr__(task_result, "status", ResultStatus.COMPLETE)
            task_finished.send(backend_type, task_result=task_result)

    def enqueue(
        self, task: Task[Any, T], args: Iterable[Any], kwargs: dict[str, Any]
    ) -> TaskResult[T]:
        """Run ``task`` now (or when the transaction commits) and return its result."""
        self.validate_task(task)
        norm_args, norm_kwargs = self._normalize_arguments(args, kwargs)
        task_result = TaskResult[T](
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
        self._enqueue_or_defer(task, lambda: self._execute_task(task_result))
        return task_result
