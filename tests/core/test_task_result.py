# mypy: disable-error-code="comparison-overlap"
"""TaskResult and ResultStatus."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.test import SimpleTestCase, override_settings
from django.utils import timezone
from django.utils.functional import Promise

from django_tasks import ResultStatus, TaskResult, tasks
from django_tasks.exceptions import InvalidTaskError, ResultDoesNotExist
from django_tasks.utils import exception_to_dict
from tests import tasks as test_tasks

DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


def make_result(status: ResultStatus = ResultStatus.NEW, **kwargs: Any) -> TaskResult[Any]:
    fields: dict[str, Any] = {
        "task": test_tasks.noop_task,
        "id": "result-id",
        "status": status,
        "enqueued_at": None,
        "started_at": None,
        "finished_at": None,
        "args": [],
        "kwargs": {},
        "backend": "default",
    }
    fields.update(kwargs)
    return TaskResult(**fields)


def with_private(result: TaskResult[Any], **private: Any) -> TaskResult[Any]:
    for name, value in private.items():
        object.__setattr__(result, name, value)
    return result


def failed_exception_data() -> Any:
    try:
        raise ValueError("it broke")
    except ValueError as e:
        return exception_to_dict(e)


class ResultStatusTests(SimpleTestCase):
    def test_is_text_choices(self) -> None:
        assert issubclass(ResultStatus, models.TextChoices)

    def test_values(self) -> None:
        assert ResultStatus.values == ["NEW", "RUNNING", "FAILED", "COMPLETE"]
        for member in ResultStatus:
            assert member.value == member.name

    def test_labels(self) -> None:
        assert [str(label) for label in ResultStatus.labels] == [
            "New",
            "Running",
            "Failed",
            "Complete",
        ]
        assert str(ResultStatus.NEW.label) == "New"
        assert str(ResultStatus.COMPLETE.label) == "Complete"

    def test_labels_are_lazy(self) -> None:
        for member in ResultStatus:
            assert isinstance(member.label, Promise)

    def test_str_and_formatting(self) -> None:
        assert str(ResultStatus.NEW) == "NEW"
        assert str(ResultStatus.COMPLETE) == "COMPLETE"
        assert "%s" % ResultStatus.FAILED == "FAILED"  # noqa: UP031
        assert f"{ResultStatus.RUNNING}" == "RUNNING"
        assert ResultStatus.NEW == "NEW"

    def test_json(self) -> None:
        assert json.dumps(ResultStatus.COMPLETE) == '"COMPLETE"'
        assert json.dumps({"s": ResultStatus.NEW}, cls=DjangoJSONEncoder) == '{"s": "NEW"}'

    def test_lookup_by_value(self) -> None:
        assert ResultStatus("FAILED") is ResultStatus.FAILED
        with pytest.raises(ValueError):
            ResultStatus("SUCCESSFUL")


class TaskResultDataclassTests(SimpleTestCase):
    def test_is_frozen_dataclass_with_fields_in_order(self) -> None:
        fields = dataclasses.fields(TaskResult)
        assert [f.name for f in fields if f.init] == [
            "task",
            "id",
            "status",
            "enqueued_at",
            "started_at",
            "finished_at",
            "args",
            "kwargs",
            "backend",
        ]
        private = {f.name: f for f in fields if not f.init}
        assert set(private) == {"_return_value", "_exception_data"}
        for f in private.values():
            assert f.default is None
            assert f.compare is True
        result = make_result()
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.status = ResultStatus.COMPLETE  # type: ignore[misc]
        assert result._return_value is None
        assert result._exception_data is None

    def test_private_fields_not_in_init(self) -> None:
        with pytest.raises(TypeError):
            make_result(_return_value=1)

    def test_equality(self) -> None:
        assert make_result() == make_result()
        assert make_result() != make_result(id="other")
        assert make_result() != make_result(status=ResultStatus.COMPLETE)
        assert with_private(make_result(), _return_value=1) != make_result()
        assert with_private(make_result(), _return_value=1) == with_private(
            make_result(), _return_value=1
        )
        assert with_private(make_result(), _exception_data={"x": 1}) != make_result()

    def test_asdict(self) -> None:
        now = timezone.now()
        result = with_private(
            make_result(ResultStatus.COMPLETE, finished_at=now, args=[1], kwargs={"a": 2}),
            _return_value=42,
        )
        data = dataclasses.asdict(result)
        assert data["id"] == "result-id"
        assert data["status"] == ResultStatus.COMPLETE
        assert data["finished_at"] == now
        assert data["args"] == [1]
        assert data["kwargs"] == {"a": 2}
        assert data["backend"] == "default"
        assert data["_return_value"] == 42
        assert data["_exception_data"] is None
        assert data["task"]["func"] is test_tasks.noop_task.func
        assert data["task"]["priority"] == 0
        assert data["task"]["queue_name"] == "default"

    def test_asdict_of_enqueued_result(self) -> None:
        result = test_tasks.calculate_meaning_of_life.enqueue()
        data = dataclasses.asdict(result)
        assert data["_return_value"] == 42
        assert data["status"] == ResultStatus.COMPLETE
        assert data["id"] == result.id


class ReturnValueTests(SimpleTestCase):
    def test_not_finished(self) -> None:
        for status in (ResultStatus.NEW, ResultStatus.RUNNING):
            result = with_private(make_result(status), _return_value=1)
            with self.subTest(status), pytest.raises(ValueError) as excinfo:
                result.return_value  # noqa: B018
            assert str(excinfo.value) == "Task has not finished yet"

    def test_failed(self) -> None:
        result = with_private(make_result(ResultStatus.FAILED), _return_value=1)
        with pytest.raises(ValueError) as excinfo:
            result.return_value  # noqa: B018
        assert str(excinfo.value) == "Task failed"

    def test_complete(self) -> None:
        result = with_private(make_result(ResultStatus.COMPLETE), _return_value={"a": [1]})
        assert result.return_value == {"a": [1]}

    def test_complete_with_none(self) -> None:
        assert make_result(ResultStatus.COMPLETE).return_value is None


class ExceptionAndTracebackTests(SimpleTestCase):
    def test_failed_with_data(self) -> None:
        data = failed_exception_data()
        result = with_private(make_result(ResultStatus.FAILED), _exception_data=data)
        first = result.exception
        second = result.exception
        assert type(first) is ValueError
        assert first.args == ("it broke",)
        assert first is not second  # a fresh instance each time
        traceback = result.traceback
        assert traceback == data["exc_traceback"]
        assert traceback is not None
        assert traceback.endswith("ValueError: it broke\n")
        assert traceback.startswith("Traceback (most recent call last):")

    def test_custom_exception_class(self) -> None:
        data = exception_to_dict(InvalidTaskError("bad", 1))
        result = with_private(make_result(ResultStatus.FAILED), _exception_data=data)
        assert type(result.exception) is InvalidTaskError
        assert result.exception.args == ("bad", 1)
        assert result.traceback == "django_tasks.exceptions.InvalidTaskError: ('bad', 1)\n"

    def test_exception_that_cannot_be_rebuilt_is_none(self) -> None:
        for exc_type, exc_args in [
            ("tests.nowhere.LostError", ["gone"]),  # module gone
            ("tests.tasks.noop_task.<locals>.Local", ["local"]),  # defined in a function
            ("django_tasks.task.Task", []),  # not an exception
            ("django.core.exceptions.ValidationError", []),  # needs an argument
        ]:
            data = {"exc_type": exc_type, "exc_args": exc_args, "exc_traceback": "text\n"}
            result = with_private(make_result(ResultStatus.FAILED), _exception_data=data)
            with self.subTest(exc_type):
                assert result.exception is None
                assert result.traceback == "text\n"

    def test_failed_without_data(self) -> None:
        result = make_result(ResultStatus.FAILED)
        assert result.exception is None
        assert result.traceback is None

    def test_not_failed_ignores_data(self) -> None:
        data = failed_exception_data()
        for status in (ResultStatus.NEW, ResultStatus.RUNNING, ResultStatus.COMPLETE):
            result = with_private(make_result(status), _exception_data=data)
            with self.subTest(status):
                assert result.exception is None
                assert result.traceback is None


class IsFinishedTests(SimpleTestCase):
    def test_is_finished(self) -> None:
        assert make_result(ResultStatus.NEW).is_finished is False
        assert make_result(ResultStatus.RUNNING).is_finished is False
        assert make_result(ResultStatus.FAILED).is_finished is True
        assert make_result(ResultStatus.COMPLETE).is_finished is True


@override_settings(TASKS=DUMMY)
class RefreshTests(SimpleTestCase):
    def setUp(self) -> None:
        tasks["default"].clear()

    def _finish_stored(self, result: TaskResult[Any]) -> TaskResult[Any]:
        stored: TaskResult[Any] = tasks["default"].get_result(result.id)
        now = timezone.now()
        for name, value in {
            "status": ResultStatus.FAILED,
            "enqueued_at": now - timedelta(seconds=3),
            "started_at": now - timedelta(seconds=2),
            "finished_at": now - timedelta(seconds=1),
            "_return_value": "value",
            "_exception_data": failed_exception_data(),
            # Not refreshed:
            "args": ["changed"],
            "kwargs": {"changed": True},
            "backend": "changed",
        }.items():
            object.__setattr__(stored, name, value)
        return stored

    def test_refresh_copies_exactly_the_state(self) -> None:
        result = test_tasks.noop_task.enqueue(1, a=2)
        stored = self._finish_stored(result)
        assert result.status == ResultStatus.NEW
        result.refresh()
        assert result.status == ResultStatus.FAILED
        assert result.enqueued_at == stored.enqueued_at
        assert result.started_at == stored.started_at
        assert result.finished_at == stored.finished_at
        assert result._return_value == "value"
        assert result._exception_data == stored._exception_data
        assert type(result.exception) is ValueError
        assert result.args == [1]
        assert result.kwargs == {"a": 2}
        assert result.backend == "default"
        assert result is not stored

    async def test_arefresh(self) -> None:
        result = await test_tasks.noop_task.aenqueue(1)
        stored = self._finish_stored(result)
        await result.arefresh()
        assert result.status == ResultStatus.FAILED
        assert result.finished_at == stored.finished_at
        assert result._exception_data == stored._exception_data
        assert result.args == [1]

    def test_refresh_deleted_result(self) -> None:
        result = test_tasks.noop_task.enqueue()
        tasks["default"].clear()
        with pytest.raises(ResultDoesNotExist):
            result.refresh()
        assert result.status == ResultStatus.NEW

    async def test_arefresh_deleted_result(self) -> None:
        result = await test_tasks.noop_task.aenqueue()
        tasks["default"].clear()
        with pytest.raises(ResultDoesNotExist):
            await result.arefresh()


class ImmediateRefreshTests(SimpleTestCase):
    msg = "This backend does not support retrieving or refreshing results."

    def test_refresh_not_supported(self) -> None:
        result = test_tasks.noop_task.enqueue()
        with pytest.raises(NotImplementedError) as excinfo:
            result.refresh()
        assert str(excinfo.value) == self.msg

    async def test_arefresh_not_supported(self) -> None:
        result = await test_tasks.noop_task.aenqueue()
        with pytest.raises(NotImplementedError) as excinfo:
            await result.arefresh()
        assert str(excinfo.value) == self.msg
