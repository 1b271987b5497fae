"""The task class ``django.tasks.task`` gets from our backends (Django 6), kept apart.

``django_tasks.task.Task`` hands Django's decorator this module's task, so it
must not import anything that imports ``django_tasks.task``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import django

if django.VERSION >= (6, 0):
    from django.tasks import Task as DjangoTask

    @dataclass(frozen=True, slots=True, kw_only=True)
    class DjangoTaskWithOnCommit(DjangoTask):  # type: ignore[misc]
        """Django's Task with our task class's ``enqueue_on_commit``.

        Django 6.1's ``@task`` passes further keywords to the backend's
        ``task_class``; ``enqueue_on_commit`` is the one ours accepts.  True waits
        for the transaction to commit; False or None (Django's behaviour) is part
        of it.
        """

        enqueue_on_commit: bool | None = None


def build_django_task(**kwargs: Any) -> Any:
    """Build the task ``django.tasks.task`` asked our backend's ``task_class`` for."""
    if "enqueue_on_commit" in kwargs:
        return DjangoTaskWithOnCommit(**kwargs)
    return DjangoTask(**kwargs)
