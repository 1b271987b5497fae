"""Settings for benchmarks/worker.py and the workers it starts.

BENCH_DB=sqlite|postgres picks the database, BENCH_DB_NAME its name (a file path
for SQLite).  SQLite runs in WAL mode with synchronous=NORMAL, the configuration
recommended for a worker; PostgreSQL uses the PG* environment (scripts/pg.sh env).
"""

from __future__ import annotations

import os
from typing import Any

from tests.settings import *  # noqa: F403

_name = os.environ.get("BENCH_DB_NAME", "django_tasks_bench")

_databases: dict[str, Any]
if os.environ.get("BENCH_DB", "sqlite") == "postgres":
    _databases = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _name,
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
else:
    _databases = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _name,
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "EXCLUSIVE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            },
        }
    }

DATABASES = _databases

_tasks: dict[str, Any] = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": [],
        "ENQUEUE_ON_COMMIT": False,
    }
}
TASKS = _tasks
