"""The results list's filters, read from the query string."""

from __future__ import annotations

from functools import cache
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.translation import gettext_lazy as _
from django_filters.widgets import DateRangeWidget, RangeWidget, SuffixedMultiWidget

from django_tasks import get_tasks_setting
from django_tasks.backends.database.models import API_CHOICES, DBTaskResult
from django_tasks.backends.database.services import CANCELLED_EXC_TYPE
from django_tasks.task import ResultStatus


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


class ResultFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    q = django_filters.CharFilter(
        label=_("Search"),
        method="search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("task path or argument")}),
    )
    status = django_filters.ChoiceFilter(choices=ResultStatus.choices, empty_label=_("any"))
    queue = django_filters.CharFilter(
        label=_("Queue"),
        method="filter_queues",
        widget=forms.TextInput(attrs={"list": "dt-queue-names", "placeholder": _("a,b")}),
    )
    task = django_filters.CharFilter(
        label=_("Task path"), field_name="task_path", lookup_expr="icontains"
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
    priority = django_filters.RangeFilter(label=_("Priority"), widget=NumberRangeWidget)
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

    def search(self, queryset: QuerySet[DBTaskResult], name: str, value: str) -> Any:
        """Match the task path, or the JSON text of the arguments."""
        value = value.strip()
        if not value:
            return queryset
        return queryset.annotate(_args_text=Cast("args_kwargs", TextField())).filter(
            Q(task_path__icontains=value) | Q(_args_text__icontains=value)
        )

    def filter_cancelled(self, queryset: QuerySet[DBTaskResult], name: str, value: str) -> Any:
        """Results that failed because services.cancel() cancelled them (or all others)."""
        cancelled = Q(status=ResultStatus.FAILED, exception_data__exc_type=CANCELLED_EXC_TYPE)
        if value == "yes":
            return queryset.filter(cancelled)
        # The pk subquery keeps rows whose exception_data is NULL (SQL's NOT IN on NULL).
        return queryset.exclude(pk__in=DBTaskResult.objects.filter(cancelled).values("pk"))

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
