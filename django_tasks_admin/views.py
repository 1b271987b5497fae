"""Dashboard pages: overview, results list, result detail.

Each view is mounted by ``TaskResultAdmin.get_urls()`` inside ``admin_site.admin_view``
(login, staff check, never_cache) and renders the admin's context, so pages get
the sidebar, breadcrumbs, messages and dark mode of the admin they live in.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView
from django.views.generic.base import ContextMixin
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.task import ResultStatus

from . import conf
from .filters import ResultFilterSet, known_queue_names
from .formatting import duration_text, exception_message, pretty_json, task_name
from .pagination import KeysetPaginator, parse_sort
from .stats import count_results
from .tables import DEFAULT_SORT, LIST_FIELDS, SORT_KEYS, ResultTable
from .tracebacks import parse_traceback

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    from .admin import TaskResultAdmin

    class HtmxHttpRequest(HttpRequest):
        htmx: HtmxDetails
else:
    HtmxHttpRequest = HttpRequest

LIVE_STATUSES = (ResultStatus.NEW, ResultStatus.RUNNING)
FINISHED_STATUSES = (ResultStatus.COMPLETE, ResultStatus.FAILED)
HTTP_STOP_POLLING = 286


def htmx_target(request: HttpRequest) -> str | None:
    """The id of the element an htmx request targets, or None if it isn't htmx."""
    htmx = getattr(request, "htmx", None)
    if htmx is not None:
        return htmx.target if htmx else None
    if request.headers.get("HX-Request") == "true":  # HtmxMiddleware not installed
        return request.headers.get("HX-Target") or ""
    return None


def fingerprint(values: Any) -> str:
    """A short digest of what a live region shows, to answer idle polls with 204."""
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def no_change() -> HttpResponse:
    """The answer to a poll when nothing changed: htmx swaps nothing on 204."""
    return HttpResponse(status=204)


class DashboardMixin(ContextMixin):
    """Admin context and permission checks shared by every dashboard page."""

    model_admin: TaskResultAdmin | None = None
    title: Any = ""
    tab = ""
    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.admin.has_view_permission(request):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc, no-any-return]

    @property
    def admin(self) -> TaskResultAdmin:
        assert self.model_admin is not None
        return self.model_admin

    def url(self, name: str, *args: Any) -> str:
        return self.admin.dashboard_url(name, *args)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        request = self.request
        context = super().get_context_data(**kwargs)
        context.update(
            self.admin.admin_site.each_context(request),
            opts=self.admin.opts,
            title=self.title,
            urls=self.admin.dashboard_urls(),
            can_retry=self.admin.has_retry_permission(request),
            can_prune=self.admin.has_prune_permission(request),
            poll_seconds=conf.get("POLL_SECONDS"),
            dt_tab=self.tab,
        )
        return context


class OverviewView(DashboardMixin, TemplateView):
    template_name = "django_tasks_admin/overview.html"
    title = _("Tasks overview")
    tab = "overview"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        failures = (
            DBTaskResult.objects.failed()
            .order_by("-finished_at")
            .only(*LIST_FIELDS, "exception_data")[: conf.get("RECENT_FAILURES")]
        )
        return super().get_context_data(
            counts=count_results(),
            failures=[_failure_summary(row) for row in failures],
            live_workers=list(services.live_workers()),
            lost_workers=list(services.lost_workers()),
            orphaned=services.orphaned_tasks().count(),
            **kwargs,
        )


def _failure_summary(row: DBTaskResult) -> dict[str, Any]:
    data = row.exception_data if isinstance(row.exception_data, dict) else None
    return {
        "row": row,
        "name": task_name(row.task_path)[0],
        "exc_type": str(data.get("exc_type", "")).rpartition(".")[2] if data else "",
        "message": exception_message(data.get("exc_args", []))
        if data
        else _("(the exception could not be saved)"),
    }


class ResultListView(DashboardMixin, SingleTableMixin, FilterView):  # type: ignore[misc]
    template_name = "django_tasks_admin/results.html"
    filterset_class = ResultFilterSet
    table_class = ResultTable
    table_pagination = False
    title = _("Task results")
    tab = "results"

    def get_queryset(self) -> Any:
        return DBTaskResult.objects.only(*LIST_FIELDS)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.filterset = self.get_filterset(self.get_filterset_class())
        if not self.filterset.is_bound or self.filterset.is_valid():
            self.object_list = self.filterset.qs
        else:
            self.object_list = self.filterset.queryset.none()
        self.sort = parse_sort(request.GET.get("sort"), SORT_KEYS, DEFAULT_SORT)
        paginator = KeysetPaginator(self.object_list, self.sort, conf.get("PER_PAGE"))
        cursor = {"after": request.GET.get("after"), "before": request.GET.get("before")}

        target = htmx_target(request)
        if target == "dt-rows" and request.GET.get("fp"):
            # An idle poll costs this one narrow query.
            shown = list(
                paginator.page_queryset(**cursor).values_list("pk", "status", "finished_at")
            )
            if self._fingerprint(shown[: paginator.per_page]) == request.GET["fp"]:
                return no_change()

        self.page = paginator.page(**cursor)
        context = self.get_context_data(filter=self.filterset, object_list=self.object_list)
        if target == "dt-rows":
            self.template_name = "django_tasks_admin/partials/result_rows.html"
        elif target == "dt-results":
            self.template_name = "django_tasks_admin/partials/results_region.html"
        return self.render_to_response(context)  # type: ignore[no-any-return]

    @staticmethod
    def _fingerprint(rows: list[tuple[Any, ...]]) -> str:
        return fingerprint([(str(pk), status, finished_at) for pk, status, finished_at in rows])

    def get_table_data(self) -> list[DBTaskResult]:
        return self.page.rows

    def get_table_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"detail_url_name": self.admin.dashboard_url_name("change")}
        if not self.admin.has_retry_permission(self.request):
            kwargs["exclude"] = ("ids",)
        return kwargs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        rows = self.page.rows
        fp = self._fingerprint([(r.pk, r.status, r.finished_at) for r in rows])
        query = self.request.GET.copy()
        query.pop("fp", None)
        filter_query = query.copy()
        for name in ("after", "before", "fp"):
            filter_query.pop(name, None)
        poll_query = query.copy()
        poll_query["fp"] = fp
        context.update(
            page=self.page,
            sort=self.sort,
            live=any(r.status in LIVE_STATUSES for r in rows),
            poll_url=f"{self.request.path}?{poll_query.urlencode()}",
            query=query.urlencode(),
            filter_query=filter_query.urlencode(),
            filter_active=self.filterset.active,
            queue_names=known_queue_names(),
        )
        return context


class ResultDetailView(DashboardMixin, TemplateView):
    template_name = "django_tasks_admin/result_detail.html"
    partial_template_name = "django_tasks_admin/partials/result_body.html"
    tab = "results"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        result_id = kwargs["result_id"]
        target = htmx_target(request)
        polled = target is not None and bool(request.GET.get("fp"))
        if polled:
            state = (
                DBTaskResult.objects.filter(pk=result_id)
                .values_list("status", "started_at", "finished_at", "enqueued_at")
                .first()
            )
            if state is None:
                raise Http404
            if fingerprint(state) == request.GET["fp"]:
                return no_change()
        result = get_object_or_404(DBTaskResult, pk=result_id)
        context = self.get_context_data(result=result, **kwargs)
        if target is None:
            return self.render_to_response(context)
        finished = result.status in FINISHED_STATUSES
        status = HTTP_STOP_POLLING if polled and finished else 200
        return self.render_to_response(
            context, template_name=self.partial_template_name, status=status
        )

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        template_name = kwargs.pop("template_name", None)
        if template_name:
            self.template_name = template_name
        return super().render_to_response(context, **kwargs)  # type: ignore[no-any-return]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        result: DBTaskResult = kwargs["result"]
        context = super().get_context_data(**kwargs)
        context.update(result_context(result, request=self.request, admin=self.admin))
        context["title"] = context["task_name"]
        return context


def result_context(result: DBTaskResult, *, request: HttpRequest, admin: Any) -> dict[str, Any]:
    """What the detail page (and its live region) shows of ``result``."""
    name, module = task_name(result.task_path)
    data = result.exception_data if isinstance(result.exception_data, dict) else None
    args_kwargs = result.args_kwargs if isinstance(result.args_kwargs, dict) else {}
    waiting_from = max(filter(None, [result.enqueued_at, result.run_after]), default=None)
    worker = None
    if result.worker_id:
        worker = DBWorker.objects.filter(pk=result.worker_id).first()
    live = result.status in LIVE_STATUSES
    return {
        "result": result,
        "task_name": name,
        "task_module": module,
        "live": live,
        "fingerprint": fingerprint(
            (result.status, result.started_at, result.finished_at, result.enqueued_at)
        ),
        "waiting": duration_text(result.started_at - waiting_from)
        if result.started_at and waiting_from
        else None,
        "running": duration_text(result.finished_at - result.started_at)
        if result.finished_at and result.started_at
        else None,
        "args_json": pretty_json(args_kwargs.get("args", [])),
        "kwargs_json": pretty_json(args_kwargs.get("kwargs", {})),
        "return_json": pretty_json(result.return_value)
        if result.status == ResultStatus.COMPLETE
        else None,
        "exception": {
            "type": data.get("exc_type", ""),
            "message": exception_message(data.get("exc_args", [])),
            "sections": parse_traceback(data.get("exc_traceback")),
            "raw": data.get("exc_traceback", ""),
        }
        if data
        else None,
        # Newest first, numbered from the first attempt.
        "attempts": [
            _attempt(a, number) for number, a in reversed(list(enumerate(result.attempts or [], 1)))
        ],
        "worker": worker,
        "can_retry_this": result.status == ResultStatus.FAILED
        and admin.has_retry_permission(request),
        "detail_url": reverse(admin.dashboard_url_name("change"), args=[result.pk]),
        "retry_url": reverse(admin.dashboard_url_name("retry"), args=[result.pk]),
    }


def _attempt(record: Any, number: int) -> dict[str, Any]:
    record = record if isinstance(record, dict) else {}
    times = {
        key: parse_datetime(record[key]) if isinstance(record.get(key), str) else None
        for key in ("enqueued_at", "started_at", "finished_at")
    }
    started: datetime | None = times["started_at"]
    finished: datetime | None = times["finished_at"]
    return {
        **times,
        "number": number,
        "exception_class_path": record.get("exception_class_path") or "",
        "message": record.get("message") or "",
        "sections": parse_traceback(record.get("traceback")),
        "worker_id": record.get("worker_id"),
        "running": duration_text(finished - started) if started and finished else None,
    }
