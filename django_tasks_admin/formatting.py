"""Rendering values for people: times, durations, JSON, exceptions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe


def absolute_time(value: datetime) -> str:
    """Return ``value`` in the active time zone, to the second, with the zone's name."""
    local = timezone.localtime(value)
    return f"{date_format(local, 'Y-m-d H:i:s')} {local.tzname() or ''}".rstrip()


def relative_time(value: datetime, now: datetime | None = None) -> str:
    """Return "3 m 5 s ago" or "in 1 h 59 m": two units, never "in 1 hour" for 1 h 59 m."""
    now = now or timezone.now()
    if value <= now:
        return f"{exact_duration(now - value)} ago"
    return f"in {exact_duration(value - now)}"


def exact_duration(delta: timedelta) -> str:
    """Return ``delta`` in its two largest units, the smaller one rounded.

    "45 s", "4 m 5 s", "1 h 59 m", "3 d 4 h" (a zero second unit is left out: "2 h").
    """
    seconds = abs(delta.total_seconds())
    if round(seconds) < 3600:
        return _two_units(round(seconds), 60, "m", "s")
    if round(seconds / 60) < 24 * 60:
        return _two_units(round(seconds / 60), 60, "h", "m")
    return _two_units(round(seconds / 3600), 24, "d", "h")


def _two_units(count: int, per: int, large: str, small: str) -> str:
    big, rest = divmod(count, per)
    if not big:
        return f"{rest} {small}"
    return f"{big} {large} {rest} {small}" if rest else f"{big} {large}"


def time_html(value: datetime | None, *, inline: bool = False) -> SafeString:
    """A <time> showing relative time, with the absolute time below (or after it, inline)."""
    if value is None:
        return mark_safe('<span class="dt-muted">—</span>')
    template = (
        '<time datetime="{}" title="{}">{} <small class="dt-muted">({})</small></time>'
        if inline
        else '<time datetime="{}" title="{}">{}<small class="dt-abs">{}</small></time>'
    )
    absolute = absolute_time(value)
    return format_html(template, value.isoformat(), absolute, relative_time(value), absolute)


def duration_text(delta: timedelta | None) -> str:
    """Return a short duration: "850 ms", "12.3 s", "4 min 5 s", "2 h 3 min", "3 d 4 h"."""
    if delta is None:
        return "—"
    seconds = delta.total_seconds()
    if seconds < 0:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def pretty_json(value: Any) -> str:
    """Indented JSON text (escape it when rendering: it is user data)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def task_name(task_path: str) -> tuple[str, str]:
    """Split "pkg.module.func" into ("func", "pkg.module")."""
    module, _, name = task_path.rpartition(".")
    return name or task_path, module
