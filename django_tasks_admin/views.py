"""Dashboard pages: overview, results list, result detail.

Each view is mounted by ``TaskResultAdmin.get_urls()`` inside ``admin_site.admin_view``
(login, staff check, never_cache) and renders the admin's context, so pages get
the sidebar, breadcrumbs, messages and dark mode of the admin they live in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView
from django.views.generic.base import ContextMixin
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.utils import exception_message

from . import conf
from .detail import result_context
from .filters import ResultFilterSet, known_queue_names
from .formatting import task_name
from .live import (
    FINISHED_STATUSES,
    HTTP_STOP_POLLING,
    LIVE_STATUSES,
    fingerprint,
    htmx_target,
    no_change,
)
from .pagination import KeysetPaginator, parse_sort
from .stats import count_results
from .tables import DEFAULT_SORT, LIST_FIELDS, SORT_KEYS, ResultTable

if TYPE_CHECKING:
    from .admin import TaskResultAdmin


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
