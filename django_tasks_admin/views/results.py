"""The results list: django-filter's FilterView with a django-tables2 table, keyset-paginated.

Its state (filters, sort, cursor, poll fingerprint) is a ``ResultListState``, read
from the query string once, in ``setup()``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from django_filters import FilterSet
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin, Table

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import LIVE_STATUSES
from django_tasks_admin import conf
from django_tasks_admin.filters import ResultFilterSet, known_queue_names
from django_tasks_admin.list_state import rows_fingerprint
from django_tasks_admin.live import no_change
from django_tasks_admin.pagination import KeysetPaginator
from django_tasks_admin.tables import LIST_FIELDS, ResultTable, with_error_class

from .base import DashboardMixin

# The templates an htmx request gets, by the id of the element it targets.
REGIONS = {
    "dt-rows": "django_tasks_admin/partials/result_rows.html",
    "dt-results": "django_tasks_admin/partials/results_region.html",
}


class ResultListView(DashboardMixin, SingleTableMixin, FilterView):  # type: ignore[misc]
    template_name = "django_tasks_admin/results.html"
    filterset_class = ResultFilterSet
    table_class = ResultTable
    paginator_class = KeysetPaginator
    title = _("Task results")
    tab = "results"

    def setup(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().setup(request, *args, **kwargs)
        self.list_state = self.read_list_state()

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self.htmx.target == "dt-rows" and self.list_state.fingerprint:
            # An idle poll costs one narrow query (two on a page that spans the NULLs of
            # a nullable sort column; one more when it searches).
            filterset = self.get_filterset(self.get_filterset_class())
            paginator = self.keyset_paginator(self.filtered(filterset))
            read = paginator.fetch(lambda rows: rows.values_list("pk", "status", "finished_at"))
            shown = read[: paginator.per_page]
            if paginator.backwards:  # read backwards, shown in the list's order
                shown.reverse()
            if rows_fingerprint(shown) == self.list_state.fingerprint:
                return no_change()
        return super().get(request, *args, **kwargs)  # type: ignore[no-any-return]

    def get_queryset(self) -> Any:
        return with_error_class(DBTaskResult.objects.only(*LIST_FIELDS))

    def get_filterset_kwargs(self, filterset_class: type[FilterSet]) -> dict[str, Any]:
        kwargs: dict[str, Any] = super().get_filterset_kwargs(filterset_class)
        kwargs["data"] = self.list_state.filters
        return kwargs

    @staticmethod
    def filtered(filterset: FilterSet) -> Any:
        """The rows the filters select (none when they are invalid), as FilterView.get does."""
        if not filterset.is_bound or filterset.is_valid():
            return filterset.qs
        return filterset.queryset.none()

    def keyset_paginator(self, rows: Any) -> KeysetPaginator:
        return KeysetPaginator(rows, self.per_page, **self.list_state.paginator_kwargs)

    @property
    def per_page(self) -> int:
        return self.list_state.per_page or int(conf.get("PER_PAGE"))

    def get_table_pagination(self, table: Table) -> dict[str, Any]:
        return {
            "paginator_class": self.paginator_class,
            "per_page": self.per_page,
            **self.list_state.paginator_kwargs,
        }

    def get_table_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "detail_url_name": self.admin.dashboard_url_name("change"),
            "order_by": self.list_state.sort.param,
        }
        if not (
            self.admin.has_retry_permission(self.request)
            or self.admin.has_cancel_permission(self.request)
        ):
            kwargs["exclude"] = ("ids",)
        return kwargs

    def get_template_names(self) -> list[str]:
        region = REGIONS.get(self.htmx.target or "") if self.htmx else None
        return [region] if region else [self.template_name]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        state = self.list_state
        page = context["table"].page
        rows = page.rows
        context.update(
            list_state=state,
            page=page,
            pager=state.pager(page),
            live=any(r.status in LIVE_STATUSES for r in rows),
            poll_url=state.poll_url(
                rows_fingerprint((r.pk, r.status, r.finished_at) for r in rows)
            ),
            filter_active=state.filters_active,
            search_scope=self.filterset.search_scope,
            queue_names=known_queue_names(),
        )
        return context
