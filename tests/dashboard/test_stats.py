"""Counting results: exact on small tables, estimated or capped on big ones, and saying which."""

from __future__ import annotations

from datetime import timedelta
from unittest import skipUnless

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin.stats import AT_LEAST, ESTIMATE, Tally, capped_count, count_results

from .utils import make_complete, make_failed, make_row


class CountResultsTests(TestCase):
    def test_counts_per_status_queue_and_deferred_in_one_grouped_query(self):
        make_row(queue_name="a")
        make_row(queue_name="a", run_after=timezone.now() + timedelta(minutes=5))
        make_row(queue_name="a", run_after=timezone.now() - timedelta(minutes=5))
        make_failed(queue_name="b", backend_name="other")
        make_complete(queue_name="b")
        with CaptureQueriesContext(connection) as queries:
            counts = count_results()
        # PostgreSQL: and its statistics (none: the table was never analysed).
        assert len(queries.captured_queries) == (2 if connection.vendor == "postgresql" else 1)
        assert counts.total == 5
        assert counts.by_status == {"NEW": 3, "RUNNING": 0, "FAILED": 1, "COMPLETE": 1}
        assert counts.deferred == 1
        by_queue = {(q.backend_name, q.queue_name): q for q in counts.queues}
        assert list(by_queue) == [("default", "a"), ("default", "b"), ("other", "b")]
        assert by_queue[("default", "a")].by_status["NEW"] == 3
        assert by_queue[("default", "a")].deferred == 1
        assert [(s, t.value) for s, t in by_queue[("other", "b")].status_cells] == [
            ("NEW", 0),
            ("RUNNING", 0),
            ("FAILED", 1),
            ("COMPLETE", 0),
        ]
        assert counts.exact and counts.note == ""

    def test_counts_a_given_queryset(self):
        make_row(queue_name="a")
        make_row(queue_name="b")
        counts = count_results(DBTaskResult.objects.filter(queue_name="a"))
        assert counts.total == 1
        assert counts.by_status[ResultStatus.NEW] == 1

    def test_empty_table(self):
        counts = count_results()
        assert counts.total == 0 and counts.queues == []


class BigTableTests(TestCase):
    """Past ``exact_up_to`` rows: live rows exact, finished ones estimated or capped."""

    @classmethod
    def setUpTestData(cls):
        for i in range(12):
            make_complete(queue_name="a" if i % 3 else "b")
        for _ in range(4):
            make_failed(queue_name="a")
        make_row(queue_name="a")
        make_row(queue_name="b", run_after=timezone.now() + timedelta(minutes=5))
        make_row(queue_name="a", status=ResultStatus.RUNNING, started_at=timezone.now())

    def test_each_status_is_exact_up_to_the_cap_and_a_lower_bound_past_it(self):
        # SQLite has no statistics; a PostgreSQL table never analysed has none either.
        with CaptureQueriesContext(connection) as queries:
            counts = count_results(exact_up_to=10)
        # The newest rows, then each status (PostgreSQL: and the statistics first).
        assert len(queries.captured_queries) == (6 if connection.vendor == "postgresql" else 5)
        assert counts.by_status[ResultStatus.NEW] == Tally(2)
        assert counts.by_status[ResultStatus.RUNNING] == Tally(1)
        assert counts.deferred == Tally(1)
        # 12 COMPLETE rows, counting stopped after 11: a lower bound; 4 FAILED: exact.
        assert counts.by_status[ResultStatus.COMPLETE] == Tally(11, AT_LEAST)
        assert counts.by_status[ResultStatus.FAILED] == Tally(4)
        assert counts.total.kind == AT_LEAST and not counts.exact
        assert "n+ marks a lower bound" in counts.note
        assert "Exact: NEW, RUNNING, FAILED." in counts.note
        by_queue = {q.queue_name: q for q in counts.queues}
        assert set(by_queue) == {"a", "b"}
        assert by_queue["b"].deferred == Tally(1)
        assert by_queue["b"].by_status[ResultStatus.COMPLETE].kind == AT_LEAST

    def test_a_table_under_the_cap_is_counted_exactly_in_one_query(self):
        with CaptureQueriesContext(connection) as queries:
            counts = count_results(exact_up_to=19)
        # PostgreSQL: and its statistics (none: the table was never analysed).
        assert len(queries.captured_queries) == (2 if connection.vendor == "postgresql" else 1)
        assert counts.exact
        assert counts.by_status == {"NEW": 2, "RUNNING": 1, "FAILED": 4, "COMPLETE": 12}

    @skipUnless(connection.vendor == "postgresql", "PostgreSQL's statistics")
    def test_postgresql_estimates_big_statuses_from_the_tables_statistics(self):
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {DBTaskResult._meta.db_table}")
        with CaptureQueriesContext(connection) as queries:
            counts = count_results(exact_up_to=10)
        # The statistics, then NEW, RUNNING and FAILED (COMPLETE is estimated past the cap).
        assert len(queries.captured_queries) == 4
        complete = counts.by_status[ResultStatus.COMPLETE]
        failed = counts.by_status[ResultStatus.FAILED]
        # ANALYZE read every row of so small a table: the estimates are the counts.
        assert (complete, failed) == (Tally(12, ESTIMATE), Tally(4))
        assert counts.by_status[ResultStatus.NEW] == Tally(2)
        assert "≈ marks an estimate" in counts.note
        assert str(complete) == "≈12"


class TallyTests(TestCase):
    def test_text_sum_and_equality(self):
        assert str(Tally(5)) == "5"
        assert str(Tally(12_345, ESTIMATE)) == "≈12,345"
        assert str(Tally(10_000, AT_LEAST)) == "10,000+"
        assert Tally(3) == 3 and Tally(3, ESTIMATE) != 3
        assert Tally(2) + Tally(3, ESTIMATE) == Tally(5, ESTIMATE)
        assert Tally(2, ESTIMATE) + Tally(3, AT_LEAST) == Tally(5, AT_LEAST)
        assert not Tally(0) and Tally(1)

    def test_capped_count_stops_at_the_cap(self):
        for _ in range(4):
            make_row()
        assert capped_count(DBTaskResult.objects.all(), cap=4) == Tally(4)
        assert capped_count(DBTaskResult.objects.all(), cap=3) == Tally(3, AT_LEAST)
