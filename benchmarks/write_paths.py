"""Does the libpq write path still beat psycopg 3 with Django's server_side_binding?

    eval "$(scripts/pg.sh env)"     # a durable server: DJANGO_TASKS_PG_FAST=0 scripts/pg.sh start
    .venvs/py311-dj52/bin/python benchmarks/write_paths.py [--rounds 20] [--batch 200]

The two writes on the hot path (``writes.insert_task`` behind ``enqueue()``, and
``writes.update_outcome`` behind the worker's outcome) run in alternating
batches on two connections to the same database:

- ``libpq``: as shipped, on a connection with Django's default client-side
  binding: named prepared statements sent through libpq, the INSERT sent ahead
  of building the TaskResult;
- ``cursor (server-side binding)``: the same statements through Django's
  cursor on a connection with ``OPTIONS["server_side_binding"] = True``, where
  psycopg prepares a statement itself once it has run ``prepare_threshold``
  (5) times.  A no-op execute wrapper is what sends them through the cursor (the
  write path takes the cursor whenever queries are watched); it costs one
  Python call per statement.

- ``psycopg prepare=True``: the same statements on the first connection through
  psycopg's own API, ``psycopg.Cursor(...).execute(sql, params, prepare=True)``
  (server-side binding, prepared on first use), in place of the libpq sender.

Each rate pools its batches; each other column is also shown as a ratio to libpq's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
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
    from django_tasks.backends.database.writes import update_outcome
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
        "enqueue() INSERT": (
            enqueue_on("default"),
            enqueue_on("ssb"),
            _with_psycopg_api(enqueue_on("default")),
        ),
        "outcome UPDATE": (
            update_on("default"),
            update_on("ssb"),
            _with_psycopg_api(update_on("default")),
        ),
    }
    for writes in ways.values():  # warm up: prepare on every connection
        for _ in range(20):
            for write in writes:
                write()
    heads = ["libpq", "cursor (server-side binding)", "psycopg prepare=True"]
    print(f"{'statement':18}" + "".join(f"{head:>32}" for head in heads))
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
        print(f"{way:18}" + "".join(f"{cell:>32}" for cell in cells))
    ROUTE[0] = "default"


def _with_psycopg_api(write: Callable[[], Any]) -> Callable[[], Any]:
    """``write`` with the sender's libpq code swapped for psycopg's prepared execute."""
    import psycopg

    from django_tasks.backends.database.writes import sender

    def execute(connection: Any, sql: str, params: list[Any], **kwargs: Any) -> int:
        connection.ensure_connection()
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params, prepare=True)
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


def _through_cursor(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    return execute(sql, params, many, context)


if __name__ == "__main__":
    main()
