"""Helpers shared by the backends."""

from __future__ import annotations

import inspect
import json
import time
import traceback as tb
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypedDict, TypeVar

from django.utils.module_loading import import_string

T = TypeVar("T")
P = ParamSpec("P")


class SerializedExceptionDict(TypedDict):
    """The JSON form of an exception stored on a result."""

    exc_type: str
    exc_args: list[Any]
    exc_traceback: str


class _NullWriter:
    """Discard everything written: lets `json.dump` validate without building a string."""

    def write(self, s: str) -> None:
        pass


def is_global_function(func: object) -> bool:
    """Return whether ``func`` is a plain function importable by its module path."""
    if not inspect.isfunction(func) or inspect.isbuiltin(func):
        return False
    return "<locals>" not in func.__qualname__


def is_json_serializable(obj: Any) -> bool:
    """Return whether ``obj`` survives JSON encoding."""
    try:
        json.dump(obj, _NullWriter())  # type: ignore[arg-type]
    except (TypeError, OverflowError, ValueError):
        return False
    return True


def json_normalize(obj: Any) -> Any:
    """Round-trip ``obj`` through JSON: tuples become lists, keys become strings."""
    return json.loads(json.dumps(obj))


def retry(
    *, retries: int = 3, backoff_delay: float = 0.1
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Retry the decorated function up to ``retries`` times, sleeping between tries."""

    def wrapper(f: Callable[P, T]) -> Callable[P, T]:
        @wraps(f)
        def inner_wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            attempt = 0
            while True:
                attempt += 1
                try:
                    return f(*args, **kwargs)
                except KeyboardInterrupt:
                    raise
                except Exception:
                    if attempt >= retries:
                        raise
                    time.sleep(backoff_delay)

        return inner_wrapper

    return wrapper


def get_module_path(val: Any) -> str:
    """Return the dotted import path of a class or function."""
    return f"{val.__module__}.{val.__qualname__}"


def exception_to_dict(exc: BaseException) -> SerializedExceptionDict:
    """Serialise an exception's class, arguments and formatted traceback."""
    return {
        "exc_type": get_module_path(type(exc)),
        "exc_args": json_normalize(exc.args),
        "exc_traceback": "".join(tb.format_exception(type(exc), exc, exc.__traceback__)),
    }


def exception_from_dict(exc_data: SerializedExceptionDict) -> BaseException:
    """Rebuild an exception (class and arguments only) from its serialised form."""
    exc_class = import_string(exc_data["exc_type"])
    if not inspect.isclass(exc_class) or not issubclass(exc_class, BaseException):
        raise TypeError(f"{type(exc_class)} is not an exception")
    return exc_class(*exc_data["exc_args"])  # type: ignore[no-any-return]


def exception_message(args: Any) -> str:
    """Return what ``str(exc)`` gives for an exception constructed with ``args`` (stored JSON)."""
    if not isinstance(args, list):
        return str(args)
    if len(args) == 1:
        return str(args[0])
    return str(tuple(args)) if args else ""
