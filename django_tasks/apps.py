from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class TasksAppConfig(AppConfig):
    name = "django_tasks"
    verbose_name = "Tasks"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the built-in receivers)
        from .checks import check_tasks
        from .django_api import AVAILABLE, replace_django_check

        checks.register(check_tasks)
        if AVAILABLE:
            replace_django_check()
