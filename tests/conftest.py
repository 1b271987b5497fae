"""Shared pytest fixtures (keep small: most tests use override_settings)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from django_tasks import tasks

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
