"""Count task results per status and per queue, without reading a big table.

A table of up to ``EXACT_UP_TO`` rows is counted exactly, in one grouped query
over at most that many rows.  On a bigger table each status is counted exactly
while it has at most that many rows (waiting and running results usually do:
they are read along the (status, enqueued_at) index); a status with more is
estimated from PostgreSQL's statistics of the table (its size, and the share of
each status, queue and backend that ANALYZE last measured), or on other databases
shown as a lower bound.  Each number says which it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.db import connections, router
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus

STATUSES = [s.value for s in ResultStatus]

# Rows counted exactly before counting switches to estimates (or lower bounds).
EXACT_UP_TO = 10_000

EXACT = "exact"
ESTIMATE = "estimate"
AT_LEAST = "at least"


class Tally(int):
    """A count as shown: exact, an estimate, or a lower bound ("at least").

    An int, so templates count with it ({% blocktranslate count %}); its text says
    which it is ("12", "≈12,345", "10,000+").  Equal to an int only when exact.
    """

    kind: str
    _ORDER: ClassVar[dict[str, int]] = {EXACT: 0, ESTIMATE: 1, AT_LEAST: 2}

    def __new__(cls, value: int, kind: str = EXACT) -> Tally:
        tally = super().__new__(cls, value)
        tally.kind = kind
        return tally

    @property
    def value(self) -> int:
        return int(self)

    def __str__(self) -> str:
        if self.kind == EXACT:
            return str(self.value)
        number = number_format(self.value, force_grouping=True)
        return f"≈{number}" if self.kind == ESTIMATE else f"{number}+"

    def __html__(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"Tally({self.value}, {self.kind!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Tally):
            return (self.value, self.kind) == (other.value, other.kind)
        if isinstance(other, int):
            return self.kind == EXACT and self.value == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = int.__hash__

    def __add__(self, other: int) -> Tally:
        kind = getattr(other, "kind", EXACT)
        return Tally(self.value + int(other), max(self.kind, kind, key=self._ORDER.__getitem__))

    __radd__ = __add__

    @property
    def exact(self) -> bool:
        return self.kind == EXACT


def _zeros() -> dict[str, Tally]:
    return {status: Tally(0) for status in STATUSES}


@dataclass(slots=True, kw_only=True)
class StatusCounts:
    """Counts per status, and of deferred rows (NEW, run_after in the future)."""

    by_status: dict[str, Tally] = field(default_factory=_zeros)
    deferred: Tally = field(default_factory=lambda: Tally(0))

    @property
    def total(self) -> Tally:
        return sum(self.by_status.values(), Tally(0))

    @property
    def status_cells(self) -> list[tuple[str, Tally]]:
        return [(status, self.by_status[status]) for status in STATUSES]


@dataclass(slots=True, kw_only=True)
class QueueCounts(StatusCounts):
    """Counts of one backend's queue, per status."""

    backend_name: str
    queue_name: str


@dataclass(slots=True, kw_only=True)
class ResultCounts(StatusCounts):
    """Counts per status, per queue, and of deferred rows (NEW, run_after in the future)."""

    queues: list[QueueCounts] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """Whether every number is exact (else the page says how they were obtained)."""
        return self.total.exact and self.deferred.exact

    @property
    def note(self) -> str:
        """How the numbers that are not exact were obtained ("" when all are exact)."""
        tallies = [*self.by_status.values(), self.deferred]
        kinds = {t.kind for t in tallies}
        parts: list[str] = []
        if ESTIMATE in kinds:
            parts.append(
                gettext("≈ marks an estimate from the table's statistics (as of its last ANALYZE).")
            )
        if AT_LEAST in kinds:
            parts.append(
                gettext("n+ marks a lower bound: counting stops once it passes %(n)s rows.")
                % {"n": number_format(EXACT_UP_TO, force_grouping=True)}
            )
        exact = [status for status, tally in self.by_status.items() if tally.exact]
        if parts and exact:
            parts.append(gettext("Exact: %(statuses)s.") % {"statuses": ", ".join(exact)})
        return " ".join(parts)

    def add(self, backend: str, queue: str, status: str, n: Tally, deferred: Tally) -> None:
        for counts in (self, self.queue(backend, queue)):
            counts.by_status[status] = counts.by_status.get(status, Tally(0)) + n
            counts.deferred += deferred

    def queue(self, backend: str, queue: str) -> QueueCounts:
        for counts in self.queues:
            if (counts.backend_name, counts.queue_name) == (backend, queue):
                return counts
        counts = QueueCounts(backend_name=backend, queue_name=queue)
        self.queues.append(counts)
        return counts


Groups = list[tuple[str, str, str, int, int]]  # backend, queue, status, rows, deferred


def _grouped(rows: QuerySet[DBTaskResult], *, cap: int, newest: bool = True) -> Groups:
    """(backend, queue, status, rows, deferred rows) of at most ``cap`` + 1 of ``rows``.

    ``newest``: the newest rows (read from the enqueued_at index); else any (the
    planner picks the index of the status filter).  Never a scan of the whole table.
    """
    selected = rows.values_list("backend_name", "queue_name", "status", "run_after")
    # Not by pk too: then (status, enqueued_at) serves the order whole, and SQLite takes it.
    selected = selected.order_by("-enqueued_at") if newest else selected.order_by()
    sql, params = selected[: cap + 1].query.sql_with_params()
    connection = connections[rows.db]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.backend_name, s.queue_name, s.status, COUNT(*),"
            " SUM(CASE WHEN s.status = %s AND s.run_after > %s THEN 1 ELSE 0 END)"
            f" FROM ({sql}) s GROUP BY s.backend_name, s.queue_name, s.status",
            [ResultStatus.NEW.value, _now(connection), *params],
        )
        return [(b, q, st, int(n), int(d or 0)) for b, q, st, n, d in cursor.fetchall()]


def _now(connection: Any) -> Any:
    """Now, as ``connection`` compares it with a DateTimeField."""
    return DBTaskResult._meta.get_field("run_after").get_db_prep_value(
        timezone.now(), connection=connection
    )


def count_results(
    results: QuerySet[DBTaskResult] | None = None,
    *,
    exact_up_to: int = EXACT_UP_TO,
) -> ResultCounts:
    """Count ``results`` (default: every row) per status and queue.

    Each status is counted, up to ``exact_up_to`` rows, exactly; past that (or
    when PostgreSQL's statistics of the table put it past half of that) it is
    estimated from those statistics, or on other databases shown as a lower
    bound.  A table of at most ``exact_up_to`` rows takes one query.
    """
    if results is None:
        results = DBTaskResult.objects.all()
    unfiltered = not results.query.where.children
    statistics = TableStatistics.read(results.db) if unfiltered else None
    counts = ResultCounts()
    queues: set[tuple[str, str]] = set()
    if statistics is None or statistics.rows <= exact_up_to:
        groups = _grouped(results, cap=exact_up_to)
        if sum(g[3] for g in groups) <= exact_up_to:
            for backend, queue, status, n, deferred in groups:
                counts.add(backend, queue, status, Tally(n), Tally(deferred))
            return _sorted(counts)
        queues = {(g[0], g[1]) for g in groups}
    elif statistics is not None:
        queues = statistics.queues()

    estimated = []
    for status in STATUSES:
        if statistics is not None and statistics.estimate(status=status) > exact_up_to // 2:
            # Many rows: counting them would read thousands of rows (and might only
            # reach the cap); the estimate reads none.
            estimated.append(status)
            continue
        groups = _grouped(results.filter(status=status), cap=exact_up_to)
        if sum(g[3] for g in groups) > exact_up_to and statistics is not None:
            estimated.append(status)
            continue
        kind = EXACT if sum(g[3] for g in groups) <= exact_up_to else AT_LEAST
        # Deferred rows are NEW ones: only NEW's count says anything about them.
        deferred_kind = kind if status == ResultStatus.NEW else EXACT
        for backend, queue in queues:
            counts.add(backend, queue, status, Tally(0, kind), Tally(0, deferred_kind))
        for backend, queue, _status, n, deferred in groups:
            counts.add(backend, queue, status, Tally(n, kind), Tally(deferred, deferred_kind))
        queues |= {(g[0], g[1]) for g in groups}
    if statistics is not None:
        for backend, queue in queues:
            for status in estimated:
                n = statistics.estimate(status=status, queue_name=queue, backend_name=backend)
                counts.add(backend, queue, status, Tally(n, ESTIMATE), Tally(0))
    return _sorted(counts)


def _sorted(counts: ResultCounts) -> ResultCounts:
    counts.queues.sort(key=lambda q: (q.backend_name, q.queue_name))
    return counts


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnStatistics:
    """pg_stats of one column: its most common values and their shares."""

    common: dict[str, float]
    null_frac: float
    n_distinct: float

    def share(self, value: str, rows: float) -> float:
        """The share of rows holding ``value``, as the planner would guess it."""
        if value in self.common:
            return self.common[value]
        distinct = self.n_distinct if self.n_distinct >= 0 else -self.n_distinct * rows
        others = distinct - len(self.common)
        if others < 1:
            return 0.0
        rest = max(0.0, 1.0 - sum(self.common.values()) - self.null_frac)
        return rest / others


_STATISTICS_SQL = """
SELECT c.reltuples, c.relpages,
       pg_relation_size(c.oid) / current_setting('block_size')::int,
       s.attname, s.most_common_vals::text::text[], s.most_common_freqs, s.null_frac,
       s.n_distinct
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
    AND s.attname IN ('status', 'queue_name', 'backend_name')
WHERE c.oid = %s::regclass
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class TableStatistics:
    """The results table's size and column statistics, as PostgreSQL's planner sees them."""

    rows: float
    columns: dict[str, ColumnStatistics]

    @classmethod
    def read(cls, using: str | None = None) -> TableStatistics | None:
        """Read them (one query), or None: not PostgreSQL, or never analysed."""
        connection = connections[using or router.db_for_read(DBTaskResult)]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(_STATISTICS_SQL, [DBTaskResult._meta.db_table])
            found = cursor.fetchall()
        if not found:
            return None
        reltuples, relpages, pages = found[0][:3]
        if reltuples is None or reltuples < 0:
            return None
        # As the planner does: the rows per page ANALYZE saw, times the pages now.
        rows = reltuples / relpages * pages if relpages else float(reltuples)
        columns: dict[str, Any] = {}
        for *_size, name, values, freqs, null_frac, n_distinct in found:
            if name is not None:
                columns[name] = ColumnStatistics(
                    common=dict(zip(values or [], freqs or [], strict=True)),
                    null_frac=null_frac or 0.0,
                    n_distinct=n_distinct or 0.0,
                )
        if set(columns) != {"status", "queue_name", "backend_name"}:
            return None
        return cls(rows=rows, columns=columns)

    def queues(self) -> set[tuple[str, str]]:
        """The (backend, queue) pairs of the most common backends and queues."""
        backends = self.columns["backend_name"].common or {"": 1.0}
        queues = self.columns["queue_name"].common
        return {(b, q) for b in backends for q in queues if b}

    def estimate(self, **values: str) -> int:
        """Rows holding every one of ``values`` (column=value), assuming columns independent."""
        share = 1.0
        for column, value in values.items():
            share *= self.columns[column].share(value, self.rows)
        return round(self.rows * share)


def capped_count(
    rows: QuerySet[DBTaskResult],
    *,
    cap: int = EXACT_UP_TO,
    order: tuple[str, ...] = ("-enqueued_at",),
) -> Tally:
    """Count ``rows`` up to ``cap``: exact below it, else "at least ``cap``".

    The rows are read in ``order`` (an index's order: by default enqueued_at, which
    every listing index holds), so counting stops after ``cap`` + 1 index entries,
    often without reading the table (an index-only scan).
    """
    n = rows.order_by(*order)[: cap + 1].count()
    return Tally(n) if n <= cap else Tally(cap, AT_LEAST)
