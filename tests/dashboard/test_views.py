"""The dashboard pages: rendering, htmx partials, live polling, escaping, query counts."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks import django_api
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.task import ResultStatus

from .utils import XSS, DashboardTestCase, make_complete, make_failed, make_row, search, url


class OverviewTests(DashboardTestCase):
    def test_overview_shows_counts_per_status_and_queue(self):
        make_row(queue_name="emails")
        make_row(queue_name="emails", run_after=timezone.now() + timedelta(hours=1))
        make_failed(queue_name="reports")
        make_complete()
        response = self.client.get(url("overview"))
        assert response.status_code == 200
        assert response.context["counts"].by_status == {
            "NEW": 2,
            "RUNNING": 0,
            "FAILED": 1,
            "COMPLETE": 1,
        }
        assert response.context["counts"].deferred == 1
        queues = {
            (q.backend_name, q.queue_name): q.total for q in response.context["counts"].queues
        }
        assert queues == {
            ("default", "emails"): 2,
            ("default", "reports"): 1,
            ("default", "default"): 1,
        }
        assert b"?status=FAILED" in response.content

    def test_overview_lists_recent_failures_newest_first(self):
        old = make_failed("old one", finished_at=timezone.now() - timedelta(days=1))
        new = make_failed("new one")
        response = self.client.get(url("overview"))
        rows = [f["row"].pk for f in response.context["failures"]]
        assert rows == [new.pk, old.pk]
        assert b"new one" in response.content
        assert url("change", new.pk).encode() in response.content

    def test_overview_marks_failures_of_django_tasks(self):
        theirs = make_failed("theirs", api=django_api.DJANGO)
        ours = make_failed("ours")
        content = self.client.get(url("overview")).content.decode()
        cells = {
            row.pk: search(rf'href="{url("change", row.pk)}">.*?</td>', content, re.S)[0]
            for row in (theirs, ours)
        }
        assert 'class="dt-api"' in cells[theirs.pk]
        assert 'class="dt-api"' not in cells[ours.pk]

    def test_overview_shows_workers_and_orphaned_tasks(self):
        live = DBWorker.objects.create(backend_name="default", host="web-1", pid=11, queues=["*"])
        lost = DBWorker.objects.create(
            backend_name="default",
            host="web-2",
            pid=22,
            queues=["default"],
            last_heartbeat_at=timezone.now() - timedelta(hours=1),
        )
        make_row(status=ResultStatus.RUNNING, worker_id=lost.pk, started_at=timezone.now())
        response = self.client.get(url("overview"))
        assert [w.pk for w in response.context["live_workers"]] == [live.pk]
        assert [w.pk for w in response.context["lost_workers"]] == [lost.pk]
        assert response.context["orphaned"] == 1
        assert b"web-1:11" in response.content
        assert b"orphaned" in response.content

    def test_overview_without_worker_says_so(self):
        response = self.client.get(url("overview"))
        assert b"No db_worker is running" in response.content


class ListTests(DashboardTestCase):
    def test_list_shows_rows_newest_first(self):
        first = make_row()
        second = make_row()
        response = self.client.get(url("changelist"))
        assert response.status_code == 200
        assert [r.pk for r in response.context["table"].page.rows] == [second.pk, first.pk]
        assert url("change", first.pk).encode() in response.content
        assert b"<html" in response.content

    def test_list_is_inside_the_admin(self):
        response = self.client.get(url("changelist"))
        content = response.content.decode()
        assert 'id="nav-sidebar"' in content
        assert 'class="breadcrumbs"' in content
        assert "django_htmx/htmx" in content  # from django-htmx's static files, not a CDN
        assert search(r"<body[^>]*hx-headers='\{\"X-CSRFToken\": \"\w+\"\}'", content)

    def test_list_never_counts_the_table(self):
        for _ in range(3):
            make_row()
        with CaptureQueriesContext(connection) as queries:
            self.client.get(url("changelist"))
        assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]

    def test_list_htmx_region_is_a_fragment(self):
        make_failed()
        response = self.htmx(url("changelist", query="status=FAILED"), "dt-results")
        assert response.status_code == 200
        content = response.content.decode()
        assert "<html" not in content
        assert content.lstrip().startswith('<div id="dt-results"')
        assert "FAILED" in content

    def test_list_rows_poll_while_something_is_running(self):
        make_row(status=ResultStatus.RUNNING, started_at=timezone.now())
        response = self.client.get(url("changelist"))
        content = response.content.decode()
        tbody = search(r"<tbody id=\"dt-rows\"[^>]*>", content)[0]
        assert "hx-get=" in tbody
        assert "every 3s [document.visibilityState === 'visible']" in tbody
        assert "fp=" in tbody

    def test_list_rows_poll_on_the_first_page_only(self):
        # All finished, still polled: new rows may enter the first page (issue 14).
        make_complete()
        make_failed()
        response = self.client.get(url("changelist", query="per_page=1"))
        tbody = search(r"<tbody id=\"dt-rows\"[^>]*>", response.content.decode())[0]
        assert "hx-get" in tbody
        later = url("changelist", query=f"per_page=1&after={response.context['page'].next_cursor}")
        tbody = search(r"<tbody id=\"dt-rows\"[^>]*>", self.client.get(later).content.decode())[0]
        assert "hx-get" not in tbody

    def test_idle_poll_answers_204_with_one_query(self):
        make_row(status=ResultStatus.RUNNING, started_at=timezone.now())
        page = self.client.get(url("changelist"))
        poll_url = page.context["poll_url"]
        self.client.get(poll_url)  # warm the session
        with CaptureQueriesContext(connection) as queries:
            response = self.htmx(poll_url, "dt-rows")
        assert response.status_code == 204
        assert response.content == b""
        task_queries = [q for q in queries.captured_queries if "dbtaskresult" in q["sql"]]
        assert len(task_queries) == 1

    def test_poll_after_a_change_returns_the_rows(self):
        row = make_row(status=ResultStatus.RUNNING, started_at=timezone.now())
        poll_url = self.client.get(url("changelist")).context["poll_url"]
        DBTaskResult.objects.filter(pk=row.pk).update(
            status=ResultStatus.COMPLETE, finished_at=timezone.now()
        )
        response = self.htmx(poll_url, "dt-rows")
        assert response.status_code == 200
        content = response.content.decode()
        assert content.lstrip().startswith('<tbody id="dt-rows"')
        assert "<html" not in content
        assert "COMPLETE" in content
        assert "hx-get" in content.split(">")[0]  # the first page keeps polling

    def test_filter_state_is_kept_in_links(self):
        for _ in range(3):
            make_failed(queue_name="emails")
        with override_settings(DJANGO_TASKS_ADMIN={"PER_PAGE": 2}):
            response = self.client.get(url("changelist", query="status=FAILED&queue=emails"))
        content = response.content.decode()
        next_link = search(r'href="\?([^"]*after=[^"]*)"', content)[1].replace("&amp;", "&")
        assert "status=FAILED" in next_link and "queue=emails" in next_link
        assert "retry-matching/?status=FAILED&amp;queue=emails" in content

    def test_unknown_parameters_are_reported_not_dropped_silently(self):
        make_row()
        response = self.client.get(url("changelist", query="foo=1&sort=nope&status=NEW"))
        content = response.content.decode()
        assert "Ignored unknown parameter(s): foo, sort=nope" in content
        assert response.context["filter_active"]
        # The htmx region says so too, and a parameter's name is escaped like any text.
        region = self.htmx(url("changelist", query=f"{XSS}=1"), "dt-results").content.decode()
        assert "Ignored unknown parameter(s):" in region
        assert XSS not in region
        clean = self.client.get(url("changelist", query="status=NEW&sort=task"))
        assert b"Ignored unknown" not in clean.content

    def test_page_size_from_the_query_is_kept_in_links(self):
        for _ in range(3):
            make_row(queue_name="emails")
        response = self.client.get(url("changelist", query="queue=emails&per_page=2"))
        assert len(response.context["page"].rows) == 2
        content = response.content.decode()
        next_link = search(r'href="(\?[^"]*after=[^"]*)"', content)[1].replace("&amp;", "&")
        assert "queue=emails" in next_link and "per_page=2" in next_link
        rest = self.client.get(url("changelist") + next_link)
        assert len(rest.context["page"].rows) == 1
        assert '<input type="hidden" name="per_page" value="2">' in content
        for asked, shown in (("0", 1), ("-1", 1), ("1", 1)):
            response = self.client.get(url("changelist", query=f"per_page={asked}"))
            assert len(response.context["page"].rows) == shown, asked

    def test_filter_values_are_encoded_in_every_link(self):
        for _ in range(3):
            make_row(task_path="tests.tasks.a&b")
        with override_settings(DJANGO_TASKS_ADMIN={"PER_PAGE": 2}):
            response = self.client.get(url("changelist", query="task=a%26b&sort=task"))
        content = response.content.decode()
        next_link = search(r'href="(\?[^"]*after=[^"]*)"', content)[1].replace("&amp;", "&")
        assert next_link.startswith("?task=a%26b&sort=task&after=")
        assert 'retry-matching/?task=a%26b"' in content
        assert "task=a%26b&sort=task&fp=" in response.context["poll_url"]

    def test_invalid_filter_shows_no_rows(self):
        make_row()
        response = self.client.get(url("changelist", query="id=not-a-uuid"))
        assert response.status_code == 200
        assert list(response.context["table"].page.rows) == []

    def test_times_are_relative_and_absolute_in_the_active_time_zone(self):
        make_row()
        with override_settings(TIME_ZONE="Asia/Tokyo"):
            response = self.client.get(url("changelist"))
        content = response.content.decode()
        assert search(r"<time datetime=\"[^\"]+\" title=\"[\d-]+ [\d:]+ JST\">\d+ s ago", content)

    def test_selection_column_only_with_retry_permission(self):
        make_failed()
        response = self.client.get(url("changelist"))
        assert b'name="ids"' in response.content
        assert b"Retry selected" in response.content
        self.client.force_login(self.viewer)
        response = self.client.get(url("changelist"))
        assert b'name="ids"' not in response.content
        assert b"Retry selected" not in response.content
        assert b"Retry all matching" not in response.content


class DetailTests(DashboardTestCase):
    def test_detail_shows_every_field(self):
        now = timezone.now()
        row = make_complete(
            value={"answer": 42},
            queue_name="reports",
            priority=7,
            args_kwargs={"args": [1, "two"], "kwargs": {"three": 3}},
            enqueued_at=now,
            started_at=now + timedelta(seconds=5),
            finished_at=now + timedelta(seconds=7),
        )
        DBTaskResult.objects.filter(pk=row.pk).update(enqueued_at=now)
        response = self.client.get(url("change", row.pk))
        assert response.status_code == 200
        content = response.content.decode()
        for text in (
            "tests.tasks.calculate_meaning_of_life",
            str(row.pk),
            "reports",
            "&quot;answer&quot;: 42",
            "&quot;three&quot;: 3",
            "&quot;two&quot;",
            "5.0 s",  # waited
            "2.0 s",  # ran for
        ):
            assert text in content, text
        assert response.context["title"] == "calculate_meaning_of_life"
        # Finished, still live: a retry would bring it back (issue 14).
        assert "hx-get" in search(r'<div id="dt-result"[^>]*>', content)[0]

    def test_detail_shows_the_api_and_django_tasks_status_name(self):
        theirs = make_complete(api=django_api.DJANGO)
        content = self.client.get(url("change", theirs.pk)).content.decode()
        head = search(r'<div class="dt-result-head">.*?</div>', content, re.S)[0]
        assert 'dt-status-complete" title="django.tasks: SUCCESSFUL">COMPLETE</span>' in head
        assert ">django.tasks: SUCCESSFUL</small>" in head
        assert search(r"<th>API</th><td[^>]*><code>([^<]*)</code>", content)[1] == "django.tasks"

        ours = make_complete()
        content = self.client.get(url("change", ours.pk)).content.decode()
        head = search(r'<div class="dt-result-head">.*?</div>', content, re.S)[0]
        assert "django.tasks" not in head
        assert search(r"<th>API</th><td[^>]*><code>([^<]*)</code>", content)[1] == "django_tasks"

    def test_detail_names_django_status_only_where_it_differs(self):
        for status, shown in (
            (ResultStatus.NEW, "READY"),
            (ResultStatus.RUNNING, None),
            (ResultStatus.FAILED, None),
            (ResultStatus.COMPLETE, "SUCCESSFUL"),
        ):
            row = make_row(api=django_api.DJANGO, status=status)
            response = self.client.get(url("change", row.pk))
            assert response.context["django_status"] == shown, status
            assert (b"dt-status-other" in response.content) == bool(shown), status

    def test_detail_of_failure_shows_exception_and_chained_traceback(self):
        row = make_failed("it broke")
        response = self.client.get(url("change", row.pk))
        content = response.content.decode()
        assert "builtins.ValueError" in content
        assert "it broke" in content
        assert "The above exception was the direct cause of the following exception:" in content
        assert "KeyError: &#x27;missing&#x27;" in content
        assert "dt-frame-project" in content  # the test's own frames
        assert "Retry" in content
        sections = response.context["exception"]["sections"]
        assert [s.exception_class for s in sections] == ["KeyError", "ValueError"]

    def test_library_frames_are_folded(self):
        import json as json_module

        try:
            json_module.loads("{")
        except ValueError as e:
            from django_tasks.utils import exception_to_dict

            data = exception_to_dict(e)
        row = make_failed(exception_data=data)
        content = self.client.get(url("change", row.pk)).content.decode()
        assert '<details class="dt-frames-lib">' in content
        assert "library frames" in content

    def test_detail_shows_attempt_history(self):
        row = make_failed("first failure")
        self.client.post(url("retry", row.pk))
        DBTaskResult.objects.filter(pk=row.pk).update(
            status=ResultStatus.FAILED,
            finished_at=timezone.now(),
            exception_data=make_failed("second failure").exception_data,
        )
        response = self.client.get(url("change", row.pk))
        content = response.content.decode()
        assert "Earlier attempts" in content
        assert "first failure" in content
        assert len(response.context["attempts"]) == 1

    def test_detail_polls_and_answers_a_change_with_the_region(self):
        row = make_row(status=ResultStatus.RUNNING, started_at=timezone.now())
        page = self.client.get(url("change", row.pk))
        head = search(r'<div id="dt-result"[^>]*>', page.content.decode())[0]
        assert "every 3s [document.visibilityState === 'visible']" in head
        poll = search(r'hx-get="([^"]+)"', head)[1]

        with CaptureQueriesContext(connection) as queries:
            idle = self.htmx(poll, "dt-result")
        assert idle.status_code == 204
        assert len([q for q in queries.captured_queries if "dbtaskresult" in q["sql"]]) == 1

        DBTaskResult.objects.filter(pk=row.pk).update(
            status=ResultStatus.COMPLETE, finished_at=timezone.now(), return_value=1
        )
        done = self.htmx(poll, "dt-result")
        # Finished, still polled: a retry brings it back (issue 14).
        assert done.status_code == 200
        content = done.content.decode()
        assert "<html" not in content
        assert '<div id="dt-result"' in content
        assert "hx-get" in search(r'<div id="dt-result"[^>]*>', content)[0]

    def test_detail_poll_of_a_still_running_change_is_200(self):
        row = make_row()
        poll = search(r'hx-get="([^"]+)"', self.client.get(url("change", row.pk)).content.decode())[
            1
        ]
        DBTaskResult.objects.filter(pk=row.pk).update(
            status=ResultStatus.RUNNING, started_at=timezone.now()
        )
        response = self.htmx(poll, "dt-result")
        assert response.status_code == 200
        assert "RUNNING" in response.content.decode()

    def test_unknown_result_is_404(self):
        response = self.client.get(url("change", "00000000-0000-0000-0000-000000000000"))
        assert response.status_code == 404

    def test_change_url_redirects_to_detail(self):
        row = make_row()
        response = self.client.get(url("change", row.pk) + "change/")
        assert response.status_code == 302
        assert response["Location"] == url("change", row.pk)


class EscapingTests(DashboardTestCase):
    def test_xss_in_arguments_return_value_and_traceback_is_escaped(self):
        complete = make_complete(
            value={"html": XSS},
            args_kwargs={"args": [XSS], "kwargs": {"k": XSS}},
            task_path="tests.tasks.echo",
        )
        failed = make_failed(XSS, args_kwargs={"args": [XSS], "kwargs": {}})
        for row in (complete, failed):
            content = self.client.get(url("change", row.pk)).content.decode()
            assert XSS not in content
            assert "&lt;script&gt;alert(" in content
        for page in (url("changelist"), url("overview"), url("changelist", query=f"q={XSS}")):
            content = self.client.get(page).content.decode()
            assert XSS not in content

    def test_an_unexpected_api_value_is_escaped(self):
        row = make_failed(api="<b>x</b>")
        for page in (url("changelist"), url("overview"), url("change", row.pk)):
            content = self.client.get(page).content.decode()
            assert "<b>x</b>" not in content
        assert "&lt;b&gt;x&lt;/b&gt;" in self.client.get(url("change", row.pk)).content.decode()

    def test_xss_in_task_path_and_queue_is_escaped(self):
        make_failed(task_path=f"evil.{XSS}", queue_name=XSS)
        for page in (url("changelist"), url("overview")):
            content = self.client.get(page).content.decode()
            assert XSS not in content


class QueryCountTests(DashboardTestCase):
    """Pages cost the same number of queries on 30 rows and on 3,000."""

    def seed(self, n: int) -> None:
        now = timezone.now()
        statuses = [
            ResultStatus.NEW,
            ResultStatus.RUNNING,
            ResultStatus.FAILED,
            ResultStatus.COMPLETE,
        ]
        DBTaskResult.objects.bulk_create(
            DBTaskResult(
                args_kwargs={"args": [i], "kwargs": {}},
                task_path="tests.tasks.noop_task",
                backend_name="default",
                queue_name=f"queue-{i % 5}",
                status=statuses[i % 4],
                started_at=now if i % 4 else None,
                finished_at=now if i % 4 >= 2 else None,
                exception_data=None,
                # Both APIs: a column or badge per API must not cost a query per row.
                api=django_api.DJANGO if i % 3 else django_api.OURS,
            )
            for i in range(n)
        )

    def count(self, path: str) -> int:
        self.client.get(path)  # warm caches (content types, permissions)
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get(path)
        assert response.status_code == 200
        return len(queries.captured_queries)

    def test_query_counts_do_not_grow_with_the_table(self):
        self.seed(30)
        detail = DBTaskResult.objects.filter(status=ResultStatus.FAILED).first()
        assert detail is not None
        pages = [
            url("changelist"),
            url("changelist", query="status=FAILED&sort=-finished"),
            url("changelist", query="q=noop&queue=queue-1,queue-2"),
            url("overview"),
            url("change", detail.pk),
        ]
        small = [self.count(p) for p in pages]
        self.seed(3000)
        # A later page too: the keyset cursor costs what page 1 costs.
        later = self.client.get(url("changelist")).context["page"].next_cursor
        pages.append(url("changelist", query=f"after={later}"))
        large = [self.count(p) for p in pages]
        # A page sorted by a nullable column (finished) reads the NULLs' range too when
        # its values do not fill the page: the small table's 7 FAILED rows don't.
        assert large[:-1] == [small[0], small[1] - 1, *small[2:]]
        assert large[-1] == small[0]
        # Session, user, and the page's own (overview: 7 with the failure groups and the
        # paused queues, and on PostgreSQL the table's statistics, which decide between
        # counting and estimating).
        assert max(large) <= (10 if connection.vendor == "postgresql" else 9), large
