"""The background task behind a large "retry all matching" or "cancel all matching"."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from django.utils import timezone

from django_tasks import task
from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus

from . import conf


@task()
def bulk_retry(job_id: str) -> dict[str, Any]:
    """Retry (or cancel) the rows a BulkRetry's filters select, saving progress per batch."""
    from .filters import ResultFilterSet
    from .models import BulkRetry

    job = BulkRetry.objects.get(pk=job_id)
    BulkRetry.objects.filter(pk=job.pk).update(status=ResultStatus.RUNNING)
    try:
        filterset = ResultFilterSet(data=QueryDict(job.query), queryset=DBTaskResult.objects.all())
        if not filterset.is_valid():
            raise ValueError(f"Invalid filters: {filterset.errors.as_json()}")
        batch = max(1, int(conf.get("BULK_RETRY_BATCH")))
        if job.action == "cancel":
            # Work enqueued after the request is not cancelled.
            waiting = filterset.qs.filter(
                status=ResultStatus.NEW, enqueued_at__lte=job.failed_before
            )
        else:
            # A row retried here and failing again later is not picked up a second time.
            rows = filterset.qs.filter(
                status=ResultStatus.FAILED, finished_at__lte=job.failed_before
            )
        while True:
            if job.action == "cancel":
                selected = list(
                    waiting.order_by("enqueued_at", "pk").values_list("pk", flat=True)[:batch]
                )
                done = services.cancel(
                    selected, reason=f"cancelled by {job.requested_by or '?'} from the dashboard"
                )
                outcome = services.RetryOutcome(retried=done, refused=len(selected) - done)
            else:
                outcome = services.retry(results=rows, limit=batch)
            job.retried += outcome.retried
            job.refused += outcome.refused
            BulkRetry.objects.filter(pk=job.pk).update(retried=job.retried, refused=job.refused)
            if not outcome.retried:
                break
    except Exception as e:
        BulkRetry.objects.filter(pk=job.pk).update(
            status=ResultStatus.FAILED, finished_at=timezone.now(), error=repr(e)
        )
        raise
    BulkRetry.objects.filter(pk=job.pk).update(
        status=ResultStatus.COMPLETE, finished_at=timezone.now()
    )
    return {"retried": job.retried, "refused": job.refused}
