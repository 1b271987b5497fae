"""The Workers page: every registered db_worker, its current tasks, memory and heartbeat."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView

from django_tasks.backends.database.services.queues import paused_by_backend
from django_tasks_admin.workers import OK, worker_states

from .base import DashboardMixin

WORKERS_REGION = "django_tasks_admin/partials/workers_region.html"


class WorkersView(DashboardMixin, TemplateView):
    """Every db_worker; for htmx, its live region (re-rendered at each poll: ages move)."""

    template_name = "django_tasks_admin/workers.html"
    title = _("Workers")
    tab = "workers"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        context = self.get_context_data(**kwargs)
        if self.htmx:
            return TemplateResponse(request, WORKERS_REGION, context)
        return self.render_to_response(context)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        states = worker_states()
        return super().get_context_data(
            workers=states,
            late=sum(1 for s in states if s.state != OK),
            # "backend:queue" of each paused queue, for the badge beside its name.
            paused_queues={
                f"{backend}:{name}"
                for backend, names in paused_by_backend().items()
                for name in names
            },
            **kwargs,
        )
