from __future__ import annotations

from django.apps import AppConfig


class DjangoTasksAdminConfig(AppConfig):
    name = "django_tasks_admin"
    label = "django_tasks_admin"
    verbose_name = "Tasks dashboard"
    default_auto_field = "django.db.models.BigAutoField"
