"""Template helpers of the dashboard: ``{% load django_tasks_admin %}``."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils.safestring import SafeString

from django_tasks import django_api
from django_tasks_admin.attempts import time_limit_label
from django_tasks_admin.formatting import duration_text, time_html
from django_tasks_admin.list_state import ResultListState
from django_tasks_admin.tables import api_html, status_html

register = template.Library()


@register.simple_tag
def dt_time(value: datetime | None, inline: bool = False) -> SafeString:
    """Relative and absolute time (in the active time zone) of ``value``."""
    return time_html(value, inline=inline)


@register.filter
def dt_status(value: str, api: str = django_api.OURS) -> SafeString:
    """A coloured status badge (``{{ row.status|dt_status:row.api }}``: with django.tasks' name)."""
    return status_html(value, api)


@register.filter
def dt_api(value: str) -> SafeString:
    """A badge naming django.tasks on the rows it enqueued (nothing on ours)."""
    return api_html(value)


@register.filter
def dt_duration(value: timedelta | None) -> str:
    return duration_text(value)


@register.simple_tag
def dt_sort_url(list_state: ResultListState, column: str) -> str:
    """The results list sorted by ``column`` (reversed if it is sorted by it already)."""
    return list_state.sort_url(column)


@register.simple_tag
def dt_time_limit_label(time_limit: float | None = None) -> SafeString:
    """The "time limit" badge of a failure that ran past its limit."""
    return time_limit_label(time_limit)
