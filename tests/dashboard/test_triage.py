"""Failure triage: the exception filter, failure groups on the overview, retry this group."""

from __future__ import annotations

import html
import re
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib.admin.models import LogEntry
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.services.queues import pause_queue
from django_tasks.task import ResultStatus
from django_tasks_admin.filters import ResultFilterSet
from django_tasks_admin.triage import (
    failure_groups,
    message_pattern,
    recent_exception_classes,
)
from tests import tasks as core_tasks

from . import tasks as lifecycle_tasks
from .test_plans import TABLE
from .utils import XSS, DashboardTestCase, run_attempt, search, url

CHARGE = "tests.dashboard.tasks.charge_card"
COUNT = "tests.dashboard.tasks.count_failures"
VALUE_ERROR_TASK = "tests.tasks.failing_task_value_error"


def charge(order_id: int, message: str = "payment gateway unavailable") -> DBTaskResult:
    """A charge_card result failed by its one attempt, as a db_worker fails it."""
    result = lifecycle_tasks.charge_card.using(max_attempts=1).enqueue(order_id, message=message)
    row = run_attempt(result.id)
    assert row.status == ResultStatus.FAILED
    return row


def value_error() -> DBTaskResult:
    row = run_attempt(core_tasks.failing_task_value_error.enqueue().id)
    assert row.status == ResultStatus.FAILED
    return row


def count_failure() -> DBTaskResult:
    """A count_failures result (ValueError) failed by its one attempt."""
    counter = Path(tempfile.mkdtemp()) / "counter"
    result = lifecycle_tasks.count_failures.using(max_attempts=1).enqueue(str(counter))
    row = run_attempt(result.id)
    assert row.status == ResultStatus.FAILED
    return row


def complete() -> DBTaskResult:
    row = run_attempt(core_tasks.calculate_meaning_of_life.enqueue().id)
    assert row.status == ResultStatus.COMPLETE
    return row


def age(row: DBTaskResult, **delta: float) -> DBTaskResult:
    """Move a finished row back in time (enqueued, started and finished)."""
    shift = timedelta(**delta)
    DBTaskResult.objects.filter(pk=row.pk).update(
        enqueued_at=row.enqueued_at - shift,
        started_at=row.started_at - shift if row.started_at else None,
        finished_at=row.finished_at - shift if row.finished_at else None,
    )
    return DBTaskResult.objects.get(pk=row.pk)


def html_text(response: Any) -> str:
    return str(response.content.decode())


def finish(row: DBTaskResult, finished_at: datetime) -> None:
    """Set when a failed row finished (and started, a second before)."""
    DBTaskResult.objects.filter(pk=row.pk).update(
        started_at=finished_at - timedelta(seconds=1), finished_at=finished_at
    )


class MessagePatternTests(DashboardTestCase):
    def test_variable_parts_become_placeholders(self):
        assert message_pattern("order 4711: payment gateway unavailable") == (
            "order <n>: payment gateway unavailable"
        )
        assert message_pattern(f"result {uuid.uuid4()} is gone") == "result <uuid> is gone"
        assert message_pattern("object at 0x7f3c9a1e00 freed") == "object at <hex> freed"
        assert message_pattern("order-7f3c9a1e refused") == "order-<hex> refused"
        assert message_pattern("user 'ada' and \"bob\" clash") == "user <str> and <str> clash"
        assert message_pattern("took 2.5 s, limit -1") == "took <n> s, limit <n>"
        assert message_pattern("  many\n  spaces\t") == "many spaces"

    def test_words_stay(self):
        # Hex-looking words without a digit are words: "facade", "deadbeef", "added".
        assert message_pattern("facade added deadbeef") == "facade added deadbeef"
        assert message_pattern("") == ""

    def test_same_pattern_for_messages_that_differ_only_in_variable_parts(self):
        a = message_pattern(f"order 12 for 'ada' ({uuid.uuid4()}) declined at 0xdeadbeef1")
        b = message_pattern(f"order 987 for 'grace' ({uuid.uuid4()}) declined at 0xfeed42")
        assert a == b
        assert a != message_pattern("order 12 for 'ada' was refunded")


class FailureGroupTests(DashboardTestCase):
    def test_groups_by_task_and_class_with_counts_first_and_last_seen(self):
        charges = [age(charge(i), minutes=10 * (3 - i)) for i in range(3)]  # charges[2] newest
        charges.append(charge(99, message="card expired"))
        errors = [value_error(), value_error()]
        complete()
        triage = failure_groups()
        assert not triage.capped and triage.rows == 6
        by_key = {(g.task_path, g.exc_type): g for g in triage.groups}
        assert set(by_key) == {
            (CHARGE, "builtins.ConnectionError"),
            (VALUE_ERROR_TASK, "builtins.ValueError"),
        }
        card = by_key[(CHARGE, "builtins.ConnectionError")]
        assert card.count == 4
        assert card.first_seen == charges[0].finished_at
        assert card.last_seen == charges[3].finished_at
        assert card.patterns == [
            ("order <n>: payment gateway unavailable", 3),
            ("order <n>: card expired", 1),
        ]
        assert card.pattern_count == 2 and card.exc_name == "ConnectionError"
        value = by_key[(VALUE_ERROR_TASK, "builtins.ValueError")]
        assert value.count == 2
        finished = sorted(r.finished_at for r in errors if r.finished_at)
        assert value.first_seen == finished[0] and value.last_seen == finished[-1]
        assert value.patterns == [("This task failed due to ValueError", 2)]

    def test_sorted_by_last_seen_or_by_count(self):
        for i in range(3):
            age(charge(i), hours=1)
        value_error()
        assert [g.task_path for g in failure_groups().groups] == [VALUE_ERROR_TASK, CHARGE]
        assert [g.task_path for g in failure_groups(sort="count").groups] == [
            CHARGE,
            VALUE_ERROR_TASK,
        ]

    def test_reads_only_the_window_and_says_how_far_it_reaches(self):
        now = timezone.now()
        age(charge(1), hours=25)  # outside the last 24 hours
        recent = [charge(i) for i in range(2, 5)]
        triage = failure_groups(now=now)
        assert triage.rows == 3 and triage.groups[0].count == 3 and not triage.capped
        # From the whole minute 24 hours ago, as the list's filter form can show it.
        assert triage.since == (now - timedelta(hours=24)).replace(second=0, microsecond=0)
        # Capped: only the newest ``limit`` failures are read, and grouped from the first
        # whole minute after the oldest one read (every failure since then was read).
        minute = now.replace(second=0, microsecond=0)
        for row, finished in zip(
            recent,
            [minute - timedelta(seconds=110), minute - timedelta(seconds=50), minute],
            strict=True,
        ):
            finish(row, finished)
        capped = failure_groups(limit=2, now=now)  # reads recent[2] and recent[1]
        assert capped.capped and capped.since == minute
        assert capped.rows == 1 and capped.groups[0].count == 1
        assert capped.groups[0].first_seen == capped.groups[0].last_seen == minute
        capped = failure_groups(limit=3, now=now)  # reads all three: not capped
        assert not capped.capped and capped.rows == 3
        # More than ``limit`` failures in one minute: from the oldest one read.
        finish(recent[0], minute + timedelta(seconds=1))
        finish(recent[1], minute + timedelta(seconds=2))
        busy = failure_groups(limit=2, now=now + timedelta(seconds=5))
        assert busy.capped and busy.rows == 2 and busy.since == minute + timedelta(seconds=1)

    def test_reads_in_one_query_without_tracebacks(self):
        for i in range(3):
            charge(i)
        value_error()
        with CaptureQueriesContext(connection) as queries:
            failure_groups()
        assert len(queries.captured_queries) == 1
        sql = queries.captured_queries[0]["sql"]
        assert "exc_traceback" not in sql
        # Only the arguments of the exception are read, not the whole exception_data.
        assert re.search(r"exc_args", sql)

    def test_recent_exception_classes(self):
        charge(1)
        value_error()
        complete()
        with CaptureQueriesContext(connection) as queries:
            classes = recent_exception_classes()
        assert classes == ["builtins.ConnectionError", "builtins.ValueError"]
        assert len(queries.captured_queries) == 1


class ExceptionFilterTests(DashboardTestCase):
    def shown(self, query: str) -> set[Any]:
        response = self.client.get(url("changelist", query=query))
        assert response.status_code == 200
        return {row.pk for row in response.context["table"].page.rows}

    def test_selects_failed_results_of_that_exact_class(self):
        charges = {charge(i).pk for i in range(2)}
        errors = {value_error().pk}
        complete()
        assert self.shown("exception=builtins.ConnectionError") == charges
        assert self.shown("exception=builtins.ValueError") == errors
        assert self.shown("exception=builtins.Connection") == set()  # the exact path
        # Not a class path: the form says what it takes.
        response = self.client.get(url("changelist", query="exception=ConnectionError"))
        assert list(response.context["table"].page.rows) == []
        assert "Enter the exception&#x27;s full class path (module, then class)" in html_text(
            response
        )
        assert self.shown("exception=builtins.ValueError&task=charge") == set()

    def test_the_error_column_links_to_the_failures_of_its_class(self):
        charges = {charge(i).pk for i in range(2)}
        value_error()
        content = self.client.get(url("changelist", query="status=FAILED")).content.decode()
        link = search(
            r'<a class="dt-exc-filter" href="(\?exception=builtins.ConnectionError)">'
            r'<code class="dt-exc-class" title="builtins.ConnectionError">ConnectionError</code>',
            content,
        )[1]
        assert self.shown(link.removeprefix("?")) == charges

    def test_implies_failed(self):
        failed = charge(1)
        # A retried row keeps its earlier failure in ``attempts``, but is NEW now.
        retried = charge(2)
        DBTaskResult.objects.filter(pk=retried.pk).update(status=ResultStatus.NEW)
        assert self.shown("exception=builtins.ConnectionError") == {failed.pk}

    def test_reads_only_the_newest_failures_and_says_so(self):
        rows = [age(charge(i), minutes=10 * (5 - i)) for i in range(5)]  # rows[4] newest
        value_error()  # the newest of all

        class Narrow(ResultFilterSet):
            exception_window = 3

        found = Narrow(
            data={"exception": "builtins.ConnectionError"}, queryset=DBTaskResult.objects.all()
        )
        assert {r.pk for r in found.qs} == {r.pk for r in rows[3:]}
        assert "matched among the 3 newest failed results" in found.search_scope
        narrower = Narrow(
            data={"exception": "builtins.ConnectionError", "task": "charge"},
            queryset=DBTaskResult.objects.all(),
        )
        assert {r.pk for r in narrower.qs} == {r.pk for r in rows[2:]}
        # Fewer failures than the window: all of them are read, and nothing is said.
        content = self.client.get(url("changelist", query="exception=builtins.ValueError"))
        assert "matched among" not in content.content.decode()

    def test_exact_task_path(self):
        echo = run_attempt(core_tasks.noop_task.enqueue().id)
        run_attempt(core_tasks.noop_task_async.enqueue().id)
        assert self.shown("task_path=tests.tasks.noop_task") == {echo.pk}
        assert len(self.shown("task=tests.tasks.noop_task")) == 2

    def test_form_suggests_the_classes_present(self):
        charge(1)
        value_error()
        content = self.client.get(url("changelist")).content.decode()
        datalist = search(r'<datalist id="dt-exception-classes">(.*?)</datalist>', content)[1]
        assert datalist == (
            '<option value="builtins.ConnectionError"><option value="builtins.ValueError">'
        )
        assert 'list="dt-exception-classes"' in content

    def test_suggestions_are_not_read_by_the_polls(self):
        charge(1)
        full = self.client.get(url("changelist"))
        with CaptureQueriesContext(connection) as queries:
            self.htmx(url("changelist"), "dt-results")
        assert full.status_code == 200
        sqls = [q["sql"] for q in queries.captured_queries]
        assert not any("LIMIT 1000" in sql for sql in sqls), sqls


class OverviewGroupTests(DashboardTestCase):
    def overview(self, query: str = "") -> str:
        response = self.client.get(url("overview", query=query))
        assert response.status_code == 200
        return response.content.decode()

    def group_rows(self, content: str) -> list[str]:
        return re.findall(r'<tr class="dt-triage-group">(.*?)</tr>', content, re.S)

    def test_overview_shows_groups_and_what_they_cover(self):
        for i in range(3):
            charge(i)
        value_error()
        content = self.overview()
        rows = self.group_rows(content)
        assert len(rows) == 2
        assert CHARGE in rows[1] and "ConnectionError" in rows[1]
        assert "order &lt;n&gt;: payment gateway unavailable" in rows[1]
        assert ">3</a>" in rows[1]
        assert "The 4 failures of the last 24 hours, grouped by task and exception class" in content
        by_count = self.group_rows(self.overview("groups=count"))
        assert CHARGE in by_count[0]

    def test_group_link_selects_exactly_the_groups_rows(self):
        group_rows = {charge(i).pk for i in range(3)}
        age(charge(7), hours=30)  # same task and class, outside the window
        value_error()  # another task
        assert (count_failure().exception_data or {})["exc_type"] == "builtins.ValueError"
        complete()
        content = self.overview()
        card = next(r for r in self.group_rows(content) if CHARGE in r)
        link = html.unescape(search(r'class="dt-triage-list" href="([^"]+)"', card)[1])
        response = self.client.get(link)
        assert {row.pk for row in response.context["table"].page.rows} == group_rows
        # The filter form shows the window's start, so submitting it again keeps it.
        since = QueryDict(link.partition("?")[2])["finished_after"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", since), since
        search(
            rf'<input type="datetime-local" name="finished_after" value="{since}"',
            html_text(response),
        )

    def test_retry_this_group_previews_then_retries_exactly_the_group(self):
        group_rows = {charge(i).pk for i in range(3)}
        old = age(charge(7), hours=30)
        other = value_error()
        content = self.overview()
        card = next(r for r in self.group_rows(content) if CHARGE in r)
        retry_link = html.unescape(
            search(r'class="button dt-triage-retry" href="([^"]+)"', card)[1]
        )
        assert retry_link.startswith(url("retry_matching") + "?")
        preview = self.client.get(retry_link)
        assert preview.status_code == 200
        assert "3 failed results match and would be retried." in preview.content.decode()
        # A user who may only view: no button, and the POST is refused.
        self.client.force_login(self.viewer)
        assert "dt-triage-retry" not in self.overview()
        assert self.client.post(retry_link).status_code == 403
        # A user who may retry.
        self.client.force_login(self.retrier)
        response = self.client.post(retry_link)
        assert response.status_code == 302
        statuses = dict(DBTaskResult.objects.values_list("pk", "status"))
        assert {pk for pk, s in statuses.items() if s == ResultStatus.NEW} == group_rows
        assert statuses[old.pk] == ResultStatus.FAILED
        assert statuses[other.pk] == ResultStatus.FAILED
        entry = LogEntry.objects.get(user=self.retrier)
        assert entry.change_message.startswith("Retried 3 task results matching ?")
        assert "exception=builtins.ConnectionError" in entry.change_message

    def test_retry_needs_csrf(self):
        charge(1)
        content = self.overview()
        link = html.unescape(search(r'class="button dt-triage-retry" href="([^"]+)"', content)[1])
        self.client.handler.enforce_csrf_checks = True
        try:
            assert self.client.post(link).status_code == 403
        finally:
            self.client.handler.enforce_csrf_checks = False
        assert DBTaskResult.objects.get().status == ResultStatus.FAILED

    def test_hostile_messages_are_escaped(self):
        charge(1, message=XSS)
        content = self.overview()
        assert XSS not in content
        assert "<script>alert" not in content
        rows = self.group_rows(content)
        assert "&lt;script&gt;alert(&lt;str&gt;)&lt;/script&gt;" in rows[0]

    def test_query_count_does_not_grow_with_groups(self):
        charge(1)
        value_error()
        with CaptureQueriesContext(connection) as few:
            self.overview()
        for i in range(5):
            charge(i)
        count_failure()
        run_attempt(core_tasks.failing_task_async.enqueue().id)
        with CaptureQueriesContext(connection) as more:
            content = self.overview()
        assert len(self.group_rows(content)) == 4
        assert len(more.captured_queries) == len(few.captured_queries)

    def test_live_region_polls_do_not_read_the_groups(self):
        charge(1)
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get(url("overview"), HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert "dt-triage" not in response.content.decode()
        assert not any("exc_args" in q["sql"] for q in queries.captured_queries)

    def triage_poll(self, content: str) -> str:
        return html.unescape(search(r'id="dt-triage" hx-get="([^"]+)"', content)[1])

    def test_the_groups_poll_answers_204_with_one_query_until_they_change(self):
        charge(1)
        poll = self.triage_poll(self.overview())
        self.htmx(poll, "dt-triage")  # warm (session, user, permissions)
        with CaptureQueriesContext(connection) as queries:
            response = self.htmx(poll, "dt-triage")
        assert response.status_code == 204
        ours = [q for q in queries.captured_queries if TABLE in q["sql"]]
        assert len(ours) == 1, ours
        # A new failure: the poll answers the groups' region, and it shows it.
        value_error()
        response = self.htmx(poll, "dt-triage")
        assert response.status_code == 200
        content = response.content.decode()
        assert "<html" not in content and content.lstrip().startswith("<section")
        assert len(self.group_rows(content)) == 2
        # Its own poll URL holds the new fingerprint: 204 again.
        assert self.htmx(self.triage_poll(content), "dt-triage").status_code == 204

    def test_the_groups_poll_follows_a_retry(self):
        failed = charge(1)
        value_error()
        poll = self.triage_poll(self.overview())
        assert self.htmx(poll, "dt-triage").status_code == 204
        self.client.post(url("retry_matching", query="exception=builtins.ConnectionError"))
        assert DBTaskResult.objects.get(pk=failed.pk).status == ResultStatus.NEW
        response = self.htmx(poll, "dt-triage")
        assert response.status_code == 200
        assert len(self.group_rows(response.content.decode())) == 1

    def test_the_groups_poll_keeps_the_sort(self):
        charge(1)
        content = self.overview("groups=count")
        assert "groups=count" in self.triage_poll(content)

    def test_no_failures(self):
        complete()
        assert "No failures in this window." in self.overview()


class OverviewPausedQueueTests(DashboardTestCase):
    def test_the_overview_marks_a_paused_queue(self):
        charge(1)
        value_error()
        row = re.compile(r'<td><a href="[^"]*queue=default[^"]*">default</a>(.*?)</td>', re.S)
        content = self.client.get(url("overview")).content.decode()
        assert "dt-paused" not in search(row.pattern, content, re.S)[1]
        assert pause_queue(backend_name="default", queue_name="default")
        content = self.client.get(url("overview")).content.decode()
        assert ">paused</span>" in search(row.pattern, content, re.S)[1]
