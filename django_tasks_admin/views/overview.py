"""The overview page: counts, workers, recent failures, failure groups."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.services.queues import paused_by_backend
from django_tasks.backends.database.services.scheduling import failed_schedules
from django_tasks.utils import exception_message
from django_tasks_admin import conf
from django_tasks_admin.attempts import is_time_limit
from django_tasks_admin.formatting import task_name
from django_tasks_admin.live import no_change, overview_fingerprint
from django_tasks_admin.stats import capped_count, count_results
from django_tasks_admin.tables import LIST_FIELDS
from django_tasks_admin.triage import failure_groups, triage_fingerprint
from django_tasks_admin.workers import LOST, worker_states

from .base import DashboardMixin

ORPHANS_COUNTED = 100
# The failure groups' order: ?groups=count (biggest first) or last_seen (the default).
GROUP_SORT = "groups"
GROUP_SORTS = ("last_seen", "count")
OVERVIEW_REGION = "django_tasks_admin/partials/overview_region.html"
# The failure groups poll on their own (their query costs more than the overview's).
TRIAGE_REGION = "django_tasks_admin/partials/triage_region.html"
TRIAGE_ID = "dt-triage"
TRIAGE_FP = "tfp"


class OverviewView(DashboardMixin, TemplateView):
    """The overview; for htmx, its live region (204 while its fingerprint is unchanged)."""

    template_name = "django_tasks_admin/overview.html"
    title = _("Tasks overview")
    tab = "overview"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self.htmx.target == TRIAGE_ID:
            return self.triage_region(request)
        # Read before the page's queries: a change in between shows at the next poll.
        current = overview_fingerprint()
        if self.htmx and request.GET.get("fp") == current:
            return no_change()
        context = self.get_context_data(overview_fp=current, **kwargs)
        if self.htmx:
            return TemplateResponse(request, OVERVIEW_REGION, context)
        context.update(self.triage_context())
        return self.render_to_response(context)

    def triage_context(self) -> dict[str, Any]:
        """The failure groups, and their fingerprint (from the same read)."""
        sort = self.request.GET.get(GROUP_SORT, "")
        sort = sort if sort in GROUP_SORTS else "last_seen"
        return {"triage": failure_groups(sort=sort), "group_sort": sort}

    def triage_region(self, request: HttpRequest) -> HttpResponse:
        """The failure groups' own poll: 204 while their fingerprint holds (one query)."""
        if request.GET.get(TRIAGE_FP) == triage_fingerprint():
            return no_change()
        context = DashboardMixin.get_context_data(self, **self.triage_context())
        return TemplateResponse(request, TRIAGE_REGION, context)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        failures = (
            DBTaskResult.objects.failed()
            .order_by("-finished_at")
            .only(*LIST_FIELDS, "exception_data")[: conf.get("RECENT_FAILURES")]
        )
        workers = worker_states()
        return super().get_context_data(
            counts=count_results(),
            failures=[_failure_summary(row) for row in failures],
            workers=workers,
            live_workers=[w.worker for w in workers if w.state != LOST],
            lost_workers=[w.worker for w in workers if w.state == LOST],
            # Up to ORPHANS_COUNTED ("100+" past it): a count of every RUNNING row reads them all.
            orphaned=capped_count(services.orphaned_tasks(), cap=ORPHANS_COUNTED),
            failed_schedules=failed_schedules(),
            # "backend/queue" of each paused queue (one query of the small queues table).
            paused_queues={
                f"{backend}/{queue}"
                for backend, queues in paused_by_backend().items()
                for queue in queues
            },
            **kwargs,
        )


def _failure_summary(row: DBTaskResult) -> dict[str, Any]:
    data = row.exception_data if isinstance(row.exception_data, dict) else None
    return {
        "row": row,
        "name": task_name(row.task_path)[0],
        "exc_type": str(data.get("exc_type", "")).rpartition(".")[2] if data else "",
        "time_limit": is_time_limit(data.get("exc_type")) if data else False,
        "message": exception_message(data.get("exc_args", []))
        if data
        else _("(the exception could not be saved)"),
    }
