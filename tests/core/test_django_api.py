# mypy: disable-error-code="untyped-decorator"
"""Django 6's ``django.tasks`` on our DatabaseBackend, end to end with real ``db_worker``s.

Issue 11 ("What a Django 6 user gets", "Also"): tasks written with ``from
django.tasks import task`` (tests.django_api_tasks) are enqueued by the test
process, run by ``db_worker`` subprocesses and read back in Django's shape, side
by side with ``django_tasks`` tasks (tests.worker_helpers) in the same queue.

Skipped as a whole below Django 6.0: nothing here imports ``django.tasks`` at
module import time.
"""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import django
import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_tasks import ResultStatus, tasks
from django_tasks.backends.database import services
from django_tasks.backends.database.backend import DatabaseBackend
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.task import TaskResult as OurTaskResult
from tests.worker_helpers import (
    ROOT,
    Workers,
    fail_with,
    record_run,
    runs,
    wait_until,
    worker_env,
)
from tests.worker_settings import WORKER_TASKS

pytestmark = [
    pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks is Django 6.0+"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_backend"),
]

# What the Django 6 user writes: our backend, nothing else (ENQUEUE_ON_COMMIT and
# QUEUES at their defaults).
PLAIN_TASKS = {"default": {"BACKEND": "django_tasks.backends.database.DatabaseBackend"}}

DATABASE_BACKEND = "django_tasks.backends.database.backend.DatabaseBackend"
DJANGO_RESULT = "django.tasks.base.TaskResult"


def dj() -> Any:
    """``django.tasks`` (imported when a test runs, never at collection)."""
    import django.tasks
    import django.tasks.base
    import django.tasks.exceptions
    import django.tasks.signals

    return django.tasks


@pytest.fixture
def api(worker_backend: None) -> ModuleType:
    """tests.django_api_tasks, imported while our DatabaseBackend is the default backend."""
    return importlib.import_module("tests.django_api_tasks")


@pytest.fixture
def plain_project(api: ModuleType) -> Any:
    """TASKS as a Django 6 project using only our DatabaseBackend sets it."""
    with override_settings(TASKS=PLAIN_TASKS):
        yield PLAIN_TASKS


@pytest.fixture
def signals_file(tmp_path: Path) -> str:
    return str(tmp_path / "signals.jsonl")


def recorded_signals(path: str) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines()]


def run_batch(workers: Workers, *args: str, **kwargs: Any) -> str:
    """Run one ``db_worker --batch`` to the end; return its output."""
    worker = workers.start("--batch", *args, **kwargs)
    assert worker.wait() == 0, worker.output()
    return worker.output()


def assert_django_result(result: Any, status: str) -> None:
    tasks_module = dj()
    assert type(result) is tasks_module.TaskResult
    assert result.status == getattr(tasks_module.TaskResultStatus, status)


# --- a project whose tasks use only django.tasks ----------------------------------


def test_backend_handlers_and_capability_flags(api: ModuleType) -> None:
    tasks_module = dj()
    backend = tasks_module.task_backends["default"]
    assert type(backend) is DatabaseBackend
    assert tasks_module.default_task_backend.enqueue.__self__ is backend
    assert api.add.get_backend() is backend
    assert isinstance(api.add, tasks_module.Task)
    assert (
        backend.supports_defer,
        backend.supports_async_task,
        backend.supports_get_result,
        backend.supports_priority,
    ) == (True, True, True, True)
    assert api.record.priority == 5
    assert api.with_context.takes_context is True
    assert api.add.module_path == "tests.django_api_tasks.add"


def test_enqueue_run_and_read_back_sync_async_and_context_tasks(
    api: ModuleType, plain_project: Any, workers: Workers, runs_file: str
) -> None:
    tasks_module = dj()
    before = timezone.now()
    added = api.add.enqueue(2, b=3)
    added_async = async_to_sync(api.add_async.aenqueue)(4, 5)
    context = api.with_context.enqueue(runs_file, "ctx")
    context_async = api.with_context_async.enqueue("actx")

    for result in [added, added_async, context, context_async]:
        assert_django_result(result, "READY")
        assert result.backend == "default"
        assert result.enqueued_at is not None
        assert before <= result.enqueued_at <= timezone.now()
        assert (result.started_at, result.finished_at, result.last_attempted_at) == (None,) * 3
        assert (result.errors, result.worker_ids, result.attempts) == ([], [], 0)
        assert not result.is_finished
        with pytest.raises(ValueError, match="Task has not finished yet"):
            result.return_value  # noqa: B018
        assert DBTaskResult.objects.get(pk=result.id).api == "django.tasks"
    assert (added.args, added.kwargs) == ([2], {"b": 3})

    run_batch(workers, tasks=plain_project)

    for result in [added, added_async, context, context_async]:
        result.refresh()
        assert_django_result(result, "SUCCESSFUL")
        assert result.is_finished
        assert result.errors == []
        assert result.attempts == 1
        (worker_id,) = result.worker_ids
        assert uuid.UUID(worker_id)
        assert result.enqueued_at <= result.started_at <= result.finished_at
        assert result.last_attempted_at == result.started_at
    assert added.return_value == 5
    assert added_async.return_value == 9
    assert context.return_value == {
        "attempt": 1,
        "id": context.id,
        "args": [runs_file, "ctx"],
        "status": tasks_module.TaskResultStatus.RUNNING,
    }
    assert context_async.return_value == ["actx", 1, context_async.id]
    assert runs(runs_file) == {"ctx:1": 1}


def test_get_result_and_refresh_on_the_task_and_the_backend(
    api: ModuleType, workers: Workers
) -> None:
    tasks_module = dj()
    exceptions = tasks_module.exceptions
    backend = tasks_module.task_backends["default"]
    enqueued = api.add.enqueue(1, 1)
    other = api.add_async.enqueue(1, 1)
    run_batch(workers)

    fetched = [
        api.add.get_result(enqueued.id),
        async_to_sync(api.add.aget_result)(enqueued.id),
        backend.get_result(enqueued.id),
        async_to_sync(backend.aget_result)(enqueued.id),
    ]
    for result in fetched:
        assert_django_result(result, "SUCCESSFUL")
        assert result.id == enqueued.id
        assert result.return_value == 2
        assert result.task.func is api.add.func
        assert result.args == [1, 1]

    async_to_sync(enqueued.arefresh)()
    assert_django_result(enqueued, "SUCCESSFUL")
    assert enqueued.return_value == 2

    with pytest.raises(exceptions.TaskResultMismatch, match="tests.django_api_tasks.add_async"):
        api.add.get_result(other.id)
    with pytest.raises(exceptions.TaskResultMismatch):
        async_to_sync(api.add.aget_result)(other.id)
    missing = str(uuid.uuid4())
    for get in [
        api.add.get_result,
        backend.get_result,
        async_to_sync(api.add.aget_result),
        async_to_sync(backend.aget_result),
    ]:
        with pytest.raises(exceptions.TaskResultDoesNotExist):
            get(missing)
    with pytest.raises(exceptions.TaskResultDoesNotExist):
        api.add.get_result("not-a-uuid")


def test_failures_give_errors_and_the_worker_continues(api: ModuleType, workers: Workers) -> None:
    failed = api.fail.using(priority=10).enqueue("boom")
    ok = api.add.enqueue(1, 2)
    run_batch(workers)

    failed.refresh()
    assert_django_result(failed, "FAILED")
    with pytest.raises(ValueError, match="Task failed"):
        failed.return_value  # noqa: B018
    (error,) = failed.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert error.traceback.endswith("ValueError: boom\n")
    assert "tests/django_api_tasks.py" in error.traceback
    assert failed.attempts == 1
    assert failed.finished_at is not None
    ok.refresh()
    assert ok.return_value == 3


def test_an_exception_that_cannot_be_imported_back(api: ModuleType, workers: Workers) -> None:
    result = api.fail_with_local_exception.enqueue("local")
    run_batch(workers)

    result.refresh()
    assert_django_result(result, "FAILED")
    (error,) = result.errors
    assert error.exception_class_path == (
        "tests.django_api_tasks.fail_with_local_exception.<locals>.LocalError"
    )
    assert "LocalError: local" in error.traceback
    assert "raise LocalError(message)" in error.traceback
    with pytest.raises(ImportError):
        error.exception_class  # noqa: B018
    # Reading it back again works: nothing is imported until asked for.
    assert_django_result(api.fail_with_local_exception.get_result(result.id), "FAILED")


def test_an_exception_whose_arguments_cannot_be_stored(api: ModuleType, workers: Workers) -> None:
    result = api.fail_with_unstorable_arguments.enqueue()
    output = run_batch(workers)

    result.refresh()
    assert_django_result(result, "FAILED")
    (error,) = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert 'raise ValueError(ValueError("not JSON"))' in error.traceback
    assert error.traceback.endswith("ValueError: not JSON\n")
    assert f"Task id={result.id} unable to save exception" not in output


def test_an_exception_whose_text_has_a_nul_byte(api: ModuleType, workers: Workers) -> None:
    result = api.fail_with_nul.enqueue()
    ok = api.add.enqueue(1, 1)
    run_batch(workers)

    result.refresh()
    assert_django_result(result, "FAILED")
    (error,) = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert "raise ValueError(" in error.traceback
    assert "ValueError: before" in error.traceback
    ok.refresh()
    assert ok.return_value == 2


def test_a_task_whose_module_vanished_fails_and_the_worker_goes_on(
    worker_backend: None, api: ModuleType, workers: Workers, tmp_path: Path
) -> None:
    module_dir = tmp_path / "modules"
    module_dir.mkdir()
    name = f"vanishing_tasks_{uuid.uuid4().hex}"
    (module_dir / f"{name}.py").write_text(
        "from django.tasks import task\n\n\n@task\ndef gone(x):\n    return x\n"
    )
    sys.path.insert(0, str(module_dir))
    try:
        module = importlib.import_module(name)
        vanished = module.gone.using(priority=10).enqueue(1)
    finally:
        sys.path.remove(str(module_dir))
        sys.modules.pop(name, None)
    (module_dir / f"{name}.py").unlink()
    ok = api.add.enqueue(20, 22)

    env = {"PYTHONPATH": f"{ROOT}:{module_dir}"}
    output = run_batch(workers, env=env)

    row = DBTaskResult.objects.get(pk=vanished.id)
    assert row.status == ResultStatus.FAILED
    assert row.api == "django.tasks"
    assert row.finished_at is not None
    assert row.exception_data is not None
    assert row.exception_data["exc_type"] == "builtins.ModuleNotFoundError"
    assert f"Task id={vanished.id} failed unexpectedly" in output
    ok.refresh()
    assert ok.return_value == 42


def test_dashboard_retry_keeps_the_first_error(
    api: ModuleType, workers: Workers, tmp_path: Path
) -> None:
    marker = str(tmp_path / "marker")
    result = api.fail_once.enqueue(marker)
    run_batch(workers)
    result.refresh()
    assert_django_result(result, "FAILED")
    (first_error,) = result.errors
    first_worker_ids = list(result.worker_ids)
    first_started_at = result.started_at
    assert first_started_at is not None
    assert result.last_attempted_at == first_started_at

    # What the dashboard's retry action calls.
    assert services.retry(results=[result.id]) == services.RetryOutcome(retried=1, refused=0)
    result.refresh()
    assert_django_result(result, "READY")
    assert result.errors == [first_error]
    assert result.worker_ids == first_worker_ids
    assert result.attempts == 1
    # Attempted once, at first_started_at (which "started_at" keeps: the first attempt's).
    assert result.last_attempted_at == first_started_at
    assert result.started_at == first_started_at
    assert result.finished_at is None
    run_batch(workers)

    result.refresh()
    assert_django_result(result, "SUCCESSFUL")
    assert result.return_value == "second run succeeds"
    assert result.errors == [first_error]
    assert first_error.exception_class_path == "builtins.ValueError"
    assert first_error.traceback.endswith("ValueError: first run fails\n")
    assert result.attempts == 2
    assert result.worker_ids[0] == first_worker_ids[0]
    assert result.started_at == first_started_at
    assert result.last_attempted_at is not None
    assert result.last_attempted_at > first_started_at
    assert result.finished_at is not None
    assert result.finished_at >= result.last_attempted_at
    assert Path(marker).read_text().split() == ["failed", "succeeded"]

    # Failing again keeps both errors, oldest first.
    failing = api.fail.enqueue("one")
    run_batch(workers)
    services.retry(results=[failing.id])
    run_batch(workers)
    failing.refresh()
    assert_django_result(failing, "FAILED")
    assert [e.exception_class_path for e in failing.errors] == ["builtins.ValueError"] * 2
    assert failing.attempts == 2


def test_takes_context_attempt_after_a_worker_lost_recovery(
    api: ModuleType, workers: Workers, runs_file: str
) -> None:
    tasks_setting = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"lost_tasks": "requeue"}}}
    with override_settings(TASKS=tasks_setting):
        result = api.with_context.enqueue(runs_file, "ctx")
        lost = uuid.uuid4()
        services.register_worker(
            worker_id=lost, backend_name="default", queue_names=["default"], threads=1
        )
        DBWorker.objects.filter(pk=lost).update(
            last_heartbeat_at=timezone.now() - timedelta(minutes=5)
        )
        (claimed,) = services.claim_tasks(
            backend_name="default", queue_names=None, worker_id=lost, limit=1
        )
        assert str(claimed.pk) == result.id
        result.refresh()
        assert_django_result(result, "RUNNING")
        assert result.worker_ids == [str(lost)]
        assert result.attempts == 1
        lost_started_at = result.started_at
        assert lost_started_at is not None
        assert result.last_attempted_at == lost_started_at

        outcome = services.recover_lost_tasks(backend_name="default", heartbeat_timeout=20)
        assert outcome == services.RecoveryOutcome(failed=0, requeued=1, workers_removed=1)
        result.refresh()
        assert_django_result(result, "READY")
        assert result.worker_ids == [str(lost)]
        (lost_error,) = result.errors
        assert lost_error.exception_class_path == (
            "django_tasks.backends.database.services.WorkerLost"
        )
        assert (result.started_at, result.last_attempted_at) == (lost_started_at,) * 2

        run_batch(workers, tasks=tasks_setting)

        result.refresh()
    assert_django_result(result, "SUCCESSFUL")
    assert runs(runs_file) == {"ctx:2": 1}
    assert result.return_value["attempt"] == 2
    assert result.attempts == 2
    assert result.worker_ids[0] == str(lost)
    assert result.worker_ids[1] != str(lost)
    assert result.errors == [lost_error]
    assert result.started_at == lost_started_at
    assert result.last_attempted_at > lost_started_at


def lost_worker_holding(result_id: str) -> uuid.UUID:
    """Register a worker silent for 5 minutes and let it claim ``result_id``."""
    lost = uuid.uuid4()
    services.register_worker(
        worker_id=lost, backend_name="default", queue_names=["default"], threads=1
    )
    DBWorker.objects.filter(pk=lost).update(last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    (claimed,) = services.claim_tasks(
        backend_name="default", queue_names=None, worker_id=lost, limit=1
    )
    assert str(claimed.pk) == result_id
    return lost


def test_a_running_worker_recovers_a_lost_task_and_reruns_it_as_attempt_2(
    api: ModuleType, workers: Workers, runs_file: str
) -> None:
    tasks_setting = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"lost_tasks": "requeue"}}}
    with override_settings(TASKS=tasks_setting):
        result = api.with_context.enqueue(runs_file, "recovered")
        lost = lost_worker_holding(result.id)

        worker = workers.start("--heartbeat-timeout", "1", "--interval", "0.1", tasks=tasks_setting)
        wait_until(lambda: runs(runs_file), what="the recovered task to run")
        result = wait_until(
            lambda: (r := api.with_context.get_result(result.id)).is_finished and r,
            what="the recovered task to finish",
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()

    assert_django_result(result, "SUCCESSFUL")
    assert runs(runs_file) == {"recovered:2": 1}
    assert result.return_value["attempt"] == 2
    assert result.attempts == 2
    assert result.worker_ids[0] == str(lost)
    assert [e.exception_class_path for e in result.errors] == [
        "django_tasks.backends.database.services.WorkerLost"
    ]
    assert "worker lost" in result.errors[0].traceback
    assert not DBWorker.objects.filter(pk=lost).exists()


def test_lost_task_failed_by_recovery_sends_djangos_task_finished(api: ModuleType) -> None:
    tasks_module = dj()
    result = api.add.enqueue(1, 2)
    lost = lost_worker_holding(result.id)
    finished: list[tuple[Any, Any]] = []

    def on_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
        finished.append((sender, task_result))

    tasks_module.signals.task_finished.connect(on_finished)
    try:
        outcome = services.recover_lost_tasks(
            backend_name="default", heartbeat_timeout=20, policy="fail"
        )
    finally:
        tasks_module.signals.task_finished.disconnect(on_finished)
    assert outcome.failed == 1
    ((sender, sent),) = finished
    assert sender is DatabaseBackend
    assert_django_result(sent, "FAILED")
    assert sent.id == result.id

    result.refresh()
    assert_django_result(result, "FAILED")
    assert result.worker_ids == [str(lost)]
    (error,) = result.errors
    assert error.exception_class_path == "django_tasks.backends.database.services.WorkerLost"
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_djangos_signals_with_our_backend_as_sender(
    api: ModuleType, workers: Workers, signals_file: str, runs_file: str
) -> None:
    tasks_module = dj()
    enqueued: list[tuple[Any, Any]] = []

    def on_enqueued(sender: Any, task_result: Any, **kwargs: Any) -> None:
        enqueued.append((sender, task_result))

    tasks_module.signals.task_enqueued.connect(on_enqueued)
    try:
        ok = api.add.using(priority=10).enqueue(1, 2)
        failing = async_to_sync(api.fail.using(priority=9).aenqueue)("signalled")
    finally:
        tasks_module.signals.task_enqueued.disconnect(on_enqueued)
    ours = record_run.using(priority=-10).enqueue(runs_file, "ours")

    assert [(sender, r.id) for sender, r in enqueued] == [
        (DatabaseBackend, ok.id),
        (DatabaseBackend, failing.id),
    ]
    for _, result in enqueued:
        assert_django_result(result, "READY")

    run_batch(workers, env={"DJANGO_TASKS_TEST_SIGNALS_FILE": signals_file})

    recorded = recorded_signals(signals_file)
    assert [s["attempts"] for s in recorded if s["api"] == "django.tasks"] == [1, 1, 1, 1]
    seen = [
        (s["api"], s["signal"], s["id"], s["sender"], s["result_class"], s["status"])
        for s in recorded
    ]
    assert seen == [
        ("django.tasks", "started", ok.id, DATABASE_BACKEND, DJANGO_RESULT, "RUNNING"),
        ("django.tasks", "finished", ok.id, DATABASE_BACKEND, DJANGO_RESULT, "SUCCESSFUL"),
        ("django.tasks", "started", failing.id, DATABASE_BACKEND, DJANGO_RESULT, "RUNNING"),
        ("django.tasks", "finished", failing.id, DATABASE_BACKEND, DJANGO_RESULT, "FAILED"),
        (
            "django_tasks",
            "started",
            ours.id,
            DATABASE_BACKEND,
            "django_tasks.backends.database.results.TaskResult",
            "RUNNING",
        ),
        (
            "django_tasks",
            "finished",
            ours.id,
            DATABASE_BACKEND,
            "django_tasks.backends.database.results.TaskResult",
            "COMPLETE",
        ),
    ]


@pytest.mark.parametrize("setting", [PLAIN_TASKS, WORKER_TASKS], ids=["plain", "worker"])
def test_enqueue_in_atomic_is_part_of_the_transaction(
    api: ModuleType, setting: dict[str, Any]
) -> None:
    with override_settings(TASKS=setting):
        enqueue_in_atomic(api)


def enqueue_in_atomic(api: ModuleType) -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        rolled_back = api.add.enqueue(1, 1)
        assert DBTaskResult.objects.filter(pk=rolled_back.id).exists()  # written at once
        raise Rollback
    assert not DBTaskResult.objects.filter(pk=rolled_back.id).exists()

    with transaction.atomic():
        committed = api.add.enqueue(1, 1)
        assert DBTaskResult.objects.filter(pk=committed.id).exists()
    assert DBTaskResult.objects.filter(pk=committed.id).exists()
    assert_django_result(api.add.get_result(committed.id), "READY")


def test_djangos_validation_rules_and_messages(api: ModuleType) -> None:
    tasks_module = dj()
    invalid = tasks_module.exceptions.InvalidTask
    task = tasks_module.task

    with pytest.raises(invalid, match=r"^priority must be a whole number between -100 and 100\.$"):
        task(priority=101)(api.add.func)
    with pytest.raises(invalid, match=r"^priority must be a whole number between -100 and 100\.$"):
        api.add.using(priority=-101)
    with pytest.raises(invalid, match=r"^priority must be a whole number between -100 and 100\.$"):
        api.add.using(priority=1.5)
    with pytest.raises(
        invalid, match=r"^Task takes context but does not have a first argument of 'context'\.$"
    ):
        task(takes_context=True)(api.add.func)
    with pytest.raises(invalid, match=r"^Task function must be defined at a module level\.$"):

        @task
        def local() -> None:
            pass

    with pytest.raises(invalid, match=r"^run_after must be an aware datetime\.$"):
        api.add.using(run_after=datetime(2030, 1, 1))  # noqa: DTZ001
    with pytest.raises(tasks_module.exceptions.InvalidTaskBackend):
        task(backend="no-such-backend")(api.add.func)

    queues = {"default": {**WORKER_TASKS["default"], "QUEUES": ["default"]}}
    with override_settings(TASKS=queues):
        with pytest.raises(invalid, match=r"^Queue 'other' is not valid for backend\.$"):
            api.add.using(queue_name="other")
        assert api.add.using(queue_name="default").queue_name == "default"

    # Every argument Django's @task accepts.
    defined = task(priority=-3, queue_name="q", backend="default", takes_context=True)(
        api.with_context.func
    )
    assert (defined.priority, defined.queue_name, defined.takes_context) == (-3, "q", True)
    later = timezone.now() + timedelta(hours=1)
    deferred = api.add.using(run_after=later).enqueue(1, 2)
    assert DBTaskResult.objects.get(pk=deferred.id).run_after == later


@pytest.mark.parametrize(
    ("backend_path", "name"),
    [
        ("django_tasks.backends.immediate.ImmediateBackend", "ImmediateBackend"),
        ("django_tasks.backends.dummy.DummyBackend", "DummyBackend"),
    ],
)
def test_immediate_and_dummy_refuse_django_tasks_at_definition(
    api: ModuleType, backend_path: str, name: str
) -> None:
    tasks_module = dj()
    setting = {"default": {"BACKEND": backend_path, "ENQUEUE_ON_COMMIT": False}}
    with (
        override_settings(TASKS=setting),
        pytest.raises(tasks_module.exceptions.InvalidTask) as raised,
    ):
        tasks_module.task(api.add.func)
    message = str(raised.value)
    assert message.startswith(f"{name} runs tasks of django_tasks only")
    assert "'django.tasks.backends.immediate.ImmediateBackend'" in message
    assert "'django.tasks.backends.dummy.DummyBackend'" in message


@pytest.mark.skipif(
    django.VERSION < (6, 1), reason="Django 6.1 passes @task's further keywords to task_class"
)
def test_further_keywords_our_task_class_accepts(
    api: ModuleType, plain_project: Any, workers: Workers
) -> None:
    tasks_module = dj()
    on_commit = tasks_module.task(enqueue_on_commit=True)(api.add.func)
    in_transaction = tasks_module.task(enqueue_on_commit=False, priority=3)(api.add.func)
    assert isinstance(on_commit, tasks_module.Task)
    assert (on_commit.enqueue_on_commit, in_transaction.enqueue_on_commit) == (True, False)
    assert in_transaction.priority == 3
    assert on_commit.using(priority=1).enqueue_on_commit is True

    enqueued: list[Any] = []

    def on_enqueued(sender: Any, task_result: Any, **kwargs: Any) -> None:
        enqueued.append((sender, task_result.id))

    tasks_module.signals.task_enqueued.connect(on_enqueued)
    try:
        with transaction.atomic():
            deferred = on_commit.enqueue(1, 2)
            written = in_transaction.enqueue(2, 3)
            assert not DBTaskResult.objects.filter(pk=deferred.id).exists()
            assert DBTaskResult.objects.filter(pk=written.id).exists()
            assert enqueued == [(DatabaseBackend, written.id)]
    finally:
        tasks_module.signals.task_enqueued.disconnect(on_enqueued)
    assert enqueued == [(DatabaseBackend, written.id), (DatabaseBackend, deferred.id)]
    assert DBTaskResult.objects.filter(pk=deferred.id).exists()
    assert_django_result(deferred, "READY")
    deferred.refresh()
    assert deferred.enqueued_at is not None

    run_batch(workers, tasks=plain_project)
    deferred.refresh()
    written.refresh()
    assert (deferred.return_value, written.return_value) == (3, 5)


# --- both APIs in one project --------------------------------------------------------


def test_one_worker_runs_both_apis_in_one_queue_each_in_its_own_shape(
    api: ModuleType, workers: Workers, runs_file: str
) -> None:
    tasks_module = dj()
    theirs = [api.record.enqueue(runs_file, f"django-{i}") for i in range(3)]
    ours = [record_run.enqueue(runs_file, f"ours-{i}") for i in range(3)]
    their_failure = api.fail.enqueue("theirs")
    our_failure = fail_with.enqueue(runs_file, "our-failure")
    assert {row.queue_name for row in DBTaskResult.objects.all()} == {"default"}
    assert sorted(DBTaskResult.objects.values_list("api", flat=True)) == (
        ["django.tasks"] * 4 + ["django_tasks"] * 4
    )

    output = run_batch(workers, "-v", "2")
    assert output.count("Starting worker") == 1
    assert runs(runs_file) == {
        **{f"django-{i}": 1 for i in range(3)},
        **{f"ours-{i}": 1 for i in range(3)},
        "our-failure": 1,
    }

    for result in theirs:
        result.refresh()
        assert_django_result(result, "SUCCESSFUL")
        assert result.return_value == result.args[1]
    for result in ours:
        result.refresh()
        assert isinstance(result, OurTaskResult)
        assert not isinstance(result, tasks_module.TaskResult)
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == result.args[1]

    # Each read path gives the row's own API's shape.
    backend = tasks["default"]  # django_tasks' handler: the same backend class
    assert type(backend.get_result(theirs[0].id)) is tasks_module.TaskResult
    assert isinstance(backend.get_result(ours[0].id), OurTaskResult)
    django_backend = tasks_module.task_backends["default"]
    assert isinstance(django_backend.get_result(ours[0].id), OurTaskResult)
    assert record_run.get_result(ours[0].id).status == ResultStatus.COMPLETE

    their_failure.refresh()
    assert_django_result(their_failure, "FAILED")
    assert [e.exception_class_path for e in their_failure.errors] == ["builtins.ValueError"]
    our_failure.refresh()
    assert isinstance(our_failure, OurTaskResult)
    assert our_failure.status == ResultStatus.FAILED
    assert isinstance(our_failure.exception, ValueError)

    # Another API's result through a task of the other API: a mismatch.
    with pytest.raises(tasks_module.exceptions.TaskResultMismatch):
        api.record.get_result(ours[0].id)


def test_rows_of_a_django_5_project_still_run_in_their_shape(
    api: ModuleType, workers: Workers, runs_file: str
) -> None:
    # A row written before the upgrade (no api column value given: the default).
    row = DBTaskResult.objects.create(
        task_path="tests.worker_helpers.record_run",
        args_kwargs={"args": [runs_file, "old"], "kwargs": {}},
        backend_name="default",
    )
    assert row.api == "django_tasks"
    run_batch(workers)
    result = record_run.get_result(str(row.pk))
    assert isinstance(result, OurTaskResult)
    assert result.status == ResultStatus.COMPLETE
    assert result.return_value == "old"


def test_rows_enqueued_before_a_module_moved_to_django_tasks_still_run(
    api: ModuleType, workers: Workers, runs_file: str
) -> None:
    # Enqueued by django_tasks code; the module then moved to django.tasks (same paths).
    rows = [
        DBTaskResult.objects.create(
            task_path=path, args_kwargs={"args": args, "kwargs": {}}, backend_name="default"
        )
        for path, args in [
            ("tests.django_api_tasks.add", [2, 2]),
            ("tests.django_api_tasks.with_context", [runs_file, "moved"]),
        ]
    ]
    run_batch(workers)

    # Each row comes back in the API that enqueued it: django_tasks'.
    added = api.add.get_result(str(rows[0].pk))
    with_context = api.with_context.get_result(str(rows[1].pk))
    assert isinstance(added, OurTaskResult)
    assert isinstance(with_context, OurTaskResult)
    assert added.status == ResultStatus.COMPLETE
    assert added.return_value == 4
    assert with_context.status == ResultStatus.COMPLETE, with_context.traceback
    assert cast(Any, with_context.return_value)["attempt"] == 1
    assert runs(runs_file) == {"moved:1": 1}


def test_prune_deletes_old_finished_rows_of_both_apis(
    api: ModuleType, workers: Workers, runs_file: str
) -> None:
    theirs = api.record.enqueue(runs_file, "theirs")
    their_failure = api.fail.enqueue("old")
    ours = record_run.enqueue(runs_file, "ours")
    young = api.add.enqueue(1, 1)
    waiting = api.add.using(run_after=timezone.now() + timedelta(days=1)).enqueue(1, 1)
    run_batch(workers)
    old = timezone.now() - timedelta(days=30)
    DBTaskResult.objects.filter(pk__in=[theirs.id, their_failure.id, ours.id]).update(
        finished_at=old
    )

    stdout = StringIO()
    call_command("prune_db_task_results", stdout=stdout)
    assert stdout.getvalue() == "Deleted 3 task result(s)\n"
    assert set(DBTaskResult.objects.values_list("pk", flat=True)) == {
        uuid.UUID(young.id),
        uuid.UUID(waiting.id),
    }
    with pytest.raises(dj().exceptions.TaskResultDoesNotExist):
        theirs.refresh()


def test_our_database_backend_beside_djangos_own_immediate_backend(
    api: ModuleType, workers: Workers
) -> None:
    tasks_module = dj()
    both = {
        "default": PLAIN_TASKS["default"],
        "django": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    }
    with override_settings(TASKS=both):
        immediate = api.add.using(backend="django").enqueue(3, 4)
        queued = api.add.enqueue(5, 6)
        assert type(tasks_module.task_backends["django"]).__module__ == (
            "django.tasks.backends.immediate"
        )
        assert_django_result(immediate, "SUCCESSFUL")
        assert immediate.return_value == 7
        assert not DBTaskResult.objects.filter(backend_name="django").exists()

        run_batch(workers, tasks=both)
        queued.refresh()
        assert queued.return_value == 11

        check = subprocess.run(
            [sys.executable, "-m", "django", "check"],
            env=worker_env(both),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues" in check.stdout


def test_manage_py_check_reports_our_backends_errors_once(api: ModuleType) -> None:
    tasks_setting = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"lost_tasks": "retry"}}}
    process = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=worker_env(tasks_setting),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 1, process.stdout + process.stderr
    message = "OPTIONS['lost_tasks'] of backend 'default' must be one of fail, requeue, not 'retry'"
    assert process.stderr.count(message) == 1, process.stderr
    assert "1 issue" in process.stderr

    good = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=worker_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert good.returncode == 0, good.stderr
