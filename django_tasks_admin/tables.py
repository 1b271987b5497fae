"""The results table: columns and cell formatting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import django_tables2 as tables
from django.db.models import Case, QuerySet, TextField, When
from django.db.models.fields.json import KT
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django_tables2.columns.base import BoundColumn
from django_tables2.rows import BoundRow, BoundRows
from django_tables2.utils import AttributeDict, signature

from django_tasks import django_api
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.services.queues import paused_by_backend
from django_tasks.task import ResultStatus

from .attempts import is_time_limit, time_limit_label
from .formatting import duration_text, task_name, time_html

# Only the columns the table shows: the JSON columns can be large.
LIST_FIELDS = (
    "id",
    "status",
    "task_path",
    "queue_name",
    "backend_name",
    "priority",
    "enqueued_at",
    "started_at",
    "finished_at",
    "run_after",
    "api",
)


def with_error_class(rows: QuerySet[DBTaskResult]) -> QuerySet[DBTaskResult]:
    """``rows`` with ``exc_type``: a FAILED row's exception class path, else None.

    Read in SQL from ``exception_data``, so the list never loads tracebacks.
    """
    return rows.annotate(
        exc_type=Case(
            When(status=ResultStatus.FAILED, then=KT("exception_data__exc_type")),
            default=None,
            output_field=TextField(),
        )
    )


# The statuses django.tasks names otherwise (NEW: READY, COMPLETE: SUCCESSFUL).
_DJANGO_NAMES = {
    str(ours.value): theirs
    for ours, theirs in django_api.DJANGO_STATUS_NAMES.items()
    if ours.value != theirs
}


def django_status_name(status: str, api: str) -> str | None:
    """What django.tasks calls ``status``, for a row it enqueued, where the name differs."""
    return _DJANGO_NAMES.get(status) if api == django_api.DJANGO else None


def status_html(status: str, api: str = django_api.OURS) -> SafeString:
    """A status badge in our vocabulary; django.tasks' name, where it differs, as its title."""
    other = django_status_name(status, api)
    if other is None:
        return format_html('<span class="dt-status dt-status-{}">{}</span>', status.lower(), status)
    return format_html(
        '<span class="dt-status dt-status-{}" title="{}">{}</span>',
        status.lower(),
        _("django.tasks: %(status)s") % {"status": other},
        status,
    )


def api_html(api: str) -> SafeString:
    """A small badge on rows that Django 6's django.tasks enqueued (nothing on ours)."""
    if api != django_api.DJANGO:
        return SafeString("")
    return format_html(
        '<span class="dt-api" title="{}">{}</span>', _("Enqueued with django.tasks"), api
    )


Cell = tuple[Any, Callable[["ResultRow"], Any]]


class ResultRow(BoundRow):  # type: ignore[misc]
    """A row whose cells are rendered by the table's per-column renderers (see ``cells()``)."""

    def items(self) -> Iterator[tuple[Any, Any]]:
        for column, render in self.table.cells():
            yield column, render(self)

    @property
    def attrs(self) -> AttributeDict:
        """The <tr> attributes: Meta.row_attrs of the record (each takes only the record)."""
        attrs = AttributeDict(
            {name: value(self.record) for name, value in self.table.row_attrs.items()}
        )
        attrs["class"] = self.get_even_odd_css_class()
        return attrs


class ResultRows(BoundRows):  # type: ignore[misc]
    """The table's rows, as ``ResultRow``s."""

    def __iter__(self) -> Iterator[ResultRow]:
        for record in self.data:
            yield ResultRow(record, table=self.table)


class ResultTable(tables.Table):  # type: ignore[misc]
    """The results list's columns; its sortable ones are ``list_state.SORT_KEYS``."""

    ids = tables.CheckBoxColumn(
        accessor="pk",
        attrs={
            "th__input": {"class": "dt-select-all", "aria-label": _("Select all")},
            "td__input": {
                "id": lambda record: f"dt-select-{record.pk}",
                "hx-preserve": "true",
                "form": "dt-actions",
                "class": "dt-select",
            },
        },
    )
    status = tables.Column(verbose_name=_("Status"))
    task = tables.Column(accessor="task_path", verbose_name=_("Task"))
    queue = tables.Column(accessor="queue_name", verbose_name=_("Queue"))
    # Not sortable: see list_state.SORT_KEYS.
    priority = tables.Column(
        verbose_name=_("Priority"), orderable=False, attrs={"td": {"class": "dt-num"}}
    )
    enqueued = tables.Column(accessor="enqueued_at", verbose_name=_("Enqueued"))
    finished = tables.Column(
        accessor="finished_at", verbose_name=_("Finished"), default=None, empty_values=()
    )
    took = tables.Column(
        accessor="pk", verbose_name=_("Ran for"), orderable=False, attrs={"td": {"class": "dt-num"}}
    )
    # The list's queryset annotates exc_type (list_rows()); a FAILED row's only.
    error = tables.Column(
        accessor="exc_type",
        verbose_name=_("Error"),
        orderable=False,
        default="",
        attrs={"td": {"class": "dt-error"}},
    )

    class Meta:
        model = DBTaskResult
        fields = (
            "ids",
            "status",
            "task",
            "queue",
            "priority",
            "enqueued",
            "finished",
            "took",
            "error",
        )
        template_name = "django_tasks_admin/table.html"
        attrs = {"id": "result_list", "class": "dt-table"}
        row_attrs = {
            "id": lambda record: f"dt-row-{record.pk}",
            "data-status": lambda record: record.status,
            "data-api": lambda record: record.api,
        }
        empty_text = _("No task results match.")
        # Pages are sized by the view; but RequestConfig hands ?per_page=0 to paginate()
        # as 0, which falls back to this: like any size below 1, it means 1 (page_size()).
        per_page = 1

    def __init__(self, *args: Any, detail_url_name: str, **kwargs: Any) -> None:
        self.detail_url_name = detail_url_name
        self._cells: list[Cell] | None = None
        self._paused: dict[str, frozenset[str]] | None = None
        super().__init__(*args, **kwargs)
        self.rows = ResultRows(data=self.data, table=self)

    def cells(self) -> list[Cell]:
        """Per shown column: what the row template reads of it (its <td> attributes), and
        its cell renderer.

        django-tables2 inspects each cell's render method's signature and recomputes
        the column's attributes for every cell, which made about half of a page's
        time; both are worked out here once per table.  Our columns' <td> attributes
        do not depend on the row, and none uses a field's choices display.
        """
        if self._cells is None:
            self._cells = [
                (SimpleNamespace(attrs={"td": _td_attrs(c)}), _renderer(self, c))
                for c in self.columns
            ]
        return self._cells

    def render_status(self, record: DBTaskResult) -> SafeString:
        return status_html(record.status, record.api)

    def render_task(self, value: str, record: DBTaskResult) -> SafeString:
        name, module = task_name(value)
        url = reverse(self.detail_url_name, args=[record.pk])
        return format_html(
            '<a href="{}" class="dt-task">{}</a>{}<small class="dt-abs">{}</small>',
            url,
            name,
            api_html(record.api),
            module,
        )

    def render_queue(self, value: str, record: DBTaskResult) -> SafeString:
        """The queue's name, and a "paused" badge: one query per table, on its first row."""
        if self._paused is None:
            self._paused = paused_by_backend()
        if value in self._paused.get(record.backend_name, ()):
            return format_html("{}{}", value, paused_badge())
        return format_html("{}", value)

    def render_enqueued(self, value: Any, record: DBTaskResult) -> SafeString:
        html = time_html(value)
        if record.run_after and record.status == "NEW":
            return format_html(
                '{}<small class="dt-abs">runs {}</small>',
                html,
                time_html(record.run_after, inline=True),
            )
        return html

    def render_finished(self, value: Any) -> SafeString:
        return time_html(value)

    def render_took(self, record: DBTaskResult) -> str:
        if record.started_at is None:
            return "—"
        if record.finished_at is None:
            return "…"
        return duration_text(record.finished_at - record.started_at)

    def render_error(self, value: str, record: DBTaskResult) -> SafeString:
        """The failure's short class name (its path as the title), linking to every failure
        of that class; "time limit" labelled."""
        short = value.rpartition(".")[2] or value
        html = format_html(
            '<a class="dt-exc-filter" href="?{}">'
            '<code class="dt-exc-class" title="{}">{}</code></a>',
            urlencode({"exception": value}),
            value,
            short,
        )
        if is_time_limit(value):
            return format_html("{} {}", time_limit_label(), html)
        return html


def paused_badge() -> SafeString:
    """The badge beside a paused queue's name, wherever the queue appears."""
    return format_html(
        ' <span class="dt-paused" title="{}">{}</span>',
        _("Workers claim nothing from this queue until it is resumed"),
        _("paused"),
    )


class _Attrs(SimpleNamespace):
    as_html: SafeString


def _td_attrs(column: BoundColumn) -> _Attrs:
    return _Attrs(as_html=mark_safe(column.attrs["td"].as_html()))  # built by format_html


def _renderer(table: ResultTable, column: BoundColumn) -> Callable[[ResultRow], Any]:
    """Render ``column``'s cell of a row as django-tables2's BoundRow.get_cell() does."""
    render = column.render
    names, any_names = signature(render)
    accessor = str(column.accessor)
    empty = column.column.empty_values
    default = column.default

    def cell(row: ResultRow) -> Any:
        record = row.record
        value = getattr(record, accessor)
        if value in empty:
            return default
        available = {
            "value": value,
            "record": record,
            "column": column.column,
            "bound_column": column,
            "bound_row": row,
            "table": table,
        }
        if any_names:
            return render(**available)
        return render(**{name: available[name] for name in names})

    return cell
