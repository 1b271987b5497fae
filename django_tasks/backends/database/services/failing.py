"""Failing waiting or running rows in bulk, with one exception, outside any worker.

A "worker lost" recovery (RUNNING rows of a lost worker) and a cancel (NEW rows)
both end rows FAILED with an exception their callers can read, and tell
``task_finished`` receivers, each row in its own API.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult, DBTaskResultQuerySet
from django_tasks.backends.database.results import task_result_for
from django_tasks.django_api import signals_for
from django_tasks.task import ResultStatus
from django_tasks.utils import exception_to_dict

logger = logging.getLogger("django_tasks.backends.database")


def fail_rows(rows: DBTaskResultQuerySet, exc: Exception) -> int:
    """End ``rows`` FAILED with ``exc`` in one UPDATE; send task_finished for each.

    ``rows`` carries the conditions that make the UPDATE safe (the status the
    rows must still have, and any other guard): a row that changed meanwhile is
    left alone.  ``task_finished`` is sent from inside an ``except`` block for
    ``exc``, so logging receivers record it as they do a task's own failure.
    Returns how many rows were failed.
    """
    finished_at = timezone.now()
    pks = list(rows.values_list("pk", flat=True))
    if not pks:
        return 0
    count = rows.filter(pk__in=pks).update(
        status=ResultStatus.FAILED,
        finished_at=finished_at,
        return_value=None,
        exception_data=exception_to_dict(exc),
    )
    # The rows this call failed carry its exact finished_at.
    failed = DBTaskResult.objects.using(rows.db).filter(
        pk__in=pks, status=ResultStatus.FAILED, finished_at=finished_at
    )
    for row in failed:
        try:
            task = row.task
        except Exception:  # the task's code is gone: nothing to tell receivers about
            logger.debug("Task id=%s: no task_finished (unresolvable)", row.pk)
            continue
        try:
            raise exc.with_traceback(None)  # one frame per row, not a growing chain
        except type(exc):
            signals_for(row.api).finished.send(
                sender=type(task.get_backend()), task_result=task_result_for(row, task)
            )
    return count
