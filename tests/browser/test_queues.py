"""The Queues page in Chromium, light and dark: pause a queue a real db_worker serves, resume it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_tasks.backends.database.models import DBQueue, DBTaskResult, DBWorker
from django_tasks.task import ResultStatus
from tests import tasks as test_tasks
from tests.worker_helpers import Workers, wait_until

from .conftest import BROWSER_TASKS
from .test_dashboard import DASHBOARD, expect, full_screenshot, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POLL = 1  # seconds between the page's polls
INTERVAL = 0.5  # the worker's poll interval
QUEUE_TASKS = {"default": {**BROWSER_TASKS["default"], "QUEUES": ["default", "queue-1"]}}
# The page's text colour of each theme (the admin's --body-fg).
BODY_FG = {"light": "rgb(51, 51, 51)", "dark": "rgb(238, 238, 238)"}


@pytest.fixture
def queue_settings() -> Iterator[None]:
    with override_settings(TASKS=QUEUE_TASKS, DJANGO_TASKS_ADMIN={"POLL_SECONDS": POLL}):
        yield


def status(result: Any) -> str:
    return str(DBTaskResult.objects.get(pk=result.id).status)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pause_a_queue_from_the_page_then_resume_it(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    workers: Workers,
    queue_settings: None,
    screenshot_dir: Path,
    scheme: str,
) -> None:
    page.emulate_media(color_scheme=scheme)
    workers.start("--queue-name", "*", "--interval", str(INTERVAL), tasks=QUEUE_TASKS)
    wait_until(lambda: DBWorker.objects.exists(), timeout=30, what="the worker to register")
    log_in(page, live_server, django_user_model)
    page.click(f'.dt-tabs a[href="{DASHBOARD}queues/"]')
    page.wait_for_url(f"**{DASHBOARD}queues/")
    row = page.locator('tr[data-queue="queue-1"][data-backend="default"]')
    expect(row).to_have_attribute("data-paused", "no")

    row.get_by_role("button", name="Pause").click()
    page.wait_for_url(f"**{DASHBOARD}queues/")
    expect(page.locator(".messagelist")).to_contain_text("Paused queue queue-1")
    expect(row).to_have_attribute("data-paused", "yes")
    badge = row.locator(".dt-paused").first
    expect(badge).to_have_text("paused")
    assert badge.evaluate("e => getComputedStyle(e).color") == BODY_FG[scheme]
    assert DBQueue.objects.get(name="queue-1").paused

    # The worker, polling every INTERVAL, skips the paused queue but runs the
    # other; the page shows the task waiting, live.
    page.wait_for_timeout(INTERVAL * 1000 + 300)  # the worker's paused set is fresh
    held = test_tasks.noop_task.using(queue_name="queue-1").enqueue()
    other = test_tasks.noop_task.using(queue_name="default").enqueue()
    wait_until(lambda: status(other) == ResultStatus.COMPLETE, timeout=30, what="default's task")
    expect(row.locator(".dt-queue-waiting")).to_have_text("1", timeout=2 * POLL * 1000 + 1000)
    assert status(held) == ResultStatus.NEW
    full_screenshot(page, screenshot_dir / f"queues-{scheme}.png")

    # The results list and the detail page say so too.
    page.goto(f"{live_server.url}{DASHBOARD}{held.id}/")
    expect(page.locator(".dt-fields .dt-paused")).to_have_text("paused")
    page.goto(f"{live_server.url}{DASHBOARD}queues/")

    row.get_by_role("button", name="Resume").click()
    page.wait_for_url(f"**{DASHBOARD}queues/")
    expect(page.locator(".messagelist")).to_contain_text("Resumed queue queue-1")
    expect(row).to_have_attribute("data-paused", "no")
    wait_until(lambda: status(held) == ResultStatus.COMPLETE, timeout=INTERVAL + 3, what="resume")
    expect(row.locator(".dt-queue-waiting")).to_have_text("0", timeout=2 * POLL * 1000 + 1000)

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
