"""Acting on many results: the ticked rows, or every row the list's filters select.

The "all matching" flow (preview, cap, background job with progress) is shared by
retry and cancel (see ``cancel.py``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.admin.models import CHANGE
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views import View
from django.views.generic import TemplateView
from django_htmx.http import HttpResponseStopPolling

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin import conf
from django_tasks_admin.filters import INDEXED_FILTERS, ResultFilterSet
from django_tasks_admin.models import BulkRetry
from django_tasks_admin.stats import Tally, capped_count
from django_tasks_admin.tasks import bulk_retry

from .base import DashboardMixin, safe_next


class RunActionView(DashboardMixin, View):
    """Run an admin action (e.g. "retry_selected") on the rows ticked in the list."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        name = request.POST.get("action", "")
        if self.admin.get_action(name) is None:
            return HttpResponseBadRequest("Unknown action")
        action = self.admin.get_actions(request).get(name)
        if action is None:
            raise PermissionDenied  # a known action, but not this user's
        # Django 6.1 returns Action objects; earlier versions (func, name, description).
        func = getattr(action, "func", None) or action[0]
        ids = []
        for value in request.POST.getlist("ids"):
            try:
                ids.append(UUID(value))
            except ValueError:
                continue
        back = safe_next(request, self.url("changelist"))
        if not ids:
            messages.warning(request, _("Tick the results to act on first: nothing was done."))
            return HttpResponseRedirect(back)
        response = func(self.admin, request, DBTaskResult.objects.filter(pk__in=ids))
        return response if isinstance(response, HttpResponse) else HttpResponseRedirect(back)


class MatchingActionView(DashboardMixin, TemplateView):
    """Preview, then act on every result the list's filters select (retry or cancel).

    Up to the cap, within the request; past it, as a background ``bulk_retry`` job
    (``BulkRetry`` with this ``action``) with a progress page.  Subclasses say which
    rows the action applies to, how to preview and run it, and what to log.
    """

    action = ""
    template_name = "django_tasks_admin/matching_action.html"
    tab = "results"

    def setup(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().setup(request, *args, **kwargs)
        self.list_state = self.read_list_state()

    def filterset(self) -> ResultFilterSet:
        filterset = ResultFilterSet(
            data=self.list_state.filters, queryset=DBTaskResult.objects.all()
        )
        if not filterset.is_valid():
            raise BadRequest("Invalid filters")
        return filterset

    # What subclasses define

    def preview(self, rows: Any) -> tuple[int, int]:
        """(would act on, left alone) among ``rows``."""
        raise NotImplementedError

    def eligible(self, rows: Any) -> Any:
        raise NotImplementedError

    def run(self, rows: Any, *, limit: int) -> int:
        raise NotImplementedError

    def done_message(self, count: int) -> str:
        raise NotImplementedError

    log_verb = ""

    # The flow

    # The status the action applies to (the rows it would change have it).
    status: ResultStatus

    def capped_preview(self, rows: Any) -> tuple[Tally, Tally]:
        """(would act on, left alone) among ``rows``, each counted up to EXACT_UP_TO.

        Exact (as ``preview``) while few rows match; past the cap, lower bounds (the
        page says "more than"): a page never counts a big table, the POST counts
        exactly before it acts.
        """
        filters = self.list_state.filters
        wanted = filters.get("status")
        eligible_rows = rows.filter(status=self.status) if wanted in (None, self.status) else None
        eligible = capped_count(eligible_rows) if eligible_rows is not None else Tally(0)
        # The others are counted only along an index the filters use (a filter that no
        # index serves, api or priority, would have the count read the whole table), and
        # not when the eligible ones already passed the cap (the page says "more than").
        if wanted == self.status or not eligible.exact or not set(filters) <= INDEXED_FILTERS:
            others = Tally(0)
        elif wanted is not None:
            others = capped_count(rows)  # all of another status
        else:
            others = capped_count(rows.exclude(status=self.status))
        if eligible_rows is None or not eligible.exact:
            return eligible, others
        count, refused = self.preview(eligible_rows)
        return Tally(count), others + refused

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        filterset = self.filterset()
        count, left_alone = self.capped_preview(filterset.qs)
        return super().get_context_data(
            count=count.value,
            count_capped=not count.exact,
            left_alone=left_alone.value,
            left_alone_capped=not left_alone.exact,
            action=self.action,
            action_link=getattr(self.list_state, f"{self.action}_matching_link"),
            cap=conf.get("RETRY_CAP"),
            background=not count.exact or count.value > conf.get("RETRY_CAP"),
            list_state=self.list_state,
            filters=self.list_state.filter_summary(filterset.form),
            **kwargs,
        )

    def post(self, request: HttpRequest) -> HttpResponse:
        rows = self.eligible(self.filterset().qs)
        query = self.list_state.filters.urlencode()
        cap = conf.get("RETRY_CAP")
        total = self.preview(rows)[0]
        if total > cap:
            return self.start_background(total, query)
        done = self.run(rows, limit=cap)
        self.admin.log_bulk(
            request,
            action_flag=CHANGE,
            count=done,
            message=f"{self.log_verb} {done} task results matching ?{query}",
        )
        messages.success(request, self.done_message(done))
        return HttpResponseRedirect(self.list_state.filter_url)

    def start_background(self, total: int, query: str) -> HttpResponse:
        request = self.request
        job = BulkRetry.objects.create(
            action=self.action,
            query=query,
            failed_before=timezone.now(),
            total=total,
            requested_by=request.user.get_username(),
        )
        self.admin.log_bulk(
            request,
            action_flag=CHANGE,
            count=total,
            message=f"Started a background {self.action} of {total} task results matching ?{query}",
        )
        overrides: dict[str, Any] = {}
        if conf.get("BULK_RETRY_BACKEND"):
            overrides["backend"] = conf.get("BULK_RETRY_BACKEND")
        if conf.get("BULK_RETRY_QUEUE"):
            overrides["queue_name"] = conf.get("BULK_RETRY_QUEUE")
        try:
            bulk_retry.using(**overrides).enqueue(str(job.pk))
        except Exception as e:
            BulkRetry.objects.filter(pk=job.pk, status=ResultStatus.NEW).update(
                status=ResultStatus.FAILED, finished_at=timezone.now(), error=repr(e)
            )
            messages.error(request, _("The background job could not be started: %s") % e)
        return HttpResponseRedirect(self.url(f"bulk_{self.action}", job.pk))


class RetryMatchingView(MatchingActionView):
    """Preview, then retry every FAILED result the list's filters select."""

    action = "retry"
    permission = "retry"
    status = ResultStatus.FAILED
    title = gettext_lazy("Retry all matching failed results")
    log_verb = "Retried"

    def preview(self, rows: Any) -> tuple[int, int]:
        outcome = services.retry_preview(results=rows)
        return outcome.retried, outcome.refused

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["preview"] = services.RetryOutcome(
            retried=context["count"], refused=context["left_alone"]
        )
        return context

    def eligible(self, rows: Any) -> Any:
        return rows.filter(status=ResultStatus.FAILED)

    def run(self, rows: Any, *, limit: int) -> int:
        return services.retry(results=rows, limit=limit).retried

    def done_message(self, count: int) -> str:
        return ngettext(
            "Retried %(count)d failed result.", "Retried %(count)d failed results.", count
        ) % {"count": count}


class BulkRetryView(DashboardMixin, TemplateView):
    """Progress of a background bulk retry; the bar polls until the job finishes."""

    action = "retry"
    permission = "retry"
    template_name = "django_tasks_admin/bulk_retry.html"
    tab = "results"
    partial_template_name = "django_tasks_admin/partials/bulk_progress.html"
    title = gettext_lazy("Background retry")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        job = get_object_or_404(BulkRetry, pk=kwargs["job_id"], action=self.action)
        context = self.get_context_data(job=job)
        if not self.htmx:
            return self.render_to_response(context)
        if job.finished:
            return HttpResponseStopPolling(
                render_to_string(self.partial_template_name, context, request)
            )
        return TemplateResponse(request, self.partial_template_name, context)
