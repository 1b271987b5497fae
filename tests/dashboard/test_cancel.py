"""Cancelling from the dashboard: one result, the selected ones, all matching; permissions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.http import QueryDict
from django.test import override_settings
from django.utils import timezone

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin.filters import ResultFilterSet
from django_tasks_admin.list_state import ResultListState
from django_tasks_admin.models import BulkRetry
from django_tasks_admin.tasks import bulk_retry

from .utils import (
    CANCEL,
    VIEW,
    XSS,
    DashboardTestCase,
    make_complete,
    make_failed,
    make_row,
    search,
    staff,
    url,
)

CANCELLED = "django_tasks.backends.database.services.TaskCancelled"


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def statuses() -> dict[Any, str]:
    return dict(DBTaskResult.objects.values_list("pk", "status"))


class CancelOneTests(DashboardTestCase):
    def test_cancel_ends_a_waiting_result_failed_and_logs_it(self):
        row = make_row()
        response = self.client.post(url("cancel", row.pk))
        assert response.status_code == 302
        assert response["Location"] == url("change", row.pk)
        row.refresh_from_db()
        assert row.status == ResultStatus.FAILED
        assert row.exception_data is not None
        assert row.exception_data["exc_type"] == CANCELLED
        assert row.exception_data["exc_args"] == ["cancelled by admin from the dashboard"]
        assert "Cancelled: the task will not run." in messages_of(response)
        entry = LogEntry.objects.get()
        assert entry.action_flag == CHANGE
        assert entry.object_id == str(row.pk)
        assert entry.user_id == self.superuser.pk
        assert "Cancelled" in entry.change_message

    def test_cancel_of_a_running_or_finished_result_is_refused_with_a_message(self):
        running = make_row(status=ResultStatus.RUNNING)
        response = self.client.post(url("cancel", running.pk), follow=True)
        assert "it is RUNNING; a running task is not interrupted" in response.content.decode()
        for row in (make_complete(), make_failed()):
            response = self.client.post(url("cancel", row.pk), follow=True)
            assert any("cannot be cancelled" in m for m in messages_of(response))
        assert statuses()[running.pk] == ResultStatus.RUNNING
        assert not DBTaskResult.objects.filter(exception_data__exc_type=CANCELLED).exists()
        assert not LogEntry.objects.exists()

    def test_cancel_button_only_on_waiting_results_and_with_the_permission(self):
        waiting = make_row()
        failed = make_failed()
        assert b"dt-cancel" in self.client.get(url("change", waiting.pk)).content
        assert b"dt-cancel" not in self.client.get(url("change", failed.pk)).content
        self.client.force_login(self.retrier)
        assert b"dt-cancel" not in self.client.get(url("change", waiting.pk)).content

    def test_htmx_cancel_returns_the_finished_detail_fragment(self):
        row = make_row()
        response = self.client.post(
            url("cancel", row.pk), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dt-result"
        )
        assert response.status_code == 200
        content = response.content.decode()
        assert "<html" not in content
        head = search(r'<div id="dt-result"[^>]*>', content)[0]
        assert 'data-status="FAILED"' in head
        assert "hx-get" in head  # finished, still polled: a retry would bring it back
        assert "the task will not run" in content
        assert "TaskCancelled" in content
        assert "dt-cancelled" in content

    def test_htmx_cancel_refused_shows_the_reason(self):
        row = make_row(status=ResultStatus.RUNNING)
        response = self.client.post(
            url("cancel", row.pk), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dt-result"
        )
        assert response.status_code == 200
        assert b"a running task is not interrupted" in response.content

    def test_cancel_of_a_missing_result_is_404(self):
        response = self.client.post(url("cancel", "00000000-0000-0000-0000-000000000000"))
        assert response.status_code == 404

    def test_names_and_paths_are_escaped(self):
        canceller = staff(XSS, VIEW, CANCEL)
        self.client.force_login(canceller)
        row = make_row(task_path=f"tests.{XSS}", queue_name=XSS)
        response = self.client.post(
            url("cancel", row.pk), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dt-result"
        )
        content = response.content.decode()
        assert XSS not in content
        assert "&lt;script&gt;" in content
        assert XSS not in self.client.get(url("change", row.pk)).content.decode()


class CancelPermissionTests(DashboardTestCase):
    def test_forged_posts_without_the_cancel_permission_are_403(self):
        row = make_row()
        for user in (self.viewer, self.retrier):
            self.client.force_login(user)
            assert self.client.post(url("cancel", row.pk)).status_code == 403
            response = self.client.post(
                url("actions"), {"action": "cancel_selected", "ids": [row.pk]}
            )
            assert response.status_code == 403
            assert self.client.post(url("cancel_matching")).status_code == 403
            assert self.client.get(url("cancel_matching")).status_code == 403
        assert statuses()[row.pk] == ResultStatus.NEW
        assert not LogEntry.objects.exists()

    def test_list_buttons_need_the_cancel_permission(self):
        make_row()
        content = self.client.get(url("changelist")).content.decode()
        assert 'value="cancel_selected"' in content and "Cancel all matching" in content
        self.client.force_login(self.retrier)
        content = self.client.get(url("changelist")).content.decode()
        assert 'value="cancel_selected"' not in content and "Cancel all matching" not in content
        self.client.force_login(staff("canceller", VIEW, CANCEL))
        content = self.client.get(url("changelist")).content.decode()
        assert 'value="cancel_selected"' in content
        assert 'value="retry_selected"' not in content

    def test_a_canceller_can_cancel_without_retry_permission(self):
        row = make_row()
        self.client.force_login(staff("canceller", VIEW, CANCEL))
        assert self.client.post(url("cancel", row.pk)).status_code == 302
        assert statuses()[row.pk] == ResultStatus.FAILED
        assert self.client.post(url("retry", row.pk)).status_code == 403


class CancelSelectedTests(DashboardTestCase):
    def test_cancel_selected_cancels_waiting_rows_and_reports_the_rest(self):
        waiting = [make_row(), make_row(run_after=timezone.now() + timedelta(hours=1))]
        running = make_row(status=ResultStatus.RUNNING)
        back = url("changelist", query="status=NEW")
        response = self.client.post(
            url("actions"),
            {
                "action": "cancel_selected",
                "ids": [waiting[0].pk, waiting[1].pk, running.pk, "junk"],
                "next": back,
            },
        )
        assert response.status_code == 302
        assert response["Location"] == back
        now = statuses()
        assert [now[w.pk] for w in waiting] == [ResultStatus.FAILED] * 2
        assert now[running.pk] == ResultStatus.RUNNING
        texts = messages_of(response)
        assert "Cancelled 2 results." in texts
        assert any("1 selected result was not cancelled" in t for t in texts)
        entry = LogEntry.objects.get()
        assert entry.action_flag == CHANGE and "Cancelled 2" in entry.change_message


class CancelMatchingTests(DashboardTestCase):
    def test_preview_lists_filters_and_counts(self):
        for _ in range(3):
            make_row(queue_name="emails")
        make_row(queue_name="emails", status=ResultStatus.RUNNING)
        make_row(queue_name="other")
        response = self.client.get(url("cancel_matching", query="queue=emails&foo=bar"))
        assert response.status_code == 200
        assert (response.context["count"], response.context["left_alone"]) == (3, 1)
        assert response.context["filters"] == [("Queue", "emails")]
        content = response.content.decode()
        assert "3 waiting results match and would be cancelled." in content
        assert "a running task is not interrupted" in content
        assert "Cancel 3 results" in content
        assert "Ignored unknown parameter(s): foo" in content
        assert DBTaskResult.objects.filter(status=ResultStatus.NEW).count() == 4

    def test_cancel_matching_within_the_cap_runs_in_the_request(self):
        hits = [make_row(queue_name="emails") for _ in range(2)]
        other = make_row(queue_name="other")
        running = make_row(queue_name="emails", status=ResultStatus.RUNNING)
        response = self.client.post(url("cancel_matching", query="queue=emails&sort=-enqueued"))
        assert response.status_code == 302
        assert response["Location"] == url("changelist", query="queue=emails")
        now = statuses()
        assert {pk for pk, s in now.items() if s == ResultStatus.FAILED} == {h.pk for h in hits}
        assert now[other.pk] == ResultStatus.NEW and now[running.pk] == ResultStatus.RUNNING
        assert "Cancelled 2 waiting results." in messages_of(response)
        assert "queue=emails" in LogEntry.objects.get().change_message

    def test_invalid_filters_are_400(self):
        assert self.client.get(url("cancel_matching", query="id=nope")).status_code == 400

    @override_settings(DJANGO_TASKS_ADMIN={"RETRY_CAP": 2})
    def test_over_the_cap_runs_as_a_background_task_with_progress(self):
        for _ in range(4):
            make_row(queue_name="emails")
        preview = self.client.get(url("cancel_matching", query="queue=emails"))
        assert preview.context["background"]
        assert b"Cancel in the background" in preview.content
        response = self.client.post(url("cancel_matching", query="queue=emails"))
        job = BulkRetry.objects.get()
        assert response["Location"] == url("bulk_cancel", job.pk)
        assert (job.action, job.total, job.query) == ("cancel", 4, "queue=emails")
        # The retry progress page does not show a cancel job.
        assert self.client.get(url("bulk_retry", job.pk)).status_code == 404
        page = self.client.get(url("bulk_cancel", job.pk))
        assert b"<progress" in page.content and b"Cancel all matching" in page.content

        assert bulk_retry.call(str(job.pk)) == {"retried": 4, "refused": 0}
        job.refresh_from_db()
        assert job.status == ResultStatus.COMPLETE and job.retried == 4
        cancelled = DBTaskResult.objects.filter(queue_name="emails")
        assert {r.status for r in cancelled} == {ResultStatus.FAILED}
        assert all(services.is_cancelled(r) for r in cancelled)
        done = self.client.get(
            url("bulk_cancel", job.pk), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dt-progress"
        )
        assert done.status_code == 286
        assert b"4 of 4 cancelled" in done.content and b"<html" not in done.content
        assert LogEntry.objects.filter(change_message__contains="background cancel").exists()

    def test_background_cancel_leaves_rows_enqueued_after_the_request(self):
        job = BulkRetry.objects.create(
            action="cancel", query="", failed_before=timezone.now(), total=1
        )
        row = make_row()
        assert bulk_retry.call(str(job.pk)) == {"retried": 0, "refused": 0}
        assert statuses()[row.pk] == ResultStatus.NEW

    def test_progress_needs_the_cancel_permission(self):
        job = BulkRetry.objects.create(
            action="cancel", query="", failed_before=timezone.now(), total=1
        )
        self.client.force_login(self.retrier)
        assert self.client.get(url("bulk_cancel", job.pk)).status_code == 403


class CancelledFilterTests(DashboardTestCase):
    def test_cancelled_filter_selects_cancelled_failures_only(self):
        cancelled = make_row()
        services.cancel([cancelled.pk])
        failed = make_failed()
        waiting = make_row()
        rows = DBTaskResult.objects.all()

        def selected(value: str) -> set[Any]:
            filterset = ResultFilterSet(data=QueryDict(f"cancelled={value}"), queryset=rows)
            assert filterset.is_valid()
            return set(filterset.qs.values_list("pk", flat=True))

        assert selected("yes") == {cancelled.pk}
        assert selected("no") == {failed.pk, waiting.pk}
        assert selected("") == {cancelled.pk, failed.pk, waiting.pk}

    def test_the_list_keeps_the_cancelled_filter(self):
        cancelled = make_row()
        services.cancel([cancelled.pk])
        make_failed()
        state = ResultListState.from_query(
            QueryDict("cancelled=yes&sort=task"),
            list_url="/list/",
            retry_matching_url="/retry/",
            cancel_matching_url="/cancel/",
        )
        assert state.filters.urlencode() == "cancelled=yes"
        assert state.cancel_matching_link == "/cancel/?cancelled=yes"
        assert "cancelled=yes" in state.page_url(after="x")
        response = self.client.get(url("changelist", query="cancelled=yes"))
        assert response.status_code == 200
        assert [r.record.pk for r in response.context["table"].page.object_list] == [cancelled.pk]
        assert "/cancel-matching/?cancelled=yes" in response.content.decode()
