"""System checks: the settings the dashboard cannot work without."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error

HTMX_MIDDLEWARE = "django_htmx.middleware.HtmxMiddleware"


def check_htmx_middleware(**kwargs: Any) -> list[Error]:
    """The dashboard's views read ``request.htmx``, which django-htmx's middleware sets."""
    if HTMX_MIDDLEWARE in settings.MIDDLEWARE:
        return []
    return [
        Error(
            f"django_tasks_admin needs {HTMX_MIDDLEWARE!r} in MIDDLEWARE.",
            hint="Add it after the session and authentication middleware.",
            id="django_tasks_admin.E001",
        )
    ]
