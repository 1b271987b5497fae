"""The dashboard's app config: ``"django_tasks_admin"`` in INSTALLED_APPS."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class DjangoTasksAdminConfig(AppConfig):
    name = "django_tasks_admin"
    label = "django_tasks_admin"
    verbose_name = "Tasks dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .checks import check_htmx_middleware

        checks.register(check_htmx_middleware)
