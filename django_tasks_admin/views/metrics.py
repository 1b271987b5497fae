"""The metrics endpoint, for Prometheus: a staff login, or the METRICS_TOKEN bearer token."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

from django_tasks_admin import conf

if TYPE_CHECKING:
    from django_tasks_admin.admin import TaskResultAdmin


def has_token(request: HttpRequest) -> bool:
    """Whether the request carries ``Authorization: Bearer <METRICS_TOKEN>`` (when one is set)."""
    token = conf.get("METRICS_TOKEN")
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), str(token))


def metrics_view(model_admin: TaskResultAdmin) -> Callable[[HttpRequest], HttpResponse]:
    """The view, bound to the dashboard's admin for its permission checks."""

    @never_cache
    def metrics(request: HttpRequest) -> HttpResponse:
        allowed = has_token(request) or (
            model_admin.admin_site.has_permission(request)
            and model_admin.has_view_permission(request)
        )
        if not allowed:
            return HttpResponse(
                "Metrics need a staff login with permission to view task results, or the "
                'header "Authorization: Bearer <token>" with DJANGO_TASKS_ADMIN["METRICS_TOKEN"].\n',
                status=403,
                content_type="text/plain; charset=utf-8",
            )
        try:
            from django_tasks_admin.metrics import render

            body, content_type = render()
        except ImportError:
            return HttpResponse(
                'Metrics need prometheus-client: pip install "django-tasks-plus[metrics]".\n',
                status=501,
                content_type="text/plain; charset=utf-8",
            )
        return HttpResponse(body, content_type=content_type)

    return metrics
