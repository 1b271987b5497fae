"""The Queues page: each queue's backlog, latency and recent outcomes; pause and resume."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView

from django_tasks.backends.database.models import DBQueue
from django_tasks.backends.database.services import queues as queue_service
from django_tasks.backends.database.services.rollup import QueueActivity, queue_activity
from django_tasks_admin.models import QUEUES_PERMISSION
from django_tasks_admin.stats import AT_LEAST, Tally

from .base import ButtonView, DashboardMixin

QUEUES_REGION = "django_tasks_admin/partials/queues_region.html"


def can_pause_queues(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(QUEUES_PERMISSION))


def _tally(n: int, capped: bool) -> Tally:
    return Tally(n, AT_LEAST) if capped else Tally(n)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRow:
    """One row of the Queues page: the queue's state, counts and recent activity."""

    state: queue_service.QueueState
    activity: QueueActivity | None  # None: nothing finished in the last day

    @property
    def waiting(self) -> Tally:
        return _tally(self.state.waiting, self.state.waiting_capped)

    @property
    def deferred(self) -> Tally:
        return _tally(self.state.deferred, self.state.deferred_capped)

    @property
    def running(self) -> Tally:
        return _tally(self.state.running, self.state.running_capped)

    @property
    def latency(self) -> timedelta | None:
        return self.state.latency

    @property
    def latency_is_lower_bound(self) -> bool:
        """Past the cap, the oldest of the rows read: the queue's may be older."""
        return self.state.waiting_capped

    @property
    def failure_percent(self) -> float | None:
        rate = self.activity.failure_rate_1h if self.activity else None
        return None if rate is None else rate * 100


def queue_rows() -> list[QueueRow]:
    """Every queue of every database backend, with its activity from the roll-up."""
    states = queue_service.queue_states()
    activity: dict[str, dict[str, QueueActivity]] = {}
    for backend_name in sorted({s.backend_name for s in states}):
        activity[backend_name] = queue_activity(backend_name)
    return [QueueRow(state=s, activity=activity[s.backend_name].get(s.name)) for s in states]


class QueuesView(DashboardMixin, TemplateView):
    """Every queue; for htmx, its live region (re-rendered at each poll: ages move)."""

    template_name = "django_tasks_admin/queues.html"
    tab = "queues"
    title = gettext_lazy("Queues")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        context = self.get_context_data(**kwargs)
        if self.htmx:
            return TemplateResponse(request, QUEUES_REGION, context)
        return self.render_to_response(context)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        rows = queue_rows()
        return super().get_context_data(
            queues=rows,
            capped=any(
                r.state.waiting_capped or r.state.deferred_capped or r.state.running_capped
                for r in rows
            ),
            count_cap=number_format(queue_service.COUNT_CAP, force_grouping=True),
            can_pause_queues=can_pause_queues(self.request),
            **kwargs,
        )


class QueueActionView(ButtonView):
    """A button of the Queues page (POST): pause or resume a queue; logged."""

    actions = ("pause", "resume")
    button_permission = QUEUES_PERMISSION
    name_field = "queue"

    def act(self, action: str, backend_name: str, name: str) -> HttpResponse:
        change = queue_service.pause_queue if action == "pause" else queue_service.resume_queue
        by = self.request.user.get_username()
        try:
            changed = change(backend_name=backend_name, queue_name=name, by=by)
        except queue_service.UnknownQueue as e:
            return HttpResponse(str(e), status=400, content_type="text/plain")
        if not changed:
            text = _("Queue %(name)s was already so.") % {"name": name}
        elif action == "pause":
            self.log_change(DBQueue.objects.get(backend_name=backend_name, name=name), "Paused")
            text = _(
                "Paused queue %(name)s: workers claim none of its tasks from now on; "
                "enqueueing still works."
            ) % {"name": name}
        else:
            self.log_change(DBQueue.objects.get(backend_name=backend_name, name=name), "Resumed")
            text = _("Resumed queue %(name)s: workers claim its tasks again.") % {"name": name}
        messages.success(self.request, text)
        return HttpResponseRedirect(self.url("queues"))
