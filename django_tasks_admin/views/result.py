"""One task result: its detail page (a live region), its retry and cancel buttons."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView
from django_htmx.http import HttpResponseStopPolling

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.exceptions import ResultDoesNotExist
from django_tasks_admin.detail import POLL_FIELDS, result_context
from django_tasks_admin.live import fingerprint, no_change

from .base import DashboardMixin

RESULT_BODY = "django_tasks_admin/partials/result_body.html"


class ResultDetailView(DashboardMixin, TemplateView):
    """The detail page; for htmx, its live region (204 while the row is unchanged)."""

    template_name = "django_tasks_admin/result_detail.html"
    tab = "results"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        result_id = kwargs["result_id"]
        polled = bool(self.htmx and request.GET.get("fp"))
        if polled:
            state = DBTaskResult.objects.filter(pk=result_id).values_list(*POLL_FIELDS).first()
            if state is None:
                # Pruned while shown: say so, and stop polling (286).
                return HttpResponseStopPolling(
                    '<div id="dt-result" class="dt-result"><p class="dt-warning dt-gone">'
                    + escape(_("This task result no longer exists (pruned)."))
                    + "</p></div>"
                )
            if fingerprint(state) == request.GET["fp"]:
                return no_change()
        result = get_object_or_404(DBTaskResult, pk=result_id)
        context = self.get_context_data(result=result, **kwargs)
        if not self.htmx:
            return self.render_to_response(context)
        # A finished result keeps being polled: a retry brings it back to NEW.
        return TemplateResponse(request, RESULT_BODY, context)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        result: DBTaskResult = kwargs["result"]
        context = super().get_context_data(**kwargs)
        context.update(result_context(result, request=self.request, admin=self.admin))
        context["title"] = context["task_name"]
        return context


class OneResultActionView(DashboardMixin, View):
    """A button on the detail page: act on one result, then show it again.

    For htmx, answer the detail page's live region with a notice; otherwise add a
    message and redirect to the detail page.
    """

    http_method_names = ["post"]
    refused: type[Exception] = Exception

    def act(self, result_id: UUID) -> tuple[DBTaskResult, str, str]:
        """Act; return the row, the LogEntry message and the success text."""
        raise NotImplementedError

    def post(self, request: HttpRequest, result_id: UUID) -> HttpResponse:
        try:
            row, log_message, success = self.act(result_id)
        except ResultDoesNotExist:
            raise Http404 from None
        except self.refused as e:
            level, text = messages.ERROR, str(e)
        else:
            self.admin.log_change(request, row, log_message)
            level, text = messages.SUCCESS, success
        if not self.htmx:
            messages.add_message(request, level, text)
            return HttpResponseRedirect(self.url("change", result_id))
        result = get_object_or_404(DBTaskResult, pk=result_id)
        context = self.get_context_data(
            notice={"level": "success" if level == messages.SUCCESS else "error", "text": text}
        )
        context.update(result_context(result, request=request, admin=self.admin))
        return TemplateResponse(request, RESULT_BODY, context)


class RetryOneView(OneResultActionView):
    """Put one FAILED result back to NEW (same id)."""

    permission = "retry"
    refused = services.RetryRefused

    def act(self, result_id: UUID) -> tuple[DBTaskResult, str, str]:
        row = services.retry_one(result_id)
        return row, _("Retried: back to NEW"), _("Retried: the task is queued again (same id).")


class CancelOneView(OneResultActionView):
    """Cancel one waiting (NEW) result: it ends FAILED and never runs."""

    permission = "cancel"
    refused = services.CancelRefused

    def act(self, result_id: UUID) -> tuple[DBTaskResult, str, str]:
        username = self.request.user.get_username()
        row = services.cancel_one(result_id, reason=f"cancelled by {username} from the dashboard")
        return row, _("Cancelled: FAILED, never run"), _("Cancelled: the task will not run.")
