# mypy: disable-error-code="comparison-overlap"
"""BaseTaskBackend: options, validate_task (order and messages), enqueue-on-commit resolution."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.utils import ConnectionHandler
from django.test import SimpleTestCase, TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from django_tasks import Task, default_task_backend, task, tasks
from django_tasks.backends.base import BaseTaskBackend, connection_in_transaction, in_transaction
from django_tasks.backends.dummy import DummyBackend
from django_tasks.exceptions import InvalidTaskError
from tests import tasks as test_tasks


class NoFeaturesBackend(DummyBackend):
    supports_defer = False
    supports_async_task = False


class MinimalBackend(BaseTaskBackend):
    def enqueue(self, task: Task[Any, Any], args: Any, kwargs: Any) -> Any:
        return ("enqueued", task, args, kwargs)


def module_function() -> None:
    pass


async def module_async_function() -> None:
    pass


class Holder:
    def method(self) -> None:
        pass


NO_FEATURES = {"default": {"BACKEND": "tests.core.test_backend_base.NoFeaturesBackend"}}
DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}

GLOBAL_MSG = "Task function must be a globally importable function"
ASYNC_MSG = "Backend does not support async tasks"
PRIORITY_MSG = "priority must be a whole number between -100 and 100"
RUN_AFTER_MSG = "Backend does not support run_after"
NAIVE_MSG = "run_after must be an aware datetime"


def make_task(**kwargs: Any) -> Task[Any, Any]:
    kwargs.setdefault("priority", 0)
    kwargs.setdefault("func", module_function)
    kwargs.setdefault("backend", "default")
    return Task(**kwargs)


def assert_invalid(message: str, **kwargs: Any) -> None:
    with pytest.raises(InvalidTaskError) as excinfo:
        make_task(**kwargs)
    assert str(excinfo.value) == message


class BackendInitTests(SimpleTestCase):
    def test_defaults(self) -> None:
        backend = MinimalBackend({"ALIAS": "x"})
        assert backend.alias == "x"
        assert backend.queues == {"default"}
        assert backend.enqueue_on_commit is True
        assert backend.task_class is Task

    def test_options(self) -> None:
        backend = MinimalBackend({"ALIAS": "y", "QUEUES": ["a", "b", "a"], "ENQUEUE_ON_COMMIT": 0})
        assert backend.alias == "y"
        assert backend.queues == {"a", "b"}
        assert backend.enqueue_on_commit is False

    def test_empty_queues(self) -> None:
        assert MinimalBackend({"ALIAS": "z", "QUEUES": []}).queues == set()

    def test_capability_flags(self) -> None:
        assert BaseTaskBackend.supports_defer is False
        assert BaseTaskBackend.supports_async_task is False
        assert BaseTaskBackend.supports_get_result is False

    def test_enqueue_is_abstract(self) -> None:
        assert BaseTaskBackend.enqueue.__isabstractmethod__  # type: ignore[attr-defined]
        with pytest.raises(TypeError):
            BaseTaskBackend({"ALIAS": "default"})  # type: ignore[abstract]

    def test_get_result_not_implemented(self) -> None:
        backend = MinimalBackend({"ALIAS": "x"})
        with pytest.raises(NotImplementedError) as excinfo:
            backend.get_result("abc")
        assert str(excinfo.value) == (
            "This backend does not support retrieving or refreshing results."
        )

    def test_aget_result_not_implemented(self) -> None:
        backend = MinimalBackend({"ALIAS": "x"})
        with pytest.raises(NotImplementedError) as excinfo:
            async_to_sync(backend.aget_result)("abc")
        assert str(excinfo.value) == (
            "This backend does not support retrieving or refreshing results."
        )

    def test_aget_result_calls_get_result_with_keyword(self) -> None:
        backend = MinimalBackend({"ALIAS": "x"})
        with mock.patch.object(backend, "get_result", return_value="result") as get_result:
            assert async_to_sync(backend.aget_result)("abc") == "result"
        get_result.assert_called_once_with(result_id="abc")

    def test_aenqueue_calls_enqueue_with_keywords(self) -> None:
        backend = MinimalBackend({"ALIAS": "x"})
        with mock.patch.object(backend, "enqueue", return_value="result") as enqueue:
            result = async_to_sync(backend.aenqueue)(test_tasks.noop_task, (1,), {"a": 2})
        assert result == "result"
        enqueue.assert_called_once_with(task=test_tasks.noop_task, args=(1,), kwargs={"a": 2})


@override_settings(TASKS=NO_FEATURES)
class ValidateTaskNoFeaturesTests(SimpleTestCase):
    """Checks on a backend without async or defer support."""

    def test_backend(self) -> None:
        assert type(tasks["default"]) is NoFeaturesBackend

    def test_builtin_is_not_global_function(self) -> None:
        for func in (any, len, print):
            with self.subTest(func), pytest.raises(InvalidTaskError) as excinfo:
                task()(func)
            assert str(excinfo.value) == GLOBAL_MSG

    def test_closure_is_not_global_function(self) -> None:
        value = 1

        def closure() -> int:
            return value

        def nested() -> None:
            pass

        for func in (closure, nested, lambda: None):
            with self.subTest(func), pytest.raises(InvalidTaskError) as excinfo:
                task(func)
            assert str(excinfo.value) == GLOBAL_MSG

    def test_bound_method_is_not_global_function(self) -> None:
        with pytest.raises(InvalidTaskError) as excinfo:
            task()(Holder().method)
        assert str(excinfo.value) == GLOBAL_MSG

    def test_global_check_comes_first(self) -> None:
        async def nested_async() -> None:
            pass

        assert_invalid(GLOBAL_MSG, func=nested_async, priority=1000)
        assert_invalid(GLOBAL_MSG, func=any, run_after=datetime.now())

    def test_async_task_rejected(self) -> None:
        with pytest.raises(InvalidTaskError) as excinfo:
            task()(module_async_function)
        assert str(excinfo.value) == ASYNC_MSG

    def test_async_check_before_priority(self) -> None:
        assert_invalid(ASYNC_MSG, func=module_async_function, priority=101)

    def test_priority_check_before_run_after(self) -> None:
        assert_invalid(PRIORITY_MSG, priority=-101, run_after=timezone.now())

    def test_run_after_rejected(self) -> None:
        assert_invalid(RUN_AFTER_MSG, run_after=timezone.now())

    def test_run_after_rejected_before_naive_check(self) -> None:
        assert_invalid(RUN_AFTER_MSG, run_after=datetime.now())

    def test_run_after_rejected_before_queue_check(self) -> None:
        assert_invalid(RUN_AFTER_MSG, run_after=timezone.now(), queue_name="unknown")

    def test_using_run_after_rejected(self) -> None:
        plain = task()(module_function)
        with pytest.raises(InvalidTaskError) as excinfo:
            plain.using(run_after=timedelta(hours=1))
        assert str(excinfo.value) == RUN_AFTER_MSG

    def test_sync_task_is_fine(self) -> None:
        created = task()(module_function)
        assert created.func is module_function


@override_settings(TASKS=DUMMY)
class ValidateTaskTests(SimpleTestCase):
    def test_priority_bounds(self) -> None:
        for priority in (-101, 101, 3.1, -100.5, 1000, -1000):
            with self.subTest(priority):
                assert_invalid(PRIORITY_MSG, priority=priority)
                with pytest.raises(InvalidTaskError) as excinfo:
                    task(priority=priority)(module_function)  # type: ignore[arg-type]
                assert str(excinfo.value) == PRIORITY_MSG

    def test_valid_priorities(self) -> None:
        for priority in (-100, -1, 0, 1, 100, 3.0):
            with self.subTest(priority):
                assert task(priority=priority)(module_function).priority == priority  # type: ignore[arg-type]

    def test_priority_check_before_naive(self) -> None:
        assert_invalid(PRIORITY_MSG, priority=101, run_after=datetime.now())

    def test_naive_run_after(self) -> None:
        assert_invalid(NAIVE_MSG, run_after=datetime.now())
        with pytest.raises(InvalidTaskError) as excinfo:
            test_tasks.noop_task.using(run_after=datetime(2024, 1, 1))
        assert str(excinfo.value) == NAIVE_MSG

    def test_naive_check_before_queue(self) -> None:
        assert_invalid(NAIVE_MSG, run_after=datetime.now(), queue_name="unknown")

    def test_aware_run_after(self) -> None:
        when = timezone.now() + timedelta(days=1)
        assert make_task(run_after=when).run_after == when

    def test_async_task_allowed(self) -> None:
        assert task()(module_async_function).func is module_async_function

    def test_omitted_queues_allow_only_default(self) -> None:
        assert default_task_backend.queues == {"default"}
        assert make_task(queue_name="default").queue_name == "default"
        assert_invalid("Queue 'emails' is not valid for backend", queue_name="emails")
        with pytest.raises(InvalidTaskError) as excinfo:
            task(queue_name="queue-2")(module_function)
        assert str(excinfo.value) == "Queue 'queue-2' is not valid for backend"

    @override_settings(
        TASKS={"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": []}}
    )
    def test_empty_queues_allow_any_queue(self) -> None:
        for queue_name in ("default", "emails", "anything at all"):
            assert make_task(queue_name=queue_name).queue_name == queue_name

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": "django_tasks.backends.dummy.DummyBackend",
                "QUEUES": ["queue-1", "queue-2"],
            }
        }
    )
    def test_listed_queues(self) -> None:
        assert make_task(queue_name="queue-1").queue_name == "queue-1"
        assert make_task(queue_name="queue-2").queue_name == "queue-2"
        assert_invalid("Queue 'default' is not valid for backend", queue_name="default")

    def test_validate_task_directly(self) -> None:
        valid = make_task()
        default_task_backend.validate_task(valid)
        invalid = make_task(queue_name="default")
        object.__setattr__(invalid, "queue_name", "other")
        with pytest.raises(InvalidTaskError) as excinfo:
            default_task_backend.validate_task(invalid)
        assert str(excinfo.value) == "Queue 'other' is not valid for backend"

    def test_enqueue_validates_again(self) -> None:
        created = make_task()
        with override_settings(
            TASKS={
                "default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": ["x"]}
            }
        ):
            with pytest.raises(InvalidTaskError) as excinfo:
                created.enqueue()
            assert str(excinfo.value) == "Queue 'default' is not valid for backend"
            assert tasks["default"].results == []


ON_COMMIT_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
    "on": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "ENQUEUE_ON_COMMIT": True},
    "off": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "ENQUEUE_ON_COMMIT": False},
}


def _flags_for(alias: str) -> dict[bool | None, bool]:
    backend = tasks[alias]
    return {
        flag: backend._get_enqueue_on_commit_for_task(
            make_task(backend=alias, enqueue_on_commit=flag)
        )
        for flag in (True, False, None)
    }


@override_settings(TASKS=ON_COMMIT_TASKS)
class EnqueueOnCommitResolutionTests(TestCase):
    """With database access: task flag, then backend setting (default True)."""

    def test_task_flag_wins_then_backend_setting(self) -> None:
        assert _flags_for("default") == {True: True, False: False, None: True}
        assert _flags_for("on") == {True: True, False: False, None: True}
        assert _flags_for("off") == {True: True, False: False, None: False}

    def test_module_tasks(self) -> None:
        backend = tasks["default"]
        assert backend._get_enqueue_on_commit_for_task(test_tasks.enqueue_on_commit_task) is True
        assert (
            backend._get_enqueue_on_commit_for_task(test_tasks.never_enqueue_on_commit_task)
            is False
        )
        assert backend._get_enqueue_on_commit_for_task(test_tasks.noop_task) is True

    def test_no_databases(self) -> None:
        with mock.patch("django_tasks.backends.base.connections", ConnectionHandler({})):
            assert _flags_for("on") == {True: False, False: False, None: False}
            assert _flags_for("off") == {True: False, False: False, None: False}

    def test_result_is_a_bool(self) -> None:
        with override_settings(
            TASKS={
                "default": {
                    "BACKEND": "django_tasks.backends.dummy.DummyBackend",
                    "ENQUEUE_ON_COMMIT": 1,
                }
            }
        ):
            assert tasks["default"]._get_enqueue_on_commit_for_task(make_task()) is True


@override_settings(TASKS=ON_COMMIT_TASKS)
class EnqueueOnCommitForbiddenDatabaseTests(SimpleTestCase):
    """SimpleTestCase forbids database access: never wait for a commit."""

    def setUp(self) -> None:
        tasks["default"].clear()

    def test_always_false(self) -> None:
        assert _flags_for("default") == {True: False, False: False, None: False}
        assert _flags_for("on") == {True: False, False: False, None: False}
        assert _flags_for("off") == {True: False, False: False, None: False}

    def test_never_deferred_whatever_the_task_wants(self) -> None:
        # No transaction can be open here, so every enqueue stores at once.
        for alias in ("default", "on", "off"):
            for flag in (True, False, None):
                result = make_task(backend=alias, enqueue_on_commit=flag).enqueue()
                assert result.enqueued_at is not None
                assert tasks[alias].results[-1].id == result.id

    def test_enqueue_stores_at_once(self) -> None:
        result = test_tasks.enqueue_on_commit_task.enqueue()
        assert result.enqueued_at is not None
        assert tasks["default"].results[0].id == result.id


@override_settings(TASKS=ON_COMMIT_TASKS)
class EnqueueOnCommitTransactionTests(TestCase):
    def setUp(self) -> None:
        # Class-level override_settings: the backends live for the whole class.
        for backend in tasks.all():
            backend.clear()

    def test_deferred_until_commit(self) -> None:
        backend = tasks["default"]
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            with transaction.atomic():
                result = test_tasks.noop_task.enqueue()
                assert backend.results == []
            assert backend.results == []
        assert len(callbacks) == 1
        assert [r.id for r in backend.results] == [result.id]

    def test_task_flag_false_is_not_deferred(self) -> None:
        backend = tasks["default"]
        with self.captureOnCommitCallbacks() as callbacks, transaction.atomic():
            result = test_tasks.never_enqueue_on_commit_task.enqueue()
            assert [r.id for r in backend.results] == [result.id]
        assert callbacks == []

    def test_backend_setting_false_is_not_deferred(self) -> None:
        backend = tasks["off"]
        with self.captureOnCommitCallbacks() as callbacks, transaction.atomic():
            result = test_tasks.noop_task.using(backend="off").enqueue()
            assert [r.id for r in backend.results] == [result.id]
        assert callbacks == []

    def test_rollback_never_stores(self) -> None:
        backend = tasks["default"]
        with (
            self.captureOnCommitCallbacks(execute=True) as callbacks,
            pytest.raises(ZeroDivisionError),
            transaction.atomic(),
        ):
            test_tasks.noop_task.enqueue()
            1 / 0  # noqa: B018
        assert callbacks == []
        assert backend.results == []


class InTransactionTests(TransactionTestCase):
    """in_transaction() reads the connection's own state and never connects."""

    def test_atomic_block(self) -> None:
        assert in_transaction() is False
        with transaction.atomic():
            assert in_transaction() is True
            assert connection_in_transaction(connection) is True
        assert in_transaction() is False

    def test_autocommit_off_on_an_open_connection(self) -> None:
        connection.ensure_connection()
        connection.set_autocommit(False)
        try:
            assert in_transaction() is True
        finally:
            connection.rollback()
            connection.set_autocommit(True)
        assert in_transaction() is False

    def test_closed_connection_is_not_opened(self) -> None:
        connection.close()
        assert in_transaction(DEFAULT_DB_ALIAS) is False
        assert connection.connection is None

    @override_settings(TASKS=ON_COMMIT_TASKS)
    def test_enqueue_outside_a_transaction_stores_at_once_without_connecting(self) -> None:
        connection.close()
        result = test_tasks.enqueue_on_commit_task.enqueue()
        assert tasks["default"].results[0].id == result.id
        assert connection.connection is None
