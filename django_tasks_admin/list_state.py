"""The results list's state (filters, sort, page cursor, poll fingerprint) and its URLs.

The list keeps all of its state in the query string.  ``ResultListState`` reads it
once per request and builds every URL the list needs from it (pages, sort headers,
the poll, "retry all matching"), with QueryDict encoding, so a filter or the sort
is never dropped or mis-encoded on the way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django import forms
from django.http import QueryDict

from .filters import filter_params
from .live import fingerprint
from .pagination import Page, Sort, SortKey, page_size

# Sortable columns (by table column name) and the columns each sorts by.  Each sort is
# served by an index range (migrations 0002 and 0009): enqueued_at and finished_at by
# (column, id); status, queue and task by (column, enqueued_at), with enqueued_at then
# the primary key breaking ties.  Priority is not offered: it holds a handful of values,
# the priority filter selects them, and an index for it would cost every enqueue.
SORT_KEYS = {
    "status": SortKey(field="status", then=("enqueued_at",)),
    "task": SortKey(field="task_path", then=("enqueued_at",)),
    "queue": SortKey(field="queue_name", then=("enqueued_at",)),
    "enqueued": SortKey(field="enqueued_at"),
    "finished": SortKey(field="finished_at", nullable=True),
}
DEFAULT_SORT = "-enqueued"

# The list's own parameters, beside the filters'.
SORT = "sort"
PER_PAGE = "per_page"
AFTER = "after"
BEFORE = "before"
FINGERPRINT = "fp"


def parse_sort(value: str | None) -> Sort | None:
    """Return the sort ``value`` names ("name" or "-name"), or None if no column has that name."""
    name = (value or "").removeprefix("-")
    if name not in SORT_KEYS:
        return None
    return Sort(key=SORT_KEYS[name], name=name, descending=(value or "").startswith("-"))


def default_sort() -> Sort:
    sort = parse_sort(DEFAULT_SORT)
    assert sort is not None
    return sort


def rows_fingerprint(rows: Iterable[tuple[Any, str, datetime | None]]) -> str:
    """A short digest of the (pk, status, finished_at) of the rows a page shows."""
    return fingerprint([(str(pk), status, finished_at) for pk, status, finished_at in rows])


@dataclass(frozen=True, slots=True, kw_only=True)
class Pager:
    """The links of the pager below the table (None: no such page)."""

    first_url: str | None
    previous_url: str | None
    next_url: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultListState:
    """What the results list shows, read from its query string, and the URLs built from it.

    ``list_url``, ``retry_matching_url`` and ``cancel_matching_url`` are the pages' paths.  Links shown on
    the list itself (pages, sort headers) are relative ("?..."); the others are paths.
    """

    list_url: str
    retry_matching_url: str
    cancel_matching_url: str = ""
    filters: QueryDict  # only the filters' parameters, each with its (non-empty) value
    sort: Sort
    per_page: int | None = None
    after: str | None = None
    before: str | None = None
    fingerprint: str | None = None
    # Parameters that were not used, as shown to the user ("foo", "sort=bar").
    ignored: tuple[str, ...] = ()

    @classmethod
    def from_query(
        cls,
        query: QueryDict,
        *,
        list_url: str,
        retry_matching_url: str,
        cancel_matching_url: str = "",
    ) -> ResultListState:
        """Read the state from a request's query string; what it can't use goes to ``ignored``."""
        known_filters = {name for names in filter_params().values() for name in names}
        filters = QueryDict(mutable=True)
        state: dict[str, Any] = {"sort": default_sort()}
        ignored: list[str] = []
        for name, values in query.lists():
            # Like QueryDict.get(), the last value counts; an empty one means "not set".
            value = values[-1] if values else ""
            if name in known_filters:
                if value:
                    filters[name] = value
            elif name == SORT:
                sort = parse_sort(value)
                if sort is not None:
                    state["sort"] = sort
                elif value:
                    ignored.append(f"{SORT}={value}")
            elif name == PER_PAGE:
                # Read as django-tables2's RequestConfig reads it, sized as the paginator sizes it.
                try:
                    state["per_page"] = page_size(int(value))
                except ValueError:
                    if value:
                        ignored.append(f"{PER_PAGE}={value}")
            elif name in (AFTER, BEFORE, FINGERPRINT):
                state[name if name != FINGERPRINT else "fingerprint"] = value or None
            else:
                ignored.append(name)
        return cls(
            list_url=list_url,
            retry_matching_url=retry_matching_url,
            cancel_matching_url=cancel_matching_url,
            filters=filters,
            ignored=tuple(ignored),
            **state,
        )

    # What the list shows

    @property
    def filters_active(self) -> bool:
        return bool(self.filters)

    @property
    def paginator_kwargs(self) -> dict[str, Any]:
        """The KeysetPaginator's keyword arguments: sort and cursor."""
        return {"sort": self.sort, "after": self.after, "before": self.before}

    @property
    def form_params(self) -> list[tuple[str, str]]:
        """Hidden fields of the filter form: the list state that a new filter keeps."""
        params = self._list_query(cursor=False)
        for names in filter_params().values():
            for name in names:
                params.pop(name, None)
        return [(name, value) for name, values in params.lists() for value in values]

    def filter_summary(self, form: forms.Form) -> list[tuple[str, str]]:
        """(label, value) of every filter set, in the form's order: what a bulk action touches."""
        summary = []
        for field, names in filter_params().items():
            parts = []
            for name in names:
                value = self.filters.get(name)
                if value:
                    suffix = name.removeprefix(field).lstrip("_")
                    parts.append(f"{suffix} {value}" if suffix else value)
            if parts:
                summary.append((str(form[field].label), ", ".join(parts)))
        return summary

    # URLs

    def _list_query(
        self, *, cursor: bool = True, sort: Sort | None = None, extra: dict[str, str] | None = None
    ) -> QueryDict:
        query = self.filters.copy()
        sort = sort or self.sort
        if sort.param != DEFAULT_SORT:
            query[SORT] = sort.param
        if self.per_page is not None:
            query[PER_PAGE] = str(self.per_page)
        if cursor and self.before:
            query[BEFORE] = self.before
        elif cursor and self.after:
            query[AFTER] = self.after
        for name, value in (extra or {}).items():
            query[name] = value
        return query

    @property
    def current_url(self) -> str:
        """This page of the list, without the poll fingerprint (where actions come back to)."""
        query = self._list_query().urlencode()
        return f"{self.list_url}?{query}" if query else self.list_url

    def page_url(self, *, after: str | None = None, before: str | None = None) -> str:
        """A page of the same filters and sort: after or before a cursor, else the first."""
        cursor = {BEFORE: before} if before else {AFTER: after} if after else {}
        return f"?{self._list_query(cursor=False, extra=cursor).urlencode()}"

    def pager(self, page: Page) -> Pager:
        return Pager(
            first_url=self.page_url() if page.has_previous else None,
            previous_url=self.page_url(before=page.previous_cursor)
            if page.previous_cursor
            else None,
            next_url=self.page_url(after=page.next_cursor) if page.next_cursor else None,
        )

    def sort_url(self, column: str) -> str:
        """The first page sorted by ``column``: ascending, or reversed if already sorted by it."""
        sort = parse_sort(column)
        if sort is None:
            raise ValueError(f"Column {column!r} is not sortable")
        if sort.name == self.sort.name:
            sort = replace(sort, descending=not self.sort.descending)
        return f"?{self._list_query(cursor=False, sort=sort).urlencode()}"

    def poll_url(self, fingerprint: str) -> str:
        """This page again, answered with 204 while its rows' fingerprint stays the same."""
        return f"{self.list_url}?{self._list_query(extra={FINGERPRINT: fingerprint}).urlencode()}"

    @property
    def filter_url(self) -> str:
        """The list with these filters only (default sort, first page)."""
        query = self.filters.urlencode()
        return f"{self.list_url}?{query}" if query else self.list_url

    def _with_filters(self, url: str) -> str:
        query = self.filters.urlencode()
        return f"{url}?{query}" if query else url

    @property
    def retry_matching_link(self) -> str:
        """The "retry all matching" preview of these filters."""
        return self._with_filters(self.retry_matching_url)

    @property
    def cancel_matching_link(self) -> str:
        """The "cancel all matching" preview of these filters."""
        return self._with_filters(self.cancel_matching_url)
