"""The db_worker command: options, defaults, option errors, logging, and a run in-process."""

from __future__ import annotations

import logging
import math
import pickle
import subprocess
import sys
from dataclasses import FrozenInstanceError
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_tasks import ResultStatus
from django_tasks.backends.database.backend import DatabaseBackend
from django_tasks.backends.database.management.commands import db_worker
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.backends.database.options import InvalidOptions
from django_tasks.backends.database.worker import DEFAULT_CLAIM_SIZE, Worker, WorkerOptions
from django_tasks.signals import task_finished, task_started
from tests import tasks as test_tasks
from tests.worker_helpers import ROOT, WorkerProcess, worker_env
from tests.worker_settings import WORKER_TASKS

WORKER_PATH = "django_tasks.backends.database.management.commands.db_worker.Worker"


@pytest.fixture(autouse=True)
def database_backend() -> Any:
    with override_settings(TASKS=WORKER_TASKS):
        yield


@pytest.fixture(autouse=True)
def reset_logging() -> Any:
    """The command adds a handler and sets a level on "django_tasks": undo both."""
    package_logger = logging.getLogger("django_tasks")
    level, handlers = package_logger.level, list(package_logger.handlers)
    yield
    package_logger.setLevel(level)
    for handler in package_logger.handlers:
        if handler not in handlers:
            package_logger.removeHandler(handler)


def test_worker_is_importable_from_the_command_module() -> None:
    assert db_worker.Worker is Worker


def test_defaults_reach_the_worker() -> None:
    with mock.patch(WORKER_PATH) as worker_class:
        call_command("db_worker")
    assert worker_class.call_args.kwargs == {
        "queue_names": ["default"],
        "interval": 1,
        "batch": False,
        "backend_name": "default",
        "startup_delay": True,
        "threads": 1,
        "processes": 1,
        "heartbeat_timeout": None,
        "claim_size": DEFAULT_CLAIM_SIZE,
    }
    worker_class.return_value.start.assert_called_once_with()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--interval", "0.1"], {"interval": 0.1}),
        (["--interval", "0"], {"interval": 0.0}),
        (["--queue-name", "a,b"], {"queue_names": ["a", "b"]}),
        (["--queue-name", "*"], {"queue_names": ["*"]}),
        (["--batch"], {"batch": True}),
        (["--no-startup-delay"], {"startup_delay": False}),
        (["--threads", "4"], {"threads": 4}),
        (["--processes", "3"], {"processes": 3}),
        (["--heartbeat-timeout", "7.5"], {"heartbeat_timeout": 7.5}),
        (["--claim-size", "5"], {"claim_size": 5}),
    ],
)
def test_options_reach_the_worker(args: list[str], expected: dict[str, Any]) -> None:
    with mock.patch(WORKER_PATH) as worker_class:
        call_command("db_worker", *args)
    kwargs = worker_class.call_args.kwargs
    assert {key: kwargs[key] for key in expected} == expected


def test_dests_work_with_call_command() -> None:
    with mock.patch(WORKER_PATH) as worker_class:
        call_command(
            "db_worker",
            queue_name="q",
            interval=0.5,
            batch=True,
            backend_name="default",
            startup_delay=False,
        )
    kwargs = worker_class.call_args.kwargs
    assert kwargs["queue_names"] == ["q"]
    assert kwargs["interval"] == 0.5
    assert kwargs["batch"] is True
    assert kwargs["startup_delay"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "nan"], "argument --interval: Must be a finite floating point value"),
        (["--interval", "inf"], "argument --interval: Must be a finite floating point value"),
        (["--interval", "-1"], "argument --interval: Must be greater than zero"),
        (["--interval", "-0.5"], "argument --interval: Must be greater than zero"),
        (["--backend", "unknown"], "argument --backend: The connection 'unknown' doesn't exist."),
        (
            ["--backend", "immediate"],
            "argument --backend: Backend 'immediate' is not a database backend",
        ),
        (["--threads", "0"], "argument --threads: Must be at least 1"),
        (["--processes", "0"], "argument --processes: Must be at least 1"),
        (["--heartbeat-timeout", "0"], "argument --heartbeat-timeout: Must be greater than zero"),
        (
            ["--heartbeat-timeout", "inf"],
            "argument --heartbeat-timeout: Must be a finite floating point value",
        ),
        (["--claim-size", "0"], "argument --claim-size: Must be at least 1"),
    ],
)
def test_invalid_options_are_rejected(args: list[str], message: str) -> None:
    with mock.patch(WORKER_PATH) as worker_class, pytest.raises(CommandError) as excinfo:
        call_command("db_worker", *args)
    assert str(excinfo.value) == f"Error: {message}"
    worker_class.assert_not_called()


def test_default_backend_must_be_a_database_backend() -> None:
    tasks = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    with (
        override_settings(TASKS=tasks),
        mock.patch(WORKER_PATH) as worker_class,
        pytest.raises(CommandError, match="Backend 'default' is not a database backend"),
    ):
        call_command("db_worker")
    worker_class.assert_not_called()


def test_invalid_lost_tasks_option_is_reported() -> None:
    tasks = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"lost_tasks": "retry"}}}
    with (
        override_settings(TASKS=tasks),
        mock.patch(WORKER_PATH) as worker_class,
        pytest.raises(CommandError, match="must be one of fail, requeue"),
    ):
        call_command("db_worker")
    worker_class.assert_not_called()


def test_heartbeat_timeout_comes_from_backend_options() -> None:
    tasks = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"heartbeat_timeout": 7}}}
    with override_settings(TASKS=tasks):
        worker = Worker(
            queue_names=["default"],
            interval=1,
            batch=True,
            backend_name="default",
            startup_delay=False,
        )
        assert worker.options.heartbeat_timeout == 7
        override = Worker(
            queue_names=["default"],
            interval=1,
            batch=True,
            backend_name="default",
            startup_delay=False,
            heartbeat_timeout=3,
        )
        assert override.options.heartbeat_timeout == 3
    assert math.isclose(worker.options.heartbeat_interval, 7 / 5)


def test_invalid_heartbeat_timeout_option_is_reported() -> None:
    tasks = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"heartbeat_timeout": "soon"}}}
    with (
        override_settings(TASKS=tasks),
        mock.patch(WORKER_PATH) as worker_class,
        pytest.raises(CommandError) as excinfo,
    ):
        call_command("db_worker")
    assert str(excinfo.value) == (
        "OPTIONS['heartbeat_timeout'] of backend 'default' must be a number of seconds "
        "greater than zero, not 'soon'"
    )
    worker_class.assert_not_called()


def test_worker_refuses_invalid_backend_options() -> None:
    tasks = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"lost_tasks": "retry"}}}
    with (
        override_settings(TASKS=tasks),
        pytest.raises(InvalidOptions, match=r"OPTIONS\['lost_tasks'\] of backend 'default'"),
    ):
        Worker(
            queue_names=["default"],
            interval=1,
            batch=True,
            backend_name="default",
            startup_delay=False,
        )


def test_worker_options_are_built_once_from_the_command_line() -> None:
    tasks = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"lost_tasks": "requeue"}}}
    with override_settings(TASKS=tasks):
        options = WorkerOptions.from_command_line(
            queue_names=["a", "b"],
            interval=0.5,
            batch=True,
            backend_name="default",
            startup_delay=False,
            threads=3,
        )
    assert options == WorkerOptions(
        queue_names=("a", "b"),
        interval=0.5,
        batch=True,
        backend_name="default",
        startup_delay=False,
        threads=3,
        processes=1,
        heartbeat_timeout=20.0,
        lost_tasks="requeue",
        claim_size=DEFAULT_CLAIM_SIZE,
    )
    assert options.queue_filter == ("a", "b")
    assert options.wants("default", "b")
    assert not options.wants("default", "c")
    assert not options.wants("other", "a")
    with pytest.raises(FrozenInstanceError):
        options.interval = 2  # type: ignore[misc]
    # What a spawned --processes child receives.
    assert pickle.loads(pickle.dumps(options)) == options
    assert Worker(options).options is options


def test_star_means_every_queue() -> None:
    options = WorkerOptions.from_command_line(
        queue_names=["*"], interval=1, batch=False, backend_name="default", startup_delay=True
    )
    assert options.queue_filter is None
    assert options.wants("default", "anything")


def test_worker_takes_options_or_keywords_not_both() -> None:
    options = WorkerOptions.from_command_line(
        queue_names=["default"], interval=1, batch=False, backend_name="default", startup_delay=True
    )
    with pytest.raises(TypeError, match="either WorkerOptions or"):
        Worker(options, interval=2)


@pytest.mark.parametrize(("verbosity", "level"), [(0, 50), (1, 30), (2, 20), (3, 10)])
def test_verbosity_sets_the_package_log_level(verbosity: int, level: int) -> None:
    with mock.patch(WORKER_PATH):
        call_command("db_worker", verbosity=verbosity)
    assert logging.getLogger("django_tasks").level == level


def test_option_errors_exit_with_status_2() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "django", "db_worker", "--interval", "-1"],
        capture_output=True,
        text=True,
        env=worker_env(),
        cwd=ROOT,
        timeout=120,
    )
    assert process.returncode == 2
    assert "argument --interval: Must be greater than zero" in process.stderr


@pytest.mark.django_db(transaction=True)
def test_verbosity_3_output_format() -> None:
    result = test_tasks.noop_task.enqueue()
    worker = WorkerProcess("--batch", "-v", "3")
    try:
        assert worker.wait() == 0
        assert worker.output().splitlines() == [
            "Starting worker for queues=default",
            f"Task id={result.id} path=tests.tasks.noop_task state=RUNNING",
            f"Task id={result.id} path=tests.tasks.noop_task state=COMPLETE",
            "No more tasks to run - exiting gracefully.",
        ]
    finally:
        worker.close()


@pytest.mark.django_db(transaction=True)
def test_run_in_process_sends_signals_and_unregisters() -> None:
    seen: list[tuple[str, type[Any], ResultStatus, str]] = []

    def receiver(signal: Any, sender: type[Any], task_result: Any, **kwargs: Any) -> None:
        name = "started" if signal is task_started else "finished"
        seen.append((name, sender, task_result.status, task_result.id))

    task_started.connect(receiver)
    task_finished.connect(receiver)
    try:
        result = test_tasks.calculate_meaning_of_life.enqueue()
        call_command(
            "db_worker", batch=True, startup_delay=False, interval=0, verbosity=0, stdout=StringIO()
        )
    finally:
        task_started.disconnect(receiver)
        task_finished.disconnect(receiver)

    assert seen == [
        ("started", DatabaseBackend, ResultStatus.RUNNING, result.id),
        ("finished", DatabaseBackend, ResultStatus.COMPLETE, result.id),
    ]
    result.refresh()
    assert result.status == ResultStatus.COMPLETE
    assert result.return_value == 42
    assert result.enqueued_at is not None
    assert result.started_at is not None
    assert result.finished_at is not None
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert not DBWorker.objects.exists()
    assert DBTaskResult.objects.get().worker_id is not None
