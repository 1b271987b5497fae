"""Dashboard actions: retry (one, selected, all matching) and prune.

Every action is POST only, CSRF-protected by the middleware, checked against the
dashboard's custom permissions (403, never a silent no-op), logged as an admin
LogEntry, and calls the database backend's services: retry and prune are
implemented once, in ``django_tasks.backends.database.services``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.admin.models import CHANGE, DELETION
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    QueryDict,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views import View
from django.views.generic import TemplateView

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.task import ResultStatus

from . import conf
from .detail import result_context
from .filters import LIST_PARAMS, ResultFilterSet
from .forms import PruneForm
from .live import HTTP_STOP_POLLING, htmx_target
from .models import BulkRetry
from .tasks import bulk_retry
from .views import DashboardMixin


class ActionMixin(DashboardMixin):
    """Require a custom permission ("retry" or "prune") besides viewing."""

    permission = ""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.admin.has_view_permission(request) or not getattr(
            self.admin, f"has_{self.permission}_permission"
        )(request):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)


def filter_query(query: QueryDict) -> QueryDict:
    """The filter part of a results-list query string (no sort, cursor or poll state)."""
    query = query.copy()
    for name in LIST_PARAMS:
        query.pop(name, None)
    return query


def safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


class RetryOneView(ActionMixin, View):
    """Put one FAILED result back to NEW (same id)."""

    permission = "retry"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, result_id: UUID) -> HttpResponse:
        try:
            row = services.retry_one(result_id)
        except ResultDoesNotExist:
            raise Http404 from None
        except services.RetryRefused as e:
            level, text = messages.ERROR, str(e)
        else:
            self.admin.log_change(request, row, _("Retried: back to NEW"))
            level, text = messages.SUCCESS, _("Retried: the task is queued again (same id).")
        detail_url = self.url("change", result_id)
        if htmx_target(request) is None:
            messages.add_message(request, level, text)
            return HttpResponseRedirect(detail_url)
        result = get_object_or_404(DBTaskResult, pk=result_id)
        context = self.get_context_data(
            notice={"level": "success" if level == messages.SUCCESS else "error", "text": text}
        )
        context.update(result_context(result, request=request, admin=self.admin))
        return TemplateResponse(request, "django_tasks_admin/partials/result_body.html", context)


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


class RetryMatchingView(ActionMixin, TemplateView):
    """Preview, then retry every FAILED result the list's filters select."""

    permission = "retry"
    template_name = "django_tasks_admin/retry_matching.html"
    tab = "results"
    title = gettext_lazy("Retry all matching failed results")

    def filterset(self) -> ResultFilterSet:
        query = filter_query(self.request.GET)
        filterset = ResultFilterSet(data=query, queryset=DBTaskResult.objects.all())
        if not filterset.is_valid():
            raise BadRequest("Invalid filters")
        return filterset

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        filterset = self.filterset()
        preview = services.retry_preview(results=filterset.qs)
        query = filter_query(self.request.GET).urlencode()
        return super().get_context_data(
            preview=preview,
            cap=conf.get("RETRY_CAP"),
            background=preview.retried > conf.get("RETRY_CAP"),
            query=query,
            filters=[
                (filterset.form[name].label, value)
                for name, value in filter_query(self.request.GET).items()
                if value and name in filterset.form.fields
            ],
            **kwargs,
        )

    def post(self, request: HttpRequest) -> HttpResponse:
        filterset = self.filterset()
        query = filter_query(request.GET).urlencode()
        failed = filterset.qs.filter(status=ResultStatus.FAILED)
        cap = conf.get("RETRY_CAP")
        total = services.retry_preview(results=failed).retried
        if total > cap:
            return self.start_background(total, query)
        outcome = services.retry(results=failed, limit=cap)
        self.admin.log_bulk(
            request,
            action_flag=CHANGE,
            count=outcome.retried,
            message=f"Retried {outcome.retried} task results matching ?{query}",
        )
        messages.success(
            request,
            ngettext(
                "Retried %(count)d failed result.",
                "Retried %(count)d failed results.",
                outcome.retried,
            )
            % {"count": outcome.retried},
        )
        return HttpResponseRedirect(f"{self.url('changelist')}?{query}")

    def start_background(self, total: int, query: str) -> HttpResponse:
        request = self.request
        job = BulkRetry.objects.create(
            query=query,
            failed_before=timezone.now(),
            total=total,
            requested_by=request.user.get_username(),
        )
        self.admin.log_bulk(
            request,
            action_flag=CHANGE,
            count=total,
            message=f"Started a background retry of {total} task results matching ?{query}",
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
            messages.error(request, _("The background retry could not be started: %s") % e)
        return HttpResponseRedirect(self.url("bulk_retry", job.pk))


class BulkRetryView(ActionMixin, TemplateView):
    """Progress of a background bulk retry; the bar polls until the job finishes."""

    permission = "retry"
    template_name = "django_tasks_admin/bulk_retry.html"
    tab = "results"
    partial_template_name = "django_tasks_admin/partials/bulk_progress.html"
    title = gettext_lazy("Background retry")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        job = get_object_or_404(BulkRetry, pk=kwargs["job_id"])
        context = self.get_context_data(job=job)
        if htmx_target(request) is None:
            return self.render_to_response(context)
        return TemplateResponse(
            request,
            self.partial_template_name,
            context,
            status=HTTP_STOP_POLLING if job.finished else 200,
        )


class PruneView(ActionMixin, TemplateView):
    """The prune form: a dry-run preview (GET), then the deletion (POST)."""

    permission = "prune"
    template_name = "django_tasks_admin/prune.html"
    tab = "prune"
    title = gettext_lazy("Prune task results")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if "preview" not in request.GET:
            return self.render_to_response(self.get_context_data(form=PruneForm()))
        form = PruneForm(data=request.GET)
        preview = None
        if form.is_valid():
            preview = services.prune(**form.prune_kwargs(), dry_run=True)
        return self.render_to_response(
            self.get_context_data(form=form, preview=preview),
        )

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PruneForm(data=request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        deleted = services.prune(**form.prune_kwargs(), dry_run=False)
        self.admin.log_bulk(
            request,
            action_flag=DELETION,
            count=deleted,
            message=f"Pruned {deleted} task results: {form.describe()}",
        )
        messages.success(
            request,
            ngettext("Deleted %(count)d task result.", "Deleted %(count)d task results.", deleted)
            % {"count": deleted},
        )
        return HttpResponseRedirect(self.url("prune"))
