"""Count task results per status and per queue, in one grouped query."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus

STATUSES = [s.value for s in ResultStatus]


@dataclass(slots=True, kw_only=True)
class StatusCounts:
    """Counts per status, and of deferred rows (NEW, run_after in the future)."""

    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    deferred: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def status_cells(self) -> list[tuple[str, int]]:
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


def count_results(results: QuerySet[DBTaskResult] | None = None) -> ResultCounts:
    """Count ``results`` (default: every row) per status and queue, in one query."""
    if results is None:
        results = DBTaskResult.objects.all()
    rows = (
        results.order_by()
        .values("backend_name", "queue_name", "status")
        .annotate(
            n=Count("pk"),
            deferred=Count("pk", filter=Q(status=ResultStatus.NEW, run_after__gt=timezone.now())),
        )
    )
    counts = ResultCounts()
    queues: dict[tuple[str, str], QueueCounts] = {}
    for row in rows:
        key = (row["backend_name"], row["queue_name"])
        queue = queues.get(key)
        if queue is None:
            queue = queues[key] = QueueCounts(backend_name=key[0], queue_name=key[1])
        status: Any = row["status"]
        queue.by_status[status] = queue.by_status.get(status, 0) + row["n"]
        queue.deferred += row["deferred"]
        counts.by_status[status] = counts.by_status.get(status, 0) + row["n"]
        counts.deferred += row["deferred"]
    counts.queues = sorted(queues.values(), key=lambda q: (q.backend_name, q.queue_name))
    return counts
