"""Retrying: putting FAILED results back to NEW, keeping their failure history.

retry() and its preview and single-row forms, and the batching they share.
Each retried failure is kept in the row's ``attempts`` (see ``attempts.Attempt``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models import Case, F, JSONField, Value, When
from django.db.models.functions import Cast
from django.utils import timezone

from django_tasks.backends.database.attempts import Attempt
from django_tasks.backends.database.models import DBTaskResult, DBTaskResultQuerySet
from django_tasks.backends.database.utils import normalize_uuid
from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.task import ResultStatus

from .selection import id_batches, preview


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
    batches, using, malformed = id_batches(results, limit=limit, batch_size=batch_size)
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
    retried, refused = preview(results, limit=limit, status=ResultStatus.FAILED)
    return RetryOutcome(retried=retried, refused=refused)


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
