"""Reliability under abuse, with real worker processes: kill -9, database restarts, threads.

Sizes are kept small for CI; ``DJANGO_TASKS_HEAVY=1`` runs the full 10,000-task variants.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count

from django_tasks import ResultStatus
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.backends.database.services import WorkerLost
from tests.worker_helpers import Workers, record_run, runs, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.usefixtures("worker_backend"),
]

HEAVY = os.environ.get("DJANGO_TASKS_HEAVY") == "1"

T = TypeVar("T")


def enqueue(runs_file: str, count: int, seconds: float = 0.0) -> None:
    with transaction.atomic():
        for i in range(count):
            record_run.enqueue(runs_file, str(i), seconds)


def retrying(query: Callable[[], T]) -> T:
    """Run a query, reconnecting while the database restarts."""
    while True:
        try:
            return query()
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(0.2)


def statuses() -> dict[str, int]:
    return dict(
        retrying(lambda: list(DBTaskResult.objects.values_list("status").annotate(n=Count("pk"))))
    )


def unfinished() -> int:
    counts = statuses()
    return counts.get(ResultStatus.NEW, 0) + counts.get(ResultStatus.RUNNING, 0)


def stop(workers: Workers, started: list[Any]) -> None:
    for worker in started:
        worker.send_signal(signal.SIGTERM)
    assert workers.wait_all(started) == [0] * len(started), workers.outputs()


def test_killing_workers_loses_nothing_and_runs_nothing_twice(
    workers: Workers, runs_file: str
) -> None:
    count = 10_000 if HEAVY else 1500
    enqueue(runs_file, count, seconds=0.005)
    args = ("--interval", "0.05", "--heartbeat-timeout", "2")
    alive = [workers.start(*args) for _ in range(4)]
    rng = random.Random(count)

    kills = 0
    deadline = time.monotonic() + (900 if HEAVY else 240)
    while statuses().get(ResultStatus.NEW, 0) and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.3, 1.0))
        victim = alive.pop(rng.randrange(len(alive)))
        victim.kill()  # SIGKILL: no cleanup, its claims stay RUNNING
        kills += 1
        alive.append(workers.start(*args))

    # Survivors recover the victims' tasks once their heartbeats are stale.
    wait_until(lambda: unfinished() == 0, timeout=120, interval=0.5, what="every task to finish")
    stop(workers, alive)

    assert kills >= 1
    ran = runs(runs_file)
    rows = list(DBTaskResult.objects.all())
    assert len(rows) == count
    lost = 0
    for row in rows:
        token = row.args_kwargs["args"][1]
        if row.status == ResultStatus.COMPLETE:
            assert ran[token] == 1, token
        else:
            assert row.status == ResultStatus.FAILED
            exception = row.task_result.exception
            assert isinstance(exception, WorkerLost)
            assert "worker lost" in str(exception)
            lost += 1
    # With the default policy nothing runs twice, lost or not.
    assert max(ran.values()) == 1
    print(f"kills={kills} lost={lost} (running or claimed by a killed worker)")
    assert not DBWorker.objects.filter(pid__in=[w.pid for w in alive]).exists()


@pytest.mark.skipif(
    os.environ.get("TEST_DB") != "postgres" or not os.environ.get("DJANGO_TASKS_PG_RESTART"),
    reason="needs the private PostgreSQL (scripts/pg.sh) and DJANGO_TASKS_PG_RESTART",
)
def test_postgresql_restart_mid_drain_loses_nothing(workers: Workers, runs_file: str) -> None:
    count = 10_000 if HEAVY else 2000
    enqueue(runs_file, count, seconds=0.002)
    started = [
        workers.start("--interval", "0.1"),
        workers.start("--interval", "0.1"),
        workers.start("--interval", "0.1", "--threads", "2"),
        workers.start("--interval", "0.1", "--processes", "2"),
    ]
    wait_until(
        lambda: statuses().get(ResultStatus.COMPLETE, 0) >= count // 5,
        what="the drain to get going",
    )
    subprocess.run(os.environ["DJANGO_TASKS_PG_RESTART"], shell=True, check=True, timeout=120)
    connection.close()
    assert unfinished() > 0, "the drain finished before the restart: enqueue more tasks"

    wait_until(lambda: unfinished() == 0, timeout=180, interval=0.5, what="every task to finish")
    stop(workers, started)

    assert statuses() == {ResultStatus.COMPLETE: count}
    assert runs(runs_file) == Counter({str(i): 1 for i in range(count)})
    assert "reconnecting" in workers.outputs()


def test_workers_with_threads_never_run_a_task_twice(workers: Workers, runs_file: str) -> None:
    count = 10_000 if HEAVY else 2000
    enqueue(runs_file, count)
    started = [
        workers.start("--batch", "--interval", "0", "--threads", "4"),
        workers.start("--batch", "--interval", "0", "--threads", "4"),
        workers.start("--batch", "--interval", "0", "--threads", "4", "--claim-size", "1"),
        workers.start("--batch", "--interval", "0", "--threads", "2", "--processes", "2"),
    ]
    assert workers.wait_all(started) == [0, 0, 0, 0], workers.outputs()

    assert runs(runs_file) == Counter({str(i): 1 for i in range(count)})
    assert statuses() == {ResultStatus.COMPLETE: count}
    assert not DBWorker.objects.exists()
