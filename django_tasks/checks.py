"""System checks: each configured backend checks its own configuration."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps.config import AppConfig
from django.core.checks.messages import CheckMessage
from django.utils.module_loading import import_string


def check_tasks(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> Iterable[CheckMessage]:
    """Yield the check messages of every configured backend."""
    from . import django_api, tasks
    from .backends.base import BaseTaskBackend

    for alias, params in tasks.settings.items():
        try:
            backend_cls = import_string(params["BACKEND"])
        except (ImportError, KeyError):
            backend_cls = None
        if backend_cls is not None and not (
            isinstance(backend_cls, type) and issubclass(backend_cls, BaseTaskBackend)
        ):
            # One of Django 6's own backends, in a project using both APIs: this check
            # stands in for django.tasks' (see TasksAppConfig.ready).
            if django_api.AVAILABLE:
                yield from django_api.django_backend_checks(alias)
            continue
        try:
            yield from tasks[alias].check()
        except NotImplementedError:
            pass
