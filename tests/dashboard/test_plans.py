"""On PostgreSQL with 100,000 results, no dashboard query plans a sequential scan of them.

The table is filled with tests/dashboard/seed.py (COPY, as benchmarks/dashboard.py
does) in the test database, and analysed; then every page and htmx fragment the
dashboard serves is requested, and each query it ran on the results table is
EXPLAINed.  Plans, not timings: the benchmark measures time.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import skipUnless
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.services.queues import pause_queue
from django_tasks.task import ResultStatus
from django_tasks_admin.list_state import SORT_KEYS
from django_tasks_admin.stats import ESTIMATE
from django_tasks_admin.triage import failure_groups

from .seed import COMMON_EXC_TYPE, NEEDLE, RARE_EXC_TYPE, TASK_PATHS, seed_results
from .utils import DashboardTestCase, url

pytestmark = pytest.mark.slow

ROWS = 100_000
TABLE = DBTaskResult._meta.db_table


def plans_scanning_results(queries: Any) -> tuple[int, list[str]]:
    """EXPLAIN each captured SELECT on the results table: how many, and those that seq-scan it."""
    explained, scans = 0, []
    for query in queries.captured_queries:
        sql = query["sql"]
        if TABLE not in sql or not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
            (plan,) = cursor.fetchone()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        explained += 1
        if TABLE in scanned_tables(plan[0]["Plan"]):
            scans.append(sql)
    return explained, scans


def scanned_tables(plan: dict[str, Any]) -> list[str]:
    """The relations a plan reads with a Seq Scan (any depth)."""
    found = []
    if plan.get("Node Type") == "Seq Scan":
        found.append(plan.get("Relation Name", ""))
    for child in plan.get("Plans", []):
        found += scanned_tables(child)
    return found


@skipUnless(connection.vendor == "postgresql", "plans of PostgreSQL")
class NoSequentialScanTests(DashboardTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        seed_results(ROWS)  # ANALYZEs the table too

    def pages(self) -> list[str]:
        now = timezone.now()
        day_ago = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        failed = DBTaskResult.objects.filter(status=ResultStatus.FAILED).first()
        assert failed is not None
        filters: list[dict[str, str]] = [
            {},
            {"status": "FAILED"},
            {"status": "RUNNING"},
            {"status": "NEW"},
            {"status": "COMPLETE"},
            {"queue": "emails"},
            {"queue": "emails,billing"},
            {"task": TASK_PATHS[3]},
            {"task": "no.such.task"},
            {"task": "job_1"},
            {"backend": "default"},
            {"api": "django.tasks"},
            {"cancelled": "yes"},
            {"cancelled": "no"},
            {"retrying": "yes"},
            {"priority_min": "5", "priority_max": "100"},
            {"enqueued_after": day_ago},
            {"finished_after": day_ago},
            {"id": str(failed.pk)},
            {"q": NEEDLE},
            {"q": "no-such-order", "task": TASK_PATHS[3]},
            {"status": "FAILED", "queue": "emails", "task": TASK_PATHS[3]},
        ]
        pages = [url("overview"), url("change", failed.pk), url("prune")]
        for params in filters:
            pages.append(url("changelist", query=urlencode(params)))
            pages.append(url("retry_matching", query=urlencode(params)))
            pages.append(url("cancel_matching", query=urlencode(params)))
        for column in SORT_KEYS:
            for sort in (column, f"-{column}"):
                for status in ("", "FAILED"):
                    pages.append(
                        url("changelist", query=urlencode({"sort": sort, "status": status}))
                    )
        for queues in ("*", "default"):
            query = {"preview": "1", "backend": "default", "queue_name": queues}
            pages.append(url("prune", query=urlencode({**query, "min_age_days": "14"})))
        return pages

    def deep_pages(self) -> list[str]:
        """Page 100 of each sort, and its "previous" page, by following the cursors."""
        pages = []
        for column in SORT_KEYS:
            for sort in (column, f"-{column}"):
                query = {"sort": sort, "per_page": "500"}
                page = self.client.get(url("changelist", query=urlencode(query))).context["page"]
                for _ in range(4):  # 5 x 500 rows: page 100 of 25 rows
                    page = self.client.get(
                        url("changelist", query=urlencode({**query, "after": page.next_cursor}))
                    ).context["page"]
                pages.append(
                    url("changelist", query=urlencode({"sort": sort, "after": page.next_cursor}))
                )
                pages.append(
                    url(
                        "changelist",
                        query=urlencode({"sort": sort, "before": page.previous_cursor}),
                    )
                )
        return pages

    def test_no_dashboard_query_plans_a_sequential_scan_of_the_results(self):
        explained = 0
        scans = []
        pages = self.pages() + self.deep_pages()
        rows: dict[str, Any] = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "dt-rows"}
        plain: dict[str, Any] = {}
        requests = [(page, headers) for page in pages for headers in (plain, rows)]
        for page, headers in requests:
            with CaptureQueriesContext(connection) as queries:
                response = self.client.get(page, **headers)
            assert response.status_code in (200, 204), (page, response.status_code)
            poll = (response.context or {}).get("poll_url")
            if poll and not headers:  # the list's idle poll (204) too
                requests.append((poll, rows))
            count, scanning = plans_scanning_results(queries)
            explained += count
            scans += [(page, sql) for sql in scanning]
        assert explained > 2 * len(pages), explained
        assert len(requests) > 2 * len(pages)  # the polls were requested
        assert scans == [], "\n\n".join(f"{page}\n{sql}" for page, sql in scans)

    def test_no_query_of_the_queues_page_plans_a_sequential_scan(self):
        pause_queue(backend_name="default", queue_name="emails")
        explained, scans = 0, []
        htmx: dict[str, Any] = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "dt-queues"}
        # The Queues page, its poll, and the Charts and metrics pages that read the
        # same counts (the roll-up never ran: its tail is a day of results).
        requests: list[tuple[str, dict[str, Any]]] = [
            (url("charts"), {}),
            (url("charts", query="queue=emails"), {}),
            (url("metrics"), {}),
            (url("queues"), {}),
            (url("queues"), htmx),
        ]
        for page, headers in requests:
            with CaptureQueriesContext(connection) as queries:
                response = self.client.get(page, **headers)
            assert response.status_code == 200, page
            count, scanning = plans_scanning_results(queries)
            explained += count
            scans += scanning
        assert explained >= 2 * len(requests), explained
        assert scans == []
        page = response.content.decode()  # the Queues page's poll
        assert 'data-queue="emails"' in page and 'class="dt-paused"' in page

    def test_no_triage_query_plans_a_sequential_scan_of_the_results(self):
        groups = failure_groups(sort="count").groups
        assert len(groups) > 10
        queries = [g.query for g in (groups[0], groups[-1])]
        for exc_type in (COMMON_EXC_TYPE, RARE_EXC_TYPE, "no.such.Error"):
            queries.append(urlencode({"exception": exc_type}))
            queries.append(urlencode({"exception": exc_type, "task": TASK_PATHS[3]}))
        queries.append(urlencode({"task_path": TASK_PATHS[3]}))
        pages = [url("overview"), url("overview", query="groups=count")]
        for query in queries:
            pages += [url("changelist", query=query), url("retry_matching", query=query)]
        explained, scans = 0, list[tuple[str, str]]()

        def get(page: str, status: int, **headers: Any) -> Any:
            nonlocal explained
            with CaptureQueriesContext(connection) as captured:
                response = self.client.get(page, **headers)
            assert response.status_code == status, page
            count, scanning = plans_scanning_results(captured)
            explained += count
            scans.extend((page, sql) for sql in scanning)
            return response

        for page in pages:
            get(page, 200)
        # The groups' poll: re-rendered (a stale fingerprint), then 204 (the current
        # one, which names the window's first minute: taken again if a minute turns).
        triage: dict[str, Any] = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "dt-triage"}
        get(url("overview", query="tfp=stale"), 200, **triage)
        for _attempt in range(3):
            minute = timezone.now().replace(second=0, microsecond=0)
            fresh = url("overview", query=f"tfp={failure_groups().fingerprint}")
            with CaptureQueriesContext(connection) as captured:
                response = self.client.get(fresh, **triage)
            if timezone.now().replace(second=0, microsecond=0) == minute:
                break
        assert response.status_code == 204
        count, scanning = plans_scanning_results(captured)
        explained += count
        scans.extend((fresh, sql) for sql in scanning)
        assert explained > 2 * len(pages), explained
        assert scans == [], "\n\n".join(f"{page}\n{sql}" for page, sql in scans)

    def test_the_overview_estimates_what_it_would_have_to_scan_and_says_so(self):
        response = self.client.get(url("overview"))
        counts = response.context["counts"]
        complete = counts.by_status[ResultStatus.COMPLETE]
        assert complete.kind == ESTIMATE
        # ANALYZE samples rows: an estimate, within a few percent of the truth here.
        actual = DBTaskResult.objects.filter(status=ResultStatus.COMPLETE).count()
        assert abs(complete.value - actual) < actual * 0.05
        assert "≈ marks an estimate" in response.content.decode()
