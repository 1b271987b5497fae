"""The ModelAdmin: registration, permissions, actions, CSRF and the admin log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_tasks import django_api
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin.admin import TaskResultAdmin

from .utils import DashboardTestCase, make_complete, make_failed, make_row, search, url


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


class RegistrationTests(DashboardTestCase):
    def test_dashboard_replaces_the_plain_admin(self):
        assert isinstance(admin.site._registry[DBTaskResult], TaskResultAdmin)

    def test_admin_index_links_to_the_overview_not_the_results_list(self):
        response = self.client.get("/admin/")
        content = response.content.decode()
        entry = reverse("admin:django_tasks_admin_taskdashboard_changelist")
        assert f'<a href="{entry}"' in content
        assert f'href="{url("changelist")}"' not in content
        opened = self.client.get(entry)
        assert opened.status_code == 302
        assert opened["Location"] == url("overview")
        # A read-only viewer gets the same entry; staff without the view permission none.
        self.client.force_login(self.viewer)
        assert entry in self.client.get("/admin/").content.decode()
        self.client.force_login(self.nobody)
        assert entry not in self.client.get("/admin/").content.decode()
        assert self.client.get(entry).status_code == 403

    def test_rows_cannot_be_added_changed_or_deleted(self):
        model_admin = admin.site._registry[DBTaskResult]
        request = self.client.get(url("changelist")).wsgi_request
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
        assert "delete_selected" not in model_admin.get_actions(request)
        assert "retry_selected" in model_admin.get_actions(request)


class AccessTests(DashboardTestCase):
    def pages(self) -> list[str]:
        row = make_failed()
        return [
            url("overview"),
            url("changelist"),
            url("change", row.pk),
        ]

    def test_anonymous_is_sent_to_the_login_page(self):
        row = make_failed()
        self.client.logout()
        for path in [*self.pages(), url("prune"), url("retry_matching")]:
            response = self.client.get(path)
            assert response.status_code == 302, path
            assert response["Location"].startswith("/admin/login/"), path
        for path in [url("retry", row.pk), url("actions"), url("prune"), url("retry_matching")]:
            response = self.client.post(path)
            assert response.status_code == 302, path
            assert response["Location"].startswith("/admin/login/"), path
        row.refresh_from_db()
        assert row.status == ResultStatus.FAILED

    def test_staff_without_view_permission_gets_403(self):
        self.client.force_login(self.nobody)
        for path in self.pages():
            assert self.client.get(path).status_code == 403, path

    def test_viewer_sees_pages_without_action_buttons(self):
        self.client.force_login(self.viewer)
        for path in self.pages():
            response = self.client.get(path)
            assert response.status_code == 200, path
            content = response.content.decode()
            assert "dt-retry" not in content
            assert url("prune") not in content
        assert self.client.get(url("prune")).status_code == 403
        assert self.client.get(url("retry_matching")).status_code == 403

    def test_viewer_gets_403_on_forged_posts(self):
        row = make_failed()
        self.client.force_login(self.viewer)
        assert self.client.post(url("retry", row.pk)).status_code == 403
        response = self.client.post(url("actions"), {"action": "retry_selected", "ids": [row.pk]})
        assert response.status_code == 403
        assert self.client.post(url("retry_matching", query="status=FAILED")).status_code == 403
        old = make_complete(finished_at=timezone.now() - timedelta(days=30))
        response = self.client.post(
            url("prune"), {"backend": "default", "queue_name": "*", "min_age_days": 0}
        )
        assert response.status_code == 403
        row.refresh_from_db()
        assert row.status == ResultStatus.FAILED
        assert DBTaskResult.objects.filter(pk=old.pk).exists()
        assert not LogEntry.objects.exists()

    def test_retrier_cannot_prune_and_pruner_cannot_retry(self):
        row = make_failed()
        self.client.force_login(self.retrier)
        assert self.client.get(url("prune")).status_code == 403
        self.client.force_login(self.pruner)
        assert self.client.get(url("prune")).status_code == 200
        assert self.client.post(url("retry", row.pk)).status_code == 403
        self.client.force_login(self.retrier)
        assert self.client.post(url("retry", row.pk)).status_code == 302

    def test_actions_are_post_only(self):
        row = make_failed()
        assert self.client.get(url("retry", row.pk)).status_code == 405
        assert self.client.get(url("actions")).status_code == 405
        row.refresh_from_db()
        assert row.status == ResultStatus.FAILED

    def test_post_without_csrf_token_is_rejected(self):
        row = make_failed()
        old = make_complete(finished_at=timezone.now() - timedelta(days=30))
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.superuser)
        assert client.post(url("retry", row.pk)).status_code == 403
        assert client.post(url("retry", row.pk), HTTP_HX_REQUEST="true").status_code == 403
        response = client.post(url("actions"), {"action": "retry_selected", "ids": [row.pk]})
        assert response.status_code == 403
        response = client.post(
            url("prune"), {"backend": "default", "queue_name": "*", "min_age_days": 0}
        )
        assert response.status_code == 403
        row.refresh_from_db()
        assert row.status == ResultStatus.FAILED
        assert DBTaskResult.objects.filter(pk=old.pk).exists()

    def test_htmx_post_with_the_token_from_the_body_works(self):
        row = make_failed()
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.superuser)
        page = client.get(url("change", row.pk)).content.decode()
        token = search(r"hx-headers='\{\"X-CSRFToken\": \"(\w+)\"\}'", page)[1]
        response = client.post(
            url("retry", row.pk),
            HTTP_HX_REQUEST="true",
            HTTP_HX_TARGET="dt-result",
            HTTP_X_CSRFTOKEN=token,
        )
        assert response.status_code == 200
        row.refresh_from_db()
        assert row.status == ResultStatus.NEW


class RetryOneTests(DashboardTestCase):
    def test_retry_puts_the_same_row_back_to_new(self):
        row = make_failed("first")
        response = self.client.post(url("retry", row.pk))
        assert response.status_code == 302
        assert response["Location"] == url("change", row.pk)
        row.refresh_from_db()
        assert row.status == ResultStatus.NEW
        assert row.finished_at is None and row.exception_data is None
        assert row.attempts[0]["message"] == "first"
        assert "Retried" in messages_of(response)[0]
        entry = LogEntry.objects.get()
        assert entry.action_flag == CHANGE
        assert entry.object_id == str(row.pk)
        assert entry.user_id == self.superuser.pk
        assert entry.get_admin_url() == url("change", row.pk)

    def test_retry_of_a_result_that_did_not_fail_is_refused_with_a_message(self):
        for row in (make_complete(), make_row(), make_row(status=ResultStatus.RUNNING)):
            response = self.client.post(url("retry", row.pk), follow=True)
            assert response.status_code == 200
            assert any("cannot be retried" in m for m in messages_of(response))
            assert b"cannot be retried" in response.content
            status = row.status
            row.refresh_from_db()
            assert row.status == status
        assert not LogEntry.objects.exists()

    def test_retry_button_only_on_failed_results(self):
        failed = make_failed()
        complete = make_complete()
        assert b"dt-retry" in self.client.get(url("change", failed.pk)).content
        assert b"dt-retry" not in self.client.get(url("change", complete.pk)).content

    def test_htmx_retry_returns_the_live_detail_fragment(self):
        row = make_failed()
        response = self.client.post(
            url("retry", row.pk), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dt-result"
        )
        assert response.status_code == 200
        content = response.content.decode()
        assert "<html" not in content
        head = search(r'<div id="dt-result"[^>]*>', content)[0]
        assert 'data-status="NEW"' in head
        assert "hx-get" in head  # NEW: the fragment polls until the task finishes
        assert "queued again" in content

    def test_htmx_retry_refused_shows_the_reason(self):
        row = make_complete()
        response = self.client.post(
            url("retry", row.pk), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dt-result"
        )
        assert response.status_code == 200
        assert b"cannot be retried" in response.content

    def test_retry_of_a_missing_result_is_404(self):
        response = self.client.post(url("retry", "00000000-0000-0000-0000-000000000000"))
        assert response.status_code == 404


class RetrySelectedTests(DashboardTestCase):
    def test_retry_selected_retries_failed_and_reports_the_rest(self):
        failed = [make_failed(), make_failed()]
        complete = make_complete()
        back = url("changelist", query="status=FAILED")
        response = self.client.post(
            url("actions"),
            {
                "action": "retry_selected",
                "ids": [failed[0].pk, failed[1].pk, complete.pk, "junk"],
                "next": back,
            },
        )
        assert response.status_code == 302
        assert response["Location"] == back
        assert DBTaskResult.objects.filter(status=ResultStatus.NEW).count() == 2
        texts = messages_of(response)
        assert "Retried 2 results." in texts
        assert any("1 selected result was not retried" in t for t in texts)
        entry = LogEntry.objects.get()
        assert entry.action_flag == CHANGE and "Retried 2" in entry.change_message

    def test_nothing_selected_is_a_warning_not_an_error(self):
        response = self.client.post(url("actions"), {"action": "retry_selected"})
        assert response.status_code == 302
        assert "nothing was done" in messages_of(response)[0]

    def test_unknown_action_is_400(self):
        response = self.client.post(url("actions"), {"action": "drop_tables"})
        assert response.status_code == 400

    def test_next_must_be_on_this_site(self):
        row = make_failed()
        response = self.client.post(
            url("actions"),
            {"action": "retry_selected", "ids": [row.pk], "next": "https://evil.example/"},
        )
        assert response["Location"] == url("changelist")


class PruneTests(DashboardTestCase):
    def seed(self):
        old = timezone.now() - timedelta(days=30)
        self.old_complete = make_complete(finished_at=old)
        self.old_failed = make_failed(finished_at=old)
        self.old_other_queue = make_complete(finished_at=old, queue_name="emails")
        self.recent = make_complete()
        self.new = make_row()
        self.running = make_row(status=ResultStatus.RUNNING, started_at=old)

    def test_prune_form_has_the_command_defaults_but_every_queue(self):
        response = self.client.get(url("prune"))
        assert response.status_code == 200
        form = response.context["form"]
        assert form["backend"].value() == "default"
        # Every queue, so that a first dry run counts the whole table (issue 14).
        assert form["queue_name"].value() == "*"
        assert form["min_age_days"].value() == 14
        assert b"Preview (dry run)" in response.content

    def test_dry_run_preview_counts_and_deletes_nothing(self):
        self.seed()
        response = self.client.get(
            url("prune", query="backend=default&queue_name=default&min_age_days=14&preview=1")
        )
        assert response.context["preview"] == 2
        assert b"2 task results would be deleted." in response.content
        assert b"Delete 2 results" in response.content
        assert DBTaskResult.objects.count() == 6
        assert not LogEntry.objects.exists()

    def test_failed_age_is_separate(self):
        self.seed()
        response = self.client.get(
            url(
                "prune",
                query="backend=default&queue_name=*&min_age_days=14&failed_min_age_days=60&preview=1",
            )
        )
        assert response.context["preview"] == 2  # both old COMPLETE, not the FAILED one

    def test_confirm_deletes_and_logs(self):
        self.seed()
        response = self.client.post(
            url("prune"), {"backend": "default", "queue_name": "*", "min_age_days": "14"}
        )
        assert response.status_code == 302
        assert "Deleted 3 task results." in messages_of(response)
        remaining = set(DBTaskResult.objects.values_list("pk", flat=True))
        assert remaining == {self.recent.pk, self.new.pk, self.running.pk}
        entry = LogEntry.objects.get()
        assert entry.action_flag == DELETION
        assert "queues=*" in entry.change_message

    def test_invalid_form_is_400_and_deletes_nothing(self):
        self.seed()
        response = self.client.post(
            url("prune"), {"backend": "nope", "queue_name": "", "min_age_days": "-1"}
        )
        assert response.status_code == 400
        assert DBTaskResult.objects.count() == 6


class BothApisTests(DashboardTestCase):
    """Rows enqueued through Django 6's django.tasks are retried and pruned like ours."""

    def test_retry_one_keeps_the_api_and_the_first_error(self):
        row = make_failed("first", api=django_api.DJANGO)
        response = self.client.post(url("retry", row.pk))
        assert response.status_code == 302
        row.refresh_from_db()
        assert row.status == ResultStatus.NEW
        assert row.api == django_api.DJANGO
        assert row.attempts[0]["message"] == "first"

    def test_retry_all_matching_one_api(self):
        theirs = make_failed(api=django_api.DJANGO)
        ours = make_failed()
        preview = self.client.get(url("retry_matching", query="api=django.tasks"))
        assert preview.status_code == 200
        content = preview.content.decode()
        assert "<li>API: <code>django.tasks</code></li>" in content
        assert preview.context["preview"].retried == 1
        # The form posts back to the same filters.
        action = search(r'<form method="post" action="([^"]+)"', content)[1]
        assert action.replace("&amp;", "&") == url("retry_matching", query="api=django.tasks")
        response = self.client.post(url("retry_matching", query="api=django.tasks"))
        assert response.status_code == 302
        assert response["Location"] == url("changelist", query="api=django.tasks")
        statuses = dict(DBTaskResult.objects.values_list("pk", "status"))
        assert statuses == {theirs.pk: ResultStatus.NEW, ours.pk: ResultStatus.FAILED}

    def test_retry_selected_rows_of_both_apis(self):
        rows = [make_failed(api=django_api.DJANGO), make_failed()]
        response = self.client.post(
            url("actions"), {"action": "retry_selected", "ids": [str(r.pk) for r in rows]}
        )
        assert response.status_code == 302
        assert set(DBTaskResult.objects.values_list("status", flat=True)) == {ResultStatus.NEW}

    def test_prune_deletes_old_results_of_both_apis(self):
        old = timezone.now() - timedelta(days=30)
        make_complete(finished_at=old, api=django_api.DJANGO)
        make_complete(finished_at=old)
        recent = make_complete(api=django_api.DJANGO)
        response = self.client.post(
            url("prune"), {"backend": "default", "queue_name": "*", "min_age_days": "14"}
        )
        assert response.status_code == 302
        assert "Deleted 2 task results." in messages_of(response)
        assert list(DBTaskResult.objects.values_list("pk", flat=True)) == [recent.pk]
