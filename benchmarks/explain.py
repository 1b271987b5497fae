"""Seed a big DBTaskResult table and print the plans of the hot queries.

    eval "$(scripts/pg.sh env)"
    TEST_DB=postgres .venvs/py311-dj52/bin/python benchmarks/explain.py [--rows 100000]

Uses the database tests/settings.py selects (TEST_DB=postgres: the PG* variables;
otherwise a SQLite file), under the name --database (created on PostgreSQL if
missing, migrated, and its task table emptied first).  Prints EXPLAIN ANALYZE on
PostgreSQL, EXPLAIN QUERY PLAN on SQLite, for: the worker's claim query (one queue,
several queues, all queues), prune's dry-run count and batch selection, and the
dashboard's list queries.  --new-ratio sets the share of NEW rows (0.05: a healthy
queue; 0.9: a backlog).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

QUEUES = [("default", 0.6), ("emails", 0.25), ("reports", 0.15)]
TASK_PATHS = ["tests.tasks.noop_task", "tests.tasks.echo", "tests.tasks.calculate_meaning_of_life"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--new-ratio", type=float, default=0.05)
    parser.add_argument("--database", default="django_tasks_explain")
    parser.add_argument("--seed", type=int, default=14)
    return parser.parse_args()


def configure(database: str) -> None:
    import django
    from django.conf import settings

    if os.environ.get("TEST_DB") == "postgres":
        create_pg_database(database)
        settings.DATABASES["default"]["NAME"] = database
    else:
        settings.DATABASES["default"]["NAME"] = str(Path("/tmp") / f"{database}.sqlite3")
    settings.TASKS = {
        "default": {
            "BACKEND": "django_tasks.backends.database.DatabaseBackend",
            "QUEUES": [],
        }
    }
    django.setup()


def create_pg_database(name: str) -> None:
    import psycopg

    params: dict[str, Any] = {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", "postgres"),
        "dbname": "postgres",
        "autocommit": True,
    }
    if os.environ.get("PGPASSWORD"):
        params["password"] = os.environ["PGPASSWORD"]
    with psycopg.connect(**params) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def seed(rows: int, new_ratio: float, rng: random.Random) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from django_tasks.backends.database.models import DBTaskResult

    call_command("migrate", "django_tasks_database", verbosity=0)
    DBTaskResult.objects.all().delete()

    rest = 1 - new_ratio
    statuses = [
        ("NEW", new_ratio),
        ("RUNNING", 0.01 * rest),
        ("COMPLETE", 0.84 * rest),
        ("FAILED", 0.15 * rest),
    ]
    now = timezone.now()
    batch: list[DBTaskResult] = []
    started = time.perf_counter()
    for _ in range(rows):
        status = pick(rng, statuses)
        enqueued_at = now - timedelta(days=rng.uniform(0, 60))
        row = DBTaskResult(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            status=status,
            args_kwargs={"args": [rng.randint(0, 1000)], "kwargs": {}},
            priority=rng.choice([0, 0, 0, 0, 5, -5, 10, 100]),
            task_path=rng.choice(TASK_PATHS),
            queue_name=pick(rng, QUEUES),
            backend_name="default" if rng.random() < 0.95 else "other",
            run_after=None,
        )
        if status == "NEW":
            row.run_after = rng.choice(
                [None, None, now - timedelta(hours=1), now + timedelta(days=1)]
            )
        if status != "NEW":
            started_at = enqueued_at + timedelta(seconds=rng.uniform(0, 5))
            row.started_at = started_at
            row.worker_id = uuid.uuid4()
            if status in ("COMPLETE", "FAILED"):
                row.finished_at = started_at + timedelta(seconds=rng.uniform(0, 5))
        if status == "FAILED":
            row.exception_data = {
                "exc_type": "builtins.ValueError",
                "exc_args": ["boom"],
                "exc_traceback": "Traceback (most recent call last):\n...\nValueError: boom\n",
            }
        batch.append(row)
        if len(batch) == 5000:
            DBTaskResult.objects.bulk_create(batch)
            batch = []
    DBTaskResult.objects.bulk_create(batch)
    # auto_now_add overwrote enqueued_at: spread it again, cheaply, in SQL.
    table = DBTaskResult._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET enqueued_at = COALESCE(started_at - interval '1 second',"
                f" now() - random() * interval '60 days')"
            )
            cursor.execute(f"VACUUM ANALYZE {table}")
        else:
            cursor.execute(f"UPDATE {table} SET enqueued_at = COALESCE(started_at, enqueued_at)")
            cursor.execute("ANALYZE")
    counts = dict(DBTaskResult.objects.order_by().values_list("status").annotate(n=Count("pk")))
    print(
        f"Seeded {rows} rows in {time.perf_counter() - started:.1f}s on {connection.vendor}: {counts}"
    )


def explain(title: str, queryset: Any) -> None:
    from django.db import connection, transaction

    print(f"\n=== {title}")
    with transaction.atomic():
        print(str(queryset.query))
        print("---")
        if connection.vendor == "postgresql":
            print(queryset.explain(analyze=True, buffers=True))
        else:
            print(queryset.explain())
        transaction.set_rollback(True)


def main() -> None:
    args = parse_args()
    configure(args.database)
    rng = random.Random(args.seed)
    seed(args.rows, args.new_ratio, rng)

    from django_tasks.backends.database.models import DBTaskResult, prune_cutoffs

    ready = DBTaskResult.objects.ready().filter(backend_name="default")
    explain(
        "claim: one queue (db_worker --queue-name default)",
        ready.filter(queue_name__in=["default"]).select_for_update(skip_locked=True)[:10],
    )
    explain(
        "claim: two queues",
        ready.filter(queue_name__in=["default", "emails"]).select_for_update(skip_locked=True)[:10],
    )
    explain("claim: all queues (*)", ready.select_for_update(skip_locked=True)[:10])

    results = DBTaskResult.objects.filter(backend_name="default", queue_name__in=["default"])
    for days in (14, 55):
        # 14: a table never pruned (most rows qualify); 55: a daily prune (few do).
        explain(
            f"prune --dry-run --min-age-days {days}: the COUNT's selection",
            results.prunable(min_age_days=days).order_by().values("pk"),
        )
        complete_before, _ = prune_cutoffs(min_age_days=days)
        explain(
            f"prune --min-age-days {days}: one batch of ids (COMPLETE)",
            results.filter(status="COMPLETE", finished_at__lte=complete_before)
            .order_by("finished_at")
            .values_list("pk", "finished_at")[:1000],
        )

    explain("dashboard: newest first", DBTaskResult.objects.order_by("-enqueued_at")[:50])
    explain(
        "dashboard: failed, newest first",
        DBTaskResult.objects.filter(status="FAILED").order_by("-enqueued_at")[:50],
    )
    explain(
        "dashboard: failed, last finished first",
        DBTaskResult.objects.filter(status="FAILED").order_by("-finished_at")[:50],
    )
    explain(
        "dashboard: queue filter",
        DBTaskResult.objects.filter(queue_name="reports").order_by("-enqueued_at")[:50],
    )
    explain(
        "dashboard: task filter",
        DBTaskResult.objects.filter(task_path="tests.tasks.echo").order_by("-enqueued_at")[:50],
    )
    explain(
        "dashboard: running",
        DBTaskResult.objects.filter(status="RUNNING").order_by("-enqueued_at")[:50],
    )


if __name__ == "__main__":
    main()
