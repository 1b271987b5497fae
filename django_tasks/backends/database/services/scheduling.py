"""Recurring tasks: enqueue each due tick of each schedule exactly once, enable, run now.

Every ``db_worker`` calls ``enqueue_due`` at each tick.  Exactly once per tick is
the database's doing, in one transaction per tick:

1. a conditional UPDATE moves the schedule's ``last_tick`` forward to the tick
   (only if it is still behind it and the schedule is enabled): of several
   workers, the first holds the row's lock, the others then update nothing;
2. the run's row is inserted, unique per (backend, schedule, tick): a second
   insert fails whatever happened before it;
3. the task is enqueued as any other (same transaction), and linked to the run.

``now`` is injectable everywhere, so tests drive many ticks without waiting.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import IntegrityError, router, transaction
from django.db.models.functions import Greatest
from django.utils import timezone

from django_tasks import tasks
from django_tasks.backends.database.models import DBSchedule, DBScheduledRun
from django_tasks.backends.database.schedules import ON_TIME, Schedule, import_task
from django_tasks.exceptions import InvalidTaskBackendError
from django_tasks.task import TaskResult

logger = logging.getLogger("django_tasks.backends.database.schedules")

__all__ = [
    "DueOutcome",
    "ScheduleState",
    "UnknownSchedule",
    "configured_schedules",
    "enqueue_due",
    "failed_schedules",
    "run_now",
    "schedule_states",
    "set_enabled",
]


class UnknownSchedule(LookupError):
    """No schedule of that name is configured for that backend."""


@dataclass(slots=True, kw_only=True)
class DueOutcome:
    """What one ``enqueue_due`` pass did, and when the next tick of any schedule is."""

    enqueued: list[DBScheduledRun] = field(default_factory=list)
    skipped: list[tuple[str, datetime]] = field(default_factory=list)  # missed="skip"
    next_tick: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleState:
    """A schedule as the command and the dashboard show it."""

    backend_name: str
    schedule: Schedule
    enabled: bool
    next_run: datetime | None
    # A tick due and not yet handled (no worker has run since): run_once runs it late.
    waiting_tick: datetime | None
    last_run: DBScheduledRun | None

    @property
    def name(self) -> str:
        return self.schedule.name

    @property
    def last_status(self) -> str | None:
        """The status of the last run's result (None: no run, or its result was pruned)."""
        run = self.last_run
        return None if run is None or run.result is None else str(run.result.status)


def configured_schedules(backend_name: str | None = None) -> Iterator[tuple[str, Schedule]]:
    """Yield ``(backend alias, schedule)`` for each schedule of each database backend."""
    aliases = [backend_name] if backend_name is not None else list(tasks)
    for alias in aliases:
        try:
            backend = tasks[alias]
        except InvalidTaskBackendError:
            if backend_name is not None:
                raise
            continue  # listing every backend's schedules: manage.py check reports this one
        options = getattr(backend, "db_options", None)  # a DatabaseBackend's
        for schedule in getattr(options, "schedules", {}).values():
            yield alias, schedule


def _schedule(backend_name: str, name: str) -> Schedule:
    for _, schedule in configured_schedules(backend_name):
        if schedule.name == name:
            return schedule
    raise UnknownSchedule(f"No schedule {name!r} is configured for backend {backend_name!r}")


def _rows(
    backend_name: str, schedules: Mapping[str, Schedule], now: datetime
) -> dict[str, DBSchedule]:
    """The schedules' rows, created on first sight; counting restarts when the cron changed."""
    rows = {row.name: row for row in DBSchedule.objects.filter(backend_name=backend_name)}
    missing = [
        DBSchedule(
            backend_name=backend_name,
            name=s.name,
            last_tick=now,
            expression=s.expression,
            timezone=s.timezone,
        )
        for s in schedules.values()
        if s.name not in rows
    ]
    if missing:
        DBSchedule.objects.bulk_create(missing, ignore_conflicts=True)
        names = [row.name for row in missing]
        for row in DBSchedule.objects.filter(backend_name=backend_name, name__in=names):
            rows[row.name] = row
    for name, schedule in schedules.items():
        row = rows[name]
        if (row.expression, row.timezone) != (schedule.expression, schedule.timezone):
            # The settings changed: ticks of the old expression are not caught up.
            DBSchedule.objects.filter(pk=row.pk).update(
                last_tick=Greatest("last_tick", now),
                expression=schedule.expression,
                timezone=schedule.timezone,
            )
            row.refresh_from_db()
    return rows


def enqueue_due(*, backend_name: str, now: datetime | None = None) -> DueOutcome:
    """Enqueue the due tick of each enabled schedule of ``backend_name``, once in all workers.

    A schedule is due when a tick passed since the last one handled.  Ticks
    missed while no worker ran are never run one by one: ``missed="run_once"``
    enqueues one run (for the newest), ``"skip"`` enqueues none unless the
    newest tick is at most ``ON_TIME`` old.
    """
    now = now or timezone.now()
    schedules = {s.name: s for _, s in configured_schedules(backend_name)}
    outcome = DueOutcome()
    if not schedules:
        return outcome
    rows = _rows(backend_name, schedules, now)
    for name, schedule in schedules.items():
        row = rows[name]
        tick = schedule.previous_tick(now)
        if row.enabled and tick is not None and tick > row.last_tick:
            run = schedule.missed == "run_once" or now - tick <= ON_TIME
            enqueued = _handle_tick(backend_name, schedule, row, tick, run=run, now=now)
            if enqueued is not None:
                outcome.enqueued.append(enqueued)
            elif not run:
                outcome.skipped.append((name, tick))
        following = schedule.next_tick(max(now, row.last_tick, tick or now))
        if following is not None and (outcome.next_tick is None or following < outcome.next_tick):
            outcome.next_tick = following
    return outcome


def _handle_tick(
    backend_name: str,
    schedule: Schedule,
    row: DBSchedule,
    tick: datetime,
    *,
    run: bool,
    now: datetime,
) -> DBScheduledRun | None:
    """Move the schedule to ``tick``; if ``run``, enqueue its run. None if another worker did."""
    using = router.db_for_write(DBSchedule)
    try:
        with transaction.atomic(using=using):
            moved = DBSchedule.objects.filter(
                pk=row.pk,
                last_tick__lt=tick,
                enabled=True,
                expression=schedule.expression,
                timezone=schedule.timezone,
            ).update(last_tick=tick)
            if not moved:
                return None  # another worker handled it, or it was disabled meanwhile
            if not run:
                logger.info(
                    "Skipped missed tick schedule=%s tick=%s (missed=skip)",
                    schedule.name,
                    tick.isoformat(),
                )
                return None
            scheduled = DBScheduledRun.objects.create(
                backend_name=backend_name, schedule_name=schedule.name, tick=tick, enqueued_at=now
            )
            if not _enqueue_run(scheduled, schedule, using=using):
                return None
    except IntegrityError:
        return None  # the tick's run exists: another worker enqueued it
    logger.info(
        "Enqueued schedule=%s tick=%s id=%s", schedule.name, tick.isoformat(), scheduled.result_id
    )
    return scheduled


def _enqueue_run(scheduled: DBScheduledRun, schedule: Schedule, *, using: str) -> bool:
    """Enqueue the schedule's task for ``scheduled`` and link them; False (logged) if refused.

    A task that cannot be enqueued (its arguments no longer fit, or another of its
    results holds its unique key) loses this tick rather than being retried at
    every pass.
    """
    try:
        with transaction.atomic(using=using):
            result = _enqueue(schedule, scheduled.backend_name)
            scheduled.result_id = UUID(str(result.id))
            scheduled.save(update_fields=["result"])
    except Exception:  # refused: bad arguments, a unique key held, a task gone...
        logger.exception(
            "Could not enqueue schedule=%s tick=%s task=%s",
            schedule.name,
            scheduled.tick.isoformat(),
            schedule.task_path,
        )
        DBScheduledRun.objects.filter(pk=scheduled.pk).delete()
        return False
    return True


def _enqueue(schedule: Schedule, backend_name: str) -> TaskResult[Any]:
    """Enqueue the schedule's task, as its own ``enqueue()`` would, within this transaction."""
    task = import_task(schedule.task_path)
    changes: dict[str, Any] = {"backend": backend_name}
    if schedule.queue_name is not None:
        changes["queue_name"] = schedule.queue_name
    if schedule.priority is not None:
        changes["priority"] = schedule.priority
    task = task.using(**changes)
    if getattr(task, "enqueue_on_commit", None) is not False and any(
        f.name == "enqueue_on_commit" for f in dataclasses.fields(task)
    ):
        # The row must be written in the tick's transaction, not after it.  A
        # shallow copy keeps what using() carries beside the fields (lifecycle).
        task = copy.copy(task)
        object.__setattr__(task, "enqueue_on_commit", False)
    args, kwargs = schedule.arguments()
    result: TaskResult[Any] = task.enqueue(*args, **kwargs)
    return result


def run_now(*, backend_name: str, name: str, now: datetime | None = None) -> DBScheduledRun:
    """Enqueue one extra run of the schedule at once (enabled or not); return its run row."""
    schedule = _schedule(backend_name, name)
    now = now or timezone.now()
    _rows(backend_name, {name: schedule}, now)  # the schedule's row, for the log to name
    using = router.db_for_write(DBScheduledRun)
    with transaction.atomic(using=using):
        scheduled = DBScheduledRun.objects.create(
            backend_name=backend_name, schedule_name=name, tick=now, manual=True, enqueued_at=now
        )
        result = _enqueue(schedule, backend_name)
        scheduled.result_id = UUID(str(result.id))
        scheduled.save(update_fields=["result"])
    logger.info("Enqueued schedule=%s (run now) id=%s", name, scheduled.result_id)
    return scheduled


def set_enabled(
    *, backend_name: str, name: str, enabled: bool, now: datetime | None = None
) -> bool:
    """Enable or disable the schedule; return whether that changed anything.

    Every worker reads the flag at each tick.  Ticks that pass while a schedule
    is disabled are never run: enabling resumes at the next tick.
    """
    schedule = _schedule(backend_name, name)
    now = now or timezone.now()
    row = _rows(backend_name, {name: schedule}, now)[name]
    rows = DBSchedule.objects.filter(pk=row.pk, enabled=not enabled)
    if enabled:
        changed = rows.update(enabled=True, last_tick=Greatest("last_tick", now))
    else:
        changed = rows.update(enabled=False)
    if changed:
        logger.info("%s schedule=%s", "Enabled" if enabled else "Disabled", name)
    return bool(changed)


def schedule_states(
    *, backend_name: str | None = None, now: datetime | None = None
) -> list[ScheduleState]:
    """Each configured schedule (of ``backend_name``, or of every backend), with its state."""
    now = now or timezone.now()
    by_backend: dict[str, dict[str, Schedule]] = {}
    for alias, schedule in configured_schedules(backend_name):
        by_backend.setdefault(alias, {})[schedule.name] = schedule
    states = []
    for alias, schedules in by_backend.items():
        rows = _rows(alias, schedules, now)
        for name, schedule in schedules.items():
            row = rows[name]
            tick = schedule.previous_tick(now)
            waiting = tick if row.enabled and tick is not None and tick > row.last_tick else None
            last_run = (
                DBScheduledRun.objects.filter(backend_name=alias, schedule_name=name)
                .select_related("result")
                .order_by("-enqueued_at", "-pk")
                .first()
            )
            states.append(
                ScheduleState(
                    backend_name=alias,
                    schedule=schedule,
                    enabled=row.enabled,
                    next_run=schedule.next_tick(max(now, row.last_tick)) if row.enabled else None,
                    waiting_tick=waiting,
                    last_run=last_run,
                )
            )
    return states


def failed_schedules(*, now: datetime | None = None) -> list[ScheduleState]:
    """The schedules whose last run failed."""
    return [state for state in schedule_states(now=now) if state.last_status == "FAILED"]
