"""The worker's services: claiming, releasing, running, heartbeats and recovery."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone

from django_tasks import ResultStatus
from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.signals import task_finished, task_started
from tests import tasks as test_tasks
from tests.worker_settings import WORKER_TASKS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_backend")]


@pytest.fixture
def signals() -> Iterator[list[tuple[str, ResultStatus, Any]]]:
    seen: list[tuple[str, ResultStatus, Any]] = []

    def receiver(signal: Any, sender: Any, task_result: Any, **kwargs: Any) -> None:
        name = "started" if signal is task_started else "finished"
        seen.append((name, task_result.status, task_result))

    task_started.connect(receiver)
    task_finished.connect(receiver)
    yield seen
    task_started.disconnect(receiver)
    task_finished.disconnect(receiver)


def worker(heartbeat_age: float = 0.0, **fields: Any) -> uuid.UUID:
    """Register a worker whose last heartbeat was ``heartbeat_age`` seconds ago."""
    worker_id = uuid.uuid4()
    services.register_worker(
        worker_id=worker_id, backend_name="default", queue_names=["default"], threads=1
    )
    if heartbeat_age or fields:
        DBWorker.objects.filter(pk=worker_id).update(
            last_heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age), **fields
        )
    return worker_id


def claim(worker_id: uuid.UUID, limit: int = 100, queues: list[str] | None = None) -> list[str]:
    rows = services.claim_tasks(
        backend_name="default", queue_names=queues, worker_id=worker_id, limit=limit
    )
    return [row.args_kwargs["args"][0] for row in rows]


def running_for(worker_id: uuid.UUID, *tokens: str) -> list[DBTaskResult]:
    """Enqueue tasks and claim them for ``worker_id``."""
    for token in tokens:
        test_tasks.echo.enqueue(token)
    claimed = services.claim_tasks(
        backend_name="default", queue_names=None, worker_id=worker_id, limit=len(tokens)
    )
    assert len(claimed) == len(tokens)
    return claimed


# --- claiming ------------------------------------------------------------------


def test_claim_takes_ready_tasks_in_model_order() -> None:
    now = timezone.now()
    for token, priority, run_after in [
        ("a", 0, None),
        ("b", 10, None),
        ("c", 0, now - timedelta(seconds=10)),
        ("d", 0, now - timedelta(seconds=5)),
        ("e", -5, None),
        ("f", 10, now - timedelta(seconds=1)),
    ]:
        test_tasks.echo.using(priority=priority, run_after=run_after).enqueue(token)
    worker_id = uuid.uuid4()

    assert claim(worker_id, limit=4) == ["f", "b", "d", "c"]
    assert claim(worker_id, limit=4) == ["a", "e"]
    assert claim(worker_id) == []

    rows = DBTaskResult.objects.all()
    assert {row.status for row in rows} == {ResultStatus.RUNNING}
    assert {row.worker_id for row in rows} == {worker_id}
    assert all(row.started_at is not None for row in rows)


def test_claim_skips_other_backends_queues_future_and_started_rows() -> None:
    test_tasks.echo.using(queue_name="other").enqueue("other-queue")
    test_tasks.echo.using(run_after=timedelta(hours=1)).enqueue("future")
    test_tasks.echo.enqueue("ready")
    for status in [ResultStatus.RUNNING, ResultStatus.COMPLETE, ResultStatus.FAILED]:
        DBTaskResult.objects.create(
            task_path="tests.tasks.echo",
            args_kwargs={"args": [status.value], "kwargs": {}},
            backend_name="default",
            status=status,
        )
    DBTaskResult.objects.create(
        task_path="tests.tasks.echo",
        args_kwargs={"args": ["other-backend"], "kwargs": {}},
        backend_name="other",
    )

    assert claim(uuid.uuid4(), queues=["default"]) == ["ready"]
    assert claim(uuid.uuid4(), queues=["default"]) == []
    assert claim(uuid.uuid4(), queues=[]) == []
    assert claim(uuid.uuid4(), queues=None) == ["other-queue"]


def test_claim_limit_below_one_claims_nothing() -> None:
    test_tasks.echo.enqueue("a")
    assert claim(uuid.uuid4(), limit=0) == []
    assert DBTaskResult.objects.get().status == ResultStatus.NEW


def test_concurrent_claims_never_overlap() -> None:
    for i in range(200):
        test_tasks.echo.enqueue(str(i))
    claimed: list[list[str]] = []
    errors: list[BaseException] = []

    def claimer() -> None:
        worker_id = uuid.uuid4()
        mine: list[str] = []
        try:
            while batch := claim(worker_id, limit=7):
                mine += batch
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            claimed.append(mine)
            connections.close_all()

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    everything = [token for mine in claimed for token in mine]
    assert sorted(everything, key=int) == [str(i) for i in range(200)]


def test_release_puts_unstarted_claims_back() -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    a, b, c = running_for(mine, "a", "b", "c")
    (d,) = running_for(theirs, "d")

    assert services.release_tasks(worker_id=mine, ids=[a.pk]) == 1
    assert services.release_tasks(worker_id=mine, exclude=[c.pk]) == 1
    rows = {row.args_kwargs["args"][0]: row for row in DBTaskResult.objects.all()}
    assert [rows[t].status for t in "abcd"] == ["NEW", "NEW", "RUNNING", "RUNNING"]
    assert rows["a"].worker_id is None
    assert rows["a"].started_at is None
    assert rows["d"].worker_id == theirs


# --- running -------------------------------------------------------------------


def test_run_task_records_success_and_sends_signals(signals: list[Any]) -> None:
    worker_id = uuid.uuid4()
    test_tasks.calculate_meaning_of_life.enqueue()
    (row,) = services.claim_tasks(
        backend_name="default", queue_names=None, worker_id=worker_id, limit=1
    )

    assert services.run_task(row, worker_id=worker_id) == ResultStatus.COMPLETE

    row.refresh_from_db()
    assert row.status == ResultStatus.COMPLETE
    assert row.return_value == 42
    assert row.exception_data is None
    assert row.started_at is not None
    assert row.finished_at is not None
    assert row.enqueued_at <= row.started_at <= row.finished_at
    assert [(name, status) for name, status, _ in signals] == [
        ("started", ResultStatus.RUNNING),
        ("finished", ResultStatus.COMPLETE),
    ]
    assert signals[1][2].return_value == 42


def test_run_task_records_failure_inside_the_except_block(signals: list[Any]) -> None:
    worker_id = uuid.uuid4()
    test_tasks.failing_task_value_error.enqueue()
    (row,) = services.claim_tasks(
        backend_name="default", queue_names=None, worker_id=worker_id, limit=1
    )
    active: list[Any] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        import sys

        active.append(sys.exc_info()[1])

    task_finished.connect(receiver)
    try:
        assert services.run_task(row, worker_id=worker_id) == ResultStatus.FAILED
    finally:
        task_finished.disconnect(receiver)

    result = row.task_result
    assert result.status == ResultStatus.FAILED
    assert isinstance(result.exception, ValueError)
    assert isinstance(active[0], ValueError)
    assert [name for name, _, _ in signals] == ["started", "finished"]


def test_run_task_with_unresolvable_path_fails_without_signals(
    signals: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    worker_id = uuid.uuid4()
    DBTaskResult.objects.create(
        task_path="tests.no_such_module.task",
        args_kwargs={"args": [], "kwargs": {}},
        backend_name="default",
    )
    (row,) = services.claim_tasks(
        backend_name="default", queue_names=None, worker_id=worker_id, limit=1
    )
    with caplog.at_level(logging.ERROR, logger="django_tasks"):
        assert services.run_task(row, worker_id=worker_id) == ResultStatus.FAILED

    row.refresh_from_db()
    assert row.status == ResultStatus.FAILED
    assert row.exception_data is not None
    assert row.exception_data["exc_type"] == "builtins.ModuleNotFoundError"
    assert signals == []
    (record,) = caplog.records
    assert record.getMessage() == f"Task id={row.pk} failed unexpectedly"
    assert record.exc_info is not None


def test_run_task_does_not_overwrite_a_recovered_row(signals: list[Any]) -> None:
    worker_id = uuid.uuid4()
    (row,) = running_for(worker_id, "a")
    # Another worker recovered it (and maybe runs it) meanwhile.
    DBTaskResult.objects.filter(pk=row.pk).update(worker_id=uuid.uuid4())

    assert services.run_task(row, worker_id=worker_id) is None
    assert DBTaskResult.objects.get(pk=row.pk).status == ResultStatus.RUNNING
    assert [name for name, _, _ in signals] == ["started"]


def test_fail_task_records_the_exception() -> None:
    worker_id = uuid.uuid4()
    (row,) = running_for(worker_id, "a")
    try:
        raise SystemExit(1)
    except SystemExit as e:
        assert services.fail_task(row, e, worker_id=worker_id)
    result = DBTaskResult.objects.get(pk=row.pk).task_result
    assert result.status == ResultStatus.FAILED
    assert isinstance(result.exception, SystemExit)


# --- workers, heartbeats and recovery -------------------------------------------


def test_register_heartbeat_unregister() -> None:
    worker_id = worker()
    row = DBWorker.objects.get()
    assert row.pk == worker_id
    assert row.queues == ["default"]
    assert services.heartbeat(worker_id=worker_id, tasks_done=3, tasks_failed=1)
    row.refresh_from_db()
    assert (row.tasks_done, row.tasks_failed) == (3, 1)

    running_for(worker_id, "a")
    assert services.unregister_worker(worker_id=worker_id) == 1
    assert not DBWorker.objects.exists()
    assert not services.heartbeat(worker_id=worker_id)
    assert DBTaskResult.objects.get().status == ResultStatus.NEW


def test_live_and_lost_workers() -> None:
    live, lost = worker(), worker(heartbeat_age=60)
    assert [w.pk for w in services.live_workers(heartbeat_timeout=20)] == [live]
    assert [w.pk for w in services.lost_workers(heartbeat_timeout=20)] == [lost]
    assert [w.pk for w in services.live_workers(backend_name="default")] == [live]
    assert list(services.live_workers(backend_name="other")) == []


def test_orphaned_tasks_are_those_of_lost_or_unknown_workers() -> None:
    live, lost = worker(), worker(heartbeat_age=60)
    running_for(live, "live")
    running_for(lost, "lost")
    running_for(uuid.uuid4(), "unknown")

    orphans = services.orphaned_tasks(backend_name="default", heartbeat_timeout=20)
    assert sorted(row.args_kwargs["args"][0] for row in orphans) == ["lost", "unknown"]


def test_recover_fails_lost_tasks_and_removes_dead_workers(signals: list[Any]) -> None:
    live, lost = worker(), worker(heartbeat_age=60)
    running_for(live, "live")
    running_for(lost, "lost-1", "lost-2")
    running_for(uuid.uuid4(), "unknown")

    outcome = services.recover_lost_tasks(backend_name="default", heartbeat_timeout=20)

    assert outcome == services.RecoveryOutcome(failed=3, requeued=0, workers_removed=1)
    rows = {row.args_kwargs["args"][0]: row for row in DBTaskResult.objects.all()}
    assert rows["live"].status == ResultStatus.RUNNING
    for token in ["lost-1", "lost-2", "unknown"]:
        result = rows[token].task_result
        assert result.status == ResultStatus.FAILED
        assert isinstance(result.exception, services.WorkerLost)
        assert "worker lost" in str(result.exception)
        assert result.finished_at is not None
    assert "sent no heartbeat for more than 20s" in str(rows["lost-1"].task_result.exception)
    assert "no longer registered" in str(rows["unknown"].task_result.exception)
    assert list(DBWorker.objects.values_list("pk", flat=True)) == [live]
    assert sorted(status for name, status, _ in signals if name == "finished") == ["FAILED"] * 3


def test_recover_requeues_when_the_backend_says_so() -> None:
    tasks = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"lost_tasks": "requeue"}}}
    with override_settings(TASKS=tasks):
        lost = worker(heartbeat_age=60)
        (row,) = running_for(lost, "lost")
        outcome = services.recover_lost_tasks(backend_name="default", heartbeat_timeout=20)

    assert outcome == services.RecoveryOutcome(failed=0, requeued=1, workers_removed=1)
    row.refresh_from_db()
    assert row.status == ResultStatus.NEW
    assert row.worker_id is None
    assert row.started_at is None
    (attempt,) = row.attempts
    assert attempt["exception_class_path"] == "django_tasks.backends.database.services.WorkerLost"
    assert "worker lost" in attempt["message"]
    assert attempt["worker_id"] == str(lost)


def test_recover_uses_the_backend_heartbeat_timeout() -> None:
    tasks = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"heartbeat_timeout": 120}}}
    with override_settings(TASKS=tasks):
        slow = worker(heartbeat_age=60)
        running_for(slow, "slow")
        outcome = services.recover_lost_tasks(backend_name="default")
    assert outcome == services.RecoveryOutcome(failed=0, requeued=0, workers_removed=0)
    assert DBTaskResult.objects.get().status == ResultStatus.RUNNING


def test_invalid_lost_task_policy() -> None:
    tasks = {"default": {**WORKER_TASKS["default"], "OPTIONS": {"lost_tasks": "maybe"}}}
    with override_settings(TASKS=tasks), pytest.raises(ValueError, match="must be one of"):
        services.lost_task_policy_for("default")


def test_a_late_outcome_of_a_recovered_task_is_not_saved(signals: list[Any]) -> None:
    lost = worker(heartbeat_age=60)
    (row,) = running_for(lost, "a")
    services.recover_lost_tasks(backend_name="default", heartbeat_timeout=20)
    signals.clear()

    assert services.run_task(row, worker_id=lost) is None
    result = DBTaskResult.objects.get(pk=row.pk).task_result
    assert isinstance(result.exception, services.WorkerLost)


def test_query_counts(django_assert_max_num_queries: Any) -> None:
    worker_id = uuid.uuid4()
    for i in range(10):
        test_tasks.echo.enqueue(str(i))
    # SQLite probes before claiming (a read, so idle polls never take the write lock).
    with django_assert_max_num_queries(2):
        rows = services.claim_tasks(
            backend_name="default", queue_names=["default"], worker_id=worker_id, limit=10
        )
    assert len(rows) == 10
    with django_assert_max_num_queries(1):
        services.run_task(rows[0], worker_id=worker_id)
    assert connection.vendor in {"sqlite", "postgresql"}
