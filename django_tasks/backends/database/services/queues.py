"""Queues: pause and resume one, the paused ones workers skip, and each one's backlog.

A paused queue keeps accepting tasks; workers claim nothing from it (each claim
statement leaves out the paused queues itself, see ``claims``).  The state is a
``DBQueue`` row, so it survives worker restarts.  The command ``db_task_queues``
and the dashboard's Queues page call these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections, router
from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_tasks import tasks
from django_tasks.backends.database.models import DBQueue, DBTaskResult
from django_tasks.task import DEFAULT_QUEUE_NAME, ResultStatus

from .selection import distinct_values

if TYPE_CHECKING:
    from django_tasks.backends.database.backend import DatabaseBackend

logger = logging.getLogger("django_tasks.backends.database.queues")

__all__ = [
    "COUNT_CAP",
    "QueueState",
    "UnknownQueue",
    "check_backend",
    "check_queue",
    "database_backends",
    "paused_by_backend",
    "pause_queue",
    "paused_queues",
    "queue_states",
    "resume_queue",
]

COUNT_CAP = 10_000
"""Rows counted per queue and figure: past it a count reads "more than" this."""

MAX_QUEUES = 1_000
"""The most distinct queue names read from the results table."""


class UnknownQueue(ValueError):
    """Not a database backend, or a queue name its ``QUEUES`` setting does not allow."""


def database_backends() -> dict[str, DatabaseBackend]:
    """The configured DatabaseBackends, by alias (from settings: no query)."""
    from django_tasks.backends.database.backend import DatabaseBackend

    found = {}
    for alias in tasks:
        try:
            backend = tasks[alias]
        except Exception:  # a misconfigured backend: manage.py check reports it
            continue
        if isinstance(backend, DatabaseBackend):
            found[alias] = backend
    return found


def _allows(backend: DatabaseBackend, queue_name: str) -> bool:
    return not backend.queues or queue_name in backend.queues


def check_backend(backend_name: str) -> DatabaseBackend:
    """Return the DatabaseBackend; raise UnknownQueue naming the configured ones."""
    backends = database_backends()
    backend = backends.get(backend_name)
    if backend is None:
        allowed = ", ".join(repr(a) for a in sorted(backends)) or "none configured"
        raise UnknownQueue(
            f"{backend_name!r} is not a database backend; database backends: {allowed}"
        )
    return backend


def check_queue(backend_name: str, queue_name: str) -> DatabaseBackend:
    """Return the backend; raise UnknownQueue naming what is wrong and what is allowed."""
    backend = check_backend(backend_name)
    if not queue_name or not _allows(backend, queue_name):
        allowed = ", ".join(repr(q) for q in sorted(backend.queues))
        raise UnknownQueue(
            f"Backend {backend_name!r} has no queue {queue_name!r}; its queues "
            f"(TASKS[{backend_name!r}]['QUEUES']): {allowed}"
        )
    return backend


def pause_queue(*, backend_name: str, queue_name: str, by: str = "") -> bool:
    """Pause the queue: workers stop claiming its tasks.  True if it was running."""
    return _set_paused(backend_name, queue_name, paused=True, by=by)


def resume_queue(*, backend_name: str, queue_name: str, by: str = "") -> bool:
    """Resume the queue: workers claim its tasks again.  True if it was paused."""
    return _set_paused(backend_name, queue_name, paused=False, by=by)


def _set_paused(backend_name: str, queue_name: str, *, paused: bool, by: str) -> bool:
    check_queue(backend_name, queue_name)
    using = router.db_for_write(DBQueue)
    queues = DBQueue.objects.using(using)
    if paused:
        # A queue that never paused (nor was rolled up) has no row yet.
        queues.get_or_create(backend_name=backend_name, name=queue_name)
    changed = queues.filter(backend_name=backend_name, name=queue_name, paused=not paused).update(
        paused=paused, changed_by=by, changed_at=timezone.now()
    )
    if changed:
        logger.info(
            "%s queue=%s backend=%s by=%s",
            "Paused" if paused else "Resumed",
            queue_name,
            backend_name,
            by or "-",
        )
    return bool(changed)


def paused_queues(backend_name: str, *, using: str | None = None) -> frozenset[str]:
    """The names of the backend's paused queues: one query of a small table."""
    rows = DBQueue.objects.using(using or router.db_for_read(DBQueue))
    return frozenset(
        rows.filter(backend_name=backend_name, paused=True).values_list("name", flat=True)
    )


def paused_by_backend(*, using: str | None = None) -> dict[str, frozenset[str]]:
    """Every backend's paused queues (backends with none are missing): one query."""
    found: dict[str, set[str]] = {}
    rows = DBQueue.objects.using(using or router.db_for_read(DBQueue)).filter(paused=True)
    for backend_name, name in rows.values_list("backend_name", "name"):
        found.setdefault(backend_name, set()).add(name)
    return {backend_name: frozenset(names) for backend_name, names in found.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueState:
    """One queue of one database backend, as the Queues page and the command show it.

    Waiting and deferred are counted per queue up to ``COUNT_CAP`` + 1 rows, running
    up to that many of all queues together: ``*_capped`` says a count passed the
    cap, and is then a lower bound (with waiting capped, ``oldest_ready`` is the
    oldest of the rows read, so the age is a lower bound too).
    """

    backend_name: str
    name: str
    allowed: bool  # by the backend's QUEUES (else it can't be paused: rows from old settings)
    paused: bool
    changed_by: str
    changed_at: datetime | None
    waiting: int  # ready now
    waiting_capped: bool
    deferred: int  # NEW, run_after in the future
    deferred_capped: bool
    running: int
    running_capped: bool
    oldest_ready: datetime | None  # when the longest-waiting ready task became ready
    now: datetime

    @property
    def latency(self) -> timedelta | None:
        """How long the longest-waiting ready task has waited (None: none waits)."""
        if self.oldest_ready is None:
            return None
        return max(self.now - self.oldest_ready, timedelta(0))


def queue_names_in_results(using: str) -> list[str]:
    """The distinct queue names of the results table (at most MAX_QUEUES), in one query."""
    return distinct_values("queue_name", using=using, limit=MAX_QUEUES)


def queue_states(
    *, backend_name: str | None = None, now: datetime | None = None
) -> list[QueueState]:
    """Every known queue of each database backend (or of ``backend_name``), with its counts.

    Known: allowed by the backend's QUEUES, or with a DBQueue row (paused or rolled
    up), or holding result rows.  Three queries whatever the table's size: the
    DBQueue rows, the distinct queue names (index skip scan), and the counts (one
    UNION of index ranges, each read up to COUNT_CAP + 1 rows).
    """
    backends = database_backends()
    if backend_name is not None:
        backends = {backend_name: check_backend(backend_name)}
    if not backends:
        return []
    now = now or timezone.now()
    rows = {
        (q.backend_name, q.name): q
        for q in DBQueue.objects.using(router.db_for_read(DBQueue)).filter(
            backend_name__in=list(backends)
        )
    }
    using = router.db_for_read(DBTaskResult)
    in_results = queue_names_in_results(using)
    pairs: list[tuple[str, str]] = []
    for alias, backend in sorted(backends.items()):
        names = set(backend.queues) or {DEFAULT_QUEUE_NAME}
        names |= {name for (b, name) in rows if b == alias}
        # Rows of a queue the settings no longer allow still show (one backend: they
        # are its); with several backends a name shows under those that allow it.
        names |= {n for n in in_results if len(backends) == 1 or _allows(backend, n)}
        pairs += [(alias, name) for name in sorted(names)]
    counts = _counts(using, pairs, now)
    states = []
    for (alias, name), (waiting, oldest, deferred, running, running_capped) in zip(
        pairs, counts, strict=True
    ):
        row = rows.get((alias, name))
        states.append(
            QueueState(
                backend_name=alias,
                name=name,
                allowed=_allows(backends[alias], name),
                paused=bool(row and row.paused),
                changed_by=row.changed_by if row else "",
                changed_at=row.changed_at if row else None,
                waiting=min(waiting, COUNT_CAP),
                waiting_capped=waiting > COUNT_CAP,
                deferred=min(deferred, COUNT_CAP),
                deferred_capped=deferred > COUNT_CAP,
                running=running,
                running_capped=running_capped,
                oldest_ready=oldest,
                now=now,
            )
        )
    return states


# Waiting, oldest ready, deferred, running, running capped.
Counts = tuple[int, datetime | None, int, int, bool]
WAITING, DEFERRED, RUNNING = 0, 1, 2


def _counts(using: str, pairs: list[tuple[str, str]], now: datetime) -> list[Counts]:
    """(waiting, oldest ready, deferred, running, running capped) of each (backend, queue).

    One query.  Each part reads at most COUNT_CAP + 1 rows: per queue, its waiting
    and its deferred rows (ranges of the partial claim index, on NEW rows); for
    all queues together, the RUNNING rows (by status: they are few, and read per
    queue each would be a range of every row of the queue).  Past the cap the
    running counts are lower bounds.
    """
    if not pairs:
        return []
    results = DBTaskResult.objects.using(using).order_by()
    parts: list[str] = []
    params: list[Any] = []

    def part(index: int, kind: int, rows: QuerySet[DBTaskResult], oldest: bool) -> None:
        ready_at = rows.annotate(ready_at=Coalesce("run_after", "enqueued_at")).values("ready_at")
        sql, sql_params = ready_at[: COUNT_CAP + 1].query.sql_with_params()
        minimum = "MIN(s.ready_at)" if oldest else "NULL"
        parts.append(f"SELECT {index}, {kind}, COUNT(*), {minimum}, NULL, NULL FROM ({sql}) s")
        params.extend(sql_params)

    for index, (backend_name, queue_name) in enumerate(pairs):
        queue = results.filter(backend_name=backend_name, queue_name=queue_name)
        part(index, WAITING, queue.ready(), oldest=True)
        part(
            index, DEFERRED, queue.filter(status=ResultStatus.NEW, run_after__gt=now), oldest=False
        )
    running = results.filter(
        status=ResultStatus.RUNNING, backend_name__in=sorted({b for b, _ in pairs})
    ).values("backend_name", "queue_name")
    sql, sql_params = running[: COUNT_CAP + 1].query.sql_with_params()
    parts.append(
        f"SELECT -1, {RUNNING}, COUNT(*), NULL, s.backend_name, s.queue_name FROM ({sql}) s"
        " GROUP BY s.backend_name, s.queue_name"
    )
    params.extend(sql_params)

    found: dict[tuple[int, int], tuple[int, Any]] = {}
    running_found: dict[tuple[str, str], int] = {}
    with connections[using].cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for index, kind, n, oldest, backend_name, queue_name in cursor.fetchall():
            if int(kind) == RUNNING:
                running_found[(backend_name, queue_name)] = int(n)
            else:
                found[(int(index), int(kind))] = (int(n), oldest)
    running_capped = sum(running_found.values()) > COUNT_CAP
    return [
        (
            found[(i, WAITING)][0],
            _datetime(found[(i, WAITING)][1]),
            found[(i, DEFERRED)][0],
            running_found.get(pair, 0),
            running_capped,
        )
        for i, pair in enumerate(pairs)
    ]


def _datetime(value: Any) -> datetime | None:
    """A datetime from the database, aware (SQLite returns MIN() of one as text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
        if value is None:
            return None
    if settings.USE_TZ and timezone.is_naive(value):
        value = value.replace(tzinfo=dt_timezone.utc)
    return value  # type: ignore[no-any-return]
