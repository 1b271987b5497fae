"""Automatic retries: attempts, which errors retry, backoff, RetryLater, OPTIONS, both APIs.

The attempts are run the way the worker runs them (``services.claim_tasks`` then
``services.run_task``); the last tests run real ``db_worker`` processes.
"""

from __future__ import annotations

import importlib
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import django
import pytest
from django.core import checks
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_tasks import ResultStatus, RetryLater, task, tasks
from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.exceptions import InvalidTaskError
from django_tasks.lifecycle import Exponential, TaskSettings
from django_tasks.signals import task_finished
from tests import retry_tasks
from tests.worker_helpers import Workers, runs, wait_until
from tests.worker_settings import WORKER_TASKS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_backend")]

WORKER_ID = uuid.uuid4()


def tasks_with(**options: Any) -> dict[str, Any]:
    return {**WORKER_TASKS, "default": {**WORKER_TASKS["default"], "OPTIONS": options}}


def run_next() -> ResultStatus | None:
    """Claim one ready task and run it as the worker does; return the status saved."""
    (row,) = services.claim_tasks(backend_name="default", queue_names=None, worker_id=WORKER_ID)
    return services.run_task(row, worker_id=WORKER_ID)


def row_of(result: Any) -> DBTaskResult:
    return DBTaskResult.objects.get(pk=result.id)


class FinishedSignals:
    def __init__(self) -> None:
        self.received: list[Any] = []

    def __call__(self, sender: Any, task_result: Any, **kwargs: Any) -> None:
        self.received.append(task_result)

    def __enter__(self) -> FinishedSignals:
        task_finished.connect(self)
        return self

    def __exit__(self, *exc: object) -> None:
        task_finished.disconnect(self)


# --- the worker's retry ------------------------------------------------------------------


def test_a_failed_attempt_goes_back_to_waiting_keeping_the_attempt(runs_file: str) -> None:
    result = retry_tasks.flaky.enqueue(runs_file, "a", 2)
    enqueued_at = row_of(result).enqueued_at

    with FinishedSignals() as finished:
        assert run_next() == ResultStatus.NEW
        row = row_of(result)
        assert row.status == ResultStatus.NEW
        assert row.started_at is None and row.finished_at is None and row.worker_id is None
        assert row.exception_data is None
        assert row.enqueued_at == enqueued_at  # the original enqueue time stays
        assert row.run_after is not None and row.run_after <= timezone.now()
        (attempt,) = row.attempt_history
        assert attempt.exception_class_path == "builtins.ValueError"
        assert attempt.message == "a failed on run 1"
        assert attempt.traceback is not None and "a failed on run 1" in attempt.traceback
        assert attempt.worker_id == str(WORKER_ID)
        assert attempt.enqueued_at == enqueued_at
        assert attempt.started_at is not None and attempt.finished_at is not None

        assert run_next() == ResultStatus.NEW
        assert run_next() == ResultStatus.COMPLETE
        assert [r.status for r in finished.received] == [ResultStatus.COMPLETE]  # sent once

    result.refresh()
    assert result.status == ResultStatus.COMPLETE
    assert result.return_value == 3
    history = row_of(result).attempt_history
    assert [a.message for a in history] == ["a failed on run 1", "a failed on run 2"]
    assert runs(runs_file) == Counter({"a": 3})


def test_the_last_attempt_fails_and_finishes_once(runs_file: str) -> None:
    result = retry_tasks.always_fails.enqueue(runs_file, "b")

    with FinishedSignals() as finished:
        assert [run_next() for _ in range(3)] == [
            ResultStatus.NEW,
            ResultStatus.NEW,
            ResultStatus.FAILED,
        ]
        assert [r.status for r in finished.received] == [ResultStatus.FAILED]

    assert not DBTaskResult.objects.ready().exists()
    result.refresh()
    assert result.status == ResultStatus.FAILED
    assert isinstance(result.exception, ValueError)
    assert str(result.exception) == "b failed on run 3"
    assert len(row_of(result).attempt_history) == 2
    assert row_of(result).max_attempts == 3


def test_only_the_exceptions_of_retry_on_are_retried(runs_file: str) -> None:
    retried = retry_tasks.fails_with.enqueue(runs_file, "key", "key")
    assert run_next() == ResultStatus.NEW
    assert row_of(retried).status == ResultStatus.NEW
    DBTaskResult.objects.filter(pk=retried.id).delete()

    not_retried = retry_tasks.fails_with.enqueue(runs_file, "type", "type")
    assert run_next() == ResultStatus.FAILED
    assert row_of(not_retried).attempt_history == []
    assert runs(runs_file) == Counter({"key": 1, "type": 1})


def test_retry_later_runs_again_after_its_delay(runs_file: str) -> None:
    result = retry_tasks.snoozes.enqueue(runs_file, "s", 60)
    before = timezone.now()

    assert run_next() == ResultStatus.NEW

    row = row_of(result)
    assert row.run_after is not None
    assert before + timedelta(seconds=59) < row.run_after < timezone.now() + timedelta(seconds=61)
    assert not DBTaskResult.objects.ready().exists()  # not before its time
    assert row.attempt_history[0].exception_class_path == "django_tasks.lifecycle.RetryLater"


def test_retry_later_counts_as_an_attempt(runs_file: str) -> None:
    result = retry_tasks.snoozes.using(max_attempts=1).enqueue(runs_file, "t", 0)

    assert run_next() == ResultStatus.FAILED
    result.refresh()
    assert isinstance(result.exception, RetryLater)


def test_a_callable_backoff_sets_the_next_attempts_time(runs_file: str) -> None:
    result = retry_tasks.fails_with_linear_backoff.enqueue(runs_file, "l")

    run_next()
    row = row_of(result)
    (attempt,) = row.attempt_history
    assert attempt.finished_at is not None and row.run_after is not None
    waited = (row.run_after - attempt.finished_at).total_seconds()
    assert waited == pytest.approx(10, abs=0.01)  # 10 * attempt 1


def test_a_broken_backoff_fails_the_attempt_with_a_clear_error(runs_file: str) -> None:
    result = retry_tasks.fails_with_broken_backoff.enqueue(runs_file, "x")

    assert run_next() == ResultStatus.FAILED  # the worker carries on

    result.refresh()
    assert isinstance(result.exception, ValueError)
    assert result.traceback is not None
    assert "Not retried: the backoff" in result.traceback
    assert "ZeroDivisionError('the backoff is broken')" in result.traceback


def test_an_import_error_is_not_retried(runs_file: str) -> None:
    result = retry_tasks.always_fails.enqueue(runs_file, "gone")
    DBTaskResult.objects.filter(pk=result.id).update(task_path="tests.no_such_module.task")

    assert run_next() == ResultStatus.FAILED
    assert row_of(result).attempt_history == []


# --- where the settings come from ------------------------------------------------------------


def test_task_defaults_give_every_task_attempts(runs_file: str) -> None:
    with override_settings(TASKS=tasks_with(task_defaults={"max_attempts": 2, "backoff": 0})):
        result = retry_tasks.fails_once_without_settings.enqueue(runs_file, "d")
        assert row_of(result).max_attempts == 2
        assert [run_next(), run_next()] == [ResultStatus.NEW, ResultStatus.FAILED]


def test_task_overrides_win_over_the_decorator(runs_file: str) -> None:
    overrides = {"tests.retry_tasks.flaky": {"max_attempts": 1}}
    with override_settings(TASKS=tasks_with(task_overrides=overrides)):
        result = retry_tasks.flaky.enqueue(runs_file, "o", 1)
        assert row_of(result).max_attempts == 1
        assert run_next() == ResultStatus.FAILED


def test_using_sets_the_attempts_of_one_enqueue(runs_file: str) -> None:
    result = retry_tasks.always_fails.using(max_attempts=2).enqueue(runs_file, "u")
    assert row_of(result).max_attempts == 2
    assert [run_next(), run_next()] == [ResultStatus.NEW, ResultStatus.FAILED]


def test_without_settings_a_failure_is_final(runs_file: str) -> None:
    result = retry_tasks.fails_once_without_settings.enqueue(runs_file, "n")
    assert row_of(result).max_attempts == 1
    assert run_next() == ResultStatus.FAILED


def test_the_default_backoff_doubles_up_to_its_cap_with_injectable_jitter() -> None:
    backoff = Exponential(base=2, cap=20, jitter=0.5, random_source=lambda: 0.5)
    error = ValueError()
    assert [backoff(n, error) for n in range(1, 6)] == [1.5, 3.0, 6.0, 12.0, 15.0]
    no_jitter = TaskSettings(max_attempts=3, backoff=Exponential(jitter=0))
    assert no_jitter.delay(3, error) == 8.0
    assert TaskSettings(backoff=timedelta(seconds=5).total_seconds()).delay(1, error) == 5.0
    assert TaskSettings().delay(1, RetryLater(timedelta(minutes=2))) == 120.0


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"max_attempts": 0}, "max_attempts of task tests.core.test_retries.some_function must"),
        ({"max_attempts": 2.5}, "must be a whole number of attempts >= 1, not 2.5"),
        ({"backoff": "soon"}, "backoff of task tests.core.test_retries.some_function must be"),
        ({"backoff": -1}, "or a callable (attempt, exception) -> seconds, not -1"),
        ({"retry_on": "ValueError"}, "retry_on of task"),
        ({"retry_on": (ValueError, 3)}, "must be an exception class or a tuple of them"),
        ({"time_limit": 0}, "time_limit of task tests.core.test_retries.some_function"),
        ({"unique_key": 5}, "unique_key of task tests.core.test_retries.some_function"),
    ],
)
def test_bad_settings_are_refused_when_the_task_is_defined(
    keywords: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidTaskError) as excinfo:
        task(**keywords)(some_function)
    assert message in str(excinfo.value)


def test_bad_settings_are_refused_by_using() -> None:
    with pytest.raises(InvalidTaskError, match="max_attempts of task .* must be"):
        retry_tasks.flaky.using(max_attempts=-1)


def test_retry_later_refuses_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="RetryLater's delay must be seconds"):
        RetryLater(-1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"task_defaults": {"max_atempts": 3}},
            "Unknown task setting(s) 'max_atempts' in OPTIONS['task_defaults'] of backend "
            "'default'; the settings are max_attempts, retry_on, backoff, time_limit, unique_key",
        ),
        ({"task_defaults": 3}, "OPTIONS['task_defaults'] of backend 'default' must be a dict"),
        (
            {"task_overrides": {"app.tasks.report": {"time_limit": -5}}},
            "time_limit of OPTIONS['task_overrides']['app.tasks.report'] of backend 'default' "
            "must be seconds (a number > 0) or a timedelta, not -5",
        ),
        ({"task_overrides": ["x"]}, "must be a dict of task paths to dicts of task settings"),
    ],
)
def test_bad_options_are_reported_by_checks(options: dict[str, Any], message: str) -> None:
    with override_settings(TASKS=tasks_with(**options)):
        errors = [m for m in tasks["default"].check() if m.level == checks.ERROR]
    assert [m.id for m in errors] == ["django_tasks.database.E001"]
    assert message in errors[0].msg


def some_function() -> None:
    pass


# --- lost workers --------------------------------------------------------------------------


def test_a_lost_run_counts_as_an_attempt_and_the_last_one_fails(runs_file: str) -> None:
    result = retry_tasks.always_fails.using(max_attempts=2).enqueue(runs_file, "lost")
    lost_worker = uuid.uuid4()  # claims, then is never registered: lost at once
    for expected in (ResultStatus.NEW, ResultStatus.FAILED):
        services.claim_tasks(backend_name="default", queue_names=None, worker_id=lost_worker)
        outcome = services.recover_lost_tasks(backend_name="default", policy="requeue")
        assert row_of(result).status == expected
        assert (outcome.requeued, outcome.failed) == (
            (1, 0) if expected == ResultStatus.NEW else (0, 1)
        )
    result.refresh()
    assert type(result.exception).__name__ == "WorkerLost"
    assert "its last attempt" in str(result.exception)


# --- Django's API -----------------------------------------------------------------------------


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks is Django 6.0+")
def test_django_tasks_retry_through_task_overrides(runs_file: str) -> None:
    overrides = {"tests.django_retry_tasks.flaky": {"max_attempts": 3, "backoff": 0}}
    with override_settings(TASKS=tasks_with(task_overrides=overrides)):
        module = importlib.import_module("tests.django_retry_tasks")
        result = module.flaky.enqueue(runs_file, "dj", 2)
        assert [run_next() for _ in range(3)] == [
            ResultStatus.NEW,
            ResultStatus.NEW,
            ResultStatus.COMPLETE,
        ]
        result.refresh()
    assert result.return_value == 3
    # Django's errors list every failed attempt, here the two retried ones.
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"] * 2
    assert [e.exception_class_path for e in row_of(result).attempt_history] == [
        "builtins.ValueError",
        "builtins.ValueError",
    ]
    assert len(result.worker_ids) == 3


@pytest.mark.skipif(django.VERSION < (6, 1), reason="extra decorator keywords are Django 6.1+")
def test_django_tasks_decorator_keywords_set_attempts(runs_file: str) -> None:
    module = importlib.import_module("tests.django_retry_tasks")
    result = module.flaky_with_keywords.enqueue(runs_file, "kw", 5)
    assert row_of(result).max_attempts == 3
    assert [run_next() for _ in range(3)] == [
        ResultStatus.NEW,
        ResultStatus.NEW,
        ResultStatus.FAILED,
    ]
    result.refresh()
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"] * 3


# --- real workers -------------------------------------------------------------------------------


@pytest.mark.slow
def test_workers_with_threads_retry_each_task_exactly_as_often_as_allowed(
    workers: Workers, runs_file: str
) -> None:
    flaky, failing = 150, 50
    with transaction.atomic():
        for i in range(flaky):
            retry_tasks.flaky.enqueue(runs_file, f"f{i}", 2)
        for i in range(failing):
            retry_tasks.always_fails.enqueue(runs_file, f"x{i}")
    started = [
        workers.start("--batch", "--interval", "0", "--threads", "4"),
        workers.start("--batch", "--interval", "0", "--threads", "4"),
        workers.start("--batch", "--interval", "0", "--threads", "2", "--claim-size", "1"),
        workers.start("--batch", "--interval", "0", "--threads", "2", "--processes", "2"),
    ]
    assert workers.wait_all(started) == [0, 0, 0, 0], workers.outputs()
    # Batch workers stop when nothing is ready: one more drains what they left.
    wait_until(
        lambda: not DBTaskResult.objects.filter(status=ResultStatus.RUNNING).exists(),
        what="no running rows",
    )
    while DBTaskResult.objects.ready().exists():
        workers.wait_all([workers.start("--batch", "--interval", "0", "--threads", "4")])

    assert runs(runs_file) == Counter(
        {**{f"f{i}": 3 for i in range(flaky)}, **{f"x{i}": 3 for i in range(failing)}}
    )
    statuses = Counter(DBTaskResult.objects.values_list("status", flat=True))
    assert statuses == Counter({ResultStatus.COMPLETE: flaky, ResultStatus.FAILED: failing})
    assert all(len(row.attempts) == 2 for row in DBTaskResult.objects.all())


def test_settings_live_beside_the_dataclass_fields_and_survive_using() -> None:
    import dataclasses

    names = [f.name for f in dataclasses.fields(retry_tasks.flaky)]
    assert names == ["priority", "func", "backend", "queue_name", "run_after", "enqueue_on_commit"]
    copy = retry_tasks.flaky.using(priority=5, time_limit=timedelta(seconds=30))
    assert (copy.max_attempts, copy.backoff, copy.time_limit) == (3, 0.0, 30.0)
    assert retry_tasks.flaky.time_limit is None  # the original is unchanged
    assert retry_tasks.fails_with.retry_on == (KeyError,)
