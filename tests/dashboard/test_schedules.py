"""The Schedules page: listing, disable/enable/run now (POST, CSRF, permission, LogEntry)."""

from __future__ import annotations

import re
import uuid
from typing import Any, cast

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.test import Client, override_settings

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBSchedule, DBScheduledRun, DBTaskResult
from django_tasks.backends.database.services import scheduling
from django_tasks.task import ResultStatus

from .utils import DB_TASKS, VIEW, XSS, DashboardTestCase, search, staff, url

SCHEDULES = "django_tasks_admin.manage_schedules"

SCHEDULED_TASKS: dict[str, Any] = {
    **DB_TASKS,
    "default": {
        **cast(dict[str, Any], DB_TASKS["default"]),
        "OPTIONS": {
            "schedules": {
                "nightly-report": {
                    "task": "tests.schedule_tasks.nightly_report",
                    "cron": "30 2 * * *",
                    "timezone": "Europe/Berlin",
                    "kwargs": {"rows": 1},
                },
                "broken": {"task": "tests.schedule_tasks.fail_always", "cron": "@hourly"},
                XSS: {"task": "tests.schedule_tasks.nightly_report", "cron": "@daily"},
            }
        },
    },
}


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def run_next() -> ResultStatus | None:
    worker_id = uuid.uuid4()
    (row,) = services.claim_tasks(backend_name="default", queue_names=None, worker_id=worker_id)
    return services.run_task(row, worker_id=worker_id)


def action(name: str, what: str, backend: str = "default") -> dict[str, str]:
    return {"backend": backend, "name": name, "action": what}


@override_settings(TASKS=SCHEDULED_TASKS)
class SchedulesPageTests(DashboardTestCase):
    def test_lists_each_schedule_with_its_cron_in_words_and_next_run(self):
        page = self.client.get(url("schedules")).content.decode()
        row = search(r'<tr data-schedule="nightly-report">.*?</tr>', page, flags=re.DOTALL).group(0)
        assert "tests.schedule_tasks.nightly_report" in row
        assert "At 02:30 every day (Europe/Berlin)" in row
        assert "<code>30 2 * * *</code>" in row
        assert "never" in row
        assert ">yes<" in row
        assert 'name="action" value="disable"' in row

    def test_last_run_links_to_its_result_with_its_status(self):
        run = scheduling.run_now(backend_name="default", name="broken")
        assert run_next() == ResultStatus.FAILED
        page = self.client.get(url("schedules")).content.decode()
        row = search(r'<tr data-schedule="broken">.*?</tr>', page, flags=re.DOTALL).group(0)
        assert f'href="{url("change", run.result_id)}"' in row
        assert "FAILED" in row
        assert "(run now)" in row

    def test_names_are_escaped(self):
        page = self.client.get(url("schedules")).content.decode()
        assert XSS not in page
        assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in page

    def test_the_tab_is_on_every_page(self):
        page = self.client.get(url("overview")).content.decode()
        assert f'href="{url("schedules")}"' in page

    def test_viewers_see_no_buttons_and_may_not_act(self):
        self.client.force_login(self.viewer)
        page = self.client.get(url("schedules")).content.decode()
        assert "nightly-report" in page
        assert 'value="run_now"' not in page
        response = self.client.post(url("schedule_action"), action("nightly-report", "run_now"))
        assert response.status_code == 403
        assert not DBTaskResult.objects.exists()

    def test_without_the_view_permission_the_page_is_forbidden(self):
        self.client.force_login(staff("schedules-only", SCHEDULES))
        assert self.client.get(url("schedules")).status_code == 403
        response = self.client.post(url("schedule_action"), action("nightly-report", "disable"))
        assert response.status_code == 403
        assert not DBSchedule.objects.filter(enabled=False).exists()

    def test_the_permission_alone_is_enough_to_act(self):
        self.client.force_login(staff("operator", VIEW, SCHEDULES))
        page = self.client.get(url("schedules")).content.decode()
        assert 'value="run_now"' in page
        response = self.client.post(url("schedule_action"), action("nightly-report", "disable"))
        assert response.status_code == 302
        assert DBSchedule.objects.get(name="nightly-report").enabled is False

    def test_disable_and_enable_are_stored_and_logged(self):
        response = self.client.post(url("schedule_action"), action("nightly-report", "disable"))
        assert response.status_code == 302
        assert response["Location"] == url("schedules")
        row = DBSchedule.objects.get(name="nightly-report")
        assert row.enabled is False
        assert any("Disabled nightly-report" in m for m in messages_of(response))
        entry = LogEntry.objects.get()
        assert entry.action_flag == CHANGE
        assert entry.content_type == ContentType.objects.get_for_model(DBSchedule)
        assert entry.object_id == str(row.pk)
        assert entry.change_message == "Disabled"
        assert entry.user_id == self.superuser.pk

        page = self.client.get(url("schedules")).content.decode()
        html = search(r'<tr data-schedule="nightly-report">.*?</tr>', page, flags=re.DOTALL).group(
            0
        )
        assert 'value="enable"' in html and ">no<" in html

        self.client.post(url("schedule_action"), action("nightly-report", "enable"))
        row.refresh_from_db()
        assert row.enabled is True
        assert LogEntry.objects.count() == 2

    def test_an_action_that_changes_nothing_is_not_logged(self):
        response = self.client.post(url("schedule_action"), action("nightly-report", "enable"))
        assert any("already" in m for m in messages_of(response))
        assert not LogEntry.objects.exists()

    def test_run_now_enqueues_one_run_and_logs_it(self):
        response = self.client.post(url("schedule_action"), action("nightly-report", "run_now"))
        assert response.status_code == 302
        run = DBScheduledRun.objects.get()
        assert run.manual and run.schedule_name == "nightly-report"
        result = DBTaskResult.objects.get()
        assert run.result_id == result.pk
        assert result.args_kwargs == {"args": [], "kwargs": {"rows": 1}}
        entry = LogEntry.objects.get()
        assert entry.change_message == f"Run now: enqueued result {result.pk}"

    def test_unknown_schedule_or_action(self):
        assert (
            self.client.post(url("schedule_action"), action("nope", "run_now")).status_code == 404
        )
        response = self.client.post(url("schedule_action"), action("broken", "delete"))
        assert response.status_code == 400
        assert b"use one of disable, enable, run_now" in response.content

    def test_actions_are_post_only(self):
        assert self.client.get(url("schedule_action")).status_code == 405

    def test_post_without_csrf_token_is_rejected(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.superuser)
        response = client.post(url("schedule_action"), action("nightly-report", "run_now"))
        assert response.status_code == 403
        assert not DBTaskResult.objects.exists()
        page = client.get(url("schedules")).content.decode()
        token = search(r'name="csrfmiddlewaretoken" value="(\w+)"', page)[1]
        response = client.post(
            url("schedule_action"),
            {**action("nightly-report", "run_now"), "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302
        assert DBTaskResult.objects.count() == 1

    def test_overview_shows_schedules_whose_last_run_failed(self):
        scheduling.run_now(backend_name="default", name="broken")
        scheduling.run_now(backend_name="default", name="nightly-report")
        assert {run_next(), run_next()} == {ResultStatus.COMPLETE, ResultStatus.FAILED}
        page = self.client.get(url("overview")).content.decode()
        section = search(
            r'<section class="module dt-module dt-failed-schedules">.*?</section>',
            page,
            flags=re.DOTALL,
        ).group(0)
        assert ">broken</a>" in section
        assert "nightly-report" not in section

    def test_overview_without_failed_schedules_has_no_such_section(self):
        page = self.client.get(url("overview")).content.decode()
        assert "dt-failed-schedules" not in page
