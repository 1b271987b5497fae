"""Live updates, the Workers page and narrow screens, in Chromium against a real db_worker."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.task import ResultStatus
from tests import tasks as test_tasks
from tests.worker_helpers import Workers, wait_until

from . import tasks as browser_tasks
from .conftest import BROWSER_TASKS
from .test_dashboard import DASHBOARD, expect, full_screenshot, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POLL = 1  # seconds between polls, for these tests
# A short heartbeat timeout: a heartbeat every 0.6 s, late after 1.2 s, lost after 3 s.
HEARTBEAT_TIMEOUT = 3
LIVE_TASKS = {
    "default": {**BROWSER_TASKS["default"], "OPTIONS": {"heartbeat_timeout": HEARTBEAT_TIMEOUT}}
}
# How long a change may take to show: two poll intervals, and a second for the
# request and the swap on a busy machine.
TWO_POLLS_MS = 2 * POLL * 1000 + 1000


@pytest.fixture
def live_settings() -> Iterator[None]:
    """The live server polls every POLL seconds; it and the workers share LIVE_TASKS."""
    with override_settings(TASKS=LIVE_TASKS, DJANGO_TASKS_ADMIN={"POLL_SECONDS": POLL}):
        yield


def start_worker(workers: Workers) -> Any:
    worker = workers.start("--queue-name", "*", "--interval", "0.2", tasks=LIVE_TASKS)
    wait_until(lambda: DBWorker.objects.exists(), timeout=30, what="the worker to register")
    return worker


def set_visibility(page: Any, state: str) -> None:
    """Make the page hidden or visible, as a switch of tabs does."""
    page.evaluate(
        """state => {
            Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
            Object.defineProperty(document, "hidden", {value: state === "hidden", configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )


def test_a_failed_list_shows_a_new_failure_and_the_overview_counts_follow(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    workers: Workers,
    live_settings: None,
) -> None:
    start_worker(workers)
    log_in(page, live_server, django_user_model)
    overview = page.context.new_page()
    overview.goto(f"{live_server.url}{DASHBOARD}overview/")
    expect(overview.locator(".dt-card-failed .dt-card-n")).to_have_text("0")
    overview.evaluate("window.__noReload = true")

    # The list filtered to FAILED, opened while nothing runs: empty.
    page.goto(f"{live_server.url}{DASHBOARD}?status=FAILED")
    expect(page.locator("#dt-rows tr[data-status]")).to_have_count(0)
    expect(page.locator("#dt-results .dt-live-note")).to_have_text(
        f"Live: refreshing every {POLL} s"
    )
    page.evaluate("window.__noReload = true")

    result = browser_tasks.broken.enqueue(7)
    wait_until(
        lambda: DBTaskResult.objects.filter(pk=result.id, status=ResultStatus.FAILED).exists(),
        timeout=30,
        what="the task to fail",
    )
    row = page.locator(f"#dt-row-{result.id}")
    expect(row).to_have_attribute("data-status", "FAILED", timeout=TWO_POLLS_MS)
    expect(page.locator("#dt-pager")).to_contain_text("1 result on this page")
    expect(overview.locator(".dt-card-failed .dt-card-n")).to_have_text("1", timeout=TWO_POLLS_MS)
    expect(overview.locator(".dt-card-new .dt-card-n")).to_have_text("0")
    expect(overview.locator("#dt-overview")).to_contain_text("cannot process order 7")

    # And again: a second failure, the list and the counts follow.
    second = browser_tasks.broken.enqueue(8)
    wait_until(
        lambda: DBTaskResult.objects.filter(pk=second.id, status=ResultStatus.FAILED).exists(),
        timeout=30,
        what="the second task to fail",
    )
    expect(page.locator(f"#dt-row-{second.id}")).to_be_visible(timeout=TWO_POLLS_MS)
    expect(page.locator("#dt-rows tr[data-status=FAILED]")).to_have_count(2)
    expect(overview.locator(".dt-card-failed .dt-card-n")).to_have_text("2", timeout=TWO_POLLS_MS)
    assert page.evaluate("window.__noReload") is True
    assert overview.evaluate("window.__noReload") is True


def test_the_live_note_says_paused_while_the_tab_is_hidden(
    page: Any, live_server: Any, django_user_model: Any, db_tasks: None, live_settings: None
) -> None:
    log_in(page, live_server, django_user_model)
    page.goto(f"{live_server.url}{DASHBOARD}")
    note = page.locator("#dt-results .dt-live-note")
    expect(note).to_have_text(f"Live: refreshing every {POLL} s")
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "fp=" in request.url else None)

    set_visibility(page, "hidden")
    expect(note).to_have_text("Live: paused while this tab is hidden")
    expect(note).to_have_attribute("data-dt-live", "paused")
    time.sleep(0.5)  # a poll already under way may still finish
    polls.clear()
    result = test_tasks.noop_task.enqueue()
    time.sleep(3 * POLL)  # hidden for three intervals: no poll, the row does not show
    assert polls == []
    expect(page.locator(f"#dt-row-{result.id}")).to_have_count(0)

    set_visibility(page, "visible")
    expect(note).to_have_text(f"Live: refreshing every {POLL} s")
    expect(page.locator(f"#dt-row-{result.id}")).to_be_visible(timeout=TWO_POLLS_MS)


def test_the_live_note_says_when_polls_fail(
    page: Any, live_server: Any, django_user_model: Any, db_tasks: None, live_settings: None
) -> None:
    log_in(page, live_server, django_user_model)
    note = page.locator("#dt-overview .dt-live-note")
    expect(note).to_have_text(f"Live: refreshing every {POLL} s")
    # The server stops answering the polls: the note says so, then recovers.
    page.route("**/overview/?fp=*", lambda route: route.abort())
    expect(note).to_have_text("Live: the server did not answer; trying again")
    expect(note).to_have_attribute("data-dt-live", "error")
    page.unroute("**/overview/?fp=*")
    expect(note).to_have_text(f"Live: refreshing every {POLL} s", timeout=TWO_POLLS_MS)


def test_later_pages_say_live_is_off(
    page: Any, live_server: Any, django_user_model: Any, db_tasks: None, live_settings: None
) -> None:
    for _ in range(3):
        test_tasks.noop_task.enqueue()
    log_in(page, live_server, django_user_model)
    page.goto(f"{live_server.url}{DASHBOARD}?per_page=2")
    page.click("a[rel=next]")
    note = page.locator("#dt-results .dt-live-note")
    expect(note).to_contain_text("Live updates are off on later pages")
    expect(note).to_have_attribute("data-dt-live", "off")
    set_visibility(page, "hidden")
    expect(note).to_have_attribute("data-dt-live", "off")  # off, not "paused"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_workers_page_shows_current_tasks_then_a_killed_worker_late_then_lost(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    workers: Workers,
    live_settings: None,
    screenshot_dir: Path,
    scheme: str,
) -> None:
    page.emulate_media(color_scheme=scheme)
    worker = start_worker(workers)
    long = test_tasks.sleep_task.enqueue(60)
    wait_until(
        lambda: DBTaskResult.objects.filter(pk=long.id, status=ResultStatus.RUNNING).exists(),
        timeout=30,
        what="the worker to start the task",
    )
    wait_until(
        lambda: DBWorker.objects.filter(rss_bytes__isnull=False).exists(),
        timeout=10,
        what="a heartbeat with the worker's memory",
    )
    row_model = DBWorker.objects.get()
    log_in(page, live_server, django_user_model)
    page.click(".dt-workers-link")
    page.wait_for_url(f"**{DASHBOARD}workers/")
    row = page.locator(f"#dt-worker-{row_model.pk}")
    expect(row).to_contain_text(f"{row_model.host}:{worker.pid}")
    expect(row).to_have_attribute("data-state", "ok")
    expect(row.locator(".dt-worker-queues")).to_have_text("*")
    task = row.locator(".dt-current-task")
    expect(task).to_contain_text("sleep_task")
    expect(task.locator("a")).to_have_attribute("href", f"{DASHBOARD}{long.id}/")
    expect(row.locator(".dt-memory")).to_contain_text("MB")
    # The run time moves without a reload (the region re-renders at each poll).
    first = task.locator(".dt-running-for").inner_text()
    expect(task.locator(".dt-running-for")).not_to_have_text(first, timeout=TWO_POLLS_MS)
    full_screenshot(page, screenshot_dir / f"workers-{scheme}.png")

    # Killed: no more heartbeats.  Late after two intervals, lost after the timeout.
    page.evaluate("window.__noReload = true")
    worker.send_signal(signal.SIGKILL)
    expect(row).to_have_attribute("data-state", "late", timeout=1200 + TWO_POLLS_MS)
    expect(row.locator(".dt-worker-state")).to_have_text("late")
    expect(page.locator(".dt-workers-late")).to_contain_text("heartbeat is late")
    expect(row).to_have_attribute("data-state", "lost", timeout=3000 + TWO_POLLS_MS)
    assert page.evaluate("window.__noReload") is True
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390


def test_the_detail_page_fits_a_390_px_screen(
    browser: Any, live_server: Any, django_user_model: Any, workers: Workers, db_tasks: None
) -> None:
    failed = browser_tasks.broken.enqueue(7)
    waiting = browser_tasks.sync_inventory.enqueue("north")
    workers.start("--queue-name", "*", "--interval", "0.2")

    def done() -> bool:
        failed_row = DBTaskResult.objects.get(pk=failed.id)
        waiting_row = DBTaskResult.objects.get(pk=waiting.id)
        return failed_row.status == ResultStatus.FAILED and len(waiting_row.attempts) == 1

    wait_until(done, timeout=60, what="a failure and a failed attempt waiting to retry")
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    page = context.new_page()
    try:
        log_in(page, live_server, django_user_model)
        for result in (failed, waiting):
            page.goto(f"{live_server.url}{DASHBOARD}{result.id}/")
            expect(page.locator(".dt-exc-type").first).to_be_visible()
            for summary in page.locator("summary").all():
                summary.click()
            width = page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 390, (result.id, width)
        expect(page.locator(".dt-next-attempt")).to_contain_text("next attempt in 1 h 59 m")
        for path in ("", "overview/", "workers/"):
            page.goto(f"{live_server.url}{DASHBOARD}{path}")
            width = page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 390, (path, width)
    finally:
        context.close()
