# mypy: disable-error-code="comparison-overlap"
"""ImmediateBackend: runs each task at once, in the enqueuing thread."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import SimpleTestCase, TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from django_tasks import ResultStatus, default_task_backend, tasks
from django_tasks.backends.immediate import ImmediateBackend
from django_tasks.exceptions import InvalidTaskError
from django_tasks.signals import task_enqueued, task_finished, task_started
from tests import tasks as test_tasks

NOT_SUPPORTED = "This backend does not support retrieving or refreshing results."


class SignalLog:
    """Record (signal, sender, task_result, status at send time) for every signal."""

    def __init__(self, test: SimpleTestCase) -> None:
        self.sent: list[tuple[str, Any, Any, Any]] = []
        for name, signal in (
            ("enqueued", task_enqueued),
            ("started", task_started),
            ("finished", task_finished),
        ):
            receiver = self._receiver(name)
            signal.connect(receiver, weak=False)
            test.addCleanup(signal.disconnect, receiver)

    def _receiver(self, name: str) -> Any:
        def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
            self.sent.append((name, sender, task_result, task_result.status))

        return receiver

    @property
    def names(self) -> list[str]:
        return [name for name, *_ in self.sent]


class ImmediateBackendTests(SimpleTestCase):
    def test_backend(self) -> None:
        backend = tasks["default"]
        assert type(backend) is ImmediateBackend
        assert ImmediateBackend.supports_async_task is True
        assert ImmediateBackend.supports_defer is False
        assert ImmediateBackend.supports_get_result is False

    def test_enqueue_runs_task(self) -> None:
        before = timezone.now()
        result = test_tasks.calculate_meaning_of_life.enqueue()
        after = timezone.now()

        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == 42
        assert result.is_finished is True
        assert result.exception is None
        assert result.traceback is None
        assert result.backend == "default"
        assert result.args == []
        assert result.kwargs == {}
        assert result.task == test_tasks.calculate_meaning_of_life
        assert uuid.UUID(result.id).version == 4
        assert result.enqueued_at is not None
        assert result.started_at is not None
        assert result.finished_at is not None
        assert before <= result.enqueued_at <= result.started_at <= result.finished_at <= after
        for stamp in (result.enqueued_at, result.started_at, result.finished_at):
            assert timezone.is_aware(stamp)

    def test_timestamps_are_ordered_when_task_takes_time(self) -> None:
        result = test_tasks.sleep_task.enqueue(0.05)
        assert result.return_value == 0.05
        assert result.enqueued_at is not None
        assert result.started_at is not None
        assert result.finished_at is not None
        assert result.finished_at - result.started_at >= timedelta(seconds=0.05)
        assert result.started_at >= result.enqueued_at

    def test_arguments_and_return_value_are_normalised(self) -> None:
        result = test_tasks.echo.enqueue((1, 2), {3: "x"}, kw=(4,))
        assert result.args == [[1, 2], {"3": "x"}]
        assert result.kwargs == {"kw": [4]}
        assert result.return_value == {"args": [[1, 2], {"3": "x"}], "kwargs": {"kw": [4]}}

    def test_function_receives_normalised_arguments(self) -> None:
        result = test_tasks.argument_types.enqueue((1, 2), {3: 4}, k=(5,))
        assert result.return_value == {"args": ["list", "dict"], "kwargs": {"k": "list"}}

    def test_none_return_value(self) -> None:
        result = test_tasks.noop_task.enqueue()
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value is None

    def test_returns_the_object_the_execution_mutates(self) -> None:
        log = SignalLog(self)
        result = test_tasks.noop_task.enqueue()
        assert [entry[2] for entry in log.sent] == [result, result, result]
        for entry in log.sent:
            assert entry[2] is result

    def test_status_stays_new_while_running(self) -> None:
        log = SignalLog(self)
        test_tasks.noop_task.enqueue()
        assert [(name, status) for name, _, _, status in log.sent] == [
            ("enqueued", ResultStatus.NEW),
            ("started", ResultStatus.NEW),
            ("finished", ResultStatus.COMPLETE),
        ]

    def test_ids_are_unique(self) -> None:
        assert len({test_tasks.noop_task.enqueue().id for _ in range(10)}) == 10

    def test_failing_task(self) -> None:
        result = test_tasks.failing_task_value_error.enqueue()

        assert result.status == ResultStatus.FAILED
        assert result.is_finished is True
        assert result.enqueued_at is not None
        assert result.started_at is not None
        assert result.finished_at is not None
        assert result.enqueued_at <= result.started_at <= result.finished_at
        with pytest.raises(ValueError) as excinfo:
            result.return_value  # noqa: B018
        assert str(excinfo.value) == "Task failed"
        assert type(result.exception) is ValueError
        assert result.exception.args == ("This task failed due to ValueError",)
        assert result._exception_data is not None
        assert result._exception_data["exc_type"] == "builtins.ValueError"
        traceback = result.traceback
        assert traceback is not None
        assert traceback.startswith("Traceback (most recent call last):")
        assert "tests/tasks.py" in traceback
        assert "in failing_task_value_error" in traceback
        assert 'raise ValueError("This task failed due to ValueError")' in traceback
        assert traceback.endswith("ValueError: This task failed due to ValueError\n")

    def test_failing_task_is_not_raised(self) -> None:
        # Nothing raised, even for SystemExit.
        for failing in (
            test_tasks.failing_task_value_error,
            test_tasks.failing_task_system_exit,
            test_tasks.exit_task,
            test_tasks.failing_task_async,
            test_tasks.complex_return_value,
        ):
            with self.subTest(failing.name):
                assert failing.enqueue().status == ResultStatus.FAILED

    def test_system_exit_is_captured(self) -> None:
        result = test_tasks.failing_task_system_exit.enqueue()
        assert result.status == ResultStatus.FAILED
        assert type(result.exception) is SystemExit
        assert result.exception.args == ("This task failed due to SystemExit",)
        assert result.traceback is not None
        assert result.traceback.endswith("SystemExit: This task failed due to SystemExit\n")
        assert result.finished_at is not None

    def test_exit_is_captured(self) -> None:
        result = test_tasks.exit_task.enqueue()
        assert result.status == ResultStatus.FAILED
        assert type(result.exception) is SystemExit
        assert result.exception.args == (1,)

    def test_keyboard_interrupt_is_reraised(self) -> None:
        log = SignalLog(self)
        with (
            self.assertNoLogs("django_tasks", level="ERROR"),
            pytest.raises(KeyboardInterrupt) as excinfo,
        ):
            test_tasks.failing_task_keyboard_interrupt.enqueue()
        assert excinfo.value.args == ("This task failed due to KeyboardInterrupt",)
        assert log.names == ["enqueued", "started"]
        result = log.sent[0][2]
        assert result.status == ResultStatus.NEW
        assert result.finished_at is None

    def test_non_json_return_value(self) -> None:
        result = test_tasks.complex_return_value.enqueue()
        assert result.status == ResultStatus.FAILED
        assert result.finished_at is not None
        assert result._return_value is None
        assert type(result.exception) is TypeError
        assert "is not JSON serializable" in str(result.exception)
        assert result.traceback is not None
        assert result.traceback.startswith("Traceback (most recent call last):")
        assert "TypeError: " in result.traceback
        with pytest.raises(ValueError) as excinfo:
            result.return_value  # noqa: B018
        assert str(excinfo.value) == "Task failed"

    def test_unserialisable_exception(self) -> None:
        with self.assertLogs("django_tasks.backends.immediate", level="ERROR") as captured:
            result = test_tasks.complex_exception.enqueue()
        assert result.status == ResultStatus.FAILED
        assert result.finished_at is not None
        assert result._exception_data is None
        assert result.exception is None
        assert result.traceback is None
        assert len(captured.records) == 1
        record = captured.records[0]
        assert record.getMessage() == f"Task id={result.id} unable to save exception"
        assert record.levelno == logging.ERROR
        assert record.name == "django_tasks.backends.immediate"
        assert record.exc_info is not None
        assert record.exc_info[0] is TypeError
        assert "Traceback (most recent call last):" in captured.output[0]

    def test_async_task(self) -> None:
        result = test_tasks.calculate_meaning_of_life_async.enqueue()
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == 42
        echoed = test_tasks.echo_async.enqueue(1, a=(2,))
        assert echoed.return_value == {"args": [1], "kwargs": {"a": [2]}}

    def test_failing_async_task(self) -> None:
        result = test_tasks.failing_task_async.enqueue()
        assert result.status == ResultStatus.FAILED
        assert type(result.exception) is ValueError
        assert result.traceback is not None
        assert result.traceback.endswith("ValueError: This async task failed\n")

    async def test_aenqueue(self) -> None:
        result = await test_tasks.calculate_meaning_of_life.aenqueue()
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == 42

    async def test_aenqueue_async_task(self) -> None:
        result = await test_tasks.calculate_meaning_of_life_async.aenqueue()
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == 42

    def test_get_result_not_supported(self) -> None:
        result = test_tasks.noop_task.enqueue()
        for call in (
            lambda: default_task_backend.get_result(result.id),
            lambda: test_tasks.noop_task.get_result(result.id),
            result.refresh,
        ):
            with pytest.raises(NotImplementedError) as excinfo:
                call()
            assert str(excinfo.value) == NOT_SUPPORTED

    async def test_aget_result_not_supported(self) -> None:
        result = await test_tasks.noop_task.aenqueue()
        with pytest.raises(NotImplementedError) as excinfo:
            await tasks["default"].aget_result(result.id)
        assert str(excinfo.value) == NOT_SUPPORTED
        with pytest.raises(NotImplementedError) as excinfo:
            await result.arefresh()
        assert str(excinfo.value) == NOT_SUPPORTED

    def test_run_after_not_supported(self) -> None:
        with pytest.raises(InvalidTaskError) as excinfo:
            test_tasks.noop_task.using(run_after=timedelta(hours=1))
        assert str(excinfo.value) == "Backend does not support run_after"

    def test_non_json_arguments(self) -> None:
        log = SignalLog(self)
        for args, kwargs in (((object(),), {}), ((), {"when": timezone.now()})):
            with self.subTest(args=args, kwargs=kwargs), pytest.raises(TypeError):
                test_tasks.failing_task_value_error.enqueue(*args, **kwargs)
        assert log.sent == []

    def test_enqueue_on_commit_task_runs_at_once_without_db(self) -> None:
        result = test_tasks.enqueue_on_commit_task.enqueue()
        assert result.status == ResultStatus.COMPLETE

    @override_settings(
        TASKS={"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    )
    def test_default_queue_only(self) -> None:
        with pytest.raises(InvalidTaskError) as excinfo:
            test_tasks.queue_1_task.enqueue()
        assert str(excinfo.value) == "Queue 'queue-1' is not valid for backend"

    def test_any_queue_with_empty_queues(self) -> None:
        assert test_tasks.queue_1_task.enqueue().return_value == "queue-1"


class ImmediateOnCommitTests(TestCase):
    def test_runs_after_commit(self) -> None:
        log = SignalLog(self)
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            with transaction.atomic():
                result = test_tasks.calculate_meaning_of_life.enqueue()
                assert result.status == ResultStatus.NEW
                assert result.enqueued_at is None
            assert result.status == ResultStatus.NEW
            assert result.enqueued_at is None
            assert result.started_at is None
            assert log.sent == []
        assert len(callbacks) == 1
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == 42
        assert result.enqueued_at is not None
        assert log.names == ["enqueued", "started", "finished"]
        assert all(entry[2] is result for entry in log.sent)

    def test_task_opting_out_runs_at_once(self) -> None:
        with self.captureOnCommitCallbacks() as callbacks, transaction.atomic():
            result = test_tasks.never_enqueue_on_commit_task.enqueue()
            assert result.status == ResultStatus.COMPLETE
        assert callbacks == []

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
                "QUEUES": [],
                "ENQUEUE_ON_COMMIT": False,
            }
        }
    )
    def test_backend_opting_out_runs_at_once(self) -> None:
        with self.captureOnCommitCallbacks() as callbacks, transaction.atomic():
            result = test_tasks.calculate_meaning_of_life.enqueue()
            assert result.status == ResultStatus.COMPLETE
            deferred = test_tasks.enqueue_on_commit_task.enqueue()
            assert deferred.status == ResultStatus.NEW
        assert len(callbacks) == 1

    def test_rollback_never_runs(self) -> None:
        log = SignalLog(self)
        with (
            self.captureOnCommitCallbacks(execute=True) as callbacks,
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            result = test_tasks.calculate_meaning_of_life.enqueue()
            raise RuntimeError("roll back")
        assert callbacks == []
        assert result.status == ResultStatus.NEW
        assert result.enqueued_at is None
        assert log.sent == []


class ImmediateRealCommitTests(TransactionTestCase):
    def test_outside_atomic_runs_at_once(self) -> None:
        result = test_tasks.calculate_meaning_of_life.enqueue()
        assert result.status == ResultStatus.COMPLETE

    def test_runs_on_commit(self) -> None:
        with transaction.atomic():
            result = test_tasks.calculate_meaning_of_life.enqueue()
            assert result.status == ResultStatus.NEW
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == 42

    def test_rollback_never_runs(self) -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            result = test_tasks.calculate_meaning_of_life.enqueue()
            raise RuntimeError("roll back")
        assert result.status == ResultStatus.NEW
        assert result.finished_at is None
