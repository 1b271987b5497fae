"""Does the libpq write path still beat psycopg 3 with Django's server_side_binding?

    eval "$(scripts/pg.sh env)"     # a durable server: DJANGO_TASKS_PG_FAST=0 scripts/pg.sh start
    .venvs/py311-dj52/bin/python benchmarks/write_paths.py [--rounds 20] [--batch 200]

The two writes on the hot path run in alternating batches, each on its own and
(for the INSERT) inside a whole ``enqueue()``: ``writes.insert_task`` (the
INSERT, with its NOTIFY) and ``writes.update_outcome`` (the worker's outcome).
Two connections to the same database:

- ``libpq``: as shipped, on a connection with Django's default client-side
  binding: named prepared statements sent through libpq, the INSERT sent ahead
  of building the TaskResult;
- ``cursor (server-side binding)``: the same statements through Django's
  cursor on a connection with ``OPTIONS["server_side_binding"] = True``, where
  psycopg prepares a statement itself once it has run ``prepare_threshold``
  (5) times.  A no-op execute wrapper is what sends them through the cursor (the
  write path takes the cursor whenever queries are watched); it costs one
  Python call per statement.

- ``psycopg Cursor``: the same statements on the first connection through
  psycopg's own API, ``psycopg.Cursor(connection).execute(sql, params)``
  (server-side binding; psycopg prepares a statement after ``prepare_threshold``
  runs), in place of the libpq sender;
- ``cursor (client-side binding)``: through Django's cursor on the first
  connection (the default binding: the values are written into the SQL text,
  which PostgreSQL parses and plans every time).

Each rate pools its batches; each other column is also shown as a ratio to libpq's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROUTE = ["default"]


class Router:
    """Send the task table's reads and writes to ``ROUTE[0]``."""

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return ROUTE[0]

    db_for_read = db_for_write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()

    from benchmarks.worker import create_pg_database

    name = "django_tasks_bench"
    os.environ.update(BENCH_DB="postgres", BENCH_DB_NAME=name)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    create_pg_database(name)
    from django.conf import settings

    default = settings.DATABASES["default"]
    settings.DATABASES["ssb"] = {
        **default,
        "OPTIONS": {**default.get("OPTIONS", {}), "server_side_binding": True},
    }
    settings.DATABASE_ROUTERS = ["benchmarks.write_paths.Router"]
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from django_tasks.backends.database.models import DBTaskResult, DBWorker
    from django_tasks.backends.database.outcomes import Outcome
    from django_tasks.backends.database.writes import NewRow, insert_task, update_outcome
    from tests.tasks import noop_task

    call_command("migrate", verbosity=0)
    DBTaskResult.objects.all().delete()
    DBWorker.objects.all().delete()
    connections["ssb"].execute_wrappers.append(_through_cursor)

    def enqueue_on(alias: str) -> Callable[[], Any]:
        def enqueue() -> Any:
            ROUTE[0] = alias
            return noop_task.enqueue()

        return enqueue

    def insert_on(alias: str) -> Callable[[], Any]:
        connection = connections[alias]

        def insert() -> Any:
            row = NewRow(
                row_id=uuid.uuid4(),
                enqueued_at=timezone.now(),
                args_kwargs_json='{"args": [], "kwargs": {}}',
                priority=0,
                task_path=noop_task.module_path,
                queue_name="default",
                backend_name="default",
                run_after=None,
                api="django_tasks",
            )
            return insert_task(connection, row, in_transaction=False)()

        return insert

    rows = [noop_task.enqueue().db_result for _ in range(args.batch)]
    columns = Outcome.complete(None, started_at=timezone.now()).columns()

    def update_on(alias: str) -> Callable[[], Any]:
        connection = connections[alias]
        position = [0]

        def update() -> Any:
            row = rows[position[0] % len(rows)]
            position[0] += 1
            return update_outcome(connection, row.pk, columns, only_running=False)

        return update

    ways: dict[str, tuple[Callable[[], Any], ...]] = {
        "insert_task()": (
            insert_on("default"),
            insert_on("ssb"),
            _with_psycopg_api(insert_on("default")),
            _watched(insert_on("default")),
        ),
        "enqueue()": (
            enqueue_on("default"),
            enqueue_on("ssb"),
            _with_psycopg_api(enqueue_on("default")),
            _watched(enqueue_on("default")),
        ),
        "update_outcome()": (
            update_on("default"),
            update_on("ssb"),
            _with_psycopg_api(update_on("default")),
            _watched(update_on("default")),
        ),
    }
    for writes in ways.values():  # warm up: prepare on every connection
        for _ in range(20):
            for write in writes:
                write()
    heads = ["libpq", "cursor (server-side)", "psycopg Cursor", "cursor (client-side)"]
    print(f"{'statement':18}" + "".join(f"{head:>24}" for head in heads))
    for way, writes in ways.items():
        spent = [0.0] * len(writes)
        for _ in range(args.rounds):
            for index, write in enumerate(writes):
                began = time.perf_counter()
                for _ in range(args.batch):
                    write()
                spent[index] += time.perf_counter() - began
        rates = [args.rounds * args.batch / seconds for seconds in spent]
        cells = [f"{rates[0]:,.0f}/s"]
        cells += [f"{rate:,.0f}/s ({rate / rates[0]:.0%})" for rate in rates[1:]]
        print(f"{way:18}" + "".join(f"{cell:>24}" for cell in cells))
    ROUTE[0] = "default"


def _with_psycopg_api(write: Callable[[], Any]) -> Callable[[], Any]:
    """``write`` with the sender's libpq code swapped for psycopg's Cursor.execute."""
    import psycopg

    from django_tasks.backends.database.writes import sender

    def execute(connection: Any, sql: str, params: list[Any], **kwargs: Any) -> int:
        connection.ensure_connection()
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    def send(connection: Any, sql: str, params: list[Any], **kwargs: Any) -> Any:
        rowcount = execute(connection, sql, params)
        return lambda: rowcount

    def swapped() -> Any:
        real = sender.send, sender.execute
        sender.send, sender.execute = send, execute  # type: ignore[assignment]
        try:
            return write()
        finally:
            sender.send, sender.execute = real

    return swapped


def _watched(write: Callable[[], Any]) -> Callable[[], Any]:
    """``write`` with a no-op execute wrapper on the default connection (Django's cursor)."""
    from django.db import connections

    def watched() -> Any:
        with connections["default"].execute_wrapper(_through_cursor):
            return write()

    return watched


def _through_cursor(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    return execute(sql, params, many, context)


if __name__ == "__main__":
    main()
