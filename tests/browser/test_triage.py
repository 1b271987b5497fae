"""Failure triage in real Chromium: groups on the overview, their list, retry this group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from tests import tasks as test_tasks
from tests.worker_helpers import Workers, wait_until

from . import tasks as browser_tasks
from .test_dashboard import DASHBOARD, expect, full_screenshot, log_in, unfinished

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BROKEN = "tests.browser.tasks.broken"
FLAKY = "tests.browser.tasks.flaky"

# The relative luminance (0 black .. 1 white) of a computed CSS colour "rgb(r, g, b)".
LUMINANCE_JS = """([selector, property]) => {
  const value = getComputedStyle(document.querySelector(selector))[property];
  const [r, g, b] = value.match(/[\\d.]+/g).slice(0, 3).map(Number).map((c) => {
    c /= 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_overview_groups_failures_and_links_to_them_then_retries_one_group(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    workers: Workers,
    db_tasks: None,
    tmp_path: Path,
    screenshot_dir: Path,
    scheme: str,
) -> None:
    page.emulate_media(color_scheme=scheme)
    broken = [browser_tasks.broken.enqueue(order).id for order in (11, 12, 13)]
    flaky = browser_tasks.flaky.enqueue(str(tmp_path / "flaky-marker")).id
    test_tasks.echo.enqueue(1)
    workers.start("--queue-name", "*", "--interval", "0.2")
    wait_until(lambda: unfinished() == 0, timeout=60, what="the worker to run the tasks")
    assert DBTaskResult.objects.filter(status=ResultStatus.FAILED).count() == 4

    log_in(page, live_server, django_user_model)
    groups = page.locator("#dt-triage tr.dt-triage-group")
    expect(groups).to_have_count(2)
    group = groups.filter(has_text=BROKEN)
    expect(group.locator(".dt-exc-type")).to_have_text("RuntimeError")
    expect(group.locator(".dt-triage-pattern")).to_have_text("cannot process order <n>")
    expect(group.locator(".dt-triage-link")).to_have_text("3")
    expect(page.locator(".dt-triage-scope")).to_contain_text("The 4 failures of the last 24 hours")
    # Readable in this colour scheme: light text on a dark page, or dark on light.
    text = page.evaluate(LUMINANCE_JS, [".dt-triage-pattern", "color"])
    background = page.evaluate(LUMINANCE_JS, ["body", "backgroundColor"])
    if scheme == "dark":
        assert background < 0.2 < text, (background, text)
    else:
        assert text < 0.2 < background, (text, background)
    full_screenshot(page, screenshot_dir / f"triage-{scheme}.png")

    # The group's link: the results list filtered to exactly its failures.
    group.locator(".dt-triage-list").click()
    page.wait_for_url("**exception=builtins.RuntimeError**")
    rows = page.locator("#dt-rows tr")
    expect(rows).to_have_count(3)
    for result_id in broken:
        expect(page.locator(f"#dt-row-{result_id}")).to_have_attribute("data-status", "FAILED")
    expect(page.locator("#id_exception")).to_have_value("builtins.RuntimeError")
    expect(page.locator("#id_task_path")).to_have_value(BROKEN)
    # The form shows the group's window, so submitting it again keeps the same rows.
    since = page.locator("input[name=finished_after]").input_value()
    assert since, "the window's start is not in the filter form"
    page.evaluate(
        "window.__swapped = false;"
        " document.body.addEventListener('htmx:afterSwap', () => { window.__swapped = true; })"
    )
    page.click(".dt-filters button[type=submit]")
    page.wait_for_function("window.__swapped === true")
    assert "finished_after=" in page.url
    expect(rows).to_have_count(3)
    assert page.locator("input[name=finished_after]").input_value() == since

    # Retry the flaky group: the "retry all matching" preview, then the POST; it recovers.
    page.goto(f"{live_server.url}{DASHBOARD}overview/")
    flaky_group = groups.filter(has_text=FLAKY)
    flaky_group.locator(".dt-triage-retry").click()
    expect(page.locator(".dt-preview-count")).to_contain_text(
        "1 failed result matches and would be retried."
    )
    page.locator("form button[type=submit]", has_text="Retry 1 result").click()
    expect(page.locator(".messagelist")).to_contain_text("Retried 1 failed result.")
    wait_until(
        lambda: DBTaskResult.objects.get(pk=flaky).status == ResultStatus.COMPLETE,
        timeout=30,
        what="the worker to run the retried task",
    )
    assert set(
        DBTaskResult.objects.filter(status=ResultStatus.FAILED).values_list("pk", flat=True)
    ) == {DBTaskResult.objects.get(pk=b).pk for b in broken}

    # Live: a new failure joins its group without a reload.
    page.goto(f"{live_server.url}{DASHBOARD}overview/")
    expect(groups).to_have_count(1)
    page.evaluate("window.__noReload = true")
    browser_tasks.broken.enqueue(14)
    expect(group.locator(".dt-triage-link")).to_have_text("4", timeout=30_000)
    assert page.evaluate("window.__noReload") is True

    # On a phone: the page does not scroll sideways (the table scrolls in its box).
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
