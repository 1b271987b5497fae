"""The roll-up: finished tasks counted per queue and minute, kept after results are pruned.

The charts, the Queues page and the metrics endpoint read these counts instead
of the results table.  Workers roll up from their heartbeat thread: each call
counts the minutes that closed since the last one, in one transaction that

1. moves ``DBRollup.rolled_until`` on with a conditional UPDATE (of several
   workers, the first holds the row's lock and the others update nothing),
2. counts the results that finished in those minutes, in SQL (an index range of
   ``finished_at``), grouped by queue, outcome and run-time bucket,
3. inserts one ``DBQueueMinute`` per queue and minute, and adds the counts to
   the queue's ever-growing totals (``DBQueue``).

Readers add the minutes not rolled up yet ("the tail") from the results table,
so a chart is current to the second whether or not a worker runs.

Counted: the final outcome of each run, by ``finished_at``: COMPLETE, or FAILED
with its attempts spent.  An attempt that will be retried is not a failure yet,
and a cancelled task is neither.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import (
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, TruncMinute
from django.utils import timezone

from django_tasks.backends.database.models import DBQueue, DBQueueMinute, DBRollup, DBTaskResult
from django_tasks.task import ResultStatus

from .cancelling import CANCELLED_EXC_TYPE

__all__ = [
    "GRACE",
    "RUN_TIME_BUCKETS",
    "Counts",
    "QueueActivity",
    "Series",
    "counts_by_minute",
    "floor_minute",
    "queue_activity",
    "queue_totals",
    "roll_up",
    "series",
]

RUN_TIME_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
"""Upper bounds (seconds) of the run-time buckets; one more bucket holds longer runs."""

GRACE = timedelta(seconds=30)
"""A minute is rolled up this long after it ends, so outcomes written as it closed have committed."""

HORIZON = timedelta(hours=25)
"""How far back the first roll-up of a backend starts: the charts show a day."""

MAX_MINUTES = 10
"""The most minutes one call rolls up: a worker catching up does it over several heartbeats."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """Finished tasks of some queues over some time, and their run times by bucket."""

    completed: int = 0
    failed: int = 0
    buckets: tuple[int, ...] = ()

    def __add__(self, other: Counts) -> Counts:
        size = max(len(self.buckets), len(other.buckets))
        mine = self.buckets + (0,) * (size - len(self.buckets))
        theirs = other.buckets + (0,) * (size - len(other.buckets))
        return Counts(
            completed=self.completed + other.completed,
            failed=self.failed + other.failed,
            buckets=tuple(a + b for a, b in zip(mine, theirs, strict=True)),
        )

    @property
    def finished(self) -> int:
        return self.completed + self.failed

    @property
    def failure_rate(self) -> float | None:
        """Failed over finished, None when nothing finished."""
        return self.failed / self.finished if self.finished else None

    def run_time_quantile(self, q: float) -> float | None:
        """The run time (seconds) below which ``q`` of the runs fell, from the buckets.

        Interpolated within its bucket; the open last bucket answers its lower bound.
        None when no run was timed.
        """
        total = sum(self.buckets)
        if not total:
            return None
        rank = q * total
        seen = 0
        for index, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                lower = RUN_TIME_BUCKETS[index - 1] if index else 0.0
                if index >= len(RUN_TIME_BUCKETS):
                    return lower
                upper = RUN_TIME_BUCKETS[index]
                return lower + (upper - lower) * max(rank - seen, 0) / count
            seen += count
        return RUN_TIME_BUCKETS[-1]  # pragma: no cover - rank <= total always lands above


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def roll_up(
    *, backend_name: str, now: datetime | None = None, max_minutes: int = MAX_MINUTES
) -> int:
    """Count the minutes of ``backend_name`` that closed since the last roll-up.

    Returns how many minutes this call counted (0: nothing due, or another
    worker counted them first).
    """
    end = floor_minute((now or timezone.now()) - GRACE)
    using = router.db_for_write(DBRollup)
    start = _rolled_until(backend_name, using=using, first=end - HORIZON)
    if start >= end:
        return 0
    # Minutes in which nothing finished are passed over in the same call (a first
    # start on a quiet table is one call, not one per ten minutes of the horizon).
    next_finished = (
        DBTaskResult.objects.using(using)
        .filter(finished_at__gte=start, finished_at__lt=end)
        .order_by("finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    busy_from = end if next_finished is None else max(start, floor_minute(next_finished))
    stop = min(end, busy_from + timedelta(minutes=max_minutes))
    with transaction.atomic(using=using):
        moved = (
            DBRollup.objects.using(using)
            .filter(backend_name=backend_name, rolled_until=start)
            .update(rolled_until=stop)
        )
        if not moved:
            return 0
        counted = _count(backend_name, start=start, stop=stop, using=using)
        DBQueueMinute.objects.using(using).bulk_create(
            DBQueueMinute(
                backend_name=backend_name,
                queue_name=queue_name,
                minute=minute,
                completed=counts.completed,
                failed=counts.failed,
                run_time_buckets=list(counts.buckets),
            )
            for (queue_name, minute), counts in counted.items()
        )
        _add_totals(backend_name, counted, using=using)
    return round((stop - start) / timedelta(minutes=1))


def _rolled_until(backend_name: str, *, using: str, first: datetime) -> datetime:
    """Where the roll-up of ``backend_name`` stands; start it at ``first`` if it never ran."""
    rolled_until = _position(backend_name, using=using)
    if rolled_until is not None:
        return rolled_until
    try:
        with transaction.atomic(using=using):
            DBRollup.objects.using(using).create(backend_name=backend_name, rolled_until=first)
    except IntegrityError:  # another worker started it first
        started = _position(backend_name, using=using)
        assert started is not None
        return started
    return first


def _add_totals(
    backend_name: str, counted: Mapping[tuple[str, datetime], Counts], *, using: str
) -> None:
    totals: dict[str, Counts] = defaultdict(Counts)
    for (queue_name, _minute), counts in counted.items():
        totals[queue_name] += counts
    queues = DBQueue.objects.using(using)
    queues.bulk_create(
        [DBQueue(backend_name=backend_name, name=name) for name in totals],
        ignore_conflicts=True,
    )
    for name, counts in sorted(totals.items()):
        queues.filter(backend_name=backend_name, name=name).update(
            completed_total=F("completed_total") + counts.completed,
            failed_total=F("failed_total") + counts.failed,
        )


def _count(
    backend_name: str,
    *,
    start: datetime,
    stop: datetime,
    using: str,
    queue_name: str | None = None,
) -> dict[tuple[str, datetime], Counts]:
    """Count the results of ``backend_name`` that finished in [start, stop), per queue and minute.

    One GROUP BY over an index range of ``finished_at``; run times are bucketed in SQL.
    """
    run_time = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    bucket = Case(
        *(
            When(run_time__lte=timedelta(seconds=bound), then=Value(index))
            for index, bound in enumerate(RUN_TIME_BUCKETS)
        ),
        When(started_at__isnull=False, then=Value(len(RUN_TIME_BUCKETS))),
        default=Value(-1),
    )
    exc_type = Coalesce(KT("exception_data__exc_type"), Value(""), output_field=TextField())
    rows = (
        DBTaskResult.objects.using(using)
        .filter(
            finished_at__gte=start,
            finished_at__lt=stop,
            status__in=[ResultStatus.COMPLETE, ResultStatus.FAILED],
            backend_name=backend_name,
        )
        .alias(run_time=run_time, exc_type=exc_type)
        .exclude(status=ResultStatus.FAILED, exc_type=CANCELLED_EXC_TYPE)
    )
    if queue_name is not None:
        rows = rows.filter(queue_name=queue_name)
    grouped = (
        rows.annotate(minute=TruncMinute("finished_at"), bucket=bucket)
        .values("queue_name", "minute", "status", "bucket")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counted: dict[tuple[str, datetime], Counts] = defaultdict(Counts)
    for row in grouped:
        n = row["n"]
        buckets = [0] * (len(RUN_TIME_BUCKETS) + 1)
        if row["bucket"] >= 0:
            buckets[row["bucket"]] = n
        complete = row["status"] == ResultStatus.COMPLETE
        counted[row["queue_name"], _aware(row["minute"])] += Counts(
            completed=n if complete else 0, failed=0 if complete else n, buckets=tuple(buckets)
        )
    return dict(counted)


def _aware(moment: datetime) -> datetime:
    # TruncMinute answers in the current time zone; minutes are keyed in UTC.
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    return moment.astimezone(timezone.get_fixed_timezone(0))


def _position(backend_name: str, *, using: str) -> datetime | None:
    """Where the roll-up of ``backend_name`` stands (None: it never ran)."""
    return (
        DBRollup.objects.using(using)
        .filter(backend_name=backend_name)
        .values_list("rolled_until", flat=True)
        .first()
    )


def _rolled(
    backend_name: str, *, since: datetime, until: datetime, using: str, queue_name: str | None
) -> tuple[Any, datetime]:
    """The rolled-up minutes from ``since`` up to ``until``, and where the tail starts."""
    rolled_until = _position(backend_name, using=using)
    tail_from = since if rolled_until is None else max(since, rolled_until)
    minutes = DBQueueMinute.objects.using(using).filter(
        backend_name=backend_name, minute__gte=since, minute__lt=min(until, tail_from)
    )
    if queue_name is not None:
        minutes = minutes.filter(queue_name=queue_name)
    return minutes, tail_from


def counts_by_minute(
    backend_name: str,
    *,
    since: datetime,
    until: datetime,
    queue_name: str | None = None,
) -> dict[tuple[str, datetime], Counts]:
    """Finished tasks per (queue, minute) for the minutes from ``since`` up to ``until``.

    Rolled-up minutes come from ``DBQueueMinute``; later ones from the results table.
    """
    using = router.db_for_read(DBQueueMinute)
    minutes, tail_from = _rolled(
        backend_name, since=floor_minute(since), until=until, using=using, queue_name=queue_name
    )
    counted: dict[tuple[str, datetime], Counts] = {}
    for name, moment, completed, failed, buckets in minutes.values_list(
        "queue_name", "minute", "completed", "failed", "run_time_buckets"
    ):
        counted[name, _aware(moment)] = Counts(
            completed=completed, failed=failed, buckets=tuple(buckets or ())
        )
    if tail_from < until:
        counted.update(
            _count(backend_name, start=tail_from, stop=until, using=using, queue_name=queue_name)
        )
    return counted


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueActivity:
    """What one queue finished lately: the Queues page's figures."""

    last_5m: Counts = field(default_factory=Counts)
    last_1h: Counts = field(default_factory=Counts)
    last_1d: Counts = field(default_factory=Counts)

    @property
    def completed_5m(self) -> int:
        return self.last_5m.completed

    @property
    def failed_5m(self) -> int:
        return self.last_5m.failed

    @property
    def completed_1h(self) -> int:
        return self.last_1h.completed

    @property
    def failed_1h(self) -> int:
        return self.last_1h.failed

    @property
    def completed_1d(self) -> int:
        return self.last_1d.completed

    @property
    def failed_1d(self) -> int:
        return self.last_1d.failed

    @property
    def failure_rate_1h(self) -> float | None:
        return self.last_1h.failure_rate

    @property
    def p50_seconds(self) -> float | None:
        """Median run time over the last hour (estimated from the buckets)."""
        return self.last_1h.run_time_quantile(0.5)

    @property
    def p95_seconds(self) -> float | None:
        """95th percentile of run times over the last hour (estimated from the buckets)."""
        return self.last_1h.run_time_quantile(0.95)


WINDOWS = {
    "last_5m": timedelta(minutes=5),
    "last_1h": timedelta(hours=1),
    "last_1d": timedelta(days=1),
}


def queue_activity(backend_name: str, *, now: datetime | None = None) -> dict[str, QueueActivity]:
    """Each queue's finished tasks over the last 5 minutes, hour and day (whole minutes).

    A window of five minutes holds the current minute and the four before it.
    Queues that finished nothing in a day are missing.  The rolled-up minutes are
    summed in SQL (a row per queue); only the last hour's run-time buckets are read.
    """
    now = now or timezone.now()
    current = floor_minute(now)
    starts = {name: current - length + timedelta(minutes=1) for name, length in WINDOWS.items()}
    using = router.db_for_read(DBQueueMinute)
    minutes, tail_from = _rolled(
        backend_name, since=starts["last_1d"], until=now, using=using, queue_name=None
    )
    sums: dict[str, Any] = {}
    for name, start in starts.items():
        window = Q(minute__gte=start)
        sums[f"{name}_completed"] = Sum("completed", filter=window, default=0)
        sums[f"{name}_failed"] = Sum("failed", filter=window, default=0)
    windows: dict[str, dict[str, Counts]] = defaultdict(lambda: defaultdict(Counts))
    for row in minutes.values("queue_name").annotate(**sums).order_by():
        for name in WINDOWS:
            windows[row["queue_name"]][name] += Counts(
                completed=row[f"{name}_completed"], failed=row[f"{name}_failed"]
            )
    hour: dict[str, list[int]] = defaultdict(lambda: [0] * (len(RUN_TIME_BUCKETS) + 1))
    hour_rows = minutes.filter(minute__gte=starts["last_1h"])
    for queue_name, buckets in hour_rows.values_list("queue_name", "run_time_buckets"):
        totals = hour[queue_name]
        for index, count in enumerate(buckets or ()):
            totals[index] += count
    for queue_name, totals in hour.items():
        hourly = windows[queue_name]["last_1h"]
        windows[queue_name]["last_1h"] = Counts(
            completed=hourly.completed, failed=hourly.failed, buckets=tuple(totals)
        )
    if tail_from < now:
        tail = _count(backend_name, start=tail_from, stop=now, using=using)
        for (queue_name, minute), counts in tail.items():
            for name, start in starts.items():
                if minute >= start:
                    windows[queue_name][name] += counts
    return {
        name: QueueActivity(**by_window)
        for name, by_window in sorted(windows.items())
        if by_window["last_1d"].finished
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """Finished tasks per step (a minute or an hour), oldest first: a chart's bars."""

    step: timedelta
    starts: tuple[datetime, ...]
    points: tuple[Counts, ...]

    @property
    def peak(self) -> int:
        return max((p.finished for p in self.points), default=0)

    @property
    def total(self) -> Counts:
        return sum(self.points, Counts())


def series(
    backend_name: str,
    *,
    step: timedelta,
    steps: int,
    queue_name: str | None = None,
    now: datetime | None = None,
) -> Series:
    """The last ``steps`` steps (the current one included) of finished tasks, by step.

    ``step`` is a whole number of minutes dividing a day (a minute, an hour).
    """
    now = now or timezone.now()
    midnight = now.astimezone(timezone.get_fixed_timezone(0)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    current = midnight + step * ((now - midnight) // step)
    starts = tuple(current - step * i for i in reversed(range(steps)))
    using = router.db_for_read(DBQueueMinute)
    minutes, tail_from = _rolled(
        backend_name, since=starts[0], until=now, using=using, queue_name=queue_name
    )
    # The queues' minutes summed in SQL (a row per minute); run times are not drawn.
    per_minute = minutes.values("minute").annotate(c=Sum("completed"), f=Sum("failed")).order_by()
    found = [
        (_aware(row["minute"]), Counts(completed=row["c"], failed=row["f"])) for row in per_minute
    ]
    if tail_from < now:
        tail = _count(backend_name, start=tail_from, stop=now, using=using, queue_name=queue_name)
        found += [(minute, counts) for (_queue, minute), counts in tail.items()]
    points: list[Counts] = [Counts()] * steps
    for minute, counts in found:
        index = bisect.bisect_right(starts, minute) - 1
        if index >= 0:
            points[index] += Counts(completed=counts.completed, failed=counts.failed)
    return Series(step=step, starts=starts, points=tuple(points))


def queue_totals(backend_names: Iterable[str] | None = None) -> dict[tuple[str, str], DBQueue]:
    """Each queue's row (pause state and rolled-up totals), by (backend, queue)."""
    queues: Any = DBQueue.objects.using(router.db_for_read(DBQueue))
    if backend_names is not None:
        queues = queues.filter(backend_name__in=list(backend_names))
    return {(q.backend_name, q.name): q for q in queues}
