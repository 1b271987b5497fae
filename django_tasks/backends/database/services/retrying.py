"""Retrying: putting FAILED results back to NEW, keeping their failure history.

retry() and its preview and single-row forms, and the batching they share.
Each retried failure is kept in the row's ``attempts`` (see ``attempts.Attempt``).
A FAILED row with a unique key is refused while a waiting or running row of its
task holds the key (the partial unique index allows one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Case, Exists, F, JSONField, OuterRef, QuerySet, Value, When
from django.db.models.functions import Cast
from django.utils import timezone

from django_tasks.backends.database.attempts import Attempt
from django_tasks.backends.database.models import DBTaskResult, DBTaskResultQuerySet
from django_tasks.backends.database.utils import normalize_uuid
from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.task import LIVE_STATUSES, ResultStatus

from .selection import Selection, id_batches, ids_of_queryset, parse_ids, preview


class RetryRefused(Exception):
    """A result cannot be retried (it is not FAILED, or another result holds its key)."""


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
    refused.  So is a FAILED row with a unique key that a waiting or running row
    of its task holds, or that another selected row takes back first (in a
    batch, the oldest enqueued).  ``limit`` caps how many selected rows are considered (oldest
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


def retry_preview(*, results: Selection, limit: int | None = None) -> RetryOutcome:
    """Count what retry() with the same arguments would do, changing nothing."""
    retried, refused = preview(results, limit=limit, status=ResultStatus.FAILED)
    blocked = _held_key_count(results, limit=limit)
    return RetryOutcome(retried=retried - blocked, refused=refused + blocked)


def retry_one(result_id: str | UUID) -> DBTaskResult:
    """Retry one result; raise RetryRefused with a clear message if it can't be.

    It can't be when it is not FAILED, or when another result of its task, waiting
    or running, holds its unique key.  Missing or malformed ids raise
    ResultDoesNotExist.  Returns the row, now NEW.
    """
    try:
        row = DBTaskResult.objects.get(pk=result_id)
    except (DBTaskResult.DoesNotExist, ValidationError):
        raise ResultDoesNotExist(result_id) from None
    for _ in range(2):  # again if the key's holder finished meanwhile
        if row.status != ResultStatus.FAILED:
            break
        if retry(results=[row.pk]).retried:
            row.refresh_from_db()
            return row
        row.refresh_from_db(fields=["status"])
        holder = _key_holder(row) if row.status == ResultStatus.FAILED else None
        if holder is not None:
            raise RetryRefused(
                f"Task result {normalize_uuid(row.pk)} cannot be retried: task result "
                f"{normalize_uuid(holder.pk)} of {row.task_path} holds its unique key "
                f"{row.unique_key!r} while it is {holder.status}; "
                "retry it once that one has finished"
            )
    if row.status == ResultStatus.FAILED:  # its key was taken and freed, twice
        raise RetryRefused(
            f"Task result {normalize_uuid(row.pk)} cannot be retried now: other results "
            f"of {row.task_path} kept taking its unique key {row.unique_key!r}; try again"
        )
    raise RetryRefused(
        f"Task result {normalize_uuid(row.pk)} cannot be retried: "
        f"its status is {row.status}, only FAILED results can be retried"
    )


def _key_holder(row: DBTaskResult) -> DBTaskResult | None:
    """The waiting or running result holding ``row``'s unique key, if any."""
    if row.unique_key is None:
        return None
    return (
        DBTaskResult.objects.using(row._state.db)
        .filter(task_path=row.task_path, unique_key=row.unique_key, status__in=_LIVE)
        .exclude(pk=row.pk)
        .first()
    )


_LIVE = sorted(LIVE_STATUSES)

# Retrying a batch whose keys a concurrent enqueue took after they were checked: the
# UPDATE fails, the keys are checked again.  This many tries in all.
_KEY_CHECK_ROUNDS = 3


def _retry_batch(ids: list[UUID], *, using: str) -> int:
    """Retry the FAILED rows among ``ids`` in one UPDATE; return how many."""
    rows = DBTaskResult.objects.using(using).filter(pk__in=ids, status=ResultStatus.FAILED)
    with transaction.atomic(using=using):
        # Lock the rows (PostgreSQL; SQLite's transaction locks the database) so the
        # history we append is the one we overwrite.
        failed = list(
            rows.select_for_update()
            .order_by("enqueued_at", "pk")
            .values(
                "pk",
                "exception_data",
                "enqueued_at",
                "started_at",
                "finished_at",
                "task_path",
                "unique_key",
            )
            .annotate(previous_worker_id=F("worker_id"), previous_attempts=F("attempts"))
        )
        if not failed:
            return 0
        if all(row["unique_key"] is None for row in failed):
            return _update_to_new(rows, failed, using=using)
        for round_number in range(1, _KEY_CHECK_ROUNDS + 1):
            free = _without_held_keys(failed, using=using)
            if not free:
                return 0
            try:
                # A savepoint: a key taken meanwhile fails this UPDATE alone.
                with transaction.atomic(using=using):
                    return _update_to_new(rows, free, using=using)
            except IntegrityError:
                if round_number == _KEY_CHECK_ROUNDS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def _without_held_keys(failed: list[dict[str, Any]], *, using: str) -> list[dict[str, Any]]:
    """``failed`` without the rows whose unique key a live row, or an earlier one, holds."""
    keyed = [row for row in failed if row["unique_key"] is not None]
    held = set(
        DBTaskResult.objects.using(using)
        .filter(
            status__in=_LIVE,
            task_path__in={row["task_path"] for row in keyed},
            unique_key__in={row["unique_key"] for row in keyed},
        )
        .values_list("task_path", "unique_key")
    )
    free = []
    for row in failed:  # oldest enqueued first: the first of a key wins it
        if row["unique_key"] is not None:
            key = (row["task_path"], row["unique_key"])
            if key in held:
                continue
            held.add(key)
        free.append(row)
    return free


def _held_key_count(results: Selection, *, limit: int | None) -> int:
    """How many selected FAILED rows retry() would refuse for their unique key."""
    if isinstance(results, QuerySet):
        selected = results
        if limit is not None or results.query.is_sliced:
            selected = DBTaskResult.objects.using(results.db).filter(
                pk__in=ids_of_queryset(results, limit=limit)
            )
    else:
        ids, _ = parse_ids(results)
        selected = DBTaskResult.objects.using(router.db_for_write(DBTaskResult)).filter(
            pk__in=ids if limit is None else ids[:limit]
        )
    keyed = selected.order_by().filter(status=ResultStatus.FAILED, unique_key__isnull=False)
    if not keyed.exists():
        return 0
    live = DBTaskResult.objects.using(keyed.db).filter(
        status__in=_LIVE, task_path=OuterRef("task_path"), unique_key=OuterRef("unique_key")
    )
    held = keyed.filter(Exists(live)).count()
    free = keyed.exclude(Exists(live))
    # Of the free rows, one per task and key is retried.
    return held + free.count() - free.values("task_path", "unique_key").distinct().count()


def _update_to_new(
    rows: QuerySet[DBTaskResult], failed: list[dict[str, Any]], *, using: str
) -> int:
    """Put the FAILED ``rows`` among ``failed`` back to NEW, appending their failure."""
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
