"""Settings for db_worker subprocesses started by the tests: tests.settings + a DatabaseBackend.

The subprocess gets the test database's name in DJANGO_TASKS_TEST_DB_NAME (see
tests.settings) and, optionally, its TASKS as JSON in DJANGO_TASKS_WORKER_TASKS.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.settings import *  # noqa: F403

WORKER_TASKS: dict[str, Any] = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": [],
        "ENQUEUE_ON_COMMIT": False,
    },
    "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": []},
}

TASKS = json.loads(os.environ.get("DJANGO_TASKS_WORKER_TASKS") or "null") or WORKER_TASKS
