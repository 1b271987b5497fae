"""How close enqueue gets to the commit rate on PostgreSQL, and what the rest costs.

    eval "$(scripts/pg.sh env)"     # a durable server: DJANGO_TASKS_PG_FAST=0 scripts/pg.sh start
    .venvs/py311-dj52/bin/python benchmarks/enqueue_floor.py [--rounds 30] [--batch 100]

Alternates, in batches, a bare client's single-row UPDATE commits (the bound that
benchmarks/worker.py uses) with four ways of inserting a NEW task row, from the
least work to all of it:

- ``libpq INSERT``: enqueue's prepared statement sent through libpq, with values
  built inline: the database's own cost of the INSERT;
- ``+ the API's work``: the same after what any enqueue must do first (find the
  backend, validate the task, JSON-encode the arguments, route the database, make
  the id and the timestamp), and nothing after;
- ``+ result and signal``: the same, then the TaskResult and task_enqueued;
- ``enqueue()``: the real thing.

Each rate pools its batches, and is printed with its fraction of the commit rate.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    from benchmarks.worker import commit_statement, create_pg_database

    name = "django_tasks_bench"
    os.environ.update(BENCH_DB="postgres", BENCH_DB_NAME=name)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    create_pg_database(name)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from django_tasks.backends.database.models import DBTaskResult, DBWorker
    from tests.tasks import noop_task

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_counter")
        cursor.execute("CREATE TABLE bench_counter (id integer PRIMARY KEY, n integer)")
        cursor.execute("INSERT INTO bench_counter VALUES (0, 0)")
    DBTaskResult.objects.all().delete()
    DBWorker.objects.all().delete()
    DBWorker.objects.create(host="bench", pid=0, backend_name="default")  # not waiting
    noop_task.enqueue()  # prepares the statement on this connection

    execute, sql = commit_statement("postgres", name)
    ways: dict[str, Callable[[], Any]] = {
        "libpq INSERT": inserter(noop_task, api_work=False, result=False),
        "+ the API's work": inserter(noop_task, api_work=True, result=False),
        "+ result and signal": inserter(noop_task, api_work=True, result=True),
        "enqueue()": noop_task.enqueue,
    }
    spent = dict.fromkeys(["commits", *ways], 0.0)
    for _ in range(args.rounds):
        for way, insert in ways.items():
            began = time.perf_counter()
            for _ in range(args.batch):
                execute(sql, (0,))
            spent["commits"] += time.perf_counter() - began
            began = time.perf_counter()
            for _ in range(args.batch):
                insert()
            spent[way] += time.perf_counter() - began
    commits = len(ways) * args.rounds * args.batch / spent["commits"]
    print(f"{'single-row commits (bound)':28}{commits:8,.0f}/s")
    for way in ways:
        rate = args.rounds * args.batch / spent[way]
        print(f"{way:28}{rate:8,.0f}/s  {rate / commits:4.0%}")


def inserter(task: Any, *, api_work: bool, result: bool) -> Callable[[], Any]:
    """One INSERT of a NEW row of ``task`` per call, doing only the work asked for."""
    if result and not api_work:
        raise ValueError("a result needs the API's work")
    from django.db import connections, router
    from django.utils import timezone

    from django_tasks.backends.database.models import DBTaskResult
    from django_tasks.backends.database.writes import sender, statements
    from django_tasks.signals import task_enqueued

    command = sender._numbered_sql(statements.insert_sql("default", notify=True, optional=()))
    name = sender._statement_name(command)
    static = [str(v).encode() for v in (task.priority, task.module_path, task.queue_name)]
    static += [b"default", b"[]", b"django_tasks", b"1"]  # backend, attempts, api, max_attempts
    pgconn = connections["default"].connection.pgconn

    def insert() -> Any:
        if api_work:
            backend = task.get_backend()
            backend.validate_task(task)
            args_json = json.dumps({"args": [], "kwargs": {}})
            connections[router.db_for_write(DBTaskResult)].ensure_connection()
            row_id, now = uuid.uuid4(), timezone.now()
        else:
            args_json, row_id, now = '{"args": [], "kwargs": {}}', uuid.uuid4(), datetime.now(UTC)
        values = [str(row_id).encode(), b"NEW", now.isoformat().encode(), args_json.encode()]
        pgconn.send_query_prepared(name, values + static)
        task_result = None
        if result:
            row = backend._row(task, args_json, enqueued_at=now, row_id=row_id)
            task_result = row.task_result_for(task)
        while True:  # wait for the reply
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            select.select([pgconn.socket], [], [])
        while (reply := pgconn.get_result()) is not None:
            assert reply.error_message == b"", reply.error_message
        if result:
            task_enqueued.send(type(backend), task_result=task_result)
        return task_result

    return insert


if __name__ == "__main__":
    main()
