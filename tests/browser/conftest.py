"""Real Chromium (Debian's package, driven by Playwright) against a live server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings

from tests.worker_helpers import Workers

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"

BROWSER_TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": [],
        "ENQUEUE_ON_COMMIT": False,
    }
}


def chromium_path() -> str:
    path = os.environ.get("DJANGO_TASKS_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    return path


@pytest.fixture
def browser(django_db_setup: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread, which
    # Django takes for async code: allow the ORM here, for this test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()
        # While Playwright's loop runs, Django keeps this thread's connections apart
        # (asgiref's Local): close them now, or they outlive the test database.
        connections.close_all()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def db_tasks() -> Iterator[None]:
    """The test process (and its live server thread) enqueue with the DatabaseBackend."""
    with override_settings(TASKS=BROWSER_TASKS):
        yield


@pytest.fixture
def workers(transactional_db: None) -> Iterator[Workers]:
    started = Workers()
    yield started
    started.close()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where the tests save their screenshots: the README's only with
    DJANGO_TASKS_SCREENSHOTS=1 (`make screenshots`), so a test run leaves the tree clean."""
    if os.environ.get("DJANGO_TASKS_SCREENSHOTS") != "1":
        return tmp_path
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
