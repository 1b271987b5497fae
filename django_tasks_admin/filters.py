"""The results list's filters, read from the query string."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.db.models import Q, QuerySet, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_filters.widgets import DateRangeWidget, RangeWidget, SuffixedMultiWidget

from django_tasks import get_tasks_setting
from django_tasks.backends.database.models import API_CHOICES, DBTaskResult
from django_tasks.backends.database.services import CANCELLED_EXC_TYPE
from django_tasks.backends.database.services.selection import distinct_values
from django_tasks.task import ResultStatus

# The query-string parameters of filters an index of the results table serves (with
# its enqueued_at order): counting what they select never reads the whole table.
INDEXED_FILTERS = frozenset(
    {"status", "queue", "task", "task_path", "enqueued_after", "enqueued_before", "id", "q"}
)

# A search reads at most this many results: the newest that match the other filters.
SEARCH_WINDOW = 10_000
# The exception filter reads at most this many failed results: the newest that match
# the other filters (no index holds the class, which is inside exception_data).
EXCEPTION_WINDOW = 10_000
# The priority filter reads at most this many results: the newest that match the other
# filters (an index on priority would cost every enqueue).
PRIORITY_WINDOW = 10_000

MAX_TASK_PATHS = 10_000


def task_paths(using: str) -> list[str]:
    """The task paths of the results table (at most MAX_TASK_PATHS), in one query."""
    return distinct_values("task_path", using=using, limit=MAX_TASK_PATHS)


def database_backend_choices() -> list[tuple[str, str]]:
    """Aliases of the configured DatabaseBackends (from settings: no query)."""
    return [
        (alias, alias)
        for alias, config in get_tasks_setting().items()
        if str(config.get("BACKEND", "")).startswith("django_tasks.backends.database")
    ]


def known_queue_names() -> list[str]:
    """Queue names the settings allow (for the queue field's suggestions)."""
    names = {"default"}
    for config in get_tasks_setting().values():
        names.update(config.get("QUEUES") or [])
    return sorted(names)


class DateTimeLocalRangeWidget(DateRangeWidget):  # type: ignore[misc]
    """Two <input type="datetime-local">: ``<name>_after`` and ``<name>_before``."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        widgets = [
            forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        ]
        super(RangeWidget, self).__init__(widgets, attrs)


class NumberRangeWidget(RangeWidget):  # type: ignore[misc]
    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        widgets = [
            forms.NumberInput(attrs={"placeholder": _("min"), "size": 4}),
            forms.NumberInput(attrs={"placeholder": _("max"), "size": 4}),
        ]
        super(RangeWidget, self).__init__(widgets, attrs)


class ExceptionClassInput(forms.TextInput):
    """A text input suggesting the exception classes of the newest failures (a <datalist>).

    The suggestions are read when the input is rendered (the full page), not when
    the filters only select rows (the htmx fragments, the polls).
    """

    datalist_id = "dt-exception-classes"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"list": self.datalist_id, **(attrs or {})})

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        from .triage import recent_exception_classes

        options = format_html_join(
            "", '<option value="{}">', ((c,) for c in recent_exception_classes())
        )
        datalist = format_html('<datalist id="{}">{}</datalist>', self.datalist_id, options)
        return format_html("{}{}", super().render(name, value, attrs, renderer), datalist)


class ResultFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    q = django_filters.CharFilter(
        label=_("Search"),
        method="search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": _("task path or argument"),
                "title": _(
                    "Searches the newest results that match the other filters; "
                    "narrow them by task, queue or time to search further back."
                ),
            }
        ),
    )
    status = django_filters.ChoiceFilter(choices=ResultStatus.choices, empty_label=_("any"))
    queue = django_filters.CharFilter(
        label=_("Queue"),
        method="filter_queues",
        widget=forms.TextInput(attrs={"list": "dt-queue-names", "placeholder": _("a,b")}),
    )
    task = django_filters.CharFilter(label=_("Task path"), method="filter_task")
    task_path = django_filters.CharFilter(
        label=_("Exact task path"),
        field_name="task_path",
        widget=forms.TextInput(attrs={"placeholder": _("myapp.tasks.send_email")}),
    )
    exception = django_filters.CharFilter(
        label=_("Exception class"),
        method="filter_exception",
        validators=[
            RegexValidator(
                r"^\s*[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+\s*$",
                message=_(
                    "Enter the exception's full class path (module, then class), such as "
                    "builtins.ValueError or myapp.errors.PaymentDeclined."
                ),
            )
        ],
        widget=ExceptionClassInput(
            attrs={
                "placeholder": _("myapp.errors.PaymentDeclined"),
                "title": _(
                    "The exception's full class path (failed results only); searches the "
                    "newest failed results that match the other filters."
                ),
            }
        ),
    )
    backend = django_filters.ChoiceFilter(
        label=_("Backend"),
        field_name="backend_name",
        choices=database_backend_choices,
        empty_label=_("any"),
    )
    api = django_filters.ChoiceFilter(
        label=_("API"),
        field_name="api",
        choices=API_CHOICES,
        empty_label=_("any"),
        widget=forms.Select(
            attrs={
                "title": _("Which API enqueued the task: django_tasks, or Django 6's django.tasks")
            }
        ),
    )
    cancelled = django_filters.ChoiceFilter(
        label=_("Cancelled"),
        method="filter_cancelled",
        choices=[("yes", _("cancelled only")), ("no", _("not cancelled"))],
        empty_label=_("any"),
    )
    retrying = django_filters.ChoiceFilter(
        label=_("Waiting to retry"),
        method="filter_retrying",
        choices=[("yes", _("waiting to retry only")), ("no", _("not waiting to retry"))],
        empty_label=_("any"),
        widget=forms.Select(attrs={"title": _("Waiting (NEW) after at least one failed attempt")}),
    )
    priority = django_filters.RangeFilter(
        label=_("Priority"), widget=NumberRangeWidget, method="filter_priority"
    )
    enqueued = django_filters.DateTimeFromToRangeFilter(
        label=_("Enqueued"), field_name="enqueued_at", widget=DateTimeLocalRangeWidget
    )
    finished = django_filters.DateTimeFromToRangeFilter(
        label=_("Finished"), field_name="finished_at", widget=DateTimeLocalRangeWidget
    )
    id = django_filters.UUIDFilter(label=_("Result id"), field_name="id")

    class Meta:
        model = DBTaskResult
        fields: list[str] = []

    # The oldest enqueued_at a search read back to (None: it read every matching row).
    search_window_start: datetime | None = None
    # How many of the newest matching rows a search reads.
    search_window = SEARCH_WINDOW
    # The same for the exception filter, among failed results.
    exception_window_start: datetime | None = None
    exception_window = EXCEPTION_WINDOW
    # The same for the priority filter.
    priority_window_start: datetime | None = None
    priority_window = PRIORITY_WINDOW

    def search(self, queryset: QuerySet[DBTaskResult], name: str, value: str) -> Any:
        """Searched in ``filter_queryset``, after the other filters."""
        return queryset

    def filter_exception(self, queryset: QuerySet[DBTaskResult], name: str, value: str) -> Any:
        """Matched in ``filter_queryset``, after the other filters."""
        return queryset

    def filter_priority(self, queryset: QuerySet[DBTaskResult], name: str, value: Any) -> Any:
        """Matched in ``filter_queryset``, after the other filters."""
        return queryset

    def filter_queryset(self, queryset: QuerySet[DBTaskResult]) -> Any:
        queryset = super().filter_queryset(queryset)
        priority = self.form.cleaned_data.get("priority")
        if priority and (priority.start is not None or priority.stop is not None):
            queryset = self.priority_newest(queryset, priority.start, priority.stop)
        exc_type = (self.form.cleaned_data.get("exception") or "").strip()
        if exc_type:
            queryset = self.exception_newest(queryset, exc_type)
        value = (self.form.cleaned_data.get("q") or "").strip()
        return self.search_newest(queryset, value) if value else queryset

    @staticmethod
    def newest(queryset: QuerySet[DBTaskResult], window: int) -> tuple[Any, datetime | None]:
        """The ``window`` newest rows of ``queryset`` (by enqueued_at), and where they start.

        One query finds the boundary (a range of an enqueued_at index); the rows are
        then that range (the start is None when ``queryset`` has no more rows than that).
        """
        boundary = list(
            queryset.order_by("-enqueued_at", "-pk").values_list("enqueued_at", flat=True)[
                window - 1 : window
            ]
        )
        if not boundary:
            return queryset, None
        return queryset.filter(enqueued_at__gte=boundary[0]), boundary[0]

    def exception_newest(self, queryset: QuerySet[DBTaskResult], exc_type: str) -> Any:
        """Failed results whose exception class is ``exc_type``, among the newest failures.

        The class is inside exception_data, which no index holds: the filter reads
        the EXCEPTION_WINDOW newest failed results that the other filters select.
        """
        failed = queryset.filter(status=ResultStatus.FAILED)
        failed, self.exception_window_start = self.newest(failed, self.exception_window)
        return failed.filter(exception_data__exc_type=exc_type)

    def priority_newest(
        self, queryset: QuerySet[DBTaskResult], low: int | None, high: int | None
    ) -> Any:
        """Results with a priority from ``low`` to ``high``, among the newest results.

        No index holds the priority: a range matching few rows would read the whole
        table along the sort's index, so the filter reads the PRIORITY_WINDOW newest
        results that the other filters select.
        """
        queryset, self.priority_window_start = self.newest(queryset, self.priority_window)
        if low is not None:
            queryset = queryset.filter(priority__gte=low)
        if high is not None:
            queryset = queryset.filter(priority__lte=high)
        return queryset

    def search_newest(self, queryset: QuerySet[DBTaskResult], value: str) -> Any:
        """Match the task path or the JSON text of the arguments, among the newest rows.

        Matching text inside JSON takes reading each row: the search reads the
        SEARCH_WINDOW newest rows that the other filters select (a range of the
        enqueued_at index, found with one more query), never the whole table.
        """
        queryset, self.search_window_start = self.newest(queryset, self.search_window)
        return queryset.annotate(_args_text=Cast("args_kwargs", TextField())).filter(
            Q(task_path__icontains=value) | Q(_args_text__icontains=value)
        )

    @property
    def search_scope(self) -> str:
        """What the search and the exception filter read, when not every matching row ("" otherwise)."""
        scopes = []
        if self.priority_window_start is not None:
            scopes.append(
                gettext(
                    "The priority was matched among the %(n)s newest results that match the "
                    "other filters (enqueued since %(since)s): narrow them by task, queue or "
                    "time to look further back."
                )
                % {
                    "n": number_format(self.priority_window, force_grouping=True),
                    "since": self.priority_window_start.strftime("%Y-%m-%d %H:%M"),
                }
            )
        if self.exception_window_start is not None:
            scopes.append(
                gettext(
                    "The exception class was matched among the %(n)s newest failed results "
                    "that match the other filters (enqueued since %(since)s): narrow them by "
                    "task, queue or time to look further back."
                )
                % {
                    "n": number_format(self.exception_window, force_grouping=True),
                    "since": self.exception_window_start.strftime("%Y-%m-%d %H:%M"),
                }
            )
        if self.search_window_start is not None:
            scopes.append(
                gettext(
                    "Searched the %(n)s newest results that match the other filters (enqueued "
                    "since %(since)s): narrow them by task, queue or time to search further back."
                )
                % {
                    "n": number_format(self.search_window, force_grouping=True),
                    "since": self.search_window_start.strftime("%Y-%m-%d %H:%M"),
                }
            )
        return " ".join(scopes)

    def filter_task(self, queryset: QuerySet[DBTaskResult], name: str, value: str) -> Any:
        """Results whose task path contains ``value`` (any case).

        Matched against the table's distinct task paths, then selected by equality:
        an index range per path, and no rows read at all when no path matches.
        """
        value = value.strip().lower()
        if not value:
            return queryset
        paths = [path for path in task_paths(queryset.db) if value in path.lower()]
        return queryset.filter(task_path__in=paths) if paths else queryset.none()

    def filter_cancelled(self, queryset: QuerySet[DBTaskResult], name: str, value: str) -> Any:
        """Results that failed because services.cancel() cancelled them (or all others)."""
        cancelled = Q(status=ResultStatus.FAILED, exception_data__exc_type=CANCELLED_EXC_TYPE)
        if value == "yes":
            return queryset.filter(cancelled)
        # Coalesced, so rows without exception_data (or its exc_type) are kept: a
        # condition on each row, where a NOT IN (subquery) read every FAILED row first.
        exc_type = Coalesce(KT("exception_data__exc_type"), Value(""), output_field=TextField())
        return queryset.alias(_exc_type=exc_type).exclude(
            status=ResultStatus.FAILED, _exc_type=CANCELLED_EXC_TYPE
        )

    def filter_retrying(self, queryset: QuerySet[DBTaskResult], name: str, value: str) -> Any:
        """NEW results with at least one earlier attempt (or all others)."""
        retrying = Q(status=ResultStatus.NEW) & ~Q(attempts=[])
        return queryset.filter(retrying) if value == "yes" else queryset.exclude(retrying)

    def filter_queues(self, queryset: QuerySet[DBTaskResult], name: str, value: str) -> Any:
        names = [n.strip() for n in value.split(",") if n.strip()]
        return queryset.filter(queue_name__in=names) if names else queryset


@cache
def filter_params() -> dict[str, tuple[str, ...]]:
    """Each filter's query-string names: ``priority`` reads ``priority_min`` and ``priority_max``."""
    params: dict[str, tuple[str, ...]] = {}
    for field in ResultFilterSet().form:
        widget = field.field.widget
        if isinstance(widget, SuffixedMultiWidget):
            params[field.name] = tuple(widget.suffixed(field.name, s) for s in widget.suffixes)
        else:
            params[field.name] = (field.name,)
    return params
