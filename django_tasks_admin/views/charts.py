"""The Charts page: completed and failed tasks per minute (last hour) and per hour (last day)."""

from __future__ import annotations

from typing import Any

from django.db import router
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.services.queues import (
    database_backends,
    queue_names_in_results,
)
from django_tasks.backends.database.services.rollup import queue_totals
from django_tasks_admin.charts import activity_charts

from .base import DashboardMixin

CHARTS_REGION = "django_tasks_admin/partials/charts_region.html"


class ChartsView(DashboardMixin, TemplateView):
    """One backend's charts, of all its queues or of one (``?backend=``, ``?queue=``)."""

    template_name = "django_tasks_admin/charts.html"
    title = _("Charts")
    tab = "charts"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        context = self.get_context_data(**kwargs)
        if self.htmx:
            return TemplateResponse(request, CHARTS_REGION, context)
        return self.render_to_response(context)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        backends = database_backends()
        backend_name = self.request.GET.get("backend") or next(iter(sorted(backends)), "")
        if backend_name not in backends:
            allowed = ", ".join(sorted(backends)) or "none configured"
            raise Http404(f"No database backend {backend_name!r}; database backends: {allowed}")
        backend = backends[backend_name]
        # The queues its settings allow, those the roll-up counted, and those in results.
        queue_names = set(backend.queues) | {
            name for (_alias, name) in queue_totals([backend_name])
        }
        queue_names |= set(queue_names_in_results(router.db_for_read(DBTaskResult)))
        queue_name = self.request.GET.get("queue") or None
        if queue_name is not None and queue_name not in queue_names:
            allowed = ", ".join(sorted(queue_names)) or "none yet"
            raise Http404(
                f"Backend {backend_name!r} has no queue {queue_name!r}; queues: {allowed}"
            )
        hour, day = activity_charts(backend_name, queue_name=queue_name)
        return super().get_context_data(
            backend_name=backend_name,
            backend_names=sorted(backends),
            queue_name=queue_name,
            queue_names=sorted(queue_names),
            charts=[hour, day],
            **kwargs,
        )
