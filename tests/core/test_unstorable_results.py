"""Return values JSON can't hold end the task FAILED; exceptions that can't be rebuilt give None."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from django_tasks import ResultStatus, task, tasks
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.utils import MAX_JSON_DEPTH, exception_to_dict
from tests.worker_helpers import Workers

IMMEDIATE = {
    "default": {
        "BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
        "ENQUEUE_ON_COMMIT": False,
    }
}


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


UNSTORABLE = {
    "nan": (float("nan"), "nan (NaN and Infinity are not JSON)"),
    "inf": ({"x": float("inf")}, "inf (NaN and Infinity are not JSON)"),
    "nul": (["a\x00b"], "a string holding a NUL character"),
    "surrogate": ("x\ud800", "a string holding a lone surrogate ('\\ud800')"),
    "deep": (_nested(10_000), f"nested deeper than {MAX_JSON_DEPTH} levels"),
}


@task()
def return_unstorable(kind: str) -> Any:
    return UNSTORABLE[kind][0]


def _local_error() -> Exception:
    class LocalError(Exception):
        pass

    return LocalError("defined inside a function")


class NeedsKeyword(Exception):
    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


@task()
def raise_local_error() -> None:
    raise _local_error()


@task()
def raise_needs_keyword() -> None:
    raise NeedsKeyword("needs a code", code=3)


@override_settings(TASKS=IMMEDIATE)
@pytest.mark.parametrize("kind", list(UNSTORABLE))
def test_immediate_unstorable_return_value_fails_the_task(kind: str) -> None:
    result = return_unstorable.enqueue(kind)
    assert result.status == ResultStatus.FAILED
    assert result._return_value is None
    assert type(result.exception) is ValueError
    assert str(result.exception).startswith("Task return value")
    assert UNSTORABLE[kind][1] in str(result.exception)
    assert result.traceback is not None
    assert "ValueError: Task return value" in result.traceback


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_backend")
def test_worker_unstorable_return_value_fails_the_task(workers: Workers) -> None:
    ids = {kind: return_unstorable.enqueue(kind).id for kind in UNSTORABLE}
    worker = workers.start("--batch")
    assert worker.wait() == 0, worker.output()
    for kind, result_id in ids.items():
        result = tasks["default"].get_result(result_id)
        assert result.status == ResultStatus.FAILED, (kind, worker.output())
        assert result._return_value is None
        assert type(result.exception) is ValueError, kind
        assert "can't be stored as JSON" in str(result.exception)
        assert UNSTORABLE[kind][1] in str(result.exception), kind
        assert result.traceback is not None


@override_settings(TASKS=IMMEDIATE)
@pytest.mark.parametrize(
    ("failing", "text"),
    [
        (raise_local_error, "LocalError: defined inside a function"),
        (raise_needs_keyword, "NeedsKeyword: needs a code"),
    ],
)
def test_immediate_exception_that_cannot_be_rebuilt_is_none(failing: Any, text: str) -> None:
    result = failing.enqueue()
    assert result.status == ResultStatus.FAILED
    assert result._exception_data is not None
    assert result.exception is None
    assert result.traceback is not None
    assert result.traceback.endswith(f"{text}\n")


@override_settings(
    TASKS={
        "default": {
            "BACKEND": "django_tasks.backends.database.DatabaseBackend",
            "ENQUEUE_ON_COMMIT": False,
        }
    }
)
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (_local_error(), "LocalError: defined inside a function"),
        (NeedsKeyword("needs a code", code=3), "NeedsKeyword: needs a code"),
    ],
)
def test_database_exception_that_cannot_be_rebuilt_is_none(exc: Exception, text: str) -> None:
    try:
        raise exc
    except Exception as raised:
        exception_data = exception_to_dict(raised)
    result = raise_local_error.enqueue()
    DBTaskResult.objects.filter(id=result.id).update(
        status=ResultStatus.FAILED, finished_at=timezone.now(), exception_data=exception_data
    )
    fetched = tasks["default"].get_result(result.id)
    assert fetched.status == ResultStatus.FAILED
    assert fetched.exception is None
    assert fetched.traceback == exception_data["exc_traceback"]
    assert fetched.traceback.endswith(f"{text}\n")
    result.refresh()
    assert result.exception is None
    assert result.traceback == exception_data["exc_traceback"]
