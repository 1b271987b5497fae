"""The one counting function."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin.stats import count_results

from .utils import make_complete, make_failed, make_row


class CountResultsTests(TestCase):
    def test_counts_per_status_queue_and_deferred_in_one_query(self):
        make_row(queue_name="a")
        make_row(queue_name="a", run_after=timezone.now() + timedelta(minutes=5))
        make_row(queue_name="a", run_after=timezone.now() - timedelta(minutes=5))
        make_failed(queue_name="b", backend_name="other")
        make_complete(queue_name="b")
        with CaptureQueriesContext(connection) as queries:
            counts = count_results()
        assert len(queries.captured_queries) == 1
        assert counts.total == 5
        assert counts.by_status == {"NEW": 3, "RUNNING": 0, "FAILED": 1, "COMPLETE": 1}
        assert counts.deferred == 1
        by_queue = {(q.backend_name, q.queue_name): q for q in counts.queues}
        assert list(by_queue) == [("default", "a"), ("default", "b"), ("other", "b")]
        assert by_queue[("default", "a")].by_status["NEW"] == 3
        assert by_queue[("default", "a")].deferred == 1
        assert by_queue[("other", "b")].status_cells == [
            ("NEW", 0),
            ("RUNNING", 0),
            ("FAILED", 1),
            ("COMPLETE", 0),
        ]

    def test_counts_a_given_queryset(self):
        make_row(queue_name="a")
        make_row(queue_name="b")
        counts = count_results(DBTaskResult.objects.filter(queue_name="a"))
        assert counts.total == 1
        assert counts.by_status[ResultStatus.NEW] == 1

    def test_empty_table(self):
        counts = count_results()
        assert counts.total == 0 and counts.queues == []
