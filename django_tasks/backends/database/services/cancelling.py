"""Cancelling: ending waiting results as FAILED before any worker runs them.

cancel() and its preview and single-row forms.  A cancelled row ends FAILED with
a TaskCancelled error, so callers waiting on ``get_result()`` stop waiting.  A
RUNNING task is never interrupted: cancel leaves it alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from uuid import UUID

from django.core.exceptions import ValidationError

from django_tasks.backends.database.models import DBTaskResult, DBTaskResultQuerySet
from django_tasks.backends.database.utils import normalize_uuid
from django_tasks.exceptions import ResultDoesNotExist, TaskEndedOnPurpose
from django_tasks.task import ResultStatus

from .failing import fail_rows
from .retrying import RETRY_BATCH_SIZE
from .selection import id_batches, preview

logger = logging.getLogger("django_tasks.backends.database")


class TaskCancelled(TaskEndedOnPurpose):
    """The task was cancelled before it ran."""

    # Results record this path (exc_type): keep it stable across refactors.
    __module__ = "django_tasks.backends.database.services"


class CancelRefused(Exception):
    """A result cannot be cancelled (it is not waiting to run)."""


CANCEL_BATCH_SIZE = RETRY_BATCH_SIZE
CANCELLED_EXC_TYPE = f"{TaskCancelled.__module__}.{TaskCancelled.__qualname__}"


def cancel(
    result_ids: DBTaskResultQuerySet | Iterable[str | UUID],
    *,
    limit: int | None = None,
    batch_size: int = CANCEL_BATCH_SIZE,
    reason: str = "cancelled",
) -> int:
    """End the NEW results among ``result_ids`` as FAILED; return how many.

    ``result_ids`` is a queryset or result ids.  Each batch is one conditional
    UPDATE: a row a worker claimed meanwhile is left alone.  Rows that are not
    NEW, and missing or malformed ids, are skipped.  ``task_finished`` is sent once
    per cancelled row, in the row's API.  ``limit`` caps how many selected rows
    are considered (oldest enqueued first).
    """
    batches, using, _malformed = id_batches(result_ids, limit=limit, batch_size=batch_size)
    cancelled = 0
    for batch in batches:
        cancelled += _cancel_batch(batch, using=using, reason=reason)
    return cancelled


def cancel_preview(
    result_ids: DBTaskResultQuerySet | Iterable[str | UUID], *, limit: int | None = None
) -> tuple[int, int]:
    """Count what cancel() would do: (cancellable, refused), changing nothing."""
    return preview(result_ids, limit=limit, status=ResultStatus.NEW)


def cancel_one(result_id: str | UUID, *, reason: str = "cancelled") -> DBTaskResult:
    """Cancel one result; raise CancelRefused with a clear message if it is not NEW.

    Missing or malformed ids raise ResultDoesNotExist.  Returns the row, now FAILED.
    """
    try:
        row = DBTaskResult.objects.get(pk=result_id)
    except (DBTaskResult.DoesNotExist, ValidationError):
        raise ResultDoesNotExist(result_id) from None
    if row.status == ResultStatus.NEW and cancel([row.pk], reason=reason):
        row.refresh_from_db()
        return row
    # Not NEW, or a worker claimed it since we read it.
    row.refresh_from_db(fields=["status"])
    why = (
        "a running task is not interrupted"
        if row.status == ResultStatus.RUNNING
        else "only waiting (NEW) results can be cancelled"
    )
    raise CancelRefused(
        f"Task result {normalize_uuid(row.pk)} cannot be cancelled: it is {row.status}; {why}"
    )


def is_cancelled(row: DBTaskResult) -> bool:
    """Whether ``row`` ended FAILED because it was cancelled."""
    data = row.exception_data
    return (
        row.status == ResultStatus.FAILED
        and isinstance(data, dict)
        and data.get("exc_type") == CANCELLED_EXC_TYPE
    )


def _cancel_batch(ids: list[UUID], *, using: str, reason: str) -> int:
    """Fail the NEW rows among ``ids`` in one UPDATE; send task_finished for each."""
    waiting = DBTaskResult.objects.using(using).filter(pk__in=ids, status=ResultStatus.NEW)
    count = fail_rows(waiting, TaskCancelled(reason))
    if count:
        logger.info("Cancelled %s waiting task result(s)", count)
    return count
