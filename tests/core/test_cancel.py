"""services.cancel: waiting results end FAILED with TaskCancelled and never run."""

from __future__ import annotations

import importlib
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import django
import pytest
from django.utils import timezone

from django_tasks import ResultStatus
from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.signals import task_finished
from tests import retry_tasks
from tests.worker_helpers import Workers, record_run, runs

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_backend")]

CANCELLED = "django_tasks.backends.database.services.TaskCancelled"


def set_status(result_id: str, status: ResultStatus) -> None:
    DBTaskResult.objects.filter(pk=result_id).update(status=status)


def test_cancel_ends_waiting_results_failed_with_task_cancelled(runs_file: str) -> None:
    first = record_run.enqueue(runs_file, "a")
    later = record_run.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(runs_file, "b")
    other = record_run.enqueue(runs_file, "c")

    assert services.cancel([first.id, later.id]) == 2

    for result in (first, later):
        result.refresh()
        assert result.status == ResultStatus.FAILED
        assert result.finished_at is not None
        assert isinstance(result.exception, services.TaskCancelled)
        assert "cancelled" in str(result.exception)
        row = DBTaskResult.objects.get(pk=result.id)
        assert (row.exception_data or {}).get("exc_type") == CANCELLED
        assert row.return_value is None
        assert services.is_cancelled(row)
    other.refresh()
    assert other.status == ResultStatus.NEW


def test_cancel_leaves_running_and_finished_results_alone(runs_file: str) -> None:
    results = {status: record_run.enqueue(runs_file, str(status)) for status in ResultStatus}
    for status, result in results.items():
        set_status(result.id, status)
    assert services.cancel([r.id for r in results.values()]) == 1
    statuses = dict(DBTaskResult.objects.values_list("pk", "status"))
    for status, result in results.items():
        expected = ResultStatus.FAILED if status == ResultStatus.NEW else status
        assert statuses[DBTaskResult.objects.get(pk=result.id).pk] == expected
    assert DBTaskResult.objects.filter(exception_data__exc_type=CANCELLED).count() == 1


def test_cancel_skips_missing_and_malformed_ids_and_counts_once(runs_file: str) -> None:
    result = record_run.enqueue(runs_file, "a")
    missing = "00000000-0000-0000-0000-000000000000"
    assert services.cancel([result.id, result.id, missing, "not-a-uuid"]) == 1
    assert services.cancel([result.id]) == 0


def test_cancel_accepts_a_queryset_in_batches_and_a_limit(runs_file: str) -> None:
    results = [record_run.enqueue(runs_file, str(i)) for i in range(5)]
    set_status(results[0].id, ResultStatus.RUNNING)
    queryset = DBTaskResult.objects.all()
    assert services.cancel_preview(queryset) == (4, 1)
    assert services.cancel_preview([r.id for r in results], limit=2) == (1, 1)
    assert services.cancel(queryset, limit=3) == 2
    assert services.cancel(queryset, batch_size=1) == 2
    assert services.cancel_preview(queryset) == (0, 5)
    assert DBTaskResult.objects.filter(status=ResultStatus.FAILED).count() == 4


def test_cancel_sends_task_finished_once_per_cancelled_row(runs_file: str) -> None:
    seen: list[tuple[str, ResultStatus, str]] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append((task_result.id, task_result.status, type(task_result.exception).__name__))

    waiting = record_run.enqueue(runs_file, "a")
    running = record_run.enqueue(runs_file, "b")
    set_status(running.id, ResultStatus.RUNNING)
    task_finished.connect(receiver)
    try:
        services.cancel([waiting.id, running.id])
        services.cancel([waiting.id])
    finally:
        task_finished.disconnect(receiver)
    assert seen == [(waiting.id, ResultStatus.FAILED, "TaskCancelled")]


def test_cancel_one(runs_file: str) -> None:
    result = record_run.enqueue(runs_file, "a")
    row = services.cancel_one(result.id)
    assert row.status == ResultStatus.FAILED
    assert (row.exception_data or {}).get("exc_type") == CANCELLED


def test_cancel_one_refuses_running_and_finished_results(runs_file: str) -> None:
    result = record_run.enqueue(runs_file, "a")
    set_status(result.id, ResultStatus.RUNNING)
    with pytest.raises(services.CancelRefused) as running:
        services.cancel_one(result.id)
    assert str(running.value) == (
        f"Task result {result.id} cannot be cancelled: it is RUNNING; "
        "a running task is not interrupted"
    )
    for status in (ResultStatus.COMPLETE, ResultStatus.FAILED):
        set_status(result.id, status)
        with pytest.raises(services.CancelRefused, match=f"it is {status}; only waiting"):
            services.cancel_one(result.id)
    assert DBTaskResult.objects.get(pk=result.id).exception_data is None


def test_cancel_one_of_missing_or_malformed_result() -> None:
    for result_id in ("00000000-0000-0000-0000-000000000000", "nope"):
        with pytest.raises(ResultDoesNotExist):
            services.cancel_one(result_id)


def test_cancelled_task_never_runs(runs_file: str, workers: Workers) -> None:
    cancelled = record_run.enqueue(runs_file, "cancelled")
    kept = record_run.enqueue(runs_file, "kept")
    # A task waiting for its next attempt (in 10 s), as the worker leaves it after a
    # failure: claimed first (highest priority) and run the worker's way.
    retry_waiting = retry_tasks.fails_with_linear_backoff.using(priority=10).enqueue(
        runs_file, "retry-waiting"
    )
    worker_id = uuid.uuid4()
    (row,) = services.claim_tasks(backend_name="default", queue_names=None, worker_id=worker_id)
    assert services.run_task(row, worker_id=worker_id) == ResultStatus.NEW
    assert services.cancel([cancelled.id, retry_waiting.id]) == 2

    worker = workers.start("--batch")
    assert worker.wait() == 0, worker.output()

    assert runs(runs_file) == {"kept": 1, "retry-waiting": 1}
    kept.refresh()
    assert kept.status == ResultStatus.COMPLETE
    for result in (cancelled, retry_waiting):
        result.refresh()
        assert result.status == ResultStatus.FAILED
        assert result.started_at is None
        assert isinstance(result.exception, services.TaskCancelled)
    assert len(DBTaskResult.objects.get(pk=retry_waiting.id).attempt_history) == 1


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks is Django 6.0+")
def test_cancel_a_django_tasks_result(runs_file: str, workers: Workers) -> None:
    import django.tasks
    import django.tasks.signals

    api = importlib.import_module("tests.django_api_tasks")
    result = api.record.enqueue(runs_file, "theirs")
    seen: list[tuple[str, Any]] = []

    def theirs(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(("django.tasks", task_result))

    def ours(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(("django_tasks", task_result))

    django.tasks.signals.task_finished.connect(theirs)
    task_finished.connect(ours)
    try:
        assert services.cancel([result.id]) == 1
    finally:
        django.tasks.signals.task_finished.disconnect(theirs)
        task_finished.disconnect(ours)
    # Once, in the row's own API, with Django's result and its error.
    assert [(api_name, type(r)) for api_name, r in seen] == [
        ("django.tasks", django.tasks.TaskResult)
    ]
    assert seen[0][1].status == django.tasks.TaskResultStatus.FAILED
    assert seen[0][1].errors[-1].exception_class_path == CANCELLED
    run = workers.start("--batch")
    assert run.wait() == 0, run.output()
    assert not Path(runs_file).exists()
    result.refresh()
    assert type(result) is django.tasks.TaskResult
    assert result.status == django.tasks.TaskResultStatus.FAILED
    assert result.finished_at is not None
    assert result.errors[-1].exception_class_path == CANCELLED
    assert "cancelled" in result.errors[-1].traceback


def test_cancel_is_logged_as_a_warning_without_a_traceback(
    runs_file: str, caplog: pytest.LogCaptureFixture
) -> None:
    result = record_run.enqueue(runs_file, "a")
    with caplog.at_level("INFO", logger="django_tasks"):
        assert services.cancel([result.id]) == 1
    (record,) = [r for r in caplog.records if result.id in r.getMessage()]
    assert record.levelname == "WARNING"
    assert record.getMessage().endswith("state=FAILED (cancelled)")
    assert record.exc_info is None


@pytest.mark.slow
def test_cancel_racing_workers_never_both_cancels_and_runs_a_task(
    runs_file: str, workers: Workers
) -> None:
    """Each row ends cancelled (never run) or run once (not cancelled), on both databases."""
    count = 600
    ids = [record_run.enqueue(runs_file, str(i)).id for i in range(count)]
    started = [workers.start("--batch", "--interval", "0", "--threads", "2") for _ in range(2)]
    cancelled = 0

    def cancel_all() -> None:
        nonlocal cancelled
        for start in range(0, count, 20):  # small batches, interleaved with the claims
            cancelled += services.cancel(ids[start : start + 20])

    canceller = threading.Thread(target=cancel_all)
    canceller.start()
    canceller.join()
    assert workers.wait_all(started) == [0, 0], workers.outputs()

    ran = runs(runs_file)
    rows = {
        str(pk): (status, data)
        for pk, status, data in DBTaskResult.objects.values_list("pk", "status", "exception_data")
    }
    assert len(rows) == count
    is_cancelled = {
        i for i, (status, data) in rows.items() if (data or {}).get("exc_type") == CANCELLED
    }
    assert len(is_cancelled) == cancelled
    for result_id, token in zip(ids, map(str, range(count)), strict=True):
        status, _ = rows[result_id]
        if result_id in is_cancelled:
            assert (ran[token], status) == (0, ResultStatus.FAILED)
        else:
            assert (ran[token], status) == (1, ResultStatus.COMPLETE)
