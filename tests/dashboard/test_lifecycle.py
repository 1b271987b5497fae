"""The task lifecycle in the dashboard: attempts, retries, time limits, cancelling.

Rows are built as production builds them: enqueued through the task API, claimed
with ``services.claim_tasks`` and run with ``services.run_task``, whose retry path
writes the attempts.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape, strip_tags

from django_tasks import TimeLimitExceeded
from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin.formatting import absolute_time, exact_duration

from . import tasks as lifecycle_tasks
from .utils import (
    XSS,
    DashboardTestCase,
    claim,
    make_complete,
    run_attempt,
    search,
    url,
)

TIME_LIMIT = "django_tasks.lifecycle.TimeLimitExceeded"


def text(html: str) -> str:
    """The page's text, as a reader sees it (tags dropped, spaces collapsed)."""
    return re.sub(r"\s+", " ", strip_tags(html))


def waiting_to_retry(order_id: int = 7, message: str = "payment gateway unavailable") -> Any:
    """A charge_card result whose first attempt failed: NEW again, next attempt in 1 h 59 m."""
    result = lifecycle_tasks.charge_card.enqueue(order_id, message=message)
    row = run_attempt(result.id)
    assert row.status == ResultStatus.NEW
    assert len(row.attempts) == 1
    return row


def list_row(content: str, pk: Any) -> str:
    return search(rf'<tr [^>]*id="dt-row-{pk}"[^>]*>.*?</tr>', content, re.S)[0]


class AttemptLineTests(DashboardTestCase):
    def detail(self, pk: Any) -> str:
        response = self.client.get(url("change", pk))
        assert response.status_code == 200
        return response.content.decode()

    def test_waiting_to_retry_shows_attempt_2_of_3_and_the_exact_next_attempt(self):
        row = waiting_to_retry()
        content = self.detail(row.pk)
        head = text(search(r'<div class="dt-result-head">.*?</div>', content, re.S)[0])
        assert "attempt 2 of 3 (waiting to retry)" in head
        # Exact, not rounded to "in 1 hour" (the backoff is 1 h 59 m).
        assert f"next attempt in 1 h 59 m at {absolute_time(row.run_after)}" in head
        assert "1 run" in text(content)

    def test_history_shows_each_attempts_error_times_and_worker(self):
        with TemporaryDirectory() as tmp:
            counter = str(Path(tmp) / "counter")
            result = lifecycle_tasks.count_failures.enqueue(counter)
            workers = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4()]
            for worker_id in workers:
                row = run_attempt(result.id, worker_id)
        assert row.status == ResultStatus.FAILED
        assert len(row.attempts) == 2
        response = self.client.get(url("change", row.pk))
        content = response.content.decode()
        assert "attempt 3 of 3 (failed: no attempts left)" in text(content)
        assert "3 runs" in text(content)
        # The final failure, then the earlier attempts, newest first.
        assert 'ValueError</code>: <span class="dt-exc-message">failure #3' in content
        history = search(r'<ol class="dt-attempts">.*?</ol>', content, re.S)[0]
        items = re.findall(r"<li>.*?</li>", history, re.S)
        assert len(items) == 2
        for item, number, worker_id in zip(items, (2, 1), (workers[1], workers[0]), strict=True):
            assert f"<strong>#{number}</strong>" in item
            assert "builtins.ValueError" in item
            assert f"failure #{number}" in item
            assert f"<code>{worker_id}</code>" in item
            assert "test_lifecycle" not in item  # the frames are the task's, not this test's
            assert "tests/dashboard/tasks.py" in item  # its traceback
        attempts = response.context["attempts"]
        for shown, stored in zip(attempts, reversed(row.attempt_history), strict=True):
            assert shown["started_at"] == stored.started_at is not None
            assert shown["finished_at"] == stored.finished_at is not None
            assert absolute_time(stored.started_at) in content
            assert absolute_time(stored.finished_at) in content

    def test_never_run_task_says_not_started_yet(self):
        result = lifecycle_tasks.charge_card.enqueue(1)
        content = self.detail(result.id)
        assert "attempt 1 of 3 (not started yet)" in text(content)
        runs = search(r"<th>Runs</th><td[^>]*>([^<]*)</td>", content)[1]
        assert runs == "0 runs: not started yet"
        assert "<th>Attempts</th>" not in content
        assert "Earlier attempts" not in content
        assert "next attempt" not in content

    def test_running_attempt(self):
        row = waiting_to_retry()
        DBTaskResult.objects.filter(pk=row.pk).update(run_after=timezone.now())  # time passes
        claimed = claim(row.pk, uuid.uuid4())
        assert "attempt 2 of 3 (running)" in text(self.detail(claimed.pk))

    def test_due_again_attempt(self):
        row = waiting_to_retry()
        DBTaskResult.objects.filter(pk=row.pk).update(run_after=timezone.now())  # time passes
        content = text(self.detail(row.pk))
        assert "attempt 2 of 3 (due again: waiting for a worker)" in content
        assert "next attempt" not in content

    def test_success_after_a_retry(self):
        result = lifecycle_tasks.succeed.using(max_attempts=2).enqueue()
        row = run_attempt(result.id)
        assert row.status == ResultStatus.COMPLETE
        assert "attempt 1 of 2 (succeeded)" in text(self.detail(row.pk))

    def test_manual_retries_beyond_max_attempts_say_so(self):
        result = lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(3)
        row = run_attempt(result.id)
        assert row.status == ResultStatus.FAILED
        assert "attempt 1 of 1 (failed: no attempts left)" in text(self.detail(row.pk))
        self.client.post(url("retry", row.pk))
        content = text(self.detail(row.pk))
        assert "of 1" not in content
        assert (
            "attempt 2, beyond its 1 allowed attempt (run again by hand or after a lost worker)"
            in content
        )
        row = run_attempt(row.pk)
        self.client.post(url("retry", row.pk))
        content = text(self.detail(row.pk))
        assert "attempt 3, beyond its 1 allowed attempt" in content
        assert "2 runs" in content

    def test_first_enqueue_time_survives_a_manual_retry(self):
        result = lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(4)
        first = timezone.now() - timedelta(days=2)
        DBTaskResult.objects.filter(pk=result.id).update(enqueued_at=first)
        row = run_attempt(result.id)
        self.client.post(url("retry", row.pk))  # resets enqueued_at
        row.refresh_from_db()
        assert row.enqueued_at > first
        content = self.detail(row.pk)
        first_row = search(r"<th>First enqueued</th><td[^>]*>(.*?)</td>", content, re.S)[1]
        assert absolute_time(first) in first_row
        assert "2 d ago" in first_row
        assert "<th>Enqueued again</th>" in content

    def test_no_first_enqueue_row_while_the_enqueue_time_is_the_first(self):
        result = lifecycle_tasks.charge_card.enqueue(5)
        content = self.detail(result.id)
        assert "First enqueued" not in content
        assert "<th>Enqueued</th>" in content
        # An automatic retry keeps enqueued_at: one row says it.
        row = run_attempt(result.id)
        assert row.attempt_history[0].enqueued_at == row.enqueued_at
        content = self.detail(row.pk)
        assert "First enqueued" not in content
        assert "<th>Enqueued</th>" in content

    def test_lifecycle_settings(self):
        result = lifecycle_tasks.charge_card.using(
            max_attempts=5, time_limit=90, unique_key="order-7"
        ).enqueue(7)
        content = self.detail(result.id)
        assert search(r"<th>Max attempts</th><td[^>]*>(\d+)</td>", content)[1] == "5"
        assert search(r"<th>Time limit</th><td[^>]*>([^<]*)</td>", content)[1] == "1 min 30 s"
        assert search(r"<th>Unique key</th><td><code[^>]*>([^<]*)</code>", content)[1] == "order-7"

        plain = lifecycle_tasks.succeed.enqueue()
        content = self.detail(plain.id)
        assert search(r"<th>Max attempts</th><td[^>]*>(\d+)</td>", content)[1] == "1"
        assert "Time limit" not in content
        assert "Unique key" not in content

    def test_cancel_button_on_a_waiting_to_retry_result(self):
        row = waiting_to_retry()
        content = self.detail(row.pk)
        assert "dt-cancel" in search(r'<div class="dt-result-head">.*?</div>', content, re.S)[0]
        response = self.client.post(url("cancel", row.pk))
        assert response.status_code == 302
        row.refresh_from_db()
        assert row.status == ResultStatus.FAILED
        assert services.is_cancelled(row)
        content = self.detail(row.pk)
        assert "attempt 2 of 3 (cancelled before it ran)" in text(content)
        assert "1 run" in text(content)
        assert "button dt-cancel" not in content

    def test_no_cancel_button_without_the_permission(self):
        row = waiting_to_retry()
        self.client.force_login(self.viewer)
        content = self.detail(row.pk)
        assert "attempt 2 of 3" in text(content)
        assert "button dt-cancel" not in content


class TimeLimitTests(DashboardTestCase):
    def fail_with_time_limit(self, task: Any, *args: Any, settings: bool = False) -> DBTaskResult:
        """End a claimed attempt as the worker does when the time limit passes."""
        result = task.enqueue(*args)
        worker_id = uuid.uuid4()
        row = claim(result.id, worker_id)
        kwargs: dict[str, Any] = {"worker_id": worker_id}
        if settings:  # the task's own lifecycle settings: retry if attempts are left
            kwargs["settings"] = services.TaskCache().resolve(row)[2]
        services.fail_task(row, TimeLimitExceeded("ran longer than 30 s"), **kwargs)
        return DBTaskResult.objects.get(pk=result.id)

    def test_time_limit_failure_is_labelled_on_the_detail_page(self):
        row = self.fail_with_time_limit(lifecycle_tasks.charge_card.using(time_limit=30), 1)
        assert row.status == ResultStatus.FAILED
        content = self.client.get(url("change", row.pk)).content.decode()
        line = search(r'<p class="dt-exc-line">.*?</p>', content, re.S)[0]
        assert 'class="dt-label dt-label-time-limit"' in line
        assert ">time limit</span>" in line
        assert "(30 s)" in line  # the row's limit, in the label's title
        assert TIME_LIMIT in line
        assert "ran longer than 30 s" in line

    def test_time_limit_attempt_is_labelled_in_the_history(self):
        task = lifecycle_tasks.charge_card.using(time_limit=30)
        row = self.fail_with_time_limit(task, 2, settings=True)
        assert row.status == ResultStatus.NEW  # retried: attempts were left
        content = self.client.get(url("change", row.pk)).content.decode()
        summary = search(r'<ol class="dt-attempts">.*?</summary>', content, re.S)[0]
        assert ">time limit</span>" in summary
        assert TIME_LIMIT in summary

    def test_other_failures_are_not_labelled(self):
        result = lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(3)
        row = run_attempt(result.id)
        content = self.client.get(url("change", row.pk)).content.decode()
        assert "dt-label-time-limit" not in content
        assert "dt-label-time-limit" not in self.client.get(url("changelist")).content.decode()

    def test_time_limit_failure_is_labelled_in_the_overviews_recent_failures(self):
        row = self.fail_with_time_limit(lifecycle_tasks.charge_card.using(time_limit=30), 1)
        other = run_attempt(lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(2).id)
        content = self.client.get(url("overview")).content.decode()

        def failure(pk: Any) -> str:
            return search(rf"<tr>\s*<td><a href=\"[^\"]*{pk}/\".*?</tr>", content, re.S)[0]

        assert ">time limit</span>" in failure(row.pk)
        assert ">TimeLimitExceeded</code>" in failure(row.pk)
        assert "time limit" not in failure(other.pk)

    def test_time_limit_failure_is_labelled_in_the_list(self):
        row = self.fail_with_time_limit(lifecycle_tasks.charge_card.using(time_limit=30), 1)
        content = self.client.get(url("changelist")).content.decode()
        cell = search(r'<td class="dt-error">(.*?)</td>', list_row(content, row.pk), re.S)[1]
        assert ">time limit</span>" in cell
        assert f'<code class="dt-exc-class" title="{TIME_LIMIT}">TimeLimitExceeded</code>' in cell


class ListTests(DashboardTestCase):
    def shown(self, query: str) -> set[Any]:
        response = self.client.get(url("changelist", query=query))
        assert response.status_code == 200
        return {str(row.pk) for row in response.context["table"].page.rows}

    def test_waiting_to_retry_filter(self):
        retrying = waiting_to_retry()
        new = lifecycle_tasks.charge_card.enqueue(2)
        failed = run_attempt(lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(3).id)
        complete = run_attempt(lifecycle_tasks.succeed.enqueue().id)
        # Retried by hand: NEW again with an earlier attempt, and due now.
        retried = run_attempt(lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(4).id)
        self.client.post(url("retry", retried.pk))
        assert self.shown("retrying=yes") == {str(retrying.pk), str(retried.pk)}
        assert self.shown("retrying=no") == {new.id, str(failed.pk), str(complete.pk)}
        assert self.shown("retrying=yes&queue=other") == set()
        assert self.shown("retrying=maybe") == set()  # not a choice: invalid, nothing shown

    def test_waiting_to_retry_filter_is_a_select_beside_status_and_cancelled(self):
        content = self.client.get(url("changelist", query="retrying=yes")).content.decode()
        names = re.findall(r'<div class="dt-filter dt-filter-(\w+)">', content)
        assert names.index("status") < names.index("cancelled") < names.index("retrying")
        assert names.index("retrying") == names.index("cancelled") + 1
        select = search(r'<select name="retrying".*?</select>', content, re.S)[0]
        assert '<option value="yes" selected>waiting to retry only</option>' in select

    def test_cancel_all_matching_waiting_to_retry(self):
        retrying = waiting_to_retry()
        new = lifecycle_tasks.charge_card.enqueue(2)
        preview = self.client.get(url("cancel_matching", query="retrying=yes"))
        assert preview.status_code == 200
        assert "Waiting to retry" in text(preview.content.decode())
        services.cancel([retrying.pk])
        assert self.shown("retrying=yes") == set()
        assert self.shown("cancelled=yes") == {str(retrying.pk)}
        assert new.id in self.shown("retrying=no")

    def test_error_column_names_the_failure_class(self):
        failed = run_attempt(lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(3).id)
        retrying = waiting_to_retry()
        complete = run_attempt(lifecycle_tasks.succeed.enqueue().id)
        new = lifecycle_tasks.charge_card.enqueue(1)
        content = self.client.get(url("changelist")).content.decode()
        assert search(r"<th [^>]*>\s*Error\s*</th>", content)

        def error_cell(pk: Any) -> str:
            return search(r'<td class="dt-error">(.*?)</td>', list_row(content, pk), re.S)[1]

        assert error_cell(failed.pk) == (
            '<a class="dt-exc-filter" href="?exception=builtins.ConnectionError">'
            '<code class="dt-exc-class" title="builtins.ConnectionError">ConnectionError</code></a>'
        )
        # Only finished failures: a result waiting to retry has no final error yet.
        assert error_cell(retrying.pk) == ""
        assert error_cell(complete.pk) == ""
        assert error_cell(new.id) == ""

    def test_error_column_of_a_cancelled_result(self):
        row = lifecycle_tasks.charge_card.enqueue(1)
        services.cancel([row.id])
        content = self.client.get(url("changelist")).content.decode()
        cell = search(r'<td class="dt-error">(.*?)</td>', list_row(content, row.id), re.S)[1]
        assert 'title="django_tasks.backends.database.services.TaskCancelled"' in cell
        assert ">TaskCancelled</code>" in cell

    def test_list_does_not_load_exception_data(self):
        run_attempt(lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(3).id)
        rows = self.client.get(url("changelist")).context["table"].page.rows
        assert rows[0].exc_type == "builtins.ConnectionError"
        assert {"exception_data", "attempts", "args_kwargs"} <= rows[0].get_deferred_fields()

    def test_exact_relative_times_in_the_list(self):
        later = lifecycle_tasks.succeed.using(
            run_after=timezone.now() + timedelta(hours=1, minutes=59)
        ).enqueue()
        content = self.client.get(url("changelist")).content.decode()
        assert "in 1 h 59 m" in list_row(content, later.id)
        assert "in 1\xa0hour" not in content


class EscapingTests(DashboardTestCase):
    def test_stored_messages_tracebacks_and_keys_are_escaped(self):
        task = lifecycle_tasks.charge_card.using(unique_key=XSS)
        result = task.enqueue(1, message=XSS)
        run_attempt(result.id)  # an earlier attempt with XSS in its message and traceback
        DBTaskResult.objects.filter(pk=result.id).update(run_after=timezone.now())
        run_attempt(result.id)
        DBTaskResult.objects.filter(pk=result.id).update(run_after=timezone.now())
        row = run_attempt(result.id)  # the final failure
        assert row.status == ResultStatus.FAILED
        assert len(row.attempts) == 2
        assert XSS in row.attempts[0]["message"]
        assert XSS in row.attempts[0]["traceback"]
        content = self.client.get(url("change", row.pk)).content.decode()
        assert XSS not in content
        assert "<script>" not in content
        escaped = escape(XSS)
        history = search(r'<ol class="dt-attempts">.*?</ol>', content, re.S)[0]
        assert history.count(f"order 1: {escaped}") >= 4  # summary, message and traceback, x2
        assert f'<code class="dt-unique-key">{escaped}</code>' in content
        assert f'<span class="dt-exc-message">order 1: {escaped}</span>' in content
        listing = self.client.get(url("changelist")).content.decode()
        assert "<script>" not in listing


class QueryCountTests(DashboardTestCase):
    """The lifecycle's columns and history cost no query per row or per attempt."""

    def count(self, path: str) -> int:
        self.client.get(path)  # warm caches (content types, permissions)
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get(path)
        assert response.status_code == 200
        return len(queries.captured_queries)

    def seed(self, n: int) -> None:
        for i in range(n):
            waiting_to_retry(order_id=i)
            run_attempt(lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(i).id)
            make_complete()

    def test_list_query_count_does_not_grow_with_failures_and_retries(self):
        pages = [
            url("changelist"),
            url("changelist", query="retrying=yes"),
            url("changelist", query="status=FAILED&sort=-finished"),
        ]
        self.seed(2)
        small = [self.count(p) for p in pages]
        self.seed(20)
        assert [self.count(p) for p in pages] == small
        assert max(small) <= 7, small

    def test_detail_query_count_does_not_grow_with_attempts(self):
        with TemporaryDirectory() as tmp:
            short = lifecycle_tasks.count_failures.using(max_attempts=2)
            two = short.enqueue(str(Path(tmp) / "a"))
            for _ in range(2):
                run_attempt(two.id)
            many = lifecycle_tasks.count_failures.using(max_attempts=8).enqueue(
                str(Path(tmp) / "b")
            )
            for _ in range(8):
                run_attempt(many.id)
        assert len(DBTaskResult.objects.get(pk=many.id).attempts) == 7
        assert self.count(url("change", two.id)) == self.count(url("change", many.id))


def test_exact_duration() -> None:
    assert exact_duration(timedelta(seconds=12.4)) == "12 s"
    assert exact_duration(timedelta(minutes=4, seconds=5)) == "4 m 5 s"
    # Rendered a moment after it was set, 1 h 59 m is still 1 h 59 m.
    assert exact_duration(timedelta(hours=1, minutes=58, seconds=59.9)) == "1 h 59 m"
    assert exact_duration(timedelta(hours=2)) == "2 h"
    assert exact_duration(timedelta(days=3, hours=4, minutes=10)) == "3 d 4 h"


class PollTests(DashboardTestCase):
    def test_a_poll_sees_an_attempt_that_failed_and_was_retried_in_between(self):
        result = lifecycle_tasks.charge_card.enqueue(9)
        run_attempt(result.id)
        page = self.client.get(url("change", result.id)).content.decode()
        poll = search(r'hx-get="([^"]+)"', search(r'<div id="dt-result"[^>]*>', page)[0])[1]
        assert self.htmx(poll, "dt-result").status_code == 204

        # Between two polls, the next attempt runs and fails: the row is NEW again.
        DBTaskResult.objects.filter(pk=result.id).update(run_after=timezone.now())  # time passes
        row = run_attempt(result.id)
        assert row.status == ResultStatus.NEW
        response = self.htmx(poll, "dt-result")
        assert response.status_code == 200
        assert "attempt 3 of 3 (waiting to retry)" in text(response.content.decode())
