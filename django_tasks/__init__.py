"""Background tasks for Django, as defined in DEP 0014."""

from __future__ import annotations

from typing import Any

from asgiref.local import Local
from django.conf import settings
from django.utils.connection import BaseConnectionHandler, ConnectionProxy
from django.utils.module_loading import import_string

from .backends.base import BaseTaskBackend
from .exceptions import InvalidTaskBackendError
from .lifecycle import RetryLater, TimeLimitExceeded
from .task import (
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE_NAME,
    DEFAULT_TASK_BACKEND_ALIAS,
    MAX_PRIORITY,
    MIN_PRIORITY,
    ResultStatus,
    Task,
    TaskResult,
    task,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_QUEUE_NAME",
    "DEFAULT_TASK_BACKEND_ALIAS",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "BaseTaskBackend",
    "InvalidTaskBackendError",
    "ResultStatus",
    "RetryLater",
    "Task",
    "TaskResult",
    "TimeLimitExceeded",
    "__version__",
    "default_task_backend",
    "task",
    "tasks",
]

DEFAULT_TASKS: dict[str, dict[str, Any]] = {
    DEFAULT_TASK_BACKEND_ALIAS: {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}
}


def get_tasks_setting() -> dict[str, dict[str, Any]]:
    """Return the project's TASKS, or our default when the project sets none."""
    # Django 6 defines a TASKS default of its own (for django.tasks): only a value
    # the project set itself counts.
    if not settings.is_overridden("TASKS"):  # type: ignore[misc]
        return DEFAULT_TASKS
    value: dict[str, dict[str, Any]] = getattr(settings, "TASKS", DEFAULT_TASKS)
    return value


class TaskBackendHandler(BaseConnectionHandler):  # type: ignore[type-arg]
    """Build and cache one backend instance per alias of TASKS."""

    settings_name = "TASKS"
    exception_class = InvalidTaskBackendError

    def configure_settings(self, settings: dict[str, Any] | None) -> dict[str, Any]:
        return get_tasks_setting() if settings is None else settings

    def create_connection(self, alias: str) -> BaseTaskBackend:
        params = self.settings[alias]
        backend = params["BACKEND"]
        try:
            backend_cls = import_string(backend)
        except ImportError as e:
            raise InvalidTaskBackendError(f"Could not find backend '{backend}': {e}") from e
        if not (isinstance(backend_cls, type) and issubclass(backend_cls, BaseTaskBackend)):
            # e.g. Django 6's own django.tasks backends, which run django.tasks tasks only.
            raise InvalidTaskBackendError(
                f"Backend '{backend}' of alias '{alias}' is not a django_tasks backend: tasks "
                "defined with django_tasks need one of 'django_tasks.backends.database."
                "DatabaseBackend', 'django_tasks.backends.immediate.ImmediateBackend' or "
                "'django_tasks.backends.dummy.DummyBackend'"
            )
        return backend_cls({**params, "ALIAS": alias})

    def reset(self) -> None:
        """Drop cached settings and backend instances (after TASKS changes)."""
        self.__dict__.pop("settings", None)
        self._settings = None
        self._connections = Local(self.thread_critical)


tasks = TaskBackendHandler()

default_task_backend: BaseTaskBackend = ConnectionProxy(  # type: ignore[assignment]
    tasks, DEFAULT_TASK_BACKEND_ALIAS
)
