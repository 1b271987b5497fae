"""Selecting result rows for a bulk action: ids or a queryset, capped, in short batches.

Retry and cancel take the same selections (ids, possibly malformed, or the
dashboard's filtered queryset, with a cap) and work through them a batch at a
time; their previews count the selection the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from uuid import UUID

from django.db import connections, router
from django.db.models import Count, Q, QuerySet

from django_tasks.backends.database.models import DBTaskResult, DBTaskResultQuerySet
from django_tasks.task import ResultStatus

Selection = DBTaskResultQuerySet | Iterable[str | UUID]
"""What a bulk action takes: a queryset, or result ids (strings or UUIDs)."""


def preview(results: Selection, *, limit: int | None, status: ResultStatus) -> tuple[int, int]:
    """Count the selected rows that have ``status`` and the others: ``(matching, refused)``.

    Missing and malformed ids count as refused.  Changes nothing.
    """
    if isinstance(results, QuerySet):
        selected = results
        if limit is not None or results.query.is_sliced:
            pks = ids_of_queryset(results, limit=limit)
            selected = DBTaskResult.objects.using(results.db).filter(pk__in=pks)
        counts = selected.order_by().aggregate(
            total=Count("pk"), matching=Count("pk", filter=Q(status=status))
        )
        return counts["matching"], counts["total"] - counts["matching"]
    ids, malformed = parse_ids(results)
    if limit is not None:
        ids = ids[:limit]
    matching = DBTaskResult.objects.filter(pk__in=ids, status=status).count()
    return matching, len(ids) - matching + malformed


def parse_ids(ids: Iterable[str | UUID]) -> tuple[list[UUID], int]:
    """Return the distinct well-formed ids, in order, and how many were malformed."""
    valid: dict[UUID, None] = {}
    malformed = 0
    for val in ids:
        try:
            valid[val if isinstance(val, UUID) else UUID(str(val))] = None
        except ValueError:
            malformed += 1
    return list(valid), malformed


def ids_of_queryset(results: QuerySet[DBTaskResult], *, limit: int | None) -> list[UUID]:
    """Return the ids of ``results`` (oldest enqueued first, at most ``limit``)."""
    if results.query.is_sliced:  # already cut: its order can't change
        pks = list(results.values_list("pk", flat=True))
        return pks if limit is None else pks[:limit]
    ordered = results.order_by("enqueued_at", "pk").values_list("pk", flat=True)
    return list(ordered if limit is None else ordered[:limit])


def id_batches(
    results: Selection, *, limit: int | None, batch_size: int
) -> tuple[Iterator[list[UUID]], str, int]:
    """Return batches of candidate ids, the database to use, and the malformed count."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if limit is not None and limit < 0:
        raise ValueError("limit must be zero or more")

    if isinstance(results, QuerySet):
        if limit is not None or results.query.is_sliced:
            return _chunks(ids_of_queryset(results, limit=limit), batch_size), results.db, 0
        return _keyset_batches(results, batch_size), results.db, 0

    ids, malformed = parse_ids(results)
    if limit is not None:
        ids = ids[:limit]
    return _chunks(ids, batch_size), router.db_for_write(DBTaskResult), malformed


def _chunks(ids: list[UUID], size: int) -> Iterator[list[UUID]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _keyset_batches(results: QuerySet[DBTaskResult], size: int) -> Iterator[list[UUID]]:
    """Yield the ids of ``results`` in pk order, ``size`` at a time, never re-reading."""
    last: UUID | None = None
    while True:
        page = (
            results.order_by("pk") if last is None else results.filter(pk__gt=last).order_by("pk")
        )
        ids = list(page.values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        if len(ids) < size:
            return
        last = ids[-1]


# The distinct values of an indexed column, read from its index one value at a time
# (a "skip scan"): a few index probes per value, however many rows each has.
_DISTINCT_SQL = """
WITH RECURSIVE found(value) AS (
    SELECT MIN({column}) FROM {table}
    UNION ALL
    SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value)
    FROM found WHERE found.value IS NOT NULL
)
SELECT value FROM found WHERE value IS NOT NULL LIMIT %s
"""


def distinct_values(field_name: str, *, using: str, limit: int) -> list[str]:
    """The distinct values (at most ``limit``) of an indexed column of the results, sorted.

    One query, fast when an index leads with the column (task_path, queue_name).
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    field: Any = DBTaskResult._meta.get_field(field_name)
    sql = _DISTINCT_SQL.format(table=quote(DBTaskResult._meta.db_table), column=quote(field.column))
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [value for (value,) in cursor.fetchall()]
