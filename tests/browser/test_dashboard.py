"""The dashboard in real Chromium, against a live server and a real db_worker."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks.utils import exception_to_dict
from tests import tasks as test_tasks
from tests.worker_helpers import Workers, wait_until

from . import tasks as browser_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
DASHBOARD = "/admin/django_tasks_database/dbtaskresult/"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def log_in(page: Any, live_server: Any, django_user_model: Any) -> None:
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    page.goto(f"{live_server.url}/admin/login/?next={DASHBOARD}overview/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{DASHBOARD}overview/")


def seed_old_results(count: int = 6) -> None:
    """Finished results from a month ago, for the prune form."""
    try:
        browser_tasks.broken.call(0)
    except RuntimeError as e:
        failure = dict(exception_to_dict(e))
    finished = timezone.now() - timedelta(days=30)
    for i in range(count):
        failed = i % 3 == 0
        row = DBTaskResult.objects.create(
            task_path="tests.browser.tasks.broken" if failed else "tests.tasks.echo",
            backend_name="default",
            queue_name="default",
            args_kwargs={"args": [i], "kwargs": {}},
            status=ResultStatus.FAILED if failed else ResultStatus.COMPLETE,
            started_at=finished - timedelta(seconds=1),
            finished_at=finished,
            return_value=None if failed else {"args": [i], "kwargs": {}},
            exception_data=failure if failed else None,
        )
        # enqueued_at is auto_now_add: backdate it afterwards.
        DBTaskResult.objects.filter(pk=row.pk).update(enqueued_at=finished - timedelta(seconds=3))


def full_screenshot(page: Any, path: Path) -> None:
    """The whole page, as one tall viewport (a full-page capture displaces the admin's sticky sidebar)."""
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": max(860, height)})
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1280, "height": 860})


def unfinished() -> int:
    return DBTaskResult.objects.filter(
        status__in=[ResultStatus.NEW, ResultStatus.RUNNING], run_after__isnull=True
    ).count()


def test_find_a_failure_read_its_traceback_and_retry_it(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    workers: Workers,
    db_tasks: None,
    tmp_path: Path,
    screenshot_dir: Path,
) -> None:
    marker = tmp_path / "flaky-marker"
    flaky = browser_tasks.flaky.enqueue(str(marker))
    browser_tasks.broken.enqueue(7)
    for i in range(4):
        test_tasks.echo.using(queue_name="emails").enqueue(i, user=f"user{i}@example.com")
    test_tasks.calculate_meaning_of_life.using(priority=10).enqueue()
    test_tasks.sleep_task.using(queue_name="reports").enqueue(0.5)
    test_tasks.noop_task.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
    seed_old_results()
    workers.start("--queue-name", "*", "--interval", "0.2")
    wait_until(lambda: unfinished() == 0, timeout=60, what="the worker to run the seeded tasks")

    log_in(page, live_server, django_user_model)
    expect(page.locator(".dt-card-failed .dt-card-n")).to_have_text("4")  # 2 new + 2 old
    expect(page.locator("text=Recent failures")).to_be_visible()
    expect(page.locator(".dt-module").filter(has_text="Workers")).to_contain_text("*")
    full_screenshot(page, screenshot_dir / "overview.png")

    page.click(".dt-tabs >> text=Results")
    page.wait_for_url(f"**{DASHBOARD}")
    expect(page.locator("#dt-rows tr").first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "list.png"))

    # Filter to failures: htmx swaps the table and pushes the filter into the URL.
    page.evaluate("window.__noReload = true")
    page.select_option("#id_status", "FAILED")
    page.click(".dt-filters button[type=submit]")
    page.wait_for_url("**status=FAILED**")
    expect(page.locator("#dt-rows tr[data-status=COMPLETE]")).to_have_count(0)
    expect(page.locator("#dt-rows tr[data-status=FAILED]")).to_have_count(4)
    assert page.evaluate("window.__noReload") is True

    # Open the flaky task's failure and its traceback.
    page.click(f"#dt-row-{flaky.id} a.dt-task")
    page.wait_for_url(f"**{DASHBOARD}{flaky.id}/")
    result = page.locator("#dt-result")
    expect(result).to_have_attribute("data-status", "FAILED")
    expect(page.locator(".dt-exc-line")).to_contain_text("builtins.ConnectionError")
    expect(page.locator(".dt-frame-project").first).to_contain_text("tests/browser/tasks.py")
    library = page.locator("details.dt-frames-lib").first
    library.locator("summary").click()
    expect(library.locator(".dt-frame-lib").first).to_be_visible()
    page.locator("summary", has_text="Plain traceback").click()
    expect(page.locator(".dt-tb-raw pre")).to_contain_text("Traceback (most recent call last)")
    full_screenshot(page, screenshot_dir / "detail.png")

    # Retry: same id, back to NEW, and the page follows it to COMPLETE without reloading.
    page.evaluate("window.__noReload = true")
    page.click("button.dt-retry")
    expect(page.locator(".messagelist")).to_contain_text("queued again")
    expect(result).to_have_attribute("data-status", "COMPLETE", timeout=30_000)
    assert page.evaluate("window.__noReload") is True
    expect(page.locator(".dt-return")).to_contain_text('"recovered"')
    expect(page.locator("text=Earlier attempts")).to_be_visible()
    # Finished, still polled (a retry would bring it back), answered 204 while unchanged.
    assert result.get_attribute("hx-get")
    row = DBTaskResult.objects.get(pk=flaky.id)
    assert row.status == ResultStatus.COMPLETE
    assert len(row.attempts) == 1
    full_screenshot(page, screenshot_dir / "detail-retried.png")


def test_list_rows_follow_a_running_task(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    workers: Workers,
    db_tasks: None,
) -> None:
    workers.start("--queue-name", "*", "--interval", "0.2")
    log_in(page, live_server, django_user_model)
    # Opened while nothing runs: the first page polls all the same.
    page.goto(f"{live_server.url}{DASHBOARD}")
    page.evaluate("window.__noReload = true")
    later = test_tasks.sleep_task.using(run_after=timezone.now() + timedelta(seconds=8))
    waiting = later.enqueue(1.5)
    row = page.locator(f"#dt-row-{waiting.id}")
    expect(row).to_have_attribute("data-status", "NEW", timeout=7_000)
    expect(row).to_have_attribute("data-status", "COMPLETE", timeout=30_000)
    assert page.evaluate("window.__noReload") is True
    expect(page.locator("#dt-rows")).not_to_have_attribute("hx-get", "")


def test_prune_dry_run_then_prune(
    page: Any, live_server: Any, django_user_model: Any, db_tasks: None
) -> None:
    seed_old_results(6)
    recent = DBTaskResult.objects.create(
        task_path="tests.tasks.noop_task",
        backend_name="default",
        args_kwargs={"args": [], "kwargs": {}},
        status=ResultStatus.COMPLETE,
        finished_at=timezone.now(),
    )
    log_in(page, live_server, django_user_model)
    page.click(".dt-tabs >> text=Prune")
    page.fill("#id_queue_name", "*")
    page.fill("#id_min_age_days", "14")
    page.click("button[name=preview]")
    expect(page.locator(".dt-preview-count")).to_have_text("6 task results would be deleted.")
    assert DBTaskResult.objects.count() == 7
    page.click("button.dt-danger")
    expect(page.locator(".messagelist")).to_contain_text("Deleted 6 task results.")
    assert list(DBTaskResult.objects.values_list("pk", flat=True)) == [recent.pk]


def test_a_result_waiting_to_retry_shows_its_attempt_and_history(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    workers: Workers,
    db_tasks: None,
) -> None:
    result = browser_tasks.sync_inventory.enqueue("north")
    workers.start("--queue-name", "*", "--interval", "0.2")

    def retried() -> bool:
        row = DBTaskResult.objects.get(pk=result.id)
        return row.status == ResultStatus.NEW and len(row.attempts) == 1

    wait_until(retried, timeout=60, what="the worker's first attempt to fail and be retried")
    log_in(page, live_server, django_user_model)

    # The list's "waiting to retry" filter finds it.
    page.goto(f"{live_server.url}{DASHBOARD}")
    page.select_option("#id_retrying", "yes")
    page.click(".dt-filters button[type=submit]")
    page.wait_for_url("**retrying=yes**")
    expect(page.locator("#dt-rows tr")).to_have_count(1)
    page.click(f"#dt-row-{result.id} a.dt-task")
    page.wait_for_url(f"**{DASHBOARD}{result.id}/")

    expect(page.locator(".dt-result-head .dt-attempt")).to_have_text("attempt 2 of 3")
    expect(page.locator(".dt-attempt-state")).to_have_text("(waiting to retry)")
    expect(page.locator(".dt-next-attempt")).to_contain_text("next attempt in 1 h 59 m at ")
    expect(page.locator("button.dt-cancel")).to_be_visible()
    attempt = page.locator(".dt-attempts > li")
    expect(attempt).to_have_count(1)
    summary = attempt.locator("details > summary").first
    expect(summary).to_contain_text("#1")
    expect(summary).to_contain_text("builtins.TimeoutError")
    expect(summary).to_contain_text("warehouse north did not answer")
    summary.click()
    expect(attempt.locator(".dt-frame-project").first).to_contain_text("tests/browser/tasks.py")
