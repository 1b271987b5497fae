"""Fill the results table with many realistic rows, fast (benchmarks/dashboard.py and the plan tests).

The mix the dashboard issue was measured on: 90 % COMPLETE, 5 % FAILED (with a
traceback; three exception classes, one of them rare), 3 % NEW, 1 % RUNNING (and the last 1 % COMPLETE again), 5 queues,
20 task paths, enqueued over the last 30 days.  PostgreSQL gets the rows through
COPY (psycopg 3's ``cursor.copy``), SQLite through ``executemany`` in large
transactions.  The rows bypass the ORM: tests that need rows made the way
production makes them use the API instead; these only give the planner a big table.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from django_tasks import django_api
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.services import CANCELLED_EXC_TYPE

QUEUES = ["default", "emails", "reports", "billing", "search"]
TASK_PATHS = [f"shop.tasks.job_{i:02d}" for i in range(20)]
DAYS = 30
# An argument that occurs in exactly one row: what a search for "one order id" finds.
NEEDLE = "order-7f3c9a1e"

COLUMNS = [
    "id",
    "status",
    "enqueued_at",
    "started_at",
    "finished_at",
    "args_kwargs",
    "priority",
    "task_path",
    "queue_name",
    "backend_name",
    "run_after",
    "return_value",
    "exception_data",
    "worker_id",
    "attempts",
    "api",
    "max_attempts",
    "time_limit",
    "unique_key",
]

_TRACEBACK = (
    "Traceback (most recent call last):\n"
    + "".join(
        f'  File "/srv/app/shop/tasks/module_{i}.py", line {10 + i}, in step_{i}\n'
        f"    result = step_{i + 1}(order, attempt=attempt)\n"
        for i in range(12)
    )
    + "ValueError: payment provider refused the charge\n"
)


def _status(r: float) -> str:
    if r < 0.90:
        return "COMPLETE"
    if r < 0.95:
        return "FAILED"
    if r < 0.98:
        return "NEW"
    if r < 0.99:
        return "RUNNING"
    return "COMPLETE"


# Exception classes of the failures (the failure triage's groups): a rare one (about
# one failure in a thousand), a common one, and the rest ValueError.  Chosen by the row's
# number, so the random values (and every other column) stay what they were.
RARE_EXC_TYPE = "shop.errors.InventoryDrift"
COMMON_EXC_TYPE = "shop.errors.PaymentDeclined"


def _failure(n: int, order: str) -> tuple[str, str]:
    if n % 997 == 0:
        return RARE_EXC_TYPE, f"stock of item {n % 500} is off by {n % 7 + 1}"
    if n % 3 == 0:
        return COMMON_EXC_TYPE, f"{order}: card declined (code {n % 50})"
    return "builtins.ValueError", "payment provider refused the charge"


def generate(rows: int, *, seed: int = 14, now: datetime | None = None) -> Iterator[list[Any]]:
    """Yield ``rows`` rows as lists of column values, in ``COLUMNS`` order."""
    rng = random.Random(seed)
    now = now or timezone.now()
    worker = uuid.UUID(int=rng.getrandbits(128), version=4)
    needle_at = rows // 2
    for n in range(rows):
        status = _status(rng.random())
        if status in ("NEW", "RUNNING"):
            # Waiting and running tasks are recent.
            enqueued_at = now - timedelta(seconds=rng.uniform(0, 3600))
        else:
            enqueued_at = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
        started_at = finished_at = run_after = exception = None
        if status != "NEW":
            started_at = enqueued_at + timedelta(seconds=rng.uniform(0, 5))
        if status in ("COMPLETE", "FAILED"):
            assert started_at is not None
            finished_at = started_at + timedelta(seconds=rng.uniform(0.01, 30))
        elif status == "NEW" and rng.random() < 0.2:
            run_after = now + timedelta(minutes=rng.uniform(1, 600))
        order = NEEDLE if n == needle_at else f"order-{rng.getrandbits(32):08x}"
        args = {"args": [order, rng.randint(1, 10_000)], "kwargs": {"notify": rng.random() < 0.5}}
        if status == "FAILED":
            cancelled = rng.random() < 0.02
            exc_type, message = _failure(n, order)
            exception = {
                "exc_type": CANCELLED_EXC_TYPE if cancelled else exc_type,
                "exc_args": ["cancelled"] if cancelled else [message],
                "exc_traceback": "" if cancelled else _TRACEBACK,
            }
        yield [
            uuid.UUID(int=rng.getrandbits(128), version=4),
            status,
            enqueued_at,
            started_at,
            finished_at,
            json.dumps(args),
            rng.choice([0, 0, 0, 0, 0, 0, 5, -5, 10, 100]),
            rng.choice(TASK_PATHS),
            rng.choice(QUEUES),
            "default",
            run_after,
            json.dumps(None) if status != "COMPLETE" else json.dumps({"ok": True}),
            json.dumps(exception) if exception else None,
            worker if started_at else None,
            "[]",
            django_api.DJANGO if rng.random() < 0.02 else django_api.OURS,
            1,
            None,
            None,
        ]


def seed_results(rows: int, *, seed: int = 14, using: str = "default") -> None:
    """Add ``rows`` generated rows to the results table, then refresh the planner's statistics."""
    table = DBTaskResult._meta.db_table
    conn = connections[using]
    with transaction.atomic(using=using), conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            sql = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN"
            with cursor.cursor.copy(sql) as copy:
                for row in generate(rows, seed=seed):
                    copy.write_row(row)
        else:
            sql = (
                f"INSERT INTO {table} ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
            )
            batch: list[list[Any]] = []
            for row in generate(rows, seed=seed):
                batch.append(_sqlite_row(row))
                if len(batch) == 20_000:
                    cursor.executemany(sql, batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
    with conn.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def _sqlite_row(row: list[Any]) -> list[Any]:
    """SQLite stores UUIDs as 32 hex digits and datetimes as naive UTC text."""
    return [
        value.hex
        if isinstance(value, uuid.UUID)
        else value.replace(tzinfo=None).isoformat(" ")
        if isinstance(value, datetime)
        else value
        for value in row
    ]
