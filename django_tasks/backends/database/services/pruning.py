"""Pruning: deleting finished results once they are old enough, in short batches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult, prune_cutoffs
from django_tasks.task import ResultStatus


def prune(
    *,
    backend_name: str,
    queue_names: Sequence[str] | None,
    min_age_days: int = 14,
    failed_min_age_days: int | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
) -> int:
    """Delete (or with dry_run count) finished results older than the given ages.

    COMPLETE rows go once finished ``min_age_days`` ago; FAILED rows once finished
    ``failed_min_age_days`` ago (None or 0: ``min_age_days``).  NEW and RUNNING
    rows are never touched.  Only rows of ``backend_name`` and ``queue_names``
    (None: every queue) count.  Rows are deleted ``batch_size`` at a time, each
    batch its own short statement, so no long lock is ever held.  Returns how
    many rows were (or, with ``dry_run``, would be) deleted.
    """
    if min_age_days < 0 or (failed_min_age_days or 0) < 0:
        raise ValueError("Ages must be zero or more days")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")

    results = DBTaskResult.objects.filter(backend_name=backend_name)
    if queue_names is not None:
        results = results.filter(queue_name__in=list(queue_names))
    now = timezone.now()

    if dry_run:
        return results.prunable(
            min_age_days=min_age_days, failed_min_age_days=failed_min_age_days, now=now
        ).count()

    complete_before, failed_before = prune_cutoffs(
        min_age_days=min_age_days, failed_min_age_days=failed_min_age_days, now=now
    )
    deleted = 0
    for status, finished_before in (
        (ResultStatus.COMPLETE, complete_before),
        (ResultStatus.FAILED, failed_before),
    ):
        deleted += _delete_in_batches(
            results.filter(status=status, finished_at__lte=finished_before), batch_size
        )
    return deleted


def _delete_in_batches(results: QuerySet[DBTaskResult], batch_size: int) -> int:
    """Delete ``results`` oldest first, ``batch_size`` rows per DELETE."""
    deleted = 0
    oldest: datetime | None = None
    while True:
        # Start at the last batch's newest finished_at: the index range scan then
        # skips the rows already deleted (dead until vacuumed) instead of revisiting them.
        remaining = results if oldest is None else results.filter(finished_at__gte=oldest)
        batch = list(
            remaining.order_by("finished_at").values_list("pk", "finished_at")[:batch_size]
        )
        if not batch:
            return deleted
        # Repeat the selection's conditions: a row retried meanwhile is not deleted.
        count, _ = results.filter(pk__in=[pk for pk, _ in batch]).delete()
        deleted += count
        oldest = batch[-1][1]
        if len(batch) < batch_size:
            return deleted
