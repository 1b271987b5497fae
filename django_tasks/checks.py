"""System checks: each configured backend checks its own configuration."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps.config import AppConfig
from django.core.checks.messages import CheckMessage


def check_tasks(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Iterable[CheckMessage]:
    """Yield the check messages of every configured backend."""
    from . import tasks

    for backend in tasks.all():
        try:
            yield from backend.check()
        except NotImplementedError:
            pass
