# mypy: disable-error-code="comparison-overlap"
"""DummyBackend: stores results, never runs them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import SimpleTestCase, TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from django_tasks import ResultStatus, default_task_backend, tasks
from django_tasks.backends.dummy import DummyBackend
from django_tasks.exceptions import InvalidTaskError, ResultDoesNotExist
from django_tasks.signals import task_enqueued, task_finished, task_started
from tests import tasks as test_tasks

DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


class SignalLog:
    """Record (signal, sender, task_result) for every signal sent."""

    def __init__(self, test: SimpleTestCase) -> None:
        self.sent: list[tuple[str, Any, Any]] = []
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
            self.sent.append((name, sender, task_result))

        return receiver


@override_settings(TASKS=DUMMY)
class DummyBackendTests(SimpleTestCase):
    def setUp(self) -> None:
        self.backend: DummyBackend = tasks["default"]
        self.backend.clear()

    def test_backend(self) -> None:
        assert type(self.backend) is DummyBackend
        assert self.backend.alias == "default"
        assert DummyBackend.supports_defer is True
        assert DummyBackend.supports_async_task is True
        assert DummyBackend.supports_get_result is False

    def test_enqueue_stores_new_result(self) -> None:
        before = timezone.now()
        result = test_tasks.echo.enqueue(1, (2, 3), key={4: "x"})
        after = timezone.now()

        assert result.status == ResultStatus.NEW
        assert result.task == test_tasks.echo
        assert result.args == [1, [2, 3]]
        assert result.kwargs == {"key": {"4": "x"}}
        assert result.backend == "default"
        assert result.enqueued_at is not None
        assert before <= result.enqueued_at <= after
        assert result.started_at is None
        assert result.finished_at is None
        assert result._return_value is None
        assert result._exception_data is None
        assert uuid.UUID(result.id).version == 4
        assert str(uuid.UUID(result.id)) == result.id
        assert self.backend.results == [result]

    def test_never_runs_tasks(self) -> None:
        result = test_tasks.failing_task_value_error.enqueue()
        assert result.status == ResultStatus.NEW
        assert result.is_finished is False
        with pytest.raises(ValueError) as excinfo:
            result.return_value  # noqa: B018
        assert str(excinfo.value) == "Task has not finished yet"
        result.refresh()
        assert result.status == ResultStatus.NEW
        assert result.started_at is None

    def test_ids_are_unique(self) -> None:
        ids = {test_tasks.noop_task.enqueue().id for _ in range(20)}
        assert len(ids) == 20
        assert [r.id for r in self.backend.results] != []
        assert {r.id for r in self.backend.results} == ids

    def test_results_in_enqueue_order(self) -> None:
        first = test_tasks.noop_task.enqueue()
        second = test_tasks.calculate_meaning_of_life.enqueue()
        assert [r.id for r in self.backend.results] == [first.id, second.id]
        assert self.backend.results[1].task == test_tasks.calculate_meaning_of_life

    def test_returns_deep_copy(self) -> None:
        result = test_tasks.echo.enqueue([1], a={"b": 2})
        stored = self.backend.results[0]
        assert result == stored
        assert result is not stored
        assert result.args is not stored.args
        assert result.args[0] is not stored.args[0]
        assert result.kwargs["a"] is not stored.kwargs["a"]
        assert result.task.func is stored.task.func

        object.__setattr__(stored, "status", ResultStatus.COMPLETE)
        object.__setattr__(stored, "_return_value", 42)
        stored.args[0].append(2)
        assert result.status == ResultStatus.NEW
        assert result.args == [[1]]
        result.refresh()
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == 42
        assert result.args == [[1]]  # args are not refreshed

    def test_clear(self) -> None:
        test_tasks.noop_task.enqueue()
        test_tasks.noop_task.enqueue()
        results = self.backend.results
        assert len(results) == 2
        self.backend.clear()
        assert self.backend.results == []
        assert tasks["default"] is self.backend
        test_tasks.noop_task.enqueue()
        assert len(self.backend.results) == 1

    def test_get_result(self) -> None:
        result = test_tasks.noop_task.enqueue()
        assert self.backend.get_result(result.id) is self.backend.results[0]
        assert default_task_backend.get_result(result.id) == result

    def test_get_result_missing(self) -> None:
        test_tasks.noop_task.enqueue()
        with pytest.raises(ResultDoesNotExist) as excinfo:
            self.backend.get_result("123")
        assert excinfo.value.args == ("123",)

    async def test_aget_result(self) -> None:
        result = await test_tasks.noop_task.aenqueue()
        assert await self.backend.aget_result(result.id) is self.backend.results[0]
        with pytest.raises(ResultDoesNotExist) as excinfo:
            await self.backend.aget_result("missing")
        assert excinfo.value.args == ("missing",)

    async def test_aenqueue(self) -> None:
        result = await test_tasks.echo.aenqueue(1, a=2)
        assert result.status == ResultStatus.NEW
        assert result.enqueued_at is not None
        assert result.args == [1]
        assert result.kwargs == {"a": 2}
        assert [r.id for r in self.backend.results] == [result.id]

    def test_async_task(self) -> None:
        result = test_tasks.noop_task_async.enqueue()
        assert result.status == ResultStatus.NEW
        assert self.backend.results[0].task == test_tasks.noop_task_async

    def test_deferred_task(self) -> None:
        when = timezone.now() + timedelta(hours=1)
        result = test_tasks.noop_task.using(run_after=when).enqueue()
        assert result.task.run_after == when
        assert result.status == ResultStatus.NEW

    def test_priority(self) -> None:
        result = test_tasks.noop_task.using(priority=-20).enqueue()
        assert result.task.priority == -20

    def test_default_queues(self) -> None:
        with pytest.raises(InvalidTaskError) as excinfo:
            test_tasks.queue_1_task.enqueue()
        assert str(excinfo.value) == "Queue 'queue-1' is not valid for backend"
        assert self.backend.results == []

    def test_non_json_arguments(self) -> None:
        log = SignalLog(self)
        for args, kwargs in (
            ((object(),), {}),
            ((), {"when": timezone.now()}),
            ((test_tasks.noop_task,), {}),
        ):
            with self.subTest(args=args, kwargs=kwargs), pytest.raises(TypeError):
                test_tasks.noop_task.enqueue(*args, **kwargs)
        assert self.backend.results == []
        assert log.sent == []

    def test_signals(self) -> None:
        log = SignalLog(self)
        result = test_tasks.calculate_meaning_of_life.enqueue()
        assert log.sent == [("enqueued", DummyBackend, self.backend.results[0])]
        assert log.sent[0][2] is self.backend.results[0]
        assert log.sent[0][2].id == result.id

    def test_enqueue_on_commit_task_stored_at_once_without_db(self) -> None:
        result = test_tasks.enqueue_on_commit_task.enqueue()
        assert result.enqueued_at is not None
        assert len(self.backend.results) == 1


@override_settings(
    TASKS={
        "default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
        "second": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
    }
)
class SeparateInstancesTests(SimpleTestCase):
    def test_aliases_keep_separate_results(self) -> None:
        tasks["default"].clear()
        tasks["second"].clear()
        first = test_tasks.noop_task.enqueue()
        second = test_tasks.noop_task.using(backend="second").enqueue()
        assert second.backend == "second"
        assert [r.id for r in tasks["default"].results] == [first.id]
        assert [r.id for r in tasks["second"].results] == [second.id]
        with pytest.raises(ResultDoesNotExist):
            tasks["default"].get_result(second.id)


@override_settings(TASKS=DUMMY)
class DummyOnCommitTests(TestCase):
    def setUp(self) -> None:
        self.backend: DummyBackend = tasks["default"]
        self.backend.clear()

    def test_store_waits_for_commit(self) -> None:
        log = SignalLog(self)
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            with transaction.atomic():
                result = test_tasks.noop_task.enqueue()
            assert result.enqueued_at is None
            assert result.status == ResultStatus.NEW
            assert self.backend.results == []
            assert log.sent == []
        assert len(callbacks) == 1
        assert [r.id for r in self.backend.results] == [result.id]
        assert [name for name, _, _ in log.sent] == ["enqueued"]
        # The returned copy only sees the store after refresh().
        assert result.enqueued_at is None
        result.refresh()
        assert result.enqueued_at is not None
        assert result.enqueued_at == self.backend.results[0].enqueued_at

    def test_task_opting_out_is_stored_at_once(self) -> None:
        with self.captureOnCommitCallbacks() as callbacks, transaction.atomic():
            result = test_tasks.never_enqueue_on_commit_task.enqueue()
            assert result.enqueued_at is not None
            assert [r.id for r in self.backend.results] == [result.id]
        assert callbacks == []

    def test_rollback(self) -> None:
        log = SignalLog(self)
        with (
            self.captureOnCommitCallbacks(execute=True) as callbacks,
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            result = test_tasks.noop_task.enqueue()
            raise RuntimeError("roll back")
        assert callbacks == []
        assert self.backend.results == []
        assert log.sent == []
        with pytest.raises(ResultDoesNotExist):
            result.refresh()


@override_settings(TASKS=DUMMY)
class DummyRealCommitTests(TransactionTestCase):
    def setUp(self) -> None:
        self.backend: DummyBackend = tasks["default"]
        self.backend.clear()

    def test_outside_atomic_stores_at_once(self) -> None:
        result = test_tasks.noop_task.enqueue()
        assert result.enqueued_at is not None
        assert [r.id for r in self.backend.results] == [result.id]

    def test_commit(self) -> None:
        with transaction.atomic():
            result = test_tasks.noop_task.enqueue()
            assert self.backend.results == []
        assert [r.id for r in self.backend.results] == [result.id]
        assert result.enqueued_at is None

    def test_rollback(self) -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            test_tasks.noop_task.enqueue()
            raise RuntimeError("roll back")
        assert self.backend.results == []


def test_dummy_backend_fixture(dummy_backend: DummyBackend) -> None:
    assert tasks["default"] is dummy_backend
    assert dummy_backend.results == []
    result = test_tasks.noop_task.enqueue(1)
    assert [r.id for r in dummy_backend.results] == [result.id]
    assert result.enqueued_at is not None
