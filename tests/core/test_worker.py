"""Real db_worker subprocesses against the test database: running, ordering, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from django.utils import timezone

from django_tasks import ResultStatus
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from tests import tasks as test_tasks
from tests.worker_helpers import (
    ROOT,
    Workers,
    fail_with,
    record_run,
    run_order,
    runs,
    started_then_sleep,
    wait_until,
    worker_env,
)
from tests.worker_settings import WORKER_TASKS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_backend")]


def status_of(result: Any) -> ResultStatus:
    result.refresh()
    return ResultStatus(result.status)


def make_row(task_path: str, **fields: Any) -> DBTaskResult:
    fields = {"args_kwargs": {"args": [], "kwargs": {}}, "backend_name": "default", **fields}
    return DBTaskResult.objects.create(task_path=task_path, **fields)


@pytest.mark.slow
def test_four_workers_run_2000_tasks_exactly_once(workers: Workers, runs_file: str) -> None:
    count = 2000
    for i in range(count):
        record_run.enqueue(runs_file, str(i))

    started = [workers.start("--batch", "--interval", "0") for _ in range(4)]
    assert workers.wait_all(started) == [0, 0, 0, 0], workers.outputs()

    assert runs(runs_file) == {str(i): 1 for i in range(count)}
    assert DBTaskResult.objects.complete().count() == count
    assert not DBWorker.objects.exists()


def test_tasks_run_in_priority_then_run_after_order(workers: Workers, runs_file: str) -> None:
    now = timezone.now()
    for token, priority, run_after in [
        ("a", 0, None),
        ("b", 10, None),
        ("c", 0, now - timedelta(seconds=10)),
        ("d", 0, now - timedelta(seconds=5)),
        ("e", -5, None),
        ("f", 10, now - timedelta(seconds=1)),
    ]:
        record_run.using(priority=priority, run_after=run_after).enqueue(runs_file, token)

    assert workers.start("--batch").wait() == 0
    # Priority first; within a priority later run_after first, no run_after last.
    assert run_order(runs_file) == ["f", "b", "d", "c", "a", "e"]


def test_queue_names_and_star(workers: Workers, runs_file: str) -> None:
    for queue in ["default", "a", "b", "c"]:
        record_run.using(queue_name=queue).enqueue(runs_file, queue)
    other_backend = make_row("tests.worker_helpers.record_run", backend_name="other")

    assert workers.start("--batch", "--queue-name", "a,b").wait() == 0
    assert runs(runs_file) == {"a": 1, "b": 1}

    assert workers.start("--batch").wait() == 0
    assert runs(runs_file) == {"a": 1, "b": 1, "default": 1}

    assert workers.start("--batch", "--queue-name", "*").wait() == 0
    assert runs(runs_file) == {"a": 1, "b": 1, "default": 1, "c": 1}

    other_backend.refresh_from_db()
    assert other_backend.status == ResultStatus.NEW


def test_batch_exits_when_nothing_is_ready(workers: Workers, runs_file: str) -> None:
    later = record_run.using(run_after=timedelta(hours=1)).enqueue(runs_file, "later")
    worker = workers.start("--batch", "-v", "2")
    assert worker.wait() == 0
    assert worker.output().splitlines() == [
        "Starting worker for queues=default",
        "No more tasks to run - exiting gracefully.",
    ]
    assert status_of(later) == ResultStatus.NEW
    assert not DBWorker.objects.exists()


def test_deferred_task_waits_for_run_after(workers: Workers, runs_file: str) -> None:
    run_after = timezone.now() + timedelta(seconds=3)
    later = record_run.using(run_after=run_after).enqueue(runs_file, "later")
    now = record_run.enqueue(runs_file, "now")

    worker = workers.start("--interval", "0.1")
    wait_until(lambda: status_of(now) == ResultStatus.COMPLETE, what="the ready task")
    if timezone.now() < run_after:
        assert status_of(later) == ResultStatus.NEW
    wait_until(lambda: status_of(later) == ResultStatus.COMPLETE, what="the deferred task")
    assert later.started_at is not None
    assert later.started_at >= run_after
    assert run_order(runs_file) == ["now", "later"]

    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_when_idle_exits_at_once(workers: Workers, signum: int) -> None:
    worker = workers.start("--interval", "60", "-v", "2")
    wait_until(lambda: DBWorker.objects.exists(), what="the worker to register")
    worker.send_signal(signum)
    assert worker.wait(timeout=30) == 0
    name = signal.strsignal(signum)
    assert (
        f"Received {name} - shutting down gracefully... (press Ctrl+C again to force)"
        in worker.output()
    )
    assert not DBWorker.objects.exists()


def test_sigterm_mid_task_lets_it_finish(workers: Workers, tmp_path: Path, runs_file: str) -> None:
    marker = tmp_path / "marker"
    running = started_then_sleep.enqueue(str(marker), 2.0)
    waiting = record_run.using(priority=-1).enqueue(runs_file, "waiting")

    worker = workers.start("--claim-size", "2")
    wait_until(lambda: marker.exists(), what="the task to start")
    worker.send_signal(signal.SIGTERM)

    assert worker.wait() == 0, worker.output()
    assert status_of(running) == ResultStatus.COMPLETE
    assert marker.read_text().split() == ["started", "finished"]
    # Claimed or not, the waiting task is NEW again and nobody holds it.
    assert status_of(waiting) == ResultStatus.NEW
    assert DBTaskResult.objects.get(id=waiting.id).worker_id is None
    assert runs(runs_file) == {}
    assert "shutting down gracefully" in worker.output()


@pytest.mark.parametrize("threads", [1, 2])
def test_second_signal_aborts_running_tasks(workers: Workers, tmp_path: Path, threads: int) -> None:
    markers = [tmp_path / f"marker-{i}" for i in range(threads)]
    results = [started_then_sleep.enqueue(str(marker), 300) for marker in markers]

    worker = workers.start("--threads", str(threads))
    wait_until(lambda: all(m.exists() for m in markers), what="the tasks to start")
    worker.send_signal(signal.SIGINT)
    wait_until(lambda: "shutting down gracefully" in worker.output(), what="the first signal")
    worker.send_signal(signal.SIGINT)

    assert worker.wait(timeout=60) == 0, worker.output()
    assert f"Received {signal.strsignal(signal.SIGINT)} - terminating current task." in (
        worker.output()
    )
    for result in results:
        assert status_of(result) == ResultStatus.FAILED
        assert isinstance(result.exception, SystemExit)
    assert not DBWorker.objects.exists()


def test_unresolvable_rows_fail_and_the_worker_continues(workers: Workers, runs_file: str) -> None:
    rows = [
        make_row("tests.no_such_module.task", priority=10),
        make_row("tests.worker_helpers.no_such_task", priority=10),
        make_row("tests.worker_helpers.NOT_A_TASK", priority=10),
        make_row("tests.worker_helpers.runs", priority=10),  # a function, not a Task
    ]
    ok = record_run.enqueue(runs_file, "ok")

    worker = workers.start("--batch")
    assert worker.wait() == 0
    output = worker.output()

    exceptions = []
    for row in rows:
        row.refresh_from_db()
        assert row.status == ResultStatus.FAILED
        assert row.finished_at is not None
        assert f"Task id={row.id} failed unexpectedly" in output
        exception_data: Any = row.exception_data
        exceptions.append(exception_data["exc_type"])
    assert exceptions == [
        "builtins.ModuleNotFoundError",
        "builtins.ImportError",
        "django.core.exceptions.SuspiciousOperation",
        "django.core.exceptions.SuspiciousOperation",
    ]
    assert status_of(ok) == ResultStatus.COMPLETE
    assert runs(runs_file) == {"ok": 1}


def test_failures_are_recorded_and_the_worker_continues(workers: Workers, runs_file: str) -> None:
    failing = fail_with.enqueue(runs_file, "failing")
    unserialisable = test_tasks.complex_exception.enqueue()
    bad_return = test_tasks.complex_return_value.enqueue()
    exits = test_tasks.exit_task.enqueue()
    interrupts = test_tasks.failing_task_keyboard_interrupt.enqueue()
    ok = record_run.using(priority=-1).enqueue(runs_file, "ok")

    worker = workers.start("--batch")
    assert worker.wait() == 0
    output = worker.output()

    assert status_of(failing) == ResultStatus.FAILED
    assert isinstance(failing.exception, ValueError)
    assert failing.traceback is not None
    assert failing.traceback.endswith("ValueError: failed failing\n")

    assert status_of(unserialisable) == ResultStatus.FAILED
    assert unserialisable.exception is None
    assert f"Task id={unserialisable.id} unable to save exception" in output

    assert status_of(bad_return) == ResultStatus.FAILED
    assert isinstance(bad_return.exception, TypeError)

    assert status_of(exits) == ResultStatus.FAILED
    assert isinstance(exits.exception, SystemExit)
    assert status_of(interrupts) == ResultStatus.FAILED
    assert isinstance(interrupts.exception, KeyboardInterrupt)

    assert status_of(ok) == ResultStatus.COMPLETE
    assert runs(runs_file) == {"failing": 1, "ok": 1}


def test_async_tasks_run(workers: Workers) -> None:
    result = test_tasks.calculate_meaning_of_life_async.enqueue()
    assert workers.start("--batch").wait() == 0
    assert status_of(result) == ResultStatus.COMPLETE
    assert cast(Any, result).return_value == 42


def test_threads_run_tasks_concurrently(workers: Workers, runs_file: str) -> None:
    for i in range(8):
        record_run.enqueue(runs_file, str(i), 1.0)

    worker = workers.start("--batch", "--threads", "4")
    assert worker.wait() == 0, worker.output()
    assert runs(runs_file) == {str(i): 1 for i in range(8)}

    rows = list(DBTaskResult.objects.all())
    assert {row.status for row in rows} == {ResultStatus.COMPLETE}
    spans: list[tuple[Any, Any]] = [(row.started_at, row.finished_at) for row in rows]
    # The most tasks running at one task's start.
    overlaps = max(len([1 for s, f in spans if s <= start < f]) for start, _ in spans)
    assert overlaps >= 2
    assert len({row.worker_id for row in rows}) == 1


def test_processes_run_tasks_once(workers: Workers, runs_file: str) -> None:
    for i in range(100):
        record_run.enqueue(runs_file, str(i))

    worker = workers.start("--batch", "--processes", "2", "-v", "2")
    assert worker.wait() == 0, worker.output()
    assert runs(runs_file) == {str(i): 1 for i in range(100)}
    output = worker.output()
    assert "Starting 2 worker processes for queues=default" in output
    assert output.count("Starting worker for queues=default") == 2
    assert output.rstrip().endswith("No more tasks to run - exiting gracefully.")
    assert not DBWorker.objects.exists()


def test_processes_stop_gracefully_on_a_signal(workers: Workers, tmp_path: Path) -> None:
    markers = [tmp_path / f"marker-{i}" for i in range(2)]
    results = [started_then_sleep.enqueue(str(marker), 1.5) for marker in markers]

    worker = workers.start("--processes", "2")
    wait_until(lambda: all(m.exists() for m in markers), what="both tasks to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()
    assert [status_of(result) for result in results] == [ResultStatus.COMPLETE] * 2
    assert not DBWorker.objects.exists()


def test_processes_children_run_with_the_parents_options(workers: Workers, runs_file: str) -> None:
    worker = workers.start(
        "--processes", "2", "--threads", "2", "--queue-name", "a,b", "--interval", "0.1"
    )
    rows = wait_until(
        lambda: list(DBWorker.objects.all()) if DBWorker.objects.count() == 2 else None,
        what="both children to register",
    )
    assert {row.pid for row in rows} & {worker.pid} == set()  # children, not the parent
    assert len({row.pid for row in rows}) == 2
    assert [(row.queues, row.threads, row.backend_name) for row in rows] == [
        (["a", "b"], 2, "default")
    ] * 2
    results = [record_run.using(queue_name=q).enqueue(runs_file, q) for q in ["a", "b", "c"]]
    wait_until(
        lambda: all(status_of(r) == ResultStatus.COMPLETE for r in results[:2]),
        what="the tasks of the children's queues",
    )
    assert status_of(results[2]) == ResultStatus.NEW
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()
    assert not DBWorker.objects.exists()


# A --processes parent where fork is unavailable (Windows): children are spawned, so
# each imports the pool's entry point before Django is set up and unpickles the options.
SPAWNING_POOL = """
import multiprocessing
import django

django.setup()

from django_tasks.backends.database.worker import WorkerOptions
from django_tasks.backends.database.worker.process_pool import ProcessPool

options = WorkerOptions.from_command_line(
    queue_names=["a"], interval=0, batch=True, backend_name="default",
    startup_delay=False, processes=2, threads=2,
)
pool = ProcessPool(options, worker_path="django_tasks.backends.database.worker.Worker")
pool.context = multiprocessing.get_context("spawn")
pool.run()
"""


def test_spawned_children_run_with_the_parents_options(runs_file: str) -> None:
    for i in range(20):
        record_run.using(queue_name="a").enqueue(runs_file, str(i))
    other_queue = record_run.enqueue(runs_file, "default")

    process = subprocess.run(
        [sys.executable, "-c", SPAWNING_POOL],
        env=worker_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert runs(runs_file) == {str(i): 1 for i in range(20)}, process.stderr
    assert status_of(other_queue) == ResultStatus.NEW
    assert not DBWorker.objects.exists()


def test_worker_refuses_to_start_with_invalid_backend_options(workers: Workers) -> None:
    tasks = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"lost_tasks": "retry"}}}
    worker = workers.start("--batch", tasks=tasks)
    assert worker.wait() == 1
    assert (
        "OPTIONS['lost_tasks'] of backend 'default' must be one of fail, requeue, not 'retry'"
        in worker.output()
    )
    assert not DBWorker.objects.exists()


def test_worker_registers_and_heartbeats(workers: Workers) -> None:
    worker = workers.start("--heartbeat-timeout", "1", "--queue-name", "a,b", "--threads", "2")
    row = wait_until(lambda: DBWorker.objects.first(), what="the worker to register")
    assert row.pid == worker.pid
    assert row.queues == ["a", "b"]
    assert row.threads == 2
    assert row.backend_name == "default"
    first = row.last_heartbeat_at
    wait_until(
        lambda: DBWorker.objects.get(pk=row.pk).last_heartbeat_at > first, what="a heartbeat"
    )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert not DBWorker.objects.exists()


def test_idle_threads_wake_up_for_new_work(workers: Workers, runs_file: str) -> None:
    import psutil

    worker = workers.start("--threads", "4", "--interval", "0.1")
    wait_until(lambda: DBWorker.objects.exists(), what="the worker to register")
    time.sleep(0.5)
    idle_threads = psutil.Process(worker.pid).num_threads()
    for i in range(8):
        record_run.enqueue(runs_file, str(i), 0.5)

    wait_until(lambda: DBTaskResult.objects.complete().count() == 8, what="the tasks to complete")
    spans: list[tuple[Any, Any]] = [
        (row.started_at, row.finished_at) for row in DBTaskResult.objects.all()
    ]
    overlaps = max(len([1 for s, f in spans if s <= start < f]) for start, _ in spans)
    assert overlaps >= 2
    # An idle worker ran one executor thread; the other three started for the work.
    assert psutil.Process(worker.pid).num_threads() == idle_threads + 3
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0


@pytest.mark.skipif(
    os.environ.get("TEST_DB") != "postgres", reason="LISTEN/NOTIFY is PostgreSQL only"
)
def test_postgresql_notifications_wake_an_idle_worker(workers: Workers, runs_file: str) -> None:
    # With a 10-minute poll interval, only a notification can wake the worker in time.
    worker = workers.start("--interval", "600")
    # Idle, it says it waits: enqueues notify only then.
    wait_until(lambda: DBWorker.objects.filter(waiting=True).exists(), what="the worker to wait")
    for i in range(3):
        result = record_run.enqueue(runs_file, str(i))
        wait_until(
            lambda r=result: status_of(r) == ResultStatus.COMPLETE,  # type: ignore[misc]
            timeout=60,
            what="pickup",
        )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0


@pytest.fixture
def listening() -> Any:
    """LISTEN on the test's connection; return what reads the notifications since."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute('LISTEN "django_tasks"')
    raw: Any = connection.connection

    def notifications() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # delivers what arrived meanwhile
        return [n.payload for n in raw.notifies(timeout=0.2)]

    yield notifications
    with connection.cursor() as cursor:
        cursor.execute("UNLISTEN *")


def waiting_worker(backend_name: str = "default") -> DBWorker:
    return DBWorker.objects.create(host="h", pid=1, backend_name=backend_name, waiting=True)


@pytest.mark.skipif(
    os.environ.get("TEST_DB") != "postgres", reason="LISTEN/NOTIFY is PostgreSQL only"
)
def test_enqueue_notifies_on_commit_only_for_ready_tasks(listening: Any) -> None:
    from django.db import transaction

    waiting_worker()
    with transaction.atomic():
        record_run.using(queue_name="q1").enqueue("/dev/null", "a")
        record_run.using(queue_name="q1").enqueue("/dev/null", "b")
        record_run.using(run_after=timedelta(hours=1)).enqueue("/dev/null", "later")
        assert listening() == []  # not before the commit
    assert listening() == ["default\nq1"]  # duplicates fold, deferred tasks are quiet

    with pytest.raises(RuntimeError), transaction.atomic():
        record_run.enqueue("/dev/null", "rolled back")
        raise RuntimeError
    assert listening() == []

    record_run.using(queue_name="q2").enqueue("/dev/null", "autocommit")
    assert listening() == ["default\nq2"]


@pytest.mark.skipif(
    os.environ.get("TEST_DB") != "postgres", reason="LISTEN/NOTIFY is PostgreSQL only"
)
def test_enqueue_is_quiet_while_no_worker_waits(listening: Any) -> None:
    from django.db import transaction

    worker = waiting_worker(backend_name="other")  # another backend's worker
    record_run.enqueue("/dev/null", "a")
    with transaction.atomic():
        record_run.enqueue("/dev/null", "b")
    assert listening() == []

    worker.backend_name = "default"
    worker.waiting = False  # busy
    worker.save()
    record_run.enqueue("/dev/null", "c")
    assert listening() == []


@pytest.mark.skipif(
    os.environ.get("TEST_DB") != "postgres", reason="LISTEN/NOTIFY is PostgreSQL only"
)
def test_rows_made_new_again_notify_whether_or_not_a_worker_waits(listening: Any) -> None:
    from django_tasks.backends.database import services

    row = make_row("tests.tasks.noop_task", status=ResultStatus.FAILED, queue_name="q3")
    assert listening() == []
    assert services.retry(results=[row.pk]).retried == 1
    assert listening() == ["default\nq3"]


def test_threads_exit_in_batch_mode_when_nothing_is_ready(workers: Workers) -> None:
    worker = workers.start("--batch", "--threads", "4")
    assert worker.wait(timeout=60) == 0, worker.output()


def test_a_worker_considered_lost_registers_again(workers: Workers) -> None:
    worker = workers.start("--heartbeat-timeout", "1")
    row = wait_until(lambda: DBWorker.objects.first(), what="the worker to register")
    DBWorker.objects.all().delete()  # what recovery does to a worker it thinks is dead

    again = wait_until(lambda: DBWorker.objects.first(), what="the worker to register again")
    assert again.pk == row.pk
    assert "was considered lost" in worker.output()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0
