"""Arguments every backend refuses at the call, naming the argument; nothing is stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings
from django.utils import timezone

from django_tasks import ResultStatus, task, tasks
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.exceptions import InvalidTaskError, ResultDoesNotExist
from django_tasks.utils import MAX_JSON_DEPTH
from tests import tasks as test_tasks

BACKENDS = {
    "dummy": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "ENQUEUE_ON_COMMIT": False},
    "immediate": {
        "BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
        "ENQUEUE_ON_COMMIT": False,
    },
    "database": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "ENQUEUE_ON_COMMIT": False,
    },
}


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@task()
def takes_two(a: int, b: int, *, flag: bool = False) -> int:
    return a + b


def stored(alias: str) -> int:
    if alias == "database":
        return DBTaskResult.objects.count()
    if alias == "dummy":
        return len(tasks["default"].results)
    return 0


@pytest.fixture(params=list(BACKENDS))
def alias(request: pytest.FixtureRequest) -> Any:
    with override_settings(TASKS={**BACKENDS, "default": BACKENDS[request.param]}):
        yield request.param


# Bad values: (args, kwargs, exception type, start of the message).
BAD_VALUES = [
    ((float("nan"),), {}, ValueError, "Task argument args[0] can't be stored as JSON: nan"),
    ((), {"x": float("inf")}, ValueError, "Task argument kwargs['x'] can't be stored as JSON: inf"),
    (
        (1, [-float("inf")]),
        {},
        ValueError,
        "Task argument args[1][0] can't be stored as JSON: -inf",
    ),
    (
        ("a\x00b",),
        {},
        ValueError,
        "Task argument args[0] can't be stored as JSON: a string holding a NUL character",
    ),
    (
        (),
        {"s": {"k": "x\ud800"}},
        ValueError,
        "Task argument kwargs['s']['k'] can't be stored as JSON: a string holding a lone "
        "surrogate ('\\ud800')",
    ),
    (
        ({"\x00": 1},),
        {},
        ValueError,
        "Task argument args[0] can't be stored as JSON: a key holding a NUL character",
    ),
    (
        (nested(10_000),),
        {},
        ValueError,
        f"Task argument args[0] can't be stored as JSON: nested deeper than {MAX_JSON_DEPTH}",
    ),
    (
        (),
        {"when": datetime(2024, 1, 1)},
        TypeError,
        "Task argument kwargs['when'] is not JSON serializable: datetime",
    ),
    (
        ([1, {"a": object()}],),
        {},
        TypeError,
        "Task argument args[0][1]['a'] is not JSON serializable: object",
    ),
    (({(1, 2): "x"},), {}, TypeError, "Task argument args[0] is not JSON serializable: a key"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "kwargs", "exc_type", "message"), BAD_VALUES)
def test_bad_argument_is_refused_and_named(
    alias: str, args: Any, kwargs: Any, exc_type: type[Exception], message: str
) -> None:
    with pytest.raises(exc_type) as excinfo:
        test_tasks.noop_task.enqueue(*args, **kwargs)
    assert str(excinfo.value).startswith(message), str(excinfo.value)
    assert stored(alias) == 0


@pytest.mark.django_db
def test_nesting_at_the_limit_and_astral_characters_are_stored_equal(alias: str) -> None:
    # echo returns {"args": [value]}: two levels more, at the limit.
    value = {"deep": nested(MAX_JSON_DEPTH - 3), "emoji": "ok \U0001f600", "slash": "\\ud800"}
    result = test_tasks.echo.enqueue(value)
    assert result.args == [value]
    if alias == "database":
        assert tasks["default"].get_result(result.id).args == [value]
        assert DBTaskResult.objects.get().args_kwargs["args"] == [value]
    if alias == "immediate":
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == {"args": [value], "kwargs": {}}


@pytest.mark.django_db
def test_arguments_that_do_not_bind_are_refused(alias: str) -> None:
    cases: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1, 2), {"nope": 1}, "got an unexpected keyword argument 'nope'"),
    ]
    for args, kwargs, error in cases:
        with pytest.raises(TypeError) as excinfo:
            takes_two.enqueue(*args, **kwargs)
        assert str(excinfo.value) == (
            "Task tests.core.test_arguments.takes_two(a, b, *, flag=False) "
            f"can't take these arguments: {error}"
        )
    assert stored(alias) == 0
    takes_two.enqueue(1, b=2, flag=True)
    assert stored(alias) == (0 if alias == "immediate" else 1)


@pytest.mark.django_db
def test_aenqueue_checks_the_binding_too(alias: str) -> None:
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        async_to_sync(takes_two.aenqueue)(1)  # type: ignore[call-arg]
    assert stored(alias) == 0


class TestRunAfterType:
    @override_settings(TASKS=BACKENDS | {"default": BACKENDS["dummy"]})
    def test_a_number_is_a_clear_type_error(self) -> None:
        with pytest.raises(TypeError) as excinfo:
            test_tasks.noop_task.using(run_after=60)  # type: ignore[arg-type]
        assert str(excinfo.value) == "run_after must be an aware datetime or a timedelta, not int"

    @override_settings(TASKS=BACKENDS | {"default": BACKENDS["dummy"]})
    def test_task_built_directly_with_a_number(self) -> None:
        from django_tasks import Task

        with pytest.raises(TypeError) as excinfo:
            Task(priority=0, func=takes_two.func, backend="default", run_after=60)  # type: ignore[arg-type]
        assert str(excinfo.value) == "run_after must be an aware datetime, not int"

    @override_settings(TASKS=BACKENDS | {"default": BACKENDS["dummy"]})
    def test_datetimes_and_timedeltas_still_work(self) -> None:
        at = timezone.now() + timedelta(hours=1)
        assert test_tasks.noop_task.using(run_after=at).run_after == at
        assert test_tasks.noop_task.using(run_after=timedelta(hours=1)).run_after is not None


@override_settings(
    TASKS={
        "default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
        "mail": {
            "BACKEND": "django_tasks.backends.dummy.DummyBackend",
            "QUEUES": ["mail", "bulk"],
        },
    }
)
def test_unknown_queue_names_the_backend_and_its_queues() -> None:
    with pytest.raises(InvalidTaskError) as excinfo:
        test_tasks.noop_task.using(queue_name="emails")
    # The message is SPEC's, word for word; the note names the backend and its queues.
    assert str(excinfo.value) == "Queue 'emails' is not valid for backend"
    assert excinfo.value.__notes__ == [
        "Backend 'default' allows queues: 'default' (TASKS['default']['QUEUES'])."
    ]
    with pytest.raises(InvalidTaskError) as excinfo:
        test_tasks.noop_task.using(backend="mail", queue_name="emails")
    assert excinfo.value.__notes__ == [
        "Backend 'mail' allows queues: 'bulk', 'mail' (TASKS['mail']['QUEUES'])."
    ]


@override_settings(TASKS={"default": BACKENDS["dummy"]})
def test_get_result_with_another_tasks_id_says_so() -> None:
    result = test_tasks.noop_task.enqueue()
    with pytest.raises(ResultDoesNotExist) as excinfo:
        test_tasks.calculate_meaning_of_life.get_result(result.id)
    assert str(excinfo.value) == (
        f"Result {result.id} belongs to another task (tests.tasks.noop_task), "
        "not tests.tasks.calculate_meaning_of_life"
    )


@pytest.mark.django_db
@override_settings(TASKS={"default": BACKENDS["database"]})
def test_get_result_with_another_tasks_id_on_the_database() -> None:
    result = test_tasks.noop_task.enqueue()
    with pytest.raises(ResultDoesNotExist, match="belongs to another task"):
        test_tasks.calculate_meaning_of_life.get_result(result.id)
