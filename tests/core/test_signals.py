"""Signals (sender, task_result, when they are sent) and the built-in logging receivers."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
from django.db import transaction
from django.test import SimpleTestCase, TestCase, override_settings

from django_tasks import ResultStatus, tasks
from django_tasks.backends.dummy import DummyBackend
from django_tasks.backends.immediate import ImmediateBackend
from django_tasks.signals import task_enqueued, task_finished, task_started
from tests import tasks as test_tasks

DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


class CustomDummyBackend(DummyBackend):
    pass


class CustomImmediateBackend(ImmediateBackend):
    pass


class Recorder:
    """Connect to the three task signals and record every send, with a snapshot."""

    def __init__(self, test: SimpleTestCase) -> None:
        self.calls: list[dict[str, Any]] = []
        for name, signal in (
            ("enqueued", task_enqueued),
            ("started", task_started),
            ("finished", task_finished),
        ):
            receiver = self._receiver(name)
            signal.connect(receiver, weak=False)
            test.addCleanup(signal.disconnect, receiver)

    def _receiver(self, name: str) -> Any:
        def receiver(signal: Any, sender: Any, **kwargs: Any) -> None:
            result = kwargs["task_result"]
            self.calls.append(
                {
                    "name": name,
                    "sender": sender,
                    "kwargs": set(kwargs),
                    "task_result": result,
                    "status": result.status,
                    "enqueued_at": result.enqueued_at,
                    "started_at": result.started_at,
                    "finished_at": result.finished_at,
                    "active_exception": sys.exc_info()[1],
                }
            )

        return receiver

    @property
    def names(self) -> list[str]:
        return [call["name"] for call in self.calls]


class ImmediateSignalTests(SimpleTestCase):
    def test_success(self) -> None:
        recorder = Recorder(self)
        result = test_tasks.calculate_meaning_of_life.enqueue()

        assert recorder.names == ["enqueued", "started", "finished"]
        for call in recorder.calls:
            assert call["sender"] is ImmediateBackend
            assert call["kwargs"] == {"task_result"}
            assert call["task_result"] is result
            assert call["active_exception"] is None
        enqueued, started, finished = recorder.calls
        assert enqueued["status"] == ResultStatus.NEW
        assert enqueued["enqueued_at"] is not None
        assert enqueued["started_at"] is None
        assert started["status"] == ResultStatus.NEW
        assert started["started_at"] is not None
        assert started["finished_at"] is None
        assert finished["status"] == ResultStatus.COMPLETE
        assert finished["finished_at"] is not None

    def test_failure_sends_finished_inside_except_block(self) -> None:
        recorder = Recorder(self)
        result = test_tasks.failing_task_value_error.enqueue()

        assert recorder.names == ["enqueued", "started", "finished"]
        finished = recorder.calls[-1]
        assert finished["status"] == ResultStatus.FAILED
        assert finished["finished_at"] is not None
        assert finished["task_result"] is result
        active = finished["active_exception"]
        assert type(active) is ValueError
        assert active.args == ("This task failed due to ValueError",)

    def test_system_exit_sends_finished(self) -> None:
        recorder = Recorder(self)
        test_tasks.failing_task_system_exit.enqueue()
        assert recorder.names == ["enqueued", "started", "finished"]
        assert type(recorder.calls[-1]["active_exception"]) is SystemExit

    def test_keyboard_interrupt_sends_no_finished(self) -> None:
        recorder = Recorder(self)
        with pytest.raises(KeyboardInterrupt):
            test_tasks.failing_task_keyboard_interrupt.enqueue()
        assert recorder.names == ["enqueued", "started"]

    def test_failed_enqueue_sends_nothing(self) -> None:
        recorder = Recorder(self)
        with pytest.raises(TypeError):
            test_tasks.noop_task.enqueue(object())
        assert recorder.calls == []

    def test_started_only_once_per_run(self) -> None:
        recorder = Recorder(self)
        first = test_tasks.noop_task.enqueue()
        second = test_tasks.noop_task_async.enqueue()
        started = [call["task_result"] for call in recorder.calls if call["name"] == "started"]
        assert started == [first, second]
        assert started[0] is first
        assert started[1] is second


@override_settings(TASKS=DUMMY)
class DummySignalTests(SimpleTestCase):
    def test_enqueued_only(self) -> None:
        tasks["default"].clear()
        recorder = Recorder(self)
        result = test_tasks.failing_task_value_error.enqueue()
        assert recorder.names == ["enqueued"]
        call = recorder.calls[0]
        assert call["sender"] is DummyBackend
        assert call["kwargs"] == {"task_result"}
        assert call["task_result"] is tasks["default"].results[0]
        assert call["task_result"].id == result.id
        assert call["enqueued_at"] is not None


class SubclassSenderTests(SimpleTestCase):
    @override_settings(TASKS={"default": {"BACKEND": "tests.core.test_signals.CustomDummyBackend"}})
    def test_dummy_subclass_is_sender(self) -> None:
        recorder = Recorder(self)
        test_tasks.noop_task.enqueue()
        assert [call["sender"] for call in recorder.calls] == [CustomDummyBackend]

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": "tests.core.test_signals.CustomImmediateBackend",
                "QUEUES": [],
            }
        }
    )
    def test_immediate_subclass_is_sender(self) -> None:
        recorder = Recorder(self)
        test_tasks.noop_task.enqueue()
        assert [call["sender"] for call in recorder.calls] == [CustomImmediateBackend] * 3


class ImmediateOnCommitSignalTests(TestCase):
    def test_nothing_before_commit_and_nothing_on_rollback(self) -> None:
        recorder = Recorder(self)
        with self.captureOnCommitCallbacks(execute=True):
            with pytest.raises(RuntimeError), transaction.atomic():
                test_tasks.noop_task.enqueue()
                raise RuntimeError("roll back")
            with transaction.atomic():
                result = test_tasks.noop_task.enqueue()
            assert recorder.calls == []
        assert recorder.names == ["enqueued", "started", "finished"]
        assert all(call["task_result"] is result for call in recorder.calls)


class LoggingTests(SimpleTestCase):
    def test_immediate_success_logs(self) -> None:
        with self.assertLogs("django_tasks", level="DEBUG") as captured:
            result = test_tasks.calculate_meaning_of_life.enqueue()

        path = "tests.tasks.calculate_meaning_of_life"
        assert [(r.name, r.levelno, r.getMessage()) for r in captured.records] == [
            (
                "django_tasks",
                logging.DEBUG,
                f"Task id={result.id} path={path} enqueued backend=default",
            ),
            ("django_tasks", logging.INFO, f"Task id={result.id} path={path} state=COMPLETE"),
        ]
        assert all(r.exc_info is None for r in captured.records)

    def test_enqueued_record_is_first(self) -> None:
        with self.assertLogs("django_tasks", level="DEBUG") as captured:
            result = test_tasks.noop_task.enqueue()
        assert "enqueued" in captured.output[0]
        assert result.id in captured.output[0]
        assert "state=COMPLETE" in captured.output[-1]

    def test_immediate_failure_logs_one_error_with_traceback(self) -> None:
        with self.assertLogs("django_tasks", level="DEBUG") as captured:
            result = test_tasks.failing_task_value_error.enqueue()

        errors = [r for r in captured.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        record = errors[0]
        assert record.name == "django_tasks"
        assert record.levelno == logging.ERROR
        assert record.getMessage() == (
            f"Task id={result.id} path=tests.tasks.failing_task_value_error state=FAILED"
        )
        assert record.exc_info is not None
        assert record.exc_info[0] is ValueError
        text = captured.output[captured.records.index(record)]
        assert text.startswith(
            f"ERROR:django_tasks:Task id={result.id} path=tests.tasks.failing_task_value_error"
            " state=FAILED\nTraceback (most recent call last):"
        )
        assert "ValueError: This task failed due to ValueError" in text
        assert captured.records[-1] is record
        assert captured.records[0].getMessage() == (
            f"Task id={result.id} path=tests.tasks.failing_task_value_error enqueued backend=default"
        )

    def test_system_exit_logs_error(self) -> None:
        with self.assertLogs("django_tasks", level="ERROR") as captured:
            test_tasks.failing_task_system_exit.enqueue()
        assert len(captured.records) == 1
        assert "SystemExit: This task failed due to SystemExit" in captured.output[0]

    def test_unsaveable_exception_logs(self) -> None:
        with self.assertLogs("django_tasks", level="ERROR") as captured:
            result = test_tasks.complex_exception.enqueue()
        assert [(r.name, r.getMessage()) for r in captured.records] == [
            ("django_tasks.backends.immediate", f"Task id={result.id} unable to save exception"),
            (
                "django_tasks",
                f"Task id={result.id} path=tests.tasks.complex_exception state=FAILED",
            ),
        ]
        # The task's own exception is still active when the finished receiver logs it.
        exc_info = captured.records[1].exc_info
        assert exc_info is not None
        assert exc_info[0] is ValueError

    def test_success_logs_no_error(self) -> None:
        with self.assertNoLogs("django_tasks", level="WARNING"):
            test_tasks.noop_task.enqueue()

    @override_settings(TASKS=DUMMY)
    def test_dummy_enqueue_logs_one_record(self) -> None:
        with self.assertLogs("django_tasks", level="DEBUG") as captured:
            result = test_tasks.noop_task.enqueue()
        assert captured.output == [
            f"DEBUG:django_tasks:Task id={result.id} path=tests.tasks.noop_task"
            " enqueued backend=default"
        ]

    @override_settings(
        TASKS={
            "default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
            "other": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
        }
    )
    def test_enqueued_record_names_backend_alias(self) -> None:
        with self.assertLogs("django_tasks", level="DEBUG") as captured:
            result = test_tasks.noop_task.using(backend="other").enqueue()
        assert [r.getMessage() for r in captured.records] == [
            f"Task id={result.id} path=tests.tasks.noop_task enqueued backend=other"
        ]

    def test_info_level_hides_enqueued(self) -> None:
        with self.assertLogs("django_tasks", level="INFO") as captured:
            result = test_tasks.noop_task.enqueue()
        assert captured.output == [
            f"INFO:django_tasks:Task id={result.id} path=tests.tasks.noop_task state=COMPLETE"
        ]


class SettingChangedTests(SimpleTestCase):
    def test_tasks_setting_change_resets_backends(self) -> None:
        before = tasks["default"]
        with override_settings(TASKS=DUMMY):
            inside = tasks["default"]
            assert type(inside) is DummyBackend
        after = tasks["default"]
        assert inside is not before
        assert after is not inside
        assert type(after) is ImmediateBackend
        assert tasks["default"] is after

    def test_other_setting_change_keeps_backends(self) -> None:
        before = tasks["default"]
        with override_settings(DEBUG=True, TIME_ZONE="Europe/London"):
            assert tasks["default"] is before
        assert tasks["default"] is before
