"""The Charts page in real Chromium: bars a real db_worker's runs fill, live, light and dark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from tests import tasks as test_tasks
from tests.worker_helpers import Workers, wait_until

from . import tasks as browser_tasks
from .test_dashboard import DASHBOARD, expect, full_screenshot, log_in
from .test_live import TWO_POLLS_MS, live_settings, start_worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["live_settings"]  # the fixture, used by name


def finished(count: int) -> None:
    wait_until(
        lambda: (
            DBTaskResult.objects.filter(
                status__in=[ResultStatus.COMPLETE, ResultStatus.FAILED]
            ).count()
            >= count
        ),
        timeout=30,
        what=f"{count} tasks to finish",
    )


def bar_sums(page: Any, chart: str) -> tuple[int, int]:
    """The completed and failed tasks of all the chart's bars, as drawn."""
    sums = page.evaluate(
        """chart => [...document.querySelectorAll(`#dt-chart-${chart} .dt-bar`)].reduce(
            (s, bar) => [s[0] + +bar.dataset.completed, s[1] + +bar.dataset.failed], [0, 0])""",
        chart,
    )
    return sums[0], sums[1]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.usefixtures("live_settings")
def test_charts_fill_from_a_real_worker_and_follow_new_runs(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    workers: Workers,
    screenshot_dir: Path,
    scheme: str,
) -> None:
    page.emulate_media(color_scheme=scheme)
    start_worker(workers)
    for _ in range(4):
        test_tasks.calculate_meaning_of_life.enqueue()
    browser_tasks.broken.using(queue_name="reports").enqueue(7)
    finished(5)

    log_in(page, live_server, django_user_model)
    page.click(f'.dt-tabs a[href="{DASHBOARD}charts/"]')
    page.wait_for_url(f"**{DASHBOARD}charts/")
    hour = page.locator("#dt-chart-hour")
    # The runs' bars: the current minute's, or the one before if a minute just turned.
    assert bar_sums(page, "hour") == (4, 1)
    expect(hour.locator(".dt-chart-summary")).to_contain_text("4 completed")
    assert bar_sums(page, "day") == (4, 1)

    # Light and dark draw their own colours (the admin's theme follows the system's).
    ok_fill = hour.locator(".dt-bar-ok").first.evaluate("e => getComputedStyle(e).fill")
    expected = "rgb(47, 138, 76)" if scheme == "light" else "rgb(92, 196, 127)"
    assert ok_fill == expected, ok_fill

    # New runs show without a reload.
    page.evaluate("window.__noReload = true")
    for _ in range(3):
        test_tasks.calculate_meaning_of_life.enqueue()
    finished(8)
    expect(hour.locator(".dt-chart-summary")).to_contain_text("7 completed", timeout=TWO_POLLS_MS)
    assert bar_sums(page, "hour") == (7, 1)
    assert page.evaluate("window.__noReload") is True
    full_screenshot(page, screenshot_dir / f"charts-{scheme}.png")

    # One queue's charts: only its runs.
    page.click('.dt-chart-picker a:text-is("reports")')
    page.wait_for_url("**queue=reports")
    expect(page.locator("#dt-chart-hour .dt-chart-summary")).to_contain_text("0 completed")
    assert bar_sums(page, "hour") == (0, 1)

    # A phone: the charts shrink to the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    box = page.locator("#dt-chart-hour svg").bounding_box()
    assert box is not None and box["width"] <= 390
