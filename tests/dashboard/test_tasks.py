"""Retry all matching: preview, capped retry in the request, background task with progress."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.test import override_settings
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin.models import BulkRetry
from django_tasks_admin.tasks import bulk_retry

from .utils import DashboardTestCase, make_complete, make_failed, url


class RetryMatchingTests(DashboardTestCase):
    def test_preview_counts_failed_and_skipped(self):
        for _ in range(3):
            make_failed(queue_name="emails")
        make_complete(queue_name="emails")
        make_failed(queue_name="other")
        response = self.client.get(url("retry_matching", query="queue=emails"))
        assert response.status_code == 200
        assert response.context["preview"].retried == 3
        assert response.context["preview"].refused == 1
        content = response.content.decode()
        assert "3 failed results match" in content
        assert "Retry 3 results" in content
        assert DBTaskResult.objects.filter(status=ResultStatus.FAILED).count() == 4

    def test_retry_matching_within_the_cap_runs_in_the_request(self):
        hits = [make_failed(queue_name="emails") for _ in range(3)]
        make_failed(queue_name="other")
        make_complete(queue_name="emails")
        response = self.client.post(url("retry_matching", query="queue=emails&sort=-enqueued"))
        assert response.status_code == 302
        assert response["Location"] == url("changelist", query="queue=emails")
        assert set(
            DBTaskResult.objects.filter(status=ResultStatus.NEW).values_list("pk", flat=True)
        ) == {h.pk for h in hits}
        assert "Retried 3 failed results." in [str(m) for m in get_messages(response.wsgi_request)]
        assert "queue=emails" in LogEntry.objects.get().change_message

    def test_confirmation_lists_every_filter_the_retry_applies(self):
        now = timezone.now()
        hit = make_failed(queue_name="emails", priority=5)
        make_failed(queue_name="emails", priority=0)
        make_failed(queue_name="emails", priority=5, finished_at=now - timedelta(days=3))
        day_ago = (timezone.localtime(now) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        query = f"queue=emails&priority_min=1&priority_max=9&finished_after={day_ago}&foo=bar"
        response = self.client.get(url("retry_matching", query=query))
        assert response.context["filters"] == [
            ("Queue", "emails"),
            ("Priority", "min 1, max 9"),
            ("Finished", f"after {day_ago}"),
        ]
        content = response.content.decode()
        assert "Priority: <code>min 1, max 9</code>" in content
        assert "Ignored unknown parameter(s): foo" in content
        assert response.context["preview"].retried == 1
        self.client.post(url("retry_matching", query=query))
        assert list(
            DBTaskResult.objects.filter(status=ResultStatus.NEW).values_list("pk", flat=True)
        ) == [hit.pk]

    def test_invalid_filters_are_400(self):
        assert self.client.get(url("retry_matching", query="id=nope")).status_code == 400

    @override_settings(DJANGO_TASKS_ADMIN={"RETRY_CAP": 2})
    def test_over_the_cap_runs_as_a_background_task(self):
        for _ in range(5):
            make_failed()
        preview = self.client.get(url("retry_matching", query="status=FAILED"))
        assert preview.context["background"]
        assert b"Retry in the background" in preview.content

        response = self.client.post(url("retry_matching", query="status=FAILED"))
        job = BulkRetry.objects.get()
        assert response["Location"] == url("bulk_retry", job.pk)
        assert job.total == 5 and job.status == ResultStatus.NEW and job.query == "status=FAILED"
        # Enqueued with the configured backend (here the DatabaseBackend): a worker runs it.
        task_row = DBTaskResult.objects.get(task_path="django_tasks_admin.tasks.bulk_retry")
        assert task_row.args_kwargs == {"args": [str(job.pk)], "kwargs": {}}
        assert DBTaskResult.objects.filter(status=ResultStatus.FAILED).count() == 5

        page = self.client.get(url("bulk_retry", job.pk))
        assert b"<progress" in page.content and b"hx-get" in page.content
        assert self.htmx(url("bulk_retry", job.pk), "dt-progress").status_code == 200

        assert bulk_retry.call(str(job.pk)) == {"retried": 5, "refused": 0}
        job.refresh_from_db()
        assert job.status == ResultStatus.COMPLETE and job.retried == 5 and job.percent == 100
        assert DBTaskResult.objects.filter(status=ResultStatus.FAILED).count() == 0
        done = self.htmx(url("bulk_retry", job.pk), "dt-progress")
        assert done.status_code == 286
        assert b"5 of 5 retried" in done.content
        assert b"<html" not in done.content

    @override_settings(
        DJANGO_TASKS_ADMIN={
            "RETRY_CAP": 1,
            "BULK_RETRY_BACKEND": "immediate",
            "BULK_RETRY_BATCH": 2,
        }
    )
    def test_background_retry_in_batches_with_another_backend(self):
        for _ in range(5):
            make_failed()
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(url("retry_matching", query="status=FAILED"))
        job = BulkRetry.objects.get()
        assert response["Location"] == url("bulk_retry", job.pk)
        assert job.status == ResultStatus.COMPLETE and job.retried == 5
        assert DBTaskResult.objects.filter(status=ResultStatus.NEW).count() == 5

    def test_rows_failing_again_are_not_retried_twice(self):
        from django.utils import timezone

        row = make_failed()
        job = BulkRetry.objects.create(query="", failed_before=timezone.now(), total=1)
        DBTaskResult.objects.filter(pk=row.pk).update(finished_at=timezone.now())
        assert bulk_retry.call(str(job.pk)) == {"retried": 0, "refused": 0}

    def test_progress_needs_the_retry_permission(self):
        from django.utils import timezone

        job = BulkRetry.objects.create(query="", failed_before=timezone.now(), total=1)
        self.client.force_login(self.viewer)
        assert self.client.get(url("bulk_retry", job.pk)).status_code == 403
