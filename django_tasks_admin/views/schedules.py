"""The Schedules page: recurring tasks, their next and last runs; disable, enable, run now."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView

from django_tasks.backends.database.models import DBSchedule
from django_tasks.backends.database.services import scheduling
from django_tasks_admin.models import SCHEDULES_PERMISSION

from .base import ButtonView, DashboardMixin


def can_manage_schedules(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(SCHEDULES_PERMISSION))


class SchedulesView(DashboardMixin, TemplateView):
    """Every schedule of every database backend, with its state and its buttons."""

    template_name = "django_tasks_admin/schedules.html"
    tab = "schedules"
    title = gettext_lazy("Schedules")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            schedules=scheduling.schedule_states(),
            can_manage_schedules=can_manage_schedules(self.request),
            **kwargs,
        )


class ScheduleActionView(ButtonView):
    """A button of the Schedules page (POST): disable, enable or run now; logged."""

    actions = ("disable", "enable", "run_now")
    button_permission = SCHEDULES_PERMISSION

    def act(self, action: str, backend_name: str, name: str) -> HttpResponse:
        try:
            if action == "run_now":
                run = scheduling.run_now(backend_name=backend_name, name=name)
                log = f"Run now: enqueued result {run.result_id}"
                text = _("Enqueued a run of %(name)s.") % {"name": name}
            else:
                enabled = action == "enable"
                changed = scheduling.set_enabled(
                    backend_name=backend_name, name=name, enabled=enabled
                )
                log = "Enabled" if enabled else "Disabled"
                if enabled:
                    text = _("Enabled %(name)s: it runs from its next tick.") % {"name": name}
                else:
                    text = _("Disabled %(name)s: no worker enqueues it until enabled.") % {
                        "name": name
                    }
                if not changed:
                    log = ""
                    text = _("%(name)s was already so.") % {"name": name}
        except scheduling.UnknownSchedule:
            raise Http404 from None
        if log:
            self.log_change(DBSchedule.objects.get(backend_name=backend_name, name=name), log)
        messages.success(self.request, text)
        return HttpResponseRedirect(self.url("schedules"))
