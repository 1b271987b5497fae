"""The benchmark's tasks written with Django 6's ``django.tasks`` (imported on Django >= 6 only).

The same work as ``tests.tasks.noop_task`` and ``tests.worker_helpers.record_run``,
so the two APIs' rates compare like for like.
"""

from __future__ import annotations

from typing import Any

from django.tasks import task

from tests.worker_helpers import _append


@task
def noop_task(*args: Any, **kwargs: Any) -> None:
    """Do nothing."""


@task
def record_run(path: str, token: str, seconds: float = 0.0) -> str:
    """Append ``token`` to ``path`` (one line per execution), as tests' record_run does."""
    _append(path, token)
    if seconds:
        import time

        time.sleep(seconds)
    return token
