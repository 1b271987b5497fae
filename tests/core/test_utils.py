from __future__ import annotations

import datetime
import functools
import json
import subprocess
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase

from django_tasks import utils
from django_tasks.exceptions import InvalidTaskError
from tests import tasks as test_tasks

_SEEN_DURING_DECORATION: dict[str, bool] = {}


def _record_is_global(func: Any) -> Any:
    """A decorator that checks the function before the module global is bound."""
    _SEEN_DURING_DECORATION[func.__name__] = utils.is_global_function(func)
    return func


@_record_is_global
def decorated_module_function() -> None:
    pass


def module_function() -> None:
    pass


class SomeClass:
    def method(self) -> None:
        pass

    class Inner:
        pass


def _raise_value_error() -> None:
    raise ValueError("raised for the traceback")


class IsGlobalFunctionTests(SimpleTestCase):
    def test_module_level_function(self) -> None:
        assert utils.is_global_function(module_function) is True
        assert utils.is_global_function(test_tasks.noop_task.func) is True

    def test_async_module_level_function(self) -> None:
        assert utils.is_global_function(test_tasks.noop_task_async.func) is True

    def test_module_level_function_during_decoration(self) -> None:
        # The decorator runs before `decorated_module_function` is a module global.
        assert _SEEN_DURING_DECORATION == {"decorated_module_function": True}

    def test_nested_function_during_decoration(self) -> None:
        @_record_is_global
        def nested_decorated() -> None:
            pass

        assert _SEEN_DURING_DECORATION.pop("nested_decorated") is False

    def test_builtins(self) -> None:
        builtins: list[Any] = [any, len, print, "".join, [].append]
        for builtin in builtins:
            with self.subTest(builtin):
                assert utils.is_global_function(builtin) is False

    def test_closure_and_lambda(self) -> None:
        value = 1

        def closure() -> int:
            return value

        def inner() -> None:
            pass

        assert utils.is_global_function(closure) is False
        assert utils.is_global_function(inner) is False
        assert utils.is_global_function(lambda: None) is False

    def test_bound_method(self) -> None:
        assert utils.is_global_function(SomeClass().method) is False
        assert utils.is_global_function(self.test_bound_method) is False

    def test_not_functions(self) -> None:
        for obj in (
            SomeClass,
            int,
            None,
            "tests.core.test_utils.module_function",
            functools.partial(module_function),
            test_tasks.noop_task,
            mock.Mock(),
        ):
            with self.subTest(obj):
                assert utils.is_global_function(obj) is False


class IsJsonSerializableTests(SimpleTestCase):
    def test_serializable(self) -> None:
        for value in (None, True, 1, 1.5, "a", [], {}, [1, "a", {"b": [None]}], (1, 2), {"a": 1}):
            with self.subTest(value):
                assert utils.is_json_serializable(value) is True

    def test_not_serializable(self) -> None:
        for value in (
            datetime.datetime.now(),
            datetime.timedelta(1),
            object(),
            module_function,
            {1, 2},
            [1, object()],
            {"a": {"b": object()}},
            {(1, 2): "tuple key"},
            b"bytes",
        ):
            with self.subTest(value):
                assert utils.is_json_serializable(value) is False


class JsonNormalizeTests(SimpleTestCase):
    def test_round_trip(self) -> None:
        assert utils.json_normalize({"a": (1, 2), 1: [(3,)]}) == {"a": [1, 2], "1": [[3]]}
        assert utils.json_normalize((1, "a", None)) == [1, "a", None]
        assert utils.json_normalize(None) is None
        assert utils.json_normalize(42) == 42

    def test_returns_a_new_object(self) -> None:
        value = {"a": [1, 2]}
        normalized = utils.json_normalize(value)
        assert normalized == value
        assert normalized is not value
        assert normalized["a"] is not value["a"]

    def test_unserializable_raises_type_error(self) -> None:
        for value in (object(), [datetime.date(2024, 1, 1)], {"f": module_function}):
            with self.subTest(value), pytest.raises(TypeError):
                utils.json_normalize(value)


class StrictJsonTests(SimpleTestCase):
    """What a database can't keep as JSON is refused, naming the part."""

    def test_values_are_refused_with_their_path(self) -> None:
        deep: list[Any] = []
        for _ in range(10_000):
            deep = [deep]
        for value, exc_type, message in [
            (float("nan"), ValueError, "value can't be stored as JSON: nan (NaN and"),
            ({"a": [1, -float("inf")]}, ValueError, "value['a'][1] can't be stored as JSON: -inf"),
            (
                {"s": "a\x00"},
                ValueError,
                "value['s'] can't be stored as JSON: a string holding a NUL",
            ),
            (
                ["\udc00"],
                ValueError,
                "value[0] can't be stored as JSON: a string holding a lone surrogate ('\\udc00')",
            ),
            ({"\ud800": 1}, ValueError, "value can't be stored as JSON: a key holding a lone"),
            ({float("nan"): 1}, ValueError, "value can't be stored as JSON: a key nan"),
            (deep, ValueError, "value can't be stored as JSON: nested deeper than 100 levels"),
            (
                {"when": datetime.date(2024, 1, 1)},
                TypeError,
                "value['when'] is not JSON serializable: date",
            ),
            ({1j: 1}, TypeError, "value is not JSON serializable: a key of type complex"),
        ]:
            with self.subTest(message), pytest.raises(exc_type) as excinfo:
                utils.json_normalize(value)
            assert str(excinfo.value).startswith(message), str(excinfo.value)

    def test_is_json_serializable_refuses_nan_and_infinity(self) -> None:
        for value in (float("nan"), [float("inf")], {"a": -float("inf")}):
            with self.subTest(value):
                assert utils.is_json_serializable(value) is False

    def test_name_prefixes_the_path(self) -> None:
        with pytest.raises(ValueError, match=r"^Task return value\[0\] can't be stored"):
            utils.json_normalize([float("inf")], name="Task return value")

    def test_a_value_that_contains_itself(self) -> None:
        loop: list[Any] = []
        loop.append(loop)
        with pytest.raises(ValueError, match="contains itself"):
            utils.json_dumps_strict(loop)

    def test_what_databases_keep_is_accepted_unchanged(self) -> None:
        at_limit: list[Any] = []
        for _ in range(utils.MAX_JSON_DEPTH - 1):
            at_limit = [at_limit]
        for value in [
            "emoji \U0001f600 and \u00e9",
            "\\u0000 and \\ud800 written out",  # backslashes, not the characters
            {"k": [1.5, -0.0, 10**30, True, None]},
            at_limit,
        ]:
            with self.subTest(repr(value)[:40]):
                assert utils.json_normalize(value) == value
                assert json.loads(utils.json_dumps_strict(value)) == value

    def test_suspect_scan(self) -> None:
        assert utils.json_text_is_suspect(json.dumps(["plain", 1, {"a": [2]}])) is False
        assert utils.json_text_is_suspect(json.dumps("\U0001f600")) is False  # a valid pair
        assert utils.json_text_is_suspect(json.dumps("\ud800")) is True
        assert utils.json_text_is_suspect(json.dumps("\x00")) is True
        assert utils.json_text_is_suspect(json.dumps([[]] * 200)) is False  # many, not deep
        brackets_in_strings = json.dumps(["[" * 300])
        assert utils.json_text_is_suspect(brackets_in_strings) is False

    def test_add_note(self) -> None:
        error = ValueError("message")
        utils.add_note(error, "more")
        assert str(error) == "message"
        assert error.__notes__ == ["more"]


class RetryTests(SimpleTestCase):
    def test_retries_three_times_by_default_and_reraises_last_error(self) -> None:
        errors = [ValueError("1"), ValueError("2"), ValueError("3")]
        func = mock.Mock(side_effect=errors)
        with mock.patch("time.sleep") as sleep, pytest.raises(ValueError) as excinfo:
            utils.retry()(func)()
        assert excinfo.value is errors[2]
        assert func.call_count == 3
        assert sleep.call_args_list == [mock.call(0.1), mock.call(0.1)]

    def test_custom_retries_and_backoff(self) -> None:
        func = mock.Mock(side_effect=OSError("down"))
        with mock.patch("time.sleep") as sleep, pytest.raises(OSError, match="^down$"):
            utils.retry(retries=5, backoff_delay=0.5)(func)()
        assert func.call_count == 5
        assert sleep.call_args_list == [mock.call(0.5)] * 4

    def test_stops_retrying_on_success(self) -> None:
        func = mock.Mock(side_effect=[ValueError(), ValueError(), "done"])
        with mock.patch("time.sleep") as sleep:
            assert utils.retry()(func)("a", b=1) == "done"
        assert func.call_count == 3
        assert func.call_args_list == [mock.call("a", b=1)] * 3
        assert sleep.call_count == 2

    def test_keeps_return_value(self) -> None:
        assert utils.retry()(lambda: True)() is True
        assert utils.retry()(lambda: False)() is False
        assert utils.retry()(lambda: None)() is None
        sentinel = object()
        assert utils.retry()(lambda: sentinel)() is sentinel

    def test_no_sleep_on_first_success(self) -> None:
        with mock.patch("time.sleep") as sleep:
            utils.retry()(lambda: 1)()
        sleep.assert_not_called()

    def test_keyboard_interrupt_is_not_retried(self) -> None:
        func = mock.Mock(side_effect=KeyboardInterrupt())
        with mock.patch("time.sleep") as sleep, pytest.raises(KeyboardInterrupt):
            utils.retry()(func)()
        assert func.call_count == 1
        sleep.assert_not_called()

    def test_wraps_function(self) -> None:
        wrapped = utils.retry()(module_function)
        assert wrapped.__name__ == "module_function"
        assert wrapped.__wrapped__ is module_function  # type: ignore[attr-defined]


class GetModulePathTests(SimpleTestCase):
    def test_paths(self) -> None:
        assert utils.get_module_path(module_function) == "tests.core.test_utils.module_function"
        assert utils.get_module_path(SomeClass) == "tests.core.test_utils.SomeClass"
        assert utils.get_module_path(SomeClass.Inner) == "tests.core.test_utils.SomeClass.Inner"
        assert utils.get_module_path(SomeClass.method) == "tests.core.test_utils.SomeClass.method"
        assert utils.get_module_path(ValueError) == "builtins.ValueError"
        assert utils.get_module_path(test_tasks.noop_task.func) == "tests.tasks.noop_task"
        assert utils.get_module_path(InvalidTaskError) == "django_tasks.exceptions.InvalidTaskError"


class ExceptionToDictTests(SimpleTestCase):
    def test_never_raised_exception(self) -> None:
        assert utils.exception_to_dict(ValueError(10)) == {
            "exc_type": "builtins.ValueError",
            "exc_args": [10],
            "exc_traceback": "ValueError: 10\n",
        }

    def test_raised_exception_has_full_traceback(self) -> None:
        try:
            _raise_value_error()
        except ValueError as e:
            data = utils.exception_to_dict(e)

        assert set(data) == {"exc_type", "exc_args", "exc_traceback"}
        assert data["exc_type"] == "builtins.ValueError"
        assert data["exc_args"] == ["raised for the traceback"]
        tb = data["exc_traceback"]
        assert tb.startswith("Traceback (most recent call last):\n")
        assert __file__ in tb
        assert "in _raise_value_error" in tb
        assert 'raise ValueError("raised for the traceback")' in tb
        assert tb.endswith("ValueError: raised for the traceback\n")

    def test_exception_chain_is_included(self) -> None:
        try:
            try:
                _raise_value_error()
            except ValueError as e:
                raise KeyError("outer") from e
        except KeyError as e:
            tb = utils.exception_to_dict(e)["exc_traceback"]
        assert "ValueError: raised for the traceback" in tb
        assert "The above exception was the direct cause" in tb
        assert tb.endswith("KeyError: 'outer'\n")

    def test_args_are_json_normalised(self) -> None:
        data = utils.exception_to_dict(ValueError((1, 2), {3: "x"}))
        assert data["exc_args"] == [[1, 2], {"3": "x"}]

    def test_is_json_stable(self) -> None:
        try:
            _raise_value_error()
        except ValueError as e:
            data = utils.exception_to_dict(e)
        assert utils.json_normalize(data) == data
        assert json.loads(json.dumps(data)) == data

    def test_custom_exception_type_path(self) -> None:
        data = utils.exception_to_dict(InvalidTaskError("x"))
        assert data["exc_type"] == "django_tasks.exceptions.InvalidTaskError"
        data = utils.exception_to_dict(subprocess.CalledProcessError(1, "cmd"))
        assert data["exc_type"] == "subprocess.CalledProcessError"

    def test_unserializable_args_raise_type_error(self) -> None:
        with pytest.raises(TypeError):
            utils.exception_to_dict(ValueError(ValueError("nested")))
        with pytest.raises(TypeError):
            utils.exception_to_dict(ValueError(object()))


class ExceptionFromDictTests(SimpleTestCase):
    def test_round_trip(self) -> None:
        for exc in (
            ValueError(10),
            ValueError("message", 2),
            SyntaxError("Wrong"),
            ImproperlyConfigured("It's wrong"),
            InvalidTaskError(""),
            SystemExit(),
            SystemExit(1),
            KeyError("k"),
        ):
            with self.subTest(exc):
                data = utils.exception_to_dict(exc)
                assert utils.json_normalize(data) == data
                rebuilt = utils.exception_from_dict(data)
                assert type(rebuilt) is type(exc)
                assert rebuilt.args == exc.args
                assert rebuilt is not exc

    def test_rebuilds_from_plain_dict(self) -> None:
        rebuilt = utils.exception_from_dict(
            {"exc_type": "builtins.RuntimeError", "exc_args": ["a", 1], "exc_traceback": ""}
        )
        assert type(rebuilt) is RuntimeError
        assert rebuilt.args == ("a", 1)
        assert rebuilt.__traceback__ is None

    def test_not_an_exception_class_raises_type_error(self) -> None:
        for exc_type in (
            "tests.core.test_utils.module_function",  # function
            "django_tasks.DEFAULT_QUEUE_NAME",  # constant
            "django_tasks.utils",  # module
            "django.test.TestCase",  # class, not an exception
            "unittest.mock.Mock",
            "builtins.int",
        ):
            with self.subTest(exc_type), pytest.raises(TypeError):
                utils.exception_from_dict(
                    {"exc_type": exc_type, "exc_args": [], "exc_traceback": ""}
                )

    def test_not_an_exception_never_gets_called(self) -> None:
        with mock.patch.object(SomeClass, "__init__") as init, pytest.raises(TypeError):
            utils.exception_from_dict(
                {
                    "exc_type": "tests.core.test_utils.SomeClass",
                    "exc_args": [],
                    "exc_traceback": "",
                }
            )
        init.assert_not_called()

    def test_import_errors_propagate(self) -> None:
        for exc_type in ("True", "does.not.exist", "builtins.NoSuchError"):
            with self.subTest(exc_type), pytest.raises(ImportError):
                utils.exception_from_dict(
                    {"exc_type": exc_type, "exc_args": [], "exc_traceback": ""}
                )
