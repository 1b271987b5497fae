"""Shared pytest fixtures (keep small: most tests use override_settings)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_tasks import tasks
from tests.worker_helpers import Workers
from tests.worker_settings import WORKER_TASKS

# ENQUEUE_ON_COMMIT off: a plain pytest function (no django_db mark) may not touch the
# database, and Django's on-commit machinery asks the connection for its autocommit state.
DUMMY_TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.dummy.DummyBackend",
        "ENQUEUE_ON_COMMIT": False,
    }
}


@pytest.fixture
def dummy_backend() -> Iterator[Any]:
    """Make a fresh DummyBackend the default backend (QUEUES omitted: only "default")."""
    with override_settings(TASKS=DUMMY_TASKS):
        yield tasks["default"]


@pytest.fixture
def worker_backend() -> Iterator[None]:
    """Make the DatabaseBackend that worker subprocesses use the default backend."""
    with override_settings(TASKS=WORKER_TASKS):
        yield


@pytest.fixture
def workers() -> Iterator[Workers]:
    """Start db_worker subprocesses; kill any still running at the end."""
    started = Workers()
    yield started
    started.close()


@pytest.fixture
def runs_file(tmp_path: Path) -> str:
    """An append-only file in which the test tasks record each run."""
    return str(tmp_path / "runs.txt")
