"""Time limits, with real ``db_worker`` processes: the attempt fails, the slot is freed.

``--threads`` (one thread, or two) and ``--processes``; tasks that sleep, spin in
Python, or block in C's ``system()`` (which no signal interrupts).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_tasks import ResultStatus, TimeLimitExceeded
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.backends.database.worker.db_calls import DatabaseCalls
from django_tasks.backends.database.worker.options import WorkerOptions
from django_tasks.backends.database.worker.state import WorkerState
from django_tasks.backends.database.worker.threads import ExecutorThreads
from django_tasks.backends.database.worker.watchdog import (
    TASK,
    WATCHDOG,
    TimedRun,
    time_limit_exceeded,
)
from tests import time_limit_tasks
from tests.worker_helpers import Workers, runs, wait_until
from tests.worker_settings import WORKER_TASKS

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.usefixtures("worker_backend"),
]

THREADS = ("--threads", "2")
PROCESSES = ("--processes", "2")
TIME_LIMIT_EXC = "django_tasks.lifecycle.TimeLimitExceeded"


def tasks_with(**options: Any) -> dict[str, Any]:
    return {**WORKER_TASKS, "default": {**WORKER_TASKS["default"], "OPTIONS": options}}


def row_of(result: Any) -> DBTaskResult:
    return DBTaskResult.objects.get(pk=result.id)


def finished(*results: Any) -> list[DBTaskResult] | None:
    rows = [row_of(result) for result in results]
    done = all(row.status in (ResultStatus.COMPLETE, ResultStatus.FAILED) for row in rows)
    return rows if done else None


def wait_finished(*results: Any, timeout: float = 30.0) -> list[DBTaskResult]:
    rows: list[DBTaskResult] = wait_until(
        lambda: finished(*results), timeout=timeout, interval=0.1, what="the tasks to finish"
    )
    return rows


def assert_timed_out(row: DBTaskResult, task_path: str, limit: str = "1") -> None:
    assert row.status == ResultStatus.FAILED
    exception = row.task_result.exception
    assert isinstance(exception, TimeLimitExceeded)
    assert str(exception) == f"Task {task_path} exceeded its time limit of {limit} s"
    exception_data: Any = row.exception_data
    assert exception_data["exc_type"] == TIME_LIMIT_EXC
    assert row.started_at is not None and row.finished_at is not None
    # Not before its limit (the run's clock starts just after started_at).
    assert (row.finished_at - row.started_at).total_seconds() >= float(limit)


def finished_signals(output: str, row: DBTaskResult) -> int:
    """How many times task_finished was sent for ``row`` (its logging receiver's lines)."""
    return output.count(f"Task id={row.id} path={row.task_path} state={ResultStatus.FAILED}\n")


def run_quick_tasks(runs_file: str, count: int) -> None:
    """Enqueue ``count`` quick tasks and wait for all of them to complete."""
    results = [time_limit_tasks.quick.enqueue(runs_file, f"after-{i}") for i in range(count)]
    rows = wait_finished(*results)
    assert {row.status for row in rows} == {ResultStatus.COMPLETE}


def stop(workers: Workers, worker: Any) -> None:
    assert worker.running(), worker.output()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker.output()
    assert not DBWorker.objects.exists()


@pytest.mark.parametrize("args", [THREADS, PROCESSES], ids=["threads", "processes"])
def test_sleeping_and_spinning_tasks_fail_at_their_time_limit_and_the_slots_are_freed(
    workers: Workers, runs_file: str, args: tuple[str, ...]
) -> None:
    sleeper = time_limit_tasks.sleeps.using(time_limit=1).enqueue(runs_file, "sleeper", 3)
    spinner = time_limit_tasks.spins.using(time_limit=1).enqueue(runs_file, "spinner")

    worker = workers.start(*args, "--interval", "0.1")
    sleeper_row, spinner_row = wait_finished(sleeper, spinner)

    assert_timed_out(sleeper_row, "tests.time_limit_tasks.sleeps")
    assert_timed_out(spinner_row, "tests.time_limit_tasks.spins")
    # The stored traceback says where the task was stopped: in its loop.
    spinner_traceback = spinner_row.exception_data["exc_traceback"]  # type: ignore[index]
    assert "The task was stopped here:" in spinner_traceback
    assert "in spins" in spinner_traceback
    assert runs(runs_file) == {"sleeper": 1, "spinner": 1}

    # Both slots work again: more tasks than slots all complete.
    run_quick_tasks(runs_file, 6)
    stop(workers, worker)
    output = worker.output()
    assert "exceeded its time limit of 1 s" in output
    assert [finished_signals(output, row) for row in [sleeper_row, spinner_row]] == [1, 1]
    assert "sleeper-finished" not in runs(runs_file)  # stopped, not left to finish
    if args == PROCESSES:
        # Each child runs its task on its main thread, where SIGALRM interrupts the sleep:
        # nothing was left blocked, so no child had to be replaced.
        assert "stuck" not in output and "a new thread" not in output, output


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_task_blocked_in_c_past_its_limit_gets_a_new_thread_in_its_place(
    workers: Workers, runs_file: str, threads: str
) -> None:
    stuck = [
        time_limit_tasks.waits_for_shell.using(time_limit=1).enqueue(runs_file, token, 4)
        for token in ["a", "b"][: int(threads)]
    ]

    worker = workers.start("--threads", threads, "--interval", "0.1")
    for row in wait_finished(*stuck):
        assert_timed_out(row, "tests.time_limit_tasks.waits_for_shell")

    # While the stuck calls still run, new threads run other tasks.
    run_quick_tasks(runs_file, 4)
    assert "a new thread takes its slot" in worker.output()

    # When the stuck calls return, their outcome is ignored and their threads exit.
    wait_until(
        lambda: worker.output().count("its outcome was ignored and its thread exits") == len(stuck),
        what="the stuck calls to return",
    )
    run_quick_tasks(runs_file, 4)
    for row in wait_finished(*stuck):
        assert_timed_out(row, "tests.time_limit_tasks.waits_for_shell")
    assert all(runs(runs_file)[token] == 1 for token in ["a", "b"][: int(threads)])
    stop(workers, worker)
    output = worker.output()
    assert "Exception in thread" not in output and "crashed" not in output, output


def test_a_task_blocked_in_c_past_its_limit_makes_its_process_exit_and_be_replaced(
    workers: Workers, runs_file: str
) -> None:
    stuck = time_limit_tasks.waits_for_shell.using(time_limit=1).enqueue(runs_file, "stuck", 3)

    worker = workers.start(*PROCESSES, "--interval", "0.1")
    (row,) = wait_finished(stuck)
    assert_timed_out(row, "tests.time_limit_tasks.waits_for_shell")

    wait_until(
        lambda: "exited to free a stuck task's slot; replacing it" in worker.output(),
        what="the child to exit and be replaced",
    )
    wait_until(lambda: DBWorker.objects.count() == 2, what="the replacement to register")
    run_quick_tasks(runs_file, 6)
    assert runs(runs_file)["stuck"] == 1
    stop(workers, worker)


def test_a_process_leaving_for_a_stuck_task_lets_its_other_tasks_finish(
    workers: Workers, runs_file: str
) -> None:
    # Four tasks for four slots (two children of two threads), each held for seconds: the
    # child that runs the stuck one also runs a sleeper.
    sleepers = [
        time_limit_tasks.sleeps.using(priority=10).enqueue(runs_file, f"sleeper-{i}", 4)
        for i in range(3)
    ]
    stuck = time_limit_tasks.waits_for_shell.using(time_limit=1).enqueue(runs_file, "stuck", 3)

    worker = workers.start(*PROCESSES, "--threads", "2", "--interval", "0.1")
    rows = wait_finished(*sleepers, stuck)

    assert_timed_out(rows[-1], "tests.time_limit_tasks.waits_for_shell")
    assert [row.status for row in rows[:-1]] == [ResultStatus.COMPLETE] * 3
    assert all(runs(runs_file)[f"sleeper-{i}-finished"] == 1 for i in range(3))
    wait_until(
        lambda: "exited to free a stuck task's slot; replacing it" in worker.output(),
        what="the child to exit and be replaced",
    )
    run_quick_tasks(runs_file, 8)
    stop(workers, worker)


@pytest.mark.parametrize("args", [THREADS, PROCESSES], ids=["threads", "processes"])
def test_a_timed_out_attempt_is_retried_while_attempts_remain(
    workers: Workers, runs_file: str, args: tuple[str, ...]
) -> None:
    # The decorator says time_limit=1, max_attempts=2, backoff=0.
    result = time_limit_tasks.spins_twice.enqueue(runs_file, "twice")

    worker = workers.start(*args, "--interval", "0.1")
    (row,) = wait_finished(result)

    assert_timed_out(row, "tests.time_limit_tasks.spins_twice")
    assert runs(runs_file) == {"twice": 2}
    (first,) = row.attempt_history  # the earlier attempt; the last one is the row's own
    assert first.exception_class_path == TIME_LIMIT_EXC
    assert first.message == "Task tests.time_limit_tasks.spins_twice exceeded its time limit of 1 s"
    assert first.started_at is not None and first.finished_at is not None
    assert (first.finished_at - first.started_at).total_seconds() >= 1
    stop(workers, worker)
    assert finished_signals(worker.output(), row) == 1  # for the final failure only


def test_backend_options_set_time_limits(workers: Workers, runs_file: str) -> None:
    options = tasks_with(
        task_defaults={"time_limit": 30},
        task_overrides={"tests.time_limit_tasks.spins": {"time_limit": 1.5}},
    )
    with override_settings(TASKS=options):
        spinner = time_limit_tasks.spins.enqueue(runs_file, "spinner")
        sleeper = time_limit_tasks.sleeps.enqueue(runs_file, "sleeper", 0.2)
    assert (row_of(spinner).time_limit, row_of(sleeper).time_limit) == (1.5, 30)

    worker = workers.start("--interval", "0.1")
    spinner_row, sleeper_row = wait_finished(spinner, sleeper)
    assert_timed_out(spinner_row, "tests.time_limit_tasks.spins", limit="1.5")
    assert sleeper_row.status == ResultStatus.COMPLETE
    stop(workers, worker)


def test_tasks_finishing_within_their_limit_are_untouched(workers: Workers, runs_file: str) -> None:
    results = [
        time_limit_tasks.sleeps.using(time_limit=5).enqueue(runs_file, "sleeper", 0.3),
        time_limit_tasks.quick.using(time_limit=5).enqueue(runs_file, "quick"),
        time_limit_tasks.quick.enqueue(runs_file, "unlimited"),
    ]

    worker = workers.start("--batch", "--threads", "2")
    assert worker.wait() == 0, worker.output()

    rows = [row_of(result) for result in results]
    assert [row.status for row in rows] == [ResultStatus.COMPLETE] * 3
    assert [row.return_value for row in rows] == ["sleeper", "quick", "unlimited"]
    assert runs(runs_file) == {"sleeper": 1, "sleeper-finished": 1, "quick": 1, "unlimited": 1}
    assert "time limit" not in worker.output()


def test_the_watchdog_thread_starts_with_the_first_time_limit(
    workers: Workers, runs_file: str
) -> None:
    time_limit_tasks.records_threads.enqueue(runs_file)
    assert workers.start("--batch").wait() == 0

    time_limit_tasks.quick.using(time_limit=5, priority=10).enqueue(runs_file, "limited")
    time_limit_tasks.records_threads.enqueue(runs_file)
    assert workers.start("--batch").wait() == 0

    without, limited, with_limit = Path(runs_file).read_text().splitlines()
    assert "db_worker-heartbeat" in without.split(",")
    assert "db_worker-watchdog" not in without.split(",")
    assert limited == "limited"
    assert "db_worker-watchdog" in with_limit.split(",")


# --- who records a run: the task's thread or the watchdog ---------------------------------


def timed_run(limit: float = 3600) -> TimedRun:
    """A run on this (non-main, as far as the executor knows) thread, as an executor makes one."""
    options = WorkerOptions(
        queue_names=("default",),
        interval=1,
        batch=True,
        backend_name="default",
        startup_delay=False,
        heartbeat_timeout=60,
        lost_tasks="fail",
    )
    group = ExecutorThreads(
        options=options, state=WorkerState(heartbeat_timeout=60, listens=False), db=DatabaseCalls()
    )
    row = DBTaskResult(task_path="tests.time_limit_tasks.spins", time_limit=limit)
    return TimedRun(group.executors[0], row, limit)


def test_a_run_that_left_its_call_is_recorded_by_its_thread() -> None:
    run = timed_run()
    run.enter_call()
    run.leave_call()
    try:
        assert not run.expire()  # no interrupt: the thread records the outcome
        assert run.take(TASK)
        assert run.take(TASK)  # again, for a retried write
        assert not run.take(WATCHDOG)
    finally:
        run.executor.group.close()


def test_time_limit_message_names_the_task_and_the_limit() -> None:
    row = DBTaskResult(task_path="app.tasks.x", time_limit=5.0)
    assert str(time_limit_exceeded(row)) == "Task app.tasks.x exceeded its time limit of 5 s"
    row.time_limit = 0.25
    assert str(time_limit_exceeded(row)) == "Task app.tasks.x exceeded its time limit of 0.25 s"
    assert isinstance(time_limit_exceeded(row), TimeLimitExceeded)
