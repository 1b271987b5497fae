"""The Queues page: counts, activity, pause/resume (POST, CSRF, permission, LogEntry), badges."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any, cast

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBQueue
from django_tasks.task import ResultStatus

from .utils import (
    DB_TASKS,
    VIEW,
    XSS,
    DashboardTestCase,
    make_complete,
    make_failed,
    make_row,
    run_attempt,
    search,
    staff,
    url,
)

QUEUES = "django_tasks_admin.pause_queues"
PLAN_ROWS = 100_000

QUEUE_TASKS: dict[str, Any] = {
    **DB_TASKS,
    "default": {
        **cast(dict[str, Any], DB_TASKS["default"]),
        "QUEUES": ["default", "emails", "queue-1", XSS],
    },
}


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def action(queue: str, what: str, backend: str = "default") -> dict[str, str]:
    return {"backend": backend, "queue": queue, "action": what}


def queue_row(page: str, queue: str, backend: str = "default") -> str:
    pattern = rf'<tr class="dt-queue[^"]*" data-queue="{re.escape(queue)}" data-backend="{backend}".*?</tr>'
    return search(pattern, page, flags=re.DOTALL).group(0)


@override_settings(TASKS=QUEUE_TASKS)
class QueuesPageTests(DashboardTestCase):
    def test_the_tab_is_on_every_page(self):
        for page in ["overview", "changelist", "workers", "schedules", "queues"]:
            content = self.client.get(url(page)).content.decode()
            assert f'href="{url("queues")}"' in content, page
        content = self.client.get(url("queues")).content.decode()
        assert f'<a href="{url("queues")}" aria-current="page">Queues</a>' in content

    def test_counts_latency_and_activity_per_queue(self):
        now = timezone.now()
        old = make_row(queue_name="emails")
        old.enqueued_at = now - timedelta(minutes=42)
        old.save(update_fields=["enqueued_at"])
        make_row(queue_name="emails")
        make_row(queue_name="emails", run_after=now + timedelta(hours=2))
        make_row(queue_name="emails", status=ResultStatus.RUNNING, started_at=now)
        for _ in range(3):
            run_attempt(make_row(queue_name="queue-1", task_path="tests.tasks.noop_task").id)
        failing = make_row(queue_name="queue-1", task_path="tests.tasks.failing_task_value_error")
        run_attempt(failing.id)

        page = self.client.get(url("queues")).content.decode()
        emails = queue_row(page, "emails")
        assert re.search(r'dt-queue-waiting">2<', emails)
        assert re.search(r'dt-queue-deferred">1<', emails)
        assert re.search(r'dt-queue-running">1<', emails)
        assert "42 min" in search(r'dt-queue-latency">(.*?)</td>', emails)[1]
        default = queue_row(page, "queue-1")
        assert re.search(r'dt-queue-waiting">0<', default)
        assert "3 / " in search(r'dt-queue-1h">(.*?)</td>', default)[1]
        assert '<span class="dt-count-failed">1</span>' in default
        assert "25 %" in default  # 1 of 4 failed
        assert re.search(r'dt-queue-run-time">[\d.]+ s / [\d.]+ s<', default)
        # Configured, no rows: listed with zeros.
        assert re.search(r'dt-queue-waiting">0<', queue_row(page, "default", backend="other"))

    def test_names_are_escaped(self):
        make_row(queue_name=XSS)
        services.pause_queue(backend_name="default", queue_name=XSS, by=XSS)
        page = self.client.get(url("queues")).content.decode()
        assert XSS not in page
        assert "&lt;script&gt;" in page

    def test_htmx_poll_is_the_region_alone(self):
        response = self.htmx(url("queues"), "dt-queues")
        content = response.content.decode()
        assert "<html" not in content
        assert content.lstrip().startswith('<section id="dt-queues"')
        assert "every 3s" in content

    def test_query_count_does_not_grow_with_queues_or_rows(self):
        def count() -> int:
            self.client.get(url("queues"))  # warm caches (content types, permissions)
            with CaptureQueriesContext(connection) as queries:
                assert self.client.get(url("queues")).status_code == 200
            return len(queries.captured_queries)

        make_row(queue_name="emails")
        few = count()
        for i in range(30):
            make_row(queue_name=f"q{i % 10}")
            make_complete(queue_name=f"q{i % 10}")
        services.pause_queue(backend_name="default", queue_name="emails")
        assert count() == few
        # Session, user, DBQueue rows, queue names, counts; per backend, the roll-up's
        # position, its sums, its last hour's run times and the tail.
        assert few <= 13, few


@override_settings(TASKS=QUEUE_TASKS)
class PauseResumeTests(DashboardTestCase):
    def test_pause_then_resume_are_stored_logged_and_shown(self):
        response = self.client.post(url("queue_action"), action("emails", "pause"))
        assert response.status_code == 302
        assert response["Location"] == url("queues")
        assert services.paused_queues("default") == frozenset({"emails"})
        assert "Paused queue emails" in messages_of(response)[0]
        entry = LogEntry.objects.get()
        row = DBQueue.objects.get(backend_name="default", name="emails")
        assert (entry.action_flag, entry.change_message) == (CHANGE, "Paused")
        assert entry.object_id == str(row.pk)
        assert entry.content_type == ContentType.objects.get_for_model(DBQueue)
        assert row.changed_by == "admin"

        page = self.client.get(url("queues")).content.decode()
        emails = queue_row(page, "emails")
        assert 'data-paused="yes"' in emails
        assert '<span class="dt-paused"' in emails
        assert 'name="action" value="resume"' in emails
        assert "paused by admin" in emails

        response = self.client.post(url("queue_action"), action("emails", "resume"))
        assert response.status_code == 302
        assert services.paused_queues("default") == frozenset()
        assert [e.change_message for e in LogEntry.objects.order_by("pk")] == ["Paused", "Resumed"]
        emails = queue_row(self.client.get(url("queues")).content.decode(), "emails")
        assert 'data-paused="no"' in emails
        assert 'name="action" value="pause"' in emails

    def test_an_action_that_changes_nothing_is_not_logged(self):
        response = self.client.post(url("queue_action"), action("emails", "resume"))
        assert response.status_code == 302
        assert messages_of(response) == ["Queue emails was already so."]
        assert not LogEntry.objects.exists()

    def test_unknown_queue_backend_or_action_is_a_400_naming_the_allowed(self):
        response = self.client.post(url("queue_action"), action("nope", "pause"))
        assert response.status_code == 400
        assert "Backend 'default' has no queue 'nope'" in response.content.decode()
        assert "'default', 'emails', 'queue-1'" in response.content.decode()
        response = self.client.post(url("queue_action"), action("emails", "pause", "immediate"))
        assert response.status_code == 400
        assert "database backends: 'default', 'other'" in response.content.decode()
        response = self.client.post(url("queue_action"), action("emails", "drain"))
        assert response.status_code == 400
        assert "use one of pause, resume" in response.content.decode()
        assert not DBQueue.objects.exists()

    def test_without_the_permission_no_buttons_and_post_is_403(self):
        self.client.force_login(self.viewer)
        page = self.client.get(url("queues")).content.decode()
        assert 'data-queue="emails"' in page
        assert url("queue_action") not in page
        assert 'value="pause"' not in page
        response = self.client.post(url("queue_action"), action("emails", "pause"))
        assert response.status_code == 403
        assert not DBQueue.objects.exists()

    def test_the_permission_without_view_is_not_enough(self):
        self.client.force_login(staff("pauser-only", QUEUES))
        assert self.client.get(url("queues")).status_code == 403
        response = self.client.post(url("queue_action"), action("emails", "pause"))
        assert response.status_code == 403
        assert not DBQueue.objects.exists()

    def test_the_permission_with_view_is_enough_to_act(self):
        self.client.force_login(staff("operator", VIEW, QUEUES))
        assert 'value="pause"' in self.client.get(url("queues")).content.decode()
        response = self.client.post(url("queue_action"), action("emails", "pause"))
        assert response.status_code == 302
        assert DBQueue.objects.get(name="emails").changed_by == "operator"

    def test_actions_are_post_only(self):
        assert self.client.get(url("queue_action")).status_code == 405

    def test_post_without_csrf_token_is_rejected(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.superuser)
        response = client.post(url("queue_action"), action("emails", "pause"))
        assert response.status_code == 403
        assert not DBQueue.objects.exists()
        page = client.get(url("queues")).content.decode()
        token = search(r'name="csrfmiddlewaretoken" value="(\w+)"', page)[1]
        response = client.post(
            url("queue_action"), {**action("emails", "pause"), "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 302
        assert services.paused_queues("default") == frozenset({"emails"})


@override_settings(TASKS=QUEUE_TASKS)
class PausedBadgeTests(DashboardTestCase):
    def test_results_list_marks_rows_of_paused_queues_with_one_query(self):
        for i in range(20):
            make_row(queue_name="emails" if i % 2 else "default")
        make_row(queue_name="emails", backend_name="other")
        services.pause_queue(backend_name="default", queue_name="emails")
        self.client.get(url("changelist"))  # warm caches
        with CaptureQueriesContext(connection) as queries:
            page = self.client.get(url("changelist")).content.decode()
        assert len([q for q in queries.captured_queries if "dbqueue" in q["sql"]]) == 1
        cells = re.findall(r"<td[^>]*>(emails|default)(.*?)</td>", page)
        badges = [name for name, rest in cells if 'class="dt-paused"' in rest]
        # Ten rows of default's emails queue; "other"'s emails queue runs.
        assert badges == ["emails"] * 10
        assert len(cells) == 21

    def test_result_detail_marks_a_paused_queue(self):
        row = make_row(queue_name="emails")
        assert 'class="dt-paused"' not in self.client.get(url("change", row.pk)).content.decode()
        services.pause_queue(backend_name="default", queue_name="emails")
        page = self.client.get(url("change", row.pk)).content.decode()
        queue = search(r"<th>Queue</th><td>(.*?)</td>", page)[1]
        assert queue.startswith("emails")
        assert 'class="dt-paused"' in queue
        other = make_failed(queue_name="default")
        assert 'class="dt-paused"' not in self.client.get(url("change", other.pk)).content.decode()

    def test_workers_page_marks_a_paused_queue_of_a_worker(self):
        services.register_worker(
            worker_id=uuid.uuid4(), backend_name="default", queue_names=["emails", XSS], threads=1
        )
        services.register_worker(
            worker_id=uuid.uuid4(), backend_name="other", queue_names=["emails"], threads=1
        )
        services.pause_queue(backend_name="default", queue_name="emails")
        page = self.client.get(url("workers")).content.decode()
        cells = re.findall(r'<td class="dt-worker-queues">(.*?)</td>', page)
        paused = ' <span class="dt-paused" title="Workers claim nothing from this queue until it is resumed">paused</span>'
        assert sorted(cells) == sorted(
            [f"emails{paused}, &lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;", "emails"]
        )

    def test_worker_claims_skip_what_the_page_paused(self):
        row = make_row(queue_name="emails")
        self.client.post(url("queue_action"), action("emails", "pause"))
        claimed = services.claim_tasks(
            backend_name="default",
            queue_names=None,
            worker_id=uuid.uuid4(),
            limit=10,
        )
        assert claimed == []
        row.refresh_from_db()
        assert row.status == ResultStatus.NEW
