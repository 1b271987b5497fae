"""The background task behind a large "retry all matching"."""

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
    """Retry the FAILED rows a BulkRetry's filters select, saving progress per batch."""
    from .filters import ResultFilterSet
    from .models import BulkRetry

    job = BulkRetry.objects.get(pk=job_id)
    BulkRetry.objects.filter(pk=job.pk).update(status=ResultStatus.RUNNING)
    try:
        filterset = ResultFilterSet(data=QueryDict(job.query), queryset=DBTaskResult.objects.all())
        if not filterset.is_valid():
            raise ValueError(f"Invalid filters: {filterset.errors.as_json()}")
        # A row retried here and failing again later is not picked up a second time.
        rows = filterset.qs.filter(status=ResultStatus.FAILED, finished_at__lte=job.failed_before)
        batch = max(1, int(conf.get("BULK_RETRY_BATCH")))
        while True:
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
