"""Live regions that never go stale: overview, results list and detail (issue 14).

Each region polls its own URL with the fingerprint of what it shows: an unchanged
fingerprint is answered 204 for one query, a changed one with the region.
Rows change here as production changes them: enqueue, claim, run, retry, prune.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks_admin.live import overview_fingerprint
from django_tasks_admin.models import BulkRetry
from tests import tasks as test_tasks

from .utils import DashboardTestCase, claim, make_complete, run_attempt, search, url

LIVE_TRIGGER = (
    "every 3s [document.visibilityState === 'visible'], "
    "visibilitychange[document.visibilityState === 'visible'] from:document"
)


def task_queries(queries: CaptureQueriesContext) -> list[str]:
    """The queries of a request that read task results or workers (not session, user)."""
    return [
        q["sql"]
        for q in queries.captured_queries
        if "dbtaskresult" in q["sql"] or "dbworker" in q["sql"]
    ]


def hx_get(content: str, region: str) -> str:
    """The poll URL of the element with id ``region``."""
    tag = search(rf'<[a-z]+ id="{region}"[^>]*>', content)[0]
    return search(r'hx-get="([^"]+)"', tag)[1].replace("&amp;", "&")


class OverviewLiveTests(DashboardTestCase):
    def poll_url(self) -> str:
        return hx_get(self.client.get(url("overview")).content.decode(), "dt-overview")

    def assert_changed(self, poll: str) -> str:
        response = self.htmx(poll, "dt-overview")
        assert response.status_code == 200
        content: str = response.content.decode()
        assert "<html" not in content
        assert '<div id="dt-overview"' in content.split("<section")[0]
        return content

    def test_the_overview_polls_while_visible(self):
        content = self.client.get(url("overview")).content.decode()
        tag = search(r'<div id="dt-overview"[^>]*>', content)[0]
        assert LIVE_TRIGGER in tag
        assert 'data-dt-live="on"' in content
        assert "Live: refreshing every 3 s" in content
        assert 'data-paused-text="Live: paused while this tab is hidden"' in content

    def test_a_quiet_poll_is_204_for_one_query(self):
        make_complete()
        test_tasks.noop_task.enqueue()
        services.register_worker(
            worker_id=uuid.uuid4(), backend_name="default", queue_names=None, threads=1
        )
        poll = self.poll_url()
        with CaptureQueriesContext(connection) as queries:
            response = self.htmx(poll, "dt-overview")
        assert response.status_code == 204
        assert response.content == b""
        assert len(task_queries(queries)) == 1

    def test_a_new_failure_re_renders_the_counts(self):
        poll = self.poll_url()
        result = test_tasks.failing_task_value_error.enqueue()
        enqueued = self.assert_changed(poll)
        assert search(r'dt-card-new".*?dt-card-n">(\d+)<', enqueued, re.S)[1] == "1"
        poll = hx_get(enqueued, "dt-overview")
        run_attempt(result.id)
        failed = self.assert_changed(poll)
        assert search(r'dt-card-failed".*?dt-card-n">(\d+)<', failed, re.S)[1] == "1"
        assert search(r'dt-card-new".*?dt-card-n">(\d+)<', failed, re.S)[1] == "0"
        assert url("change", result.id) in failed  # among the recent failures
        assert self.htmx(hx_get(failed, "dt-overview"), "dt-overview").status_code == 204

    def test_each_kind_of_change_changes_the_fingerprint(self):
        worker_id = uuid.uuid4()
        services.register_worker(
            worker_id=worker_id, backend_name="default", queue_names=None, threads=1
        )
        failing = test_tasks.failing_task_value_error.enqueue()
        deferred = test_tasks.noop_task.using(
            run_after=timezone.now() + timedelta(hours=1)
        ).enqueue()
        seen = {overview_fingerprint()}

        def changed(what: str) -> None:
            current = overview_fingerprint()
            assert current not in seen, what
            seen.add(current)

        test_tasks.noop_task.enqueue()
        changed("enqueue")
        claim(failing.id, worker_id)
        changed("claim")
        services.run_task(DBTaskResult.objects.get(pk=failing.id), worker_id=worker_id)
        changed("failure")
        services.retry_one(failing.id)
        changed("retry")
        run_attempt(failing.id)
        changed("failure again")
        complete = test_tasks.noop_task.enqueue()
        overview_fingerprint_before = overview_fingerprint()
        run_attempt(complete.id)
        assert overview_fingerprint() != overview_fingerprint_before, "completion"
        seen.add(overview_fingerprint())
        # Time passing: the deferred task comes due.
        DBTaskResult.objects.filter(pk=deferred.id).update(
            run_after=timezone.now() - timedelta(seconds=1)
        )
        changed("deferred task due")
        services.heartbeat(worker_id=worker_id, tasks_done=1, tasks_failed=2)
        changed("worker counters")
        DBWorker.objects.filter(pk=worker_id).update(
            last_heartbeat_at=timezone.now() - timedelta(seconds=9)
        )
        changed("worker late")
        DBWorker.objects.filter(pk=worker_id).update(
            last_heartbeat_at=timezone.now() - timedelta(seconds=30)
        )
        changed("worker lost")
        services.register_worker(
            worker_id=uuid.uuid4(), backend_name="default", queue_names=None, threads=1
        )
        changed("worker started")
        assert services.prune(backend_name="default", queue_names=None, min_age_days=0)
        changed("prune")
        assert overview_fingerprint() in seen  # and nothing else moves it

    def test_deferred_is_shown_as_part_of_new(self):
        test_tasks.noop_task.enqueue()
        for _ in range(2):
            test_tasks.noop_task.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
        content = self.client.get(url("overview")).content.decode()
        card = search(r'<a class="dt-card dt-card-new".*?</a>', content, re.S)[0]
        assert search(r'dt-card-n">(\d+)<', card)[1] == "3"
        assert "(2 deferred)" in card
        # No card of its own, which would read as more tasks.
        assert "dt-card-deferred" not in content
        queue_row = search(r"<td><a href=[^>]*>default</a></td>.*?</tr>", content, re.S)[0]
        assert search(r">3</a> <small[^>]*>\(2\)</small>", queue_row)


class ListLiveTests(DashboardTestCase):
    def test_a_list_filtered_to_failed_shows_a_new_failure(self):
        old = test_tasks.failing_task_value_error.enqueue()
        run_attempt(old.id)
        page = self.client.get(url("changelist", query="status=FAILED")).content.decode()
        # Nothing on it runs: it polls all the same.
        poll = hx_get(page, "dt-rows")
        assert LIVE_TRIGGER in search(r'<tbody id="dt-rows"[^>]*>', page)[0]
        assert "status=FAILED" in poll

        with CaptureQueriesContext(connection) as queries:
            quiet = self.htmx(poll, "dt-rows")
        assert quiet.status_code == 204
        assert len(task_queries(queries)) == 1

        # A task that will succeed changes nothing this list shows.
        run_attempt(test_tasks.noop_task.enqueue().id)
        assert self.htmx(poll, "dt-rows").status_code == 204

        new = test_tasks.failing_task_value_error.enqueue()
        assert self.htmx(poll, "dt-rows").status_code == 204  # NEW: not in the filter
        run_attempt(new.id)
        response = self.htmx(poll, "dt-rows")
        assert response.status_code == 200
        content = response.content.decode()
        assert f'id="dt-row-{new.id}"' in content
        assert f'id="dt-row-{old.id}"' in content
        # The pager comes along, out of band: its count and cursors are the new page's.
        pager = search(r'<nav id="dt-pager"[^>]*>.*?</nav>', content, re.S)[0]
        assert 'hx-swap-oob="true"' in pager
        assert "2 results on this page" in pager

    def test_the_pager_follows_rows_that_push_others_off_the_first_page(self):
        make_complete()
        make_complete()
        page = self.client.get(url("changelist", query="per_page=1")).content.decode()
        poll = hx_get(page, "dt-rows")
        test_tasks.noop_task.enqueue()
        content = self.htmx(poll, "dt-rows").content.decode()
        polled = search(r'<nav id="dt-pager".*?</nav>', content, re.S)[0]
        fresh = self.client.get(url("changelist", query="per_page=1")).content.decode()
        expected = search(r'<nav id="dt-pager".*?</nav>', fresh, re.S)[0]
        next_link = search(r'href="([^"]+)"[^>]*rel="next"', expected)[1]
        assert next_link != search(r'href="([^"]+)"[^>]*rel="next"', page)[1]
        assert 'hx-swap-oob="true"' in polled
        assert f'href="{next_link}"' in polled  # "Next" continues after the new first row

    def test_a_list_opened_while_nothing_runs_shows_new_tasks(self):
        make_complete()
        page = self.client.get(url("changelist")).content.decode()
        poll = hx_get(page, "dt-rows")
        result = test_tasks.noop_task.enqueue()
        response = self.htmx(poll, "dt-rows")
        assert response.status_code == 200
        assert f'id="dt-row-{result.id}"' in response.content.decode()

    def test_the_first_page_polls_later_pages_say_live_is_off(self):
        for _ in range(3):
            make_complete()
        first = self.client.get(url("changelist", query="per_page=2"))
        content = first.content.decode()
        assert 'data-dt-live="on"' in content
        # A full render of the page has no out-of-band pager.
        assert "hx-swap-oob" not in content
        cursor = first.context["page"].next_cursor
        later = self.client.get(url("changelist", query=f"per_page=2&after={cursor}"))
        content = later.content.decode()
        assert "hx-get" not in search(r'<tbody id="dt-rows"[^>]*>', content)[0]
        note = search(r'<span class="dt-live-note" data-dt-live="off">.*?</span>', content, re.S)[0]
        assert "Live updates are off on later pages" in note
        assert 'href="?per_page=2"' in note


class DetailLiveTests(DashboardTestCase):
    def test_a_finished_result_keeps_polling_and_shows_a_retry(self):
        result = test_tasks.failing_task_value_error.enqueue()
        run_attempt(result.id)
        content = self.client.get(url("change", result.id)).content.decode()
        poll = hx_get(content, "dt-result")
        assert 'data-dt-live="on"' in content
        assert self.htmx(poll, "dt-result").status_code == 204
        services.retry_one(result.id)
        response = self.htmx(poll, "dt-result")
        assert response.status_code == 200
        body = response.content.decode()
        assert 'data-status="NEW"' in body
        assert "hx-get" in search(r'<div id="dt-result"[^>]*>', body)[0]

    def test_a_pruned_result_says_so_and_stops_polling(self):
        result = test_tasks.noop_task.enqueue()
        run_attempt(result.id)
        poll = hx_get(self.client.get(url("change", result.id)).content.decode(), "dt-result")
        assert services.prune(backend_name="default", queue_names=None, min_age_days=0) == 1
        response = self.htmx(poll, "dt-result")
        assert response.status_code == 286  # htmx stops polling
        assert "no longer exists" in response.content.decode()


class NewcomerFixTests(DashboardTestCase):
    def test_background_progress_text_stays_on_its_lines(self):
        job = BulkRetry.objects.create(
            requested_by="admin",
            failed_before=timezone.now(),
            total=10,
            retried=10,
            status="COMPLETE",
            finished_at=timezone.now(),
        )
        content = self.client.get(url("bulk_retry", job.pk)).content.decode()
        text = search(r'<p class="dt-muted dt-progress-text">.*?</p>', content, re.S)[0]
        # Times inline, in brackets: no block-level absolute time inside the sentence.
        assert "dt-abs" not in text
        assert text.count("<time") == 2
