"""Retrying: putting FAILED results back to NEW, keeping their failure history.

retry() and its preview and single-row forms, and the batching they share.
Each retried failure is kept in the row's ``attempts`` (see ``attempts.Attempt``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.db.models import Case, Count, F, JSONField, Q, QuerySet, Value, When
from django.db.models.functions import Cast
from django.utils import timezone

from django_tasks.backends.database.attempts import Attempt
from django_tasks.backends.database.models import DBTaskResult, DBTaskResultQuerySet
from django_tasks.backends.database.utils import normalize_uuid
from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.task import ResultStatus


class RetryRefused(Exception):
    """A result cannot be retried (it is not FAILED)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryOutcome:
    """What retry() did: how many rows went back to NEW, and which were refused."""

    retried: int
    refused: int


RETRY_BATCH_SIZE = 500


def retry(
    *,
    results: DBTaskResultQuerySet | Iterable[str | UUID],
    limit: int | None = None,
    batch_size: int = RETRY_BATCH_SIZE,
) -> RetryOutcome:
    """Put FAILED results back to NEW, keeping their ids and their failure history.

    ``results`` is a queryset or result ids.  Each FAILED row gets its failure
    appended to ``attempts``, its run columns cleared and ``enqueued_at`` reset, in
    one conditional UPDATE per batch (a row changed meanwhile is left alone).
    Selected rows that are not FAILED, and ids that are missing or malformed, are
    refused.  ``limit`` caps how many selected rows are considered (oldest
    enqueued first).
    """
    refused = 0
    retried = 0
    batches, using, malformed = _retry_batches(results, limit=limit, batch_size=batch_size)
    refused += malformed
    for batch in batches:
        done = _retry_batch(batch, using=using)
        retried += done
        refused += len(batch) - done
    return RetryOutcome(retried=retried, refused=refused)


def retry_preview(
    *, results: DBTaskResultQuerySet | Iterable[str | UUID], limit: int | None = None
) -> RetryOutcome:
    """Count what retry() with the same arguments would do, changing nothing."""
    if isinstance(results, QuerySet):
        selected = results
        if limit is not None or results.query.is_sliced:
            pks = _ids_of_queryset(results, limit=limit)
            selected = DBTaskResult.objects.using(results.db).filter(pk__in=pks)
        counts = selected.order_by().aggregate(
            total=Count("pk"), failed=Count("pk", filter=Q(status=ResultStatus.FAILED))
        )
        return RetryOutcome(retried=counts["failed"], refused=counts["total"] - counts["failed"])

    ids, malformed = _parse_ids(results)
    if limit is not None:
        ids = ids[:limit]
    failed = DBTaskResult.objects.filter(pk__in=ids, status=ResultStatus.FAILED).count()
    return RetryOutcome(retried=failed, refused=len(ids) - failed + malformed)


def retry_one(result_id: str | UUID) -> DBTaskResult:
    """Retry one result; raise RetryRefused with a clear message if it is not FAILED.

    Missing or malformed ids raise ResultDoesNotExist.  Returns the row, now NEW.
    """
    try:
        row = DBTaskResult.objects.get(pk=result_id)
    except (DBTaskResult.DoesNotExist, ValidationError):
        raise ResultDoesNotExist(result_id) from None
    if row.status == ResultStatus.FAILED and retry(results=[row.pk]).retried:
        row.refresh_from_db()
        return row
    # Not FAILED, or it stopped being FAILED since we read it.
    row.refresh_from_db(fields=["status"])
    raise RetryRefused(
        f"Task result {normalize_uuid(row.pk)} cannot be retried: "
        f"its status is {row.status}, only FAILED results can be retried"
    )


def _parse_ids(ids: Iterable[str | UUID]) -> tuple[list[UUID], int]:
    """Return the distinct well-formed ids, in order, and how many were malformed."""
    valid: dict[UUID, None] = {}
    malformed = 0
    for val in ids:
        try:
            valid[val if isinstance(val, UUID) else UUID(str(val))] = None
        except ValueError:
            malformed += 1
    return list(valid), malformed


def _ids_of_queryset(results: QuerySet[DBTaskResult], *, limit: int | None) -> list[UUID]:
    """Return the ids of ``results`` (oldest enqueued first, at most ``limit``)."""
    if results.query.is_sliced:  # already cut: its order can't change
        pks = list(results.values_list("pk", flat=True))
        return pks if limit is None else pks[:limit]
    ordered = results.order_by("enqueued_at", "pk").values_list("pk", flat=True)
    return list(ordered if limit is None else ordered[:limit])


def _retry_batches(
    results: DBTaskResultQuerySet | Iterable[str | UUID], *, limit: int | None, batch_size: int
) -> tuple[Iterator[list[UUID]], str, int]:
    """Return batches of candidate ids, the database to use, and the malformed count."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if limit is not None and limit < 0:
        raise ValueError("limit must be zero or more")

    if isinstance(results, QuerySet):
        if limit is not None or results.query.is_sliced:
            return _chunks(_ids_of_queryset(results, limit=limit), batch_size), results.db, 0
        return _keyset_batches(results, batch_size), results.db, 0

    ids, malformed = _parse_ids(results)
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


def _retry_batch(ids: list[UUID], *, using: str) -> int:
    """Retry the FAILED rows among ``ids`` in one UPDATE; return how many."""
    rows = DBTaskResult.objects.using(using).filter(pk__in=ids, status=ResultStatus.FAILED)
    with transaction.atomic(using=using):
        # Lock the rows (PostgreSQL; SQLite's transaction locks the database) so the
        # history we append is the one we overwrite.
        failed = list(
            rows.select_for_update()
            .order_by()
            .values("pk", "exception_data", "enqueued_at", "started_at", "finished_at")
            .annotate(previous_worker_id=F("worker_id"), previous_attempts=F("attempts"))
        )
        if not failed:
            return 0
        attempts: Any = Case(
            *(
                When(
                    pk=row["pk"],
                    then=Value(
                        [*(row["previous_attempts"] or []), _attempt_record(row)],
                        output_field=JSONField(),
                    ),
                )
                for row in failed
            ),
            default=F("attempts"),
            output_field=JSONField(),
        )
        if connections[using].features.requires_casted_case_in_updates:
            attempts = Cast(attempts, output_field=JSONField())
        return rows.filter(pk__in=[row["pk"] for row in failed]).update(
            status=ResultStatus.NEW,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            return_value=None,
            exception_data=None,
            worker_id=None,
            attempts=attempts,
        )


def _attempt_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The failed attempt a FAILED row's columns describe, for its ``attempts`` list."""
    return Attempt.failed(
        exception_data=row["exception_data"],
        enqueued_at=row["enqueued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        worker_id=row["previous_worker_id"],
    ).to_json()
