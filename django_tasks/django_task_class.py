"""The task class ``django.tasks.task`` gets from our backends (Django 6), kept apart.

``django_tasks.task.Task`` hands Django's decorator this module's task, so it
must not import anything that imports ``django_tasks.task``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import django

from .lifecycle import SETTING_NAMES, Backoff, check_task_settings, task_settings_of

OUR_KEYWORDS = frozenset({"enqueue_on_commit", *SETTING_NAMES})

if django.VERSION >= (6, 0):
    from django.tasks import Task as DjangoTask

    @dataclass(frozen=True, slots=True, kw_only=True)
    class DjangoTaskWithOnCommit(DjangoTask):  # type: ignore[misc]
        """Django's Task with our task class's ``enqueue_on_commit`` and lifecycle settings.

        Django 6.1's ``@task`` passes further keywords to the backend's
        ``task_class``: ``enqueue_on_commit`` (True waits for the transaction to
        commit; False or None, Django's behaviour, is part of it) and the
        settings of ``django_tasks.lifecycle``.
        """

        enqueue_on_commit: bool | None = None
        max_attempts: int | None = None
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None
        backoff: Backoff | None = None
        time_limit: float | timedelta | None = None
        unique_key: str | None = None

        def __post_init__(self) -> None:
            # Checked (and normalised) before Django's own validation.
            checked = check_task_settings(task_settings_of(self), task_path=self.module_path)
            for name, value in checked.items():
                object.__setattr__(self, name, value)
            # (slots=True makes a new class: zero-argument super() would see the old one)
            DjangoTask.__post_init__(self)


def build_django_task(**kwargs: Any) -> Any:
    """Build the task ``django.tasks.task`` asked our backend's ``task_class`` for."""
    if OUR_KEYWORDS.intersection(kwargs):
        return DjangoTaskWithOnCommit(**kwargs)
    return DjangoTask(**kwargs)
