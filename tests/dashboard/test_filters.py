"""Every filter of the results list, through the query string."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks import django_api
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin.filters import ResultFilterSet, task_paths
from django_tasks_admin.list_state import ResultListState

from .utils import DashboardTestCase, make_complete, make_failed, make_row, search, url


class FilterTests(DashboardTestCase):
    def shown(self, query: str) -> set[Any]:
        response = self.client.get(url("changelist", query=query))
        assert response.status_code == 200
        return {row.pk for row in response.context["table"].page.rows}

    def test_status(self):
        failed = make_failed()
        make_complete()
        assert self.shown("status=FAILED") == {failed.pk}

    def test_queues_comma_separated(self):
        a = make_row(queue_name="a")
        b = make_row(queue_name="b")
        make_row(queue_name="c")
        assert self.shown("queue=a,b") == {a.pk, b.pk}
        assert self.shown("queue=a") == {a.pk}

    def test_task_path(self):
        echo = make_row(task_path="tests.tasks.echo")
        make_row(task_path="tests.tasks.noop_task")
        assert self.shown("task=ECHO") == {echo.pk}

    def test_task_path_is_matched_against_the_distinct_paths_then_selected_by_equality(self):
        sends = [make_row(task_path="shop.tasks.send_email") for _ in range(3)]
        make_row(task_path="shop.tasks.refund")
        with CaptureQueriesContext(connection) as queries:
            rows = ResultFilterSet(data={"task": "EMAIL"}, queryset=DBTaskResult.objects.all()).qs
            assert {r.pk for r in rows} == {r.pk for r in sends}
        # One query for the distinct paths (a few index probes each), one for the rows.
        assert len(queries.captured_queries) == 2
        assert "IN" in queries.captured_queries[1]["sql"]
        assert task_paths("default") == ["shop.tasks.refund", "shop.tasks.send_email"]

    def test_a_task_path_that_matches_nothing_reads_no_rows(self):
        make_row(task_path="shop.tasks.refund")
        with CaptureQueriesContext(connection) as queries:
            rows = list(
                ResultFilterSet(data={"task": "no.such"}, queryset=DBTaskResult.objects.all()).qs
            )
        assert rows == []
        assert len(queries.captured_queries) == 1  # the distinct paths only
        assert self.shown("task=no.such") == set()

    def test_backend(self):
        other = make_row(backend_name="other")
        make_row()
        assert self.shown("backend=other") == {other.pk}
        # Only configured DatabaseBackend aliases are choices: anything else is invalid.
        assert self.shown("backend=immediate") == set()

    def test_api(self):
        ours = make_row()
        theirs = make_row(api=django_api.DJANGO)
        assert self.shown("api=django.tasks") == {theirs.pk}
        assert self.shown("api=django_tasks") == {ours.pk}
        assert self.shown("") == {ours.pk, theirs.pk}
        # Only the two APIs are choices: anything else is invalid and shows nothing.
        assert self.shown("api=celery") == set()

    def test_api_filter_is_a_select_of_both_apis(self):
        content = self.client.get(url("changelist", query="api=django.tasks")).content.decode()
        select = search(r'<select name="api"[^>]*>.*?</select>', content, re.S)[0]
        assert '<option value="django.tasks" selected>django.tasks</option>' in select
        assert '<option value="django_tasks">django_tasks</option>' in select

    def test_priority_range(self):
        low = make_row(priority=-10)
        mid = make_row(priority=5)
        high = make_row(priority=50)
        assert self.shown("priority_min=0&priority_max=10") == {mid.pk}
        assert self.shown("priority_min=1") == {mid.pk, high.pk}
        assert self.shown("priority_max=0") == {low.pk}

    def test_enqueued_and_finished_ranges(self):
        now = timezone.now()
        old = make_complete(finished_at=now - timedelta(days=3))
        from django_tasks.backends.database.models import DBTaskResult

        DBTaskResult.objects.filter(pk=old.pk).update(enqueued_at=now - timedelta(days=3))
        new = make_complete()
        day_ago = (timezone.localtime(now) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        assert self.shown(f"enqueued_after={day_ago}") == {new.pk}
        assert self.shown(f"enqueued_before={day_ago}") == {old.pk}
        assert self.shown(f"finished_before={day_ago}") == {old.pk}
        assert self.shown(f"finished_after={day_ago}") == {new.pk}

    def test_result_id(self):
        row = make_row()
        make_row()
        assert self.shown(f"id={row.pk}") == {row.pk}

    def test_search_matches_task_path_and_arguments(self):
        by_path = make_row(task_path="tests.tasks.send_invoice")
        by_args = make_row(args_kwargs={"args": ["customer-4711"], "kwargs": {}})
        by_kwargs = make_row(args_kwargs={"args": [], "kwargs": {"email": "Ada@example.com"}})
        make_row()
        assert self.shown("q=invoice") == {by_path.pk}
        assert self.shown("q=4711") == {by_args.pk}
        assert self.shown("q=ada@EXAMPLE") == {by_kwargs.pk}

    def test_search_reads_only_the_newest_rows_of_the_other_filters_and_says_so(self):
        now = timezone.now()
        rows = [
            make_row(args_kwargs={"args": [f"order-{i}"], "kwargs": {}}, queue_name="q")
            for i in range(5)
        ]
        for age, row in enumerate(reversed(rows)):  # rows[4] is the newest
            DBTaskResult.objects.filter(pk=row.pk).update(enqueued_at=now - timedelta(hours=age))
        make_row(args_kwargs={"args": ["order-x"], "kwargs": {}}, queue_name="other")

        class Narrow(ResultFilterSet):
            search_window = 3

        everything = DBTaskResult.objects.all()
        found = Narrow(data={"q": "order", "queue": "q"}, queryset=everything)
        assert {r.pk for r in found.qs} == {r.pk for r in rows[2:]}
        assert "Searched the 3 newest results that match the other filters" in found.search_scope
        # Fewer matching rows than the window: all are searched, and nothing is said.
        narrower = Narrow(data={"q": "order", "queue": "other"}, queryset=everything)
        assert len(narrower.qs) == 1 and narrower.search_scope == ""
        # The page says what the search read.
        content = self.client.get(url("changelist", query="q=order")).content.decode()
        assert "Searched the" not in content  # 6 rows: fewer than SEARCH_WINDOW

    def test_priority_reads_only_the_newest_rows_of_the_other_filters_and_says_so(self):
        now = timezone.now()
        rows = [make_row(priority=10, queue_name="q") for _ in range(5)]
        for age, row in enumerate(reversed(rows)):  # rows[4] is the newest
            DBTaskResult.objects.filter(pk=row.pk).update(enqueued_at=now - timedelta(hours=age))
        make_row(priority=-5, queue_name="q")  # the newest: takes a place in the window

        class Narrow(ResultFilterSet):
            priority_window = 3

        everything = DBTaskResult.objects.all()
        found = Narrow(data={"priority_min": "1", "queue": "q"}, queryset=everything)
        assert {r.pk for r in found.qs} == {r.pk for r in rows[3:]}
        assert "The priority was matched among the 3 newest results" in found.search_scope
        # Fewer matching rows than the window: all are read, and nothing is said.
        wide = ResultFilterSet(data={"priority_min": "1"}, queryset=everything)
        assert len(wide.qs) == 5 and wide.search_scope == ""

    def test_filters_combine(self):
        hit = make_failed(queue_name="emails")
        make_failed(queue_name="other")
        make_complete(queue_name="emails")
        assert self.shown("status=FAILED&queue=emails") == {hit.pk}

    def test_form_shows_the_current_filters(self):
        response = self.client.get(url("changelist", query="status=FAILED&q=hello"))
        content = response.content.decode()
        assert 'value="hello"' in content
        assert '<option value="FAILED" selected>' in content
        assert response.context["filter_active"]

    def test_sort_and_cursor_do_not_count_as_filters(self):
        state = ResultListState.from_query(
            QueryDict("sort=-finished&after=x"), list_url="/", retry_matching_url="/r/"
        )
        assert not state.filters_active
        filterset = ResultFilterSet(data=state.filters)
        assert ResultStatus.FAILED in dict(filterset.form.fields["status"].choices)
