"""Tasks, their results and result statuses."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from inspect import iscoroutinefunction
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar, cast, overload

from asgiref.sync import async_to_sync, sync_to_async
from django.db.models.enums import TextChoices
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

import django_tasks

from .django_task_class import build_django_task
from .exceptions import ResultDoesNotExist
from .lifecycle import Backoff, check_task_settings
from .utils import SerializedExceptionDict, exception_from_dict, get_module_path

if TYPE_CHECKING:
    from typing_extensions import Self

    from .backends.base import BaseTaskBackend

DEFAULT_TASK_BACKEND_ALIAS = "default"
DEFAULT_QUEUE_NAME = "default"
MIN_PRIORITY = -100
MAX_PRIORITY = 100
DEFAULT_PRIORITY = 0

TASK_REFRESH_ATTRS = {
    "_exception_data",
    "_return_value",
    "finished_at",
    "started_at",
    "status",
    "enqueued_at",
}


class ResultStatus(TextChoices):
    """Where a task result is in its life."""

    NEW = ("NEW", _("New"))
    RUNNING = ("RUNNING", _("Running"))
    FAILED = ("FAILED", _("Failed"))
    COMPLETE = ("COMPLETE", _("Complete"))


FINISHED_STATUSES = frozenset({ResultStatus.COMPLETE, ResultStatus.FAILED})
"""Statuses a result never leaves (except through an explicit retry)."""

LIVE_STATUSES = frozenset({ResultStatus.NEW, ResultStatus.RUNNING})
"""Statuses of a result that is still waiting or running."""


T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Task(Generic[P, T]):
    """A function that a backend runs in the background."""

    priority: int
    func: Callable[P, T]
    backend: str
    queue_name: str = DEFAULT_QUEUE_NAME
    run_after: datetime | None = None
    enqueue_on_commit: bool | None = None
    # Lifecycle settings given to the decorator or ``using()`` (see
    # ``django_tasks.lifecycle``), checked.  Not dataclass fields: SPEC fixes those.
    _lifecycle: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # Django 6's ``django.tasks.task`` builds our backends' ``task_class`` with
        # ``takes_context``, which only its own Task has: give it one.
        if "takes_context" in kwargs and cls is Task:
            return build_django_task(**kwargs)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        self.get_backend().validate_task(self)

    @property
    def max_attempts(self) -> int | None:
        """How many attempts in all (None: the backend's default)."""
        return self._lifecycle.get("max_attempts")

    @property
    def retry_on(self) -> tuple[type[BaseException], ...] | None:
        """The exceptions that are retried (None: the backend's default)."""
        return self._lifecycle.get("retry_on")

    @property
    def backoff(self) -> Backoff | None:
        """Seconds between attempts, or a callable (None: the backend's default)."""
        return self._lifecycle.get("backoff")

    @property
    def time_limit(self) -> float | None:
        """Seconds an attempt may run (None: the backend's default)."""
        return self._lifecycle.get("time_limit")

    @property
    def unique_key(self) -> str | None:
        """The key no other waiting or running result of this task may share."""
        return self._lifecycle.get("unique_key")

    def _with_lifecycle(self, settings: Mapping[str, Any]) -> Self:
        """This task with these lifecycle settings added; InvalidTaskError if one is bad."""
        if not settings:
            return self
        checked = check_task_settings(settings, task_path=self.module_path)
        object.__setattr__(self, "_lifecycle", MappingProxyType({**self._lifecycle, **checked}))
        return self

    @property
    def name(self) -> str:
        """The function's name."""
        return self.func.__name__

    @property
    def module_path(self) -> str:
        """The dotted path that imports this task."""
        return get_module_path(self.func)

    def using(
        self,
        *,
        priority: int | None = None,
        queue_name: str | None = None,
        run_after: datetime | timedelta | None = None,
        backend: str | None = None,
        max_attempts: int | None = None,
        time_limit: float | timedelta | None = None,
        unique_key: str | None = None,
    ) -> Self:
        """Return a copy of the task with the given attributes changed."""
        changes: dict[str, Any] = {}
        lifecycle = {
            name: value
            for name, value in (
                ("max_attempts", max_attempts),
                ("time_limit", time_limit),
                ("unique_key", unique_key),
            )
            if value is not None
        }
        if priority is not None:
            changes["priority"] = priority
        if queue_name is not None:
            changes["queue_name"] = queue_name
        if run_after is not None:
            if isinstance(run_after, timedelta):
                changes["run_after"] = timezone.now() + run_after
            elif isinstance(run_after, datetime):
                changes["run_after"] = run_after
            else:
                raise TypeError(
                    "run_after must be an aware datetime or a timedelta, "
                    f"not {type(run_after).__qualname__}"
                )
        if backend is not None:
            changes["backend"] = backend
        copy = replace(self, **changes)
        if self._lifecycle:
            object.__setattr__(copy, "_lifecycle", self._lifecycle)
        return copy._with_lifecycle(lifecycle)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[T]:
        """Queue the task to run with these arguments."""
        self._check_arguments(args, kwargs)
        return self.get_backend().enqueue(self, args, kwargs)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[T]:
        """Queue the task to run with these arguments."""
        self._check_arguments(args, kwargs)
        return await self.get_backend().aenqueue(self, args, kwargs)

    def _check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise TypeError, before anything is stored, if the function can't take these."""
        signature = _signature(self.func)
        if signature is None:
            return
        try:
            signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(
                f"Task {self.module_path}{_plain(signature)} can't take these arguments: {e}"
            ) from None

    def get_result(self, result_id: str) -> TaskResult[T]:
        """Return the result of this task with the given id."""
        return self._own_result(self.get_backend().get_result(result_id))

    async def aget_result(self, result_id: str) -> TaskResult[T]:
        """Return the result of this task with the given id."""
        return self._own_result(await self.get_backend().aget_result(result_id))

    def _own_result(self, result: TaskResult[Any]) -> TaskResult[T]:
        if result.task.func is not self.func:
            raise ResultDoesNotExist(
                f"Result {result.id} belongs to another task "
                f"({result.task.module_path}), not {self.module_path}"
            )
        return cast("TaskResult[T]", result)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the function now, in this thread."""
        if iscoroutinefunction(self.func):
            return async_to_sync(self.func)(*args, **kwargs)  # type: ignore[no-any-return]
        return self.func(*args, **kwargs)

    async def acall(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the function now, awaiting it."""
        if iscoroutinefunction(self.func):
            return await self.func(*args, **kwargs)  # type: ignore[no-any-return]
        return await sync_to_async(self.func)(*args, **kwargs)

    def get_backend(self) -> BaseTaskBackend:
        """Return this task's backend instance."""
        backend: BaseTaskBackend = django_tasks.tasks[self.backend]
        return backend


@lru_cache(maxsize=1024)
def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    """Return the signature of a task function, or None if it takes any arguments.

    Cached: enqueue is a hot path.
    """
    signature = inspect.signature(func)
    kinds = [p.kind for p in signature.parameters.values()]
    if kinds == [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]:
        return None
    return signature


def _plain(signature: inspect.Signature) -> inspect.Signature:
    """Return ``signature`` without annotations (short, for messages)."""
    return signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )


@overload
def task(function: Callable[P, T], /) -> Task[P, T]: ...


@overload
def task(
    *,
    priority: int = DEFAULT_PRIORITY,
    queue_name: str = DEFAULT_QUEUE_NAME,
    backend: str = DEFAULT_TASK_BACKEND_ALIAS,
    enqueue_on_commit: bool | None = None,
    max_attempts: int | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    backoff: Backoff | None = None,
    time_limit: float | timedelta | None = None,
    unique_key: str | None = None,
) -> Callable[[Callable[P, T]], Task[P, T]]: ...


def task(
    function: Callable[P, T] | None = None,
    *,
    priority: int = DEFAULT_PRIORITY,
    queue_name: str = DEFAULT_QUEUE_NAME,
    backend: str = DEFAULT_TASK_BACKEND_ALIAS,
    enqueue_on_commit: bool | None = None,
    max_attempts: int | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    backoff: Backoff | None = None,
    time_limit: float | timedelta | None = None,
    unique_key: str | None = None,
) -> Task[P, T] | Callable[[Callable[P, T]], Task[P, T]]:
    """Turn a module-level function into a task (usable bare or called).

    ``max_attempts``, ``retry_on``, ``backoff``, ``time_limit`` and ``unique_key``
    are the lifecycle settings (``django_tasks.lifecycle``) of backends that
    support them; unset, the backend's ``OPTIONS`` decide.
    """
    from . import tasks

    lifecycle = {
        name: value
        for name, value in (
            ("max_attempts", max_attempts),
            ("retry_on", retry_on),
            ("backoff", backoff),
            ("time_limit", time_limit),
            ("unique_key", unique_key),
        )
        if value is not None
    }

    def wrapper(f: Callable[P, T]) -> Task[P, T]:
        created: Task[P, T] = tasks[backend].task_class(
            priority=priority,
            func=f,
            queue_name=queue_name,
            backend=backend,
            enqueue_on_commit=enqueue_on_commit,
        )
        return created._with_lifecycle(lifecycle)

    if function:
        return wrapper(function)
    return wrapper


@dataclass(frozen=True)
class TaskResult(Generic[T]):
    """The state of one enqueued run of a task."""

    task: Task[Any, T]
    id: str
    status: ResultStatus
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    args: list[Any]
    kwargs: dict[str, Any]
    backend: str

    _return_value: T | None = field(init=False, default=None)
    _exception_data: SerializedExceptionDict | None = field(init=False, default=None)

    @property
    def return_value(self) -> T | None:
        """The task's return value; raises ValueError until it completed."""
        if self.status == ResultStatus.COMPLETE:
            return self._return_value
        if self.status == ResultStatus.FAILED:
            raise ValueError("Task failed")
        raise ValueError("Task has not finished yet")

    @property
    def exception(self) -> BaseException | None:
        """The exception a failed task raised (class and arguments only), or None.

        None also when it can't be rebuilt; ``traceback`` keeps its text then.
        """
        if self.status == ResultStatus.FAILED and self._exception_data is not None:
            try:
                return exception_from_dict(self._exception_data)
            except Exception:
                # The class can't be imported back (e.g. it was defined inside a
                # function) or rebuilt from its arguments: `traceback` still has it.
                return None
        return None

    @property
    def traceback(self) -> str | None:
        """The formatted traceback of a failed task."""
        if self.status == ResultStatus.FAILED and self._exception_data is not None:
            return self._exception_data["exc_traceback"]
        return None

    @property
    def is_finished(self) -> bool:
        """Whether the task has completed or failed."""
        return self.status in FINISHED_STATUSES

    def refresh(self) -> None:
        """Reload this result's state from its backend."""
        self._copy_from(self.task.get_backend().get_result(self.id))

    async def arefresh(self) -> None:
        """Reload this result's state from its backend."""
        self._copy_from(await self.task.get_backend().aget_result(self.id))

    def _copy_from(self, refreshed: TaskResult[Any]) -> None:
        for attr in TASK_REFRESH_ATTRS:
            object.__setattr__(self, attr, getattr(refreshed, attr))


__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_QUEUE_NAME",
    "DEFAULT_TASK_BACKEND_ALIAS",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "ResultStatus",
    "Task",
    "TaskResult",
    "task",
]
