"""Recurring tasks: ``OPTIONS["schedules"]`` of a DatabaseBackend, and their cron ticks.

A schedule names a task, a cron expression (parsed by cronsim) and a time zone.
Parsing happens while settings load, so it checks only what needs no imports;
``import_problems`` checks the task paths once the apps are ready.  The database
side (which tick ran, enabled or not) lives in ``services.scheduling``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from django.conf import settings
from django.utils.module_loading import import_string

from django_tasks.django_api import is_django_task
from django_tasks.task import MAX_PRIORITY, MIN_PRIORITY, Task
from django_tasks.utils import json_dumps_strict

MISSED_POLICIES = ("run_once", "skip")
"""``missed``: one run now for all ticks missed (default), or none (wait for the next)."""

SCHEDULE_KEYS = ("task", "cron", "timezone", "args", "kwargs", "queue_name", "priority", "missed")
"""The keys a schedule may have; ``task`` and ``cron`` are required."""

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""Cron's aliases, as the five-field expressions they stand for."""

ON_TIME = timedelta(minutes=1)
"""A tick found due later than this after its time was missed (``missed="skip"`` drops it)."""

_CRON_HELP = (
    "use five fields (minute hour day-of-month month day-of-week), six with seconds "
    f"first, or one of {', '.join(ALIASES)}"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """One entry of ``OPTIONS["schedules"]``, checked."""

    name: str
    task_path: str
    cron: str  # as written in the settings
    expression: str  # the cron expression it stands for (aliases expanded)
    timezone: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue_name: str | None = None  # None: the task's own
    priority: int | None = None  # None: the task's own
    missed: str = "run_once"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_tick(self, after: datetime) -> datetime | None:
        """The first tick strictly after ``after`` (aware, in UTC); None if none in 50 years."""
        after = after.astimezone(timezone.utc)
        ticks = CronSim(self.expression, after.astimezone(self.zone))
        for tick in ticks:
            # Across a DST change cronsim counts in wall-clock time: a tick it
            # returns may lie before ``after`` in real time.
            tick = tick.astimezone(timezone.utc)
            if tick > after:
                return tick
        return None

    def previous_tick(self, now: datetime) -> datetime | None:
        """The last tick at or before ``now`` (aware, in UTC); None if none in 50 years."""
        now = now.astimezone(timezone.utc)
        # cronsim's reverse iteration starts one second before a whole second.
        start = now.replace(microsecond=0) + timedelta(seconds=1)
        for tick in CronSim(self.expression, start.astimezone(self.zone), reverse=True):
            tick = tick.astimezone(timezone.utc)
            if tick <= now:
                break
        else:
            return None
        # In a repeated hour, counting back in wall-clock time may skip the tick of
        # the hour's first pass: walk forward to the last tick not after ``now``.
        while (following := self.next_tick(tick)) is not None and following <= now:
            tick = following
        return tick

    def describe(self) -> str:
        """The expression in words, with its time zone: "At 02:30 every day (Europe/Berlin)"."""
        try:
            words = CronSim(self.expression, datetime.now(self.zone)).explain()
        except Exception:  # explain() is best effort; the expression itself is valid
            words = self.expression
        return f"{words} ({self.timezone})"

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        return list(self.args), dict(self.kwargs)


def cron_expression(cron: str) -> str:
    """The expression ``cron`` stands for; raise ValueError (saying why) if it is not valid."""
    expression = ALIASES.get(cron.strip().lower(), cron.strip())
    if expression.startswith("@"):
        raise ValueError(f"unknown alias {cron.strip()!r}")
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=timezone.utc))
    except (CronSimError, ValueError, IndexError) as e:
        raise ValueError(str(e) or type(e).__name__) from e
    return expression


def parse_schedules(
    value: Any, *, backend_name: str
) -> tuple[dict[str, Schedule], list[tuple[str, str]]]:
    """Check ``OPTIONS["schedules"]``: the valid schedules, and one message per mistake."""
    problems: list[str] = []
    where = f"OPTIONS['schedules'] of backend {backend_name!r}"
    if not isinstance(value, Mapping):
        message = f"{where} must be a dict of schedule names to schedules, not {value!r}"
        return {}, [("schedules", message)]
    schedules: dict[str, Schedule] = {}
    seen: dict[str, str] = {}
    for name, entry in value.items():
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            problems.append(
                f"{where}: a schedule's name must be a non-empty string without surrounding "
                f"spaces, not {name!r}"
            )
            continue
        if name.casefold() in seen:
            problems.append(
                f"{where} names one schedule twice: {seen[name.casefold()]!r} and {name!r} "
                "(names are compared ignoring case)"
            )
            continue
        seen[name.casefold()] = name
        schedule = _parse_schedule(name, entry, f"OPTIONS['schedules'][{name!r}]", problems)
        if schedule is not None:
            schedules[name] = schedule
    return schedules, [
        ("schedules", f"{message} (backend {backend_name!r})") for message in problems
    ]


def _parse_schedule(name: str, entry: Any, where: str, problems: list[str]) -> Schedule | None:
    if not isinstance(entry, Mapping):
        problems.append(f"{where} must be a dict with at least 'task' and 'cron', not {entry!r}")
        return None
    before = len(problems)
    unknown = [key for key in entry if key not in SCHEDULE_KEYS]
    if unknown:
        problems.append(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(SCHEDULE_KEYS)}"
        )
    task_path = entry.get("task")
    if not isinstance(task_path, str) or not task_path.strip():
        problems.append(
            f"{where}['task'] must be the import path of a task, such as 'app.tasks.report', "
            f"not {task_path!r}"
        )
    cron = entry.get("cron")
    expression = ""
    if not isinstance(cron, str):
        problems.append(f"{where}['cron'] must be a cron expression, not {cron!r}: {_CRON_HELP}")
    else:
        try:
            expression = cron_expression(cron)
        except ValueError as e:
            problems.append(
                f"{where}['cron'] {cron!r} is not a valid cron expression ({e}): {_CRON_HELP}"
            )
    zone = entry.get("timezone", None)
    if zone is None:
        zone = str(settings.TIME_ZONE or "UTC")
    if not isinstance(zone, str) or not _known_zone(zone):
        problems.append(
            f"{where}['timezone'] {zone!r} is not a known time zone: use an IANA name such "
            "as 'Europe/Berlin' or 'UTC'"
        )
    args = entry.get("args", [])
    if not isinstance(args, (list, tuple)):
        problems.append(f"{where}['args'] must be a list of JSON values, not {args!r}")
    else:
        _check_json(list(args), f"{where}['args']", problems)
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        problems.append(f"{where}['kwargs'] must be a dict of names to JSON values, not {kwargs!r}")
    else:
        _check_json(dict(kwargs), f"{where}['kwargs']", problems)
    queue_name = entry.get("queue_name")
    if queue_name is not None and (not isinstance(queue_name, str) or not queue_name):
        problems.append(f"{where}['queue_name'] must be a queue's name, not {queue_name!r}")
    priority = entry.get("priority")
    if priority is not None and (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not MIN_PRIORITY <= priority <= MAX_PRIORITY
    ):
        problems.append(
            f"{where}['priority'] must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, "
            f"not {priority!r}"
        )
    missed = entry.get("missed", "run_once")
    if missed not in MISSED_POLICIES:
        problems.append(
            f"{where}['missed'] must be one of {', '.join(map(repr, MISSED_POLICIES))}, "
            f"not {missed!r}"
        )
    if len(problems) > before:
        return None
    return Schedule(
        name=name,
        task_path=str(task_path).strip(),
        cron=str(cron),
        expression=expression,
        timezone=zone,
        args=list(args),
        kwargs=dict(kwargs),
        queue_name=queue_name,
        priority=priority,
        missed=missed,
    )


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check_json(value: Any, where: str, problems: list[str]) -> None:
    try:
        json_dumps_strict(value, name=where)
    except (TypeError, ValueError) as e:
        problems.append(f"{e} (task arguments are stored as JSON)")


def import_task(task_path: str) -> Any:
    """Import the task at ``task_path``; raise ValueError saying what is wrong."""
    try:
        task = import_string(task_path)
    except ImportError as e:
        raise ValueError(f"cannot import {task_path!r}: {e}") from e
    if not isinstance(task, Task) and not is_django_task(task):
        raise ValueError(
            f"{task_path!r} is not a task but {type(task).__qualname__}: decorate the "
            "function with @task (django_tasks or django.tasks)"
        )
    return task


def import_problems(schedules: Mapping[str, Schedule], *, backend_name: str) -> Iterator[str]:
    """Yield a message per schedule whose task cannot be imported or is not a task."""
    for name, schedule in schedules.items():
        try:
            import_task(schedule.task_path)
        except ValueError as e:
            yield f"OPTIONS['schedules'][{name!r}]['task'] of backend {backend_name!r}: {e}"
