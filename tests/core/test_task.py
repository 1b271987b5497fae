# mypy: disable-error-code="comparison-overlap"
"""The @task decorator and the Task dataclass."""

from __future__ import annotations

import dataclasses
import inspect
import threading
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.test import SimpleTestCase, override_settings
from django.utils import timezone
from django.utils.module_loading import import_string

from django_tasks import ResultStatus, Task, TaskResult, default_task_backend, task, tasks
from django_tasks.backends.dummy import DummyBackend
from django_tasks.backends.immediate import ImmediateBackend
from django_tasks.exceptions import InvalidTaskBackendError, InvalidTaskError, ResultDoesNotExist
from tests import tasks as test_tasks


@dataclasses.dataclass(frozen=True)
class CustomTask(Task[Any, Any]):
    pass


class CustomTaskClassBackend(DummyBackend):
    task_class = CustomTask


def module_function(*args: Any, **kwargs: Any) -> list[Any]:
    return [list(args), kwargs]


async def module_async_function(*args: Any, **kwargs: Any) -> list[Any]:
    return [list(args), kwargs, "async"]


def current_thread_name() -> str:
    return threading.current_thread().name


TWO_DUMMIES = {
    "default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
    "other": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": ["other-q"]},
}
NOT_FOUND_MSG = "Could not find backend 'does.not.exist': No module named 'does'"


class DecoratorTests(SimpleTestCase):
    def test_bare_decorator(self) -> None:
        created = task(module_function)
        assert type(created) is Task
        assert created.func is module_function
        assert created.priority == 0
        assert created.queue_name == "default"
        assert created.backend == "default"
        assert created.run_after is None
        assert created.enqueue_on_commit is None

    def test_bare_decorator_on_module_task(self) -> None:
        assert isinstance(test_tasks.noop_task_async, Task)
        assert inspect.iscoroutinefunction(test_tasks.noop_task_async.func)

    def test_called_decorator_without_arguments(self) -> None:
        assert task()(module_function) == task(module_function)
        assert isinstance(test_tasks.noop_task, Task)
        assert test_tasks.noop_task.func.__name__ == "noop_task"

    def test_called_decorator_with_arguments(self) -> None:
        created = task(priority=5, queue_name="emails", backend="default", enqueue_on_commit=False)(
            module_function
        )
        assert created.priority == 5
        assert created.queue_name == "emails"
        assert created.backend == "default"
        assert created.enqueue_on_commit is False
        assert created.run_after is None
        assert test_tasks.queue_1_task.priority == 5
        assert test_tasks.queue_1_task.queue_name == "queue-1"
        assert test_tasks.enqueue_on_commit_task.enqueue_on_commit is True
        assert test_tasks.never_enqueue_on_commit_task.enqueue_on_commit is False

    def test_no_run_after_argument(self) -> None:
        with pytest.raises(TypeError):
            task(run_after=timezone.now())  # type: ignore[call-overload]

    def test_arguments_are_keyword_only(self) -> None:
        with pytest.raises(TypeError):
            task(module_function, 5)  # type: ignore[call-overload]

    def test_unknown_backend_at_decoration(self) -> None:
        with pytest.raises(InvalidTaskBackendError) as excinfo:
            task(backend="unknown")(module_function)
        assert str(excinfo.value) == "The connection 'unknown' doesn't exist."

    @override_settings(TASKS={"default": {"BACKEND": "does.not.exist"}})
    def test_unimportable_backend_at_decoration(self) -> None:
        with pytest.raises(InvalidTaskBackendError) as excinfo:
            task(module_function)
        assert str(excinfo.value) == NOT_FOUND_MSG

    @override_settings(TASKS=TWO_DUMMIES)
    def test_other_backend(self) -> None:
        created = task(backend="other", queue_name="other-q")(module_function)
        assert created.backend == "other"
        assert created.get_backend() is tasks["other"]
        with pytest.raises(InvalidTaskError) as excinfo:
            task(backend="other")(module_function)
        assert str(excinfo.value) == "Queue 'default' is not valid for backend"

    @override_settings(
        TASKS={"default": {"BACKEND": "tests.core.test_task.CustomTaskClassBackend"}}
    )
    def test_uses_backend_task_class(self) -> None:
        created = task(module_function)
        assert type(created) is CustomTask
        assert type(created.using(priority=3)) is CustomTask


class TaskDataclassTests(SimpleTestCase):
    def test_is_a_frozen_dataclass(self) -> None:
        assert dataclasses.is_dataclass(Task)
        assert [f.name for f in dataclasses.fields(Task)] == [
            "priority",
            "func",
            "backend",
            "queue_name",
            "run_after",
            "enqueue_on_commit",
        ]
        with pytest.raises(dataclasses.FrozenInstanceError):
            test_tasks.noop_task.priority = 10  # type: ignore[misc]
        assert test_tasks.noop_task.priority == 0

    def test_field_defaults(self) -> None:
        created = Task(priority=1, func=module_function, backend="default")
        assert created.queue_name == "default"
        assert created.run_after is None
        assert created.enqueue_on_commit is None

    def test_equality_and_hash(self) -> None:
        first = task(module_function)
        second = task(module_function)
        assert first == second
        assert first is not second
        assert hash(first) == hash(second)
        assert len({first, second}) == 1
        assert task(priority=1)(module_function) != first
        assert task(queue_name="q")(module_function) != first
        assert task(enqueue_on_commit=True)(module_function) != first
        assert task(module_async_function) != first

    def test_name(self) -> None:
        assert test_tasks.noop_task.name == "noop_task"
        assert test_tasks.noop_task_async.name == "noop_task_async"
        assert task(module_function).name == "module_function"

    def test_module_path(self) -> None:
        assert test_tasks.noop_task.module_path == "tests.tasks.noop_task"
        assert task(module_function).module_path == "tests.core.test_task.module_function"

    def test_module_path_imports_the_task(self) -> None:
        for created in (
            test_tasks.noop_task,
            test_tasks.noop_task_async,
            test_tasks.calculate_meaning_of_life,
        ):
            assert import_string(created.module_path) is created

    def test_get_backend(self) -> None:
        assert test_tasks.noop_task.get_backend() is tasks["default"]
        assert isinstance(test_tasks.noop_task.get_backend(), ImmediateBackend)

    @override_settings(TASKS=TWO_DUMMIES)
    def test_get_backend_follows_settings(self) -> None:
        assert isinstance(test_tasks.noop_task.get_backend(), DummyBackend)
        assert (
            test_tasks.noop_task.using(backend="other", queue_name="other-q").get_backend()
            is tasks["other"]
        )


@override_settings(TASKS=TWO_DUMMIES)
class UsingTests(SimpleTestCase):
    def test_nothing_changed_gives_equal_new_object(self) -> None:
        copy = test_tasks.noop_task.using()
        assert copy == test_tasks.noop_task
        assert copy is not test_tasks.noop_task
        assert type(copy) is Task

    def test_none_keeps_values(self) -> None:
        base = test_tasks.noop_task.using(priority=7, run_after=timezone.now())
        copy = base.using(priority=None, queue_name=None, run_after=None, backend=None)
        assert copy == base

    def test_priority(self) -> None:
        copy = test_tasks.noop_task.using(priority=10)
        assert copy.priority == 10
        assert test_tasks.noop_task.priority == 0
        assert dataclasses.replace(copy, priority=0) == test_tasks.noop_task

    def test_zero_priority_is_applied(self) -> None:
        assert test_tasks.queue_1_task.using(priority=0, queue_name="default").priority == 0

    def test_queue_name(self) -> None:
        copy = test_tasks.noop_task.using(backend="other", queue_name="other-q")
        assert copy.queue_name == "other-q"
        assert copy.backend == "other"
        assert test_tasks.noop_task.queue_name == "default"
        assert test_tasks.noop_task.backend == "default"

    def test_timedelta_becomes_aware_datetime(self) -> None:
        delta = timedelta(minutes=5)
        before = timezone.now()
        copy = test_tasks.noop_task.using(run_after=delta)
        after = timezone.now()
        assert isinstance(copy.run_after, datetime)
        assert timezone.is_aware(copy.run_after)
        assert before + delta <= copy.run_after <= after + delta
        assert test_tasks.noop_task.run_after is None

    def test_negative_timedelta(self) -> None:
        before = timezone.now()
        copy = test_tasks.noop_task.using(run_after=timedelta(days=-1))
        assert copy.run_after is not None
        assert copy.run_after <= before - timedelta(days=1) + timedelta(seconds=5)

    def test_datetime_kept(self) -> None:
        when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt_timezone.utc)
        copy = test_tasks.noop_task.using(run_after=when)
        assert copy.run_after == when
        assert copy.run_after.tzinfo is dt_timezone.utc

    def test_chaining_keeps_earlier_changes(self) -> None:
        when = timezone.now() + timedelta(hours=1)
        first = test_tasks.noop_task.using(priority=10)
        second = first.using(run_after=when)
        third = second.using(backend="other", queue_name="other-q")
        assert (third.priority, third.run_after, third.backend, third.queue_name) == (
            10,
            when,
            "other",
            "other-q",
        )
        assert (first.priority, first.run_after, first.backend) == (10, None, "default")
        assert (second.priority, second.run_after, second.backend) == (10, when, "default")
        assert test_tasks.noop_task == task()(test_tasks.noop_task.func)

    def test_keeps_enqueue_on_commit_and_func(self) -> None:
        copy = test_tasks.enqueue_on_commit_task.using(priority=3)
        assert copy.enqueue_on_commit is True
        assert copy.func is test_tasks.enqueue_on_commit_task.func

    def test_enqueue_on_commit_not_accepted(self) -> None:
        with pytest.raises(TypeError):
            test_tasks.noop_task.using(enqueue_on_commit=True)  # type: ignore[call-arg]

    def test_arguments_are_keyword_only(self) -> None:
        with pytest.raises(TypeError):
            test_tasks.noop_task.using(5)  # type: ignore[call-arg]

    def test_unknown_backend(self) -> None:
        with pytest.raises(InvalidTaskBackendError) as excinfo:
            test_tasks.noop_task.using(backend="unknown")
        assert str(excinfo.value) == "The connection 'unknown' doesn't exist."

    def test_unimportable_backend(self) -> None:
        with (
            override_settings(TASKS={**TWO_DUMMIES, "broken": {"BACKEND": "does.not.exist"}}),
            pytest.raises(InvalidTaskBackendError) as excinfo,
        ):
            test_tasks.noop_task.using(backend="broken")
        assert str(excinfo.value) == NOT_FOUND_MSG

    def test_validates_copy(self) -> None:
        with pytest.raises(InvalidTaskError) as excinfo:
            test_tasks.noop_task.using(priority=101)
        assert str(excinfo.value) == "priority must be a whole number between -100 and 100"
        with pytest.raises(InvalidTaskError) as excinfo:
            test_tasks.noop_task.using(backend="other")
        assert str(excinfo.value) == "Queue 'default' is not valid for backend"
        with pytest.raises(InvalidTaskError) as excinfo:
            test_tasks.noop_task.using(queue_name="elsewhere")
        assert str(excinfo.value) == "Queue 'elsewhere' is not valid for backend"


class EnqueueTests(SimpleTestCase):
    def test_enqueue_delegates_to_backend(self) -> None:
        backend = tasks["default"]
        with mock.patch.object(backend, "enqueue", return_value="result") as enqueue:
            assert test_tasks.echo.enqueue(1, (2,), a={"b": 3}) == "result"
        enqueue.assert_called_once_with(test_tasks.echo, (1, (2,)), {"a": {"b": 3}})

    def test_aenqueue_delegates_to_backend(self) -> None:
        backend = tasks["default"]

        async def fake_aenqueue(*args: Any, **kwargs: Any) -> str:
            return "async result"

        with mock.patch.object(backend, "aenqueue", side_effect=fake_aenqueue) as aenqueue:
            result = async_to_sync(test_tasks.echo.aenqueue)(1, a=2)
        assert result == "async result"
        aenqueue.assert_called_once_with(test_tasks.echo, (1,), {"a": 2})

    def test_enqueue_returns_task_result(self) -> None:
        result = test_tasks.echo.enqueue(1, key="value")
        assert isinstance(result, TaskResult)
        assert result.task == test_tasks.echo
        assert result.args == [1]
        assert result.kwargs == {"key": "value"}
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == {"args": [1], "kwargs": {"key": "value"}}

    async def test_aenqueue(self) -> None:
        result = await test_tasks.echo.aenqueue("x", y=1)
        assert isinstance(result, TaskResult)
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == {"args": ["x"], "kwargs": {"y": 1}}

    async def test_aenqueue_async_task(self) -> None:
        result = await test_tasks.echo_async.aenqueue(1)
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == {"args": [1], "kwargs": {}}

    def test_enqueue_non_json_arguments(self) -> None:
        for args, kwargs in (((object(),), {}), ((), {"when": timezone.now()}), (({1, 2},), {})):
            with self.subTest(args=args, kwargs=kwargs), pytest.raises(TypeError):
                test_tasks.noop_task.enqueue(*args, **kwargs)


@override_settings(TASKS=TWO_DUMMIES)
class GetResultTests(SimpleTestCase):
    def setUp(self) -> None:
        tasks["default"].clear()

    def test_get_result(self) -> None:
        result = test_tasks.noop_task.enqueue()
        fetched = test_tasks.noop_task.get_result(result.id)
        assert fetched is tasks["default"].results[0]
        assert fetched == result
        assert fetched.id == result.id

    def test_get_result_of_using_copy(self) -> None:
        result = test_tasks.noop_task.using(priority=10).enqueue()
        assert test_tasks.noop_task.get_result(result.id).id == result.id
        assert test_tasks.noop_task.using(priority=-5).get_result(result.id).id == result.id

    def test_get_result_of_other_task(self) -> None:
        result = test_tasks.noop_task.enqueue()
        with pytest.raises(ResultDoesNotExist):
            test_tasks.calculate_meaning_of_life.get_result(result.id)

    def test_get_result_missing(self) -> None:
        with pytest.raises(ResultDoesNotExist):
            test_tasks.noop_task.get_result("123")

    async def test_aget_result(self) -> None:
        result = await test_tasks.noop_task.aenqueue()
        fetched = await test_tasks.noop_task.aget_result(result.id)
        assert fetched == result
        with pytest.raises(ResultDoesNotExist):
            await test_tasks.calculate_meaning_of_life.aget_result(result.id)
        with pytest.raises(ResultDoesNotExist):
            await test_tasks.noop_task.aget_result("missing")


class GetResultBackendErrorTests(SimpleTestCase):
    msg = "This backend does not support retrieving or refreshing results."

    def test_get_result_backend_error_propagates(self) -> None:
        with pytest.raises(NotImplementedError) as excinfo:
            test_tasks.noop_task.get_result("123")
        assert str(excinfo.value) == self.msg

    async def test_aget_result_backend_error_propagates(self) -> None:
        with pytest.raises(NotImplementedError) as excinfo:
            await test_tasks.noop_task.aget_result("123")
        assert str(excinfo.value) == self.msg


class CallTests(SimpleTestCase):
    def test_call(self) -> None:
        assert test_tasks.calculate_meaning_of_life.call() == 42
        assert task(module_function).call(1, (2,), a=3) == [[1, (2,)], {"a": 3}]

    def test_call_does_not_enqueue(self) -> None:
        backend = tasks["default"]
        with mock.patch.object(backend, "enqueue") as enqueue:
            assert test_tasks.calculate_meaning_of_life.call() == 42
        enqueue.assert_not_called()

    def test_call_async_function(self) -> None:
        assert test_tasks.calculate_meaning_of_life_async.call() == 42
        assert task(module_async_function).call(1, b=2) == [[1], {"b": 2}, "async"]

    def test_call_raises(self) -> None:
        with pytest.raises(ValueError, match="^This task failed due to ValueError$"):
            test_tasks.failing_task_value_error.call()

    async def test_acall_sync_function(self) -> None:
        assert await test_tasks.calculate_meaning_of_life.acall() == 42
        assert await task(module_function).acall(1, b=2) == [[1], {"b": 2}]

    async def test_acall_sync_function_runs_in_a_thread(self) -> None:
        caller = threading.current_thread().name
        assert await task(current_thread_name).acall() != caller

    async def test_acall_async_function(self) -> None:
        assert await test_tasks.calculate_meaning_of_life_async.acall() == 42
        assert await task(module_async_function).acall(3) == [[3], {}, "async"]

    async def test_acall_raises(self) -> None:
        with pytest.raises(ValueError, match="^This async task failed$"):
            await test_tasks.failing_task_async.acall()  # type: ignore[unused-coroutine]

    def test_default_task_backend_is_used(self) -> None:
        assert test_tasks.noop_task.get_backend() == default_task_backend
