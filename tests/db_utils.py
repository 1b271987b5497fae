"""Helpers shared by the database backend's tests."""

from __future__ import annotations

from typing import Any

from django_tasks.backends.database.models import DBTaskResult

DB_TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": ["default", "queue-1"],
    }
}


def make_row(**kwargs: Any) -> DBTaskResult:
    """Insert a row for tests.tasks.noop_task (overridable)."""
    values: dict[str, Any] = {
        "args_kwargs": {"args": [], "kwargs": {}},
        "task_path": "tests.tasks.noop_task",
        "backend_name": "default",
        **kwargs,
    }
    return DBTaskResult.objects.create(**values)
