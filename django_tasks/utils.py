"""Helpers shared by the backends."""

from __future__ import annotations

import inspect
import json
import math
import re
import sys
import time
import traceback as tb
from collections.abc import Callable
from functools import wraps
from itertools import accumulate
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


# JSON nested deeper than this is refused.  SQLite's JSON functions stop at 1000
# levels, and much less runs out of Python's stack in recursive code that handles
# values (deepcopy, json's pure-Python encoder, a task's own code), several frames
# per level, inside an already deep call stack.
MAX_JSON_DEPTH = 100

# In text from json.dumps (ensure_ascii): a surrogate escape not part of a pair.
_LONE_SURROGATE_ESCAPE = re.compile(
    r"\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f][0-9a-f]{2})|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}"
)
# One encoder: json.dumps(..., allow_nan=False) would build a new one per call.
_STRICT_ENCODER = json.JSONEncoder(allow_nan=False)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_DEPTH_STEPS = {"[": 1, "{": 1, "]": -1, "}": -1}
# Outside its strings, JSON text from json.dumps is ASCII: keep only the brackets.
_BRACKETS_ONLY = str.maketrans({chr(c): None for c in range(128) if chr(c) not in _DEPTH_STEPS})


def is_json_serializable(obj: Any) -> bool:
    """Return whether ``obj`` survives JSON encoding (NaN and Infinity do not)."""
    try:
        json.dump(obj, _NullWriter(), allow_nan=False)
    except (TypeError, OverflowError, ValueError, RecursionError):
        return False
    return True


def json_normalize(obj: Any, *, name: str = "value") -> Any:
    """Round-trip ``obj`` through JSON: tuples become lists, keys become strings.

    Raises as ``json_dumps_strict`` does, naming the offending part after ``name``.
    """
    return json.loads(json_dumps_strict(obj, name=name))


def json_dumps_strict(obj: Any, *, name: str = "value", max_depth: int = MAX_JSON_DEPTH) -> str:
    """Return ``obj`` as JSON text that every supported database stores and returns equal.

    Raises TypeError for a type JSON can't hold, and ValueError for NaN or Infinity,
    a string holding a NUL character (PostgreSQL refuses it) or a lone surrogate
    (not UTF-8), or nesting deeper than ``max_depth``.  The message names the
    part, as ``name`` plus subscripts: ``value['when'] is not JSON serializable:
    datetime``, ``value[0] can't be stored as JSON: nan (...)``.
    """
    try:
        text = _STRICT_ENCODER.encode(obj)
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        raise json_problem(obj, name, e, max_depth=max_depth) from e
    if json_text_is_suspect(text, max_depth=max_depth):
        problem = find_json_problem(obj, name, max_depth=max_depth)
        if problem is not None:
            raise problem
    return text


def json_text_is_suspect(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Return whether JSON text from ``json.dumps`` may hold what a database refuses.

    Cheap (C-speed scans of the text), so that only suspect values get walked:
    a NUL or lone surrogate escape, or enough brackets to be nested too deep.
    Literal backslashes in strings may give false alarms, never misses.
    """
    if "\\u0000" in text:
        return True
    if "\\ud" in text and _LONE_SURROGATE_ESCAPE.search(text):
        return True
    if text.count("[") + text.count("{") > max_depth:
        brackets = _JSON_STRING.sub("", text).translate(_BRACKETS_ONLY)
        return max(accumulate(map(_DEPTH_STEPS.__getitem__, brackets))) > max_depth
    return False


def json_problem(
    obj: Any, name: str, error: BaseException, *, max_depth: int = MAX_JSON_DEPTH
) -> TypeError | ValueError:
    """Return the error to raise for ``obj``, which ``json.dumps`` refused with ``error``."""
    problem = find_json_problem(obj, name, max_depth=max_depth)
    if problem is not None:
        return problem
    if isinstance(error, TypeError):
        return TypeError(f"{name} is not JSON serializable: {error}")
    return ValueError(f"{name} is not JSON serializable: {error}")


def find_json_problem(
    obj: Any, name: str = "value", *, max_depth: int = MAX_JSON_DEPTH
) -> TypeError | ValueError | None:
    """Return an error naming the first part of ``obj`` that JSON in a database can't hold."""
    stack: list[tuple[Any, str, int]] = [(obj, name, 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            reason = _string_problem(value)
            if reason:
                return ValueError(f"{path} can't be stored as JSON: a string holding {reason}")
        elif value is None or isinstance(value, int):
            continue
        elif isinstance(value, float):
            if not math.isfinite(value):
                return ValueError(
                    f"{path} can't be stored as JSON: {value!r} (NaN and Infinity are not JSON)"
                )
        elif isinstance(value, (list, tuple, dict)):
            if depth >= max_depth:
                return ValueError(
                    f"{name} can't be stored as JSON: nested deeper than {max_depth} "
                    "levels (or it contains itself)"
                )
            children: list[tuple[Any, str, int]] = []
            if isinstance(value, dict):
                for key, item in value.items():
                    key_problem = _key_problem(key, path)
                    if key_problem is not None:
                        return key_problem
                    children.append((item, f"{path}[{key!r}]", depth + 1))
            else:
                children.extend(
                    (item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value)
                )
            stack.extend(reversed(children))
        else:
            return TypeError(f"{path} is not JSON serializable: {type(value).__qualname__}")
    return None


def _string_problem(value: str) -> str:
    if "\x00" in value:
        return "a NUL character ('\\x00')"
    if value.isascii():
        return ""
    try:
        # Pairs combine; a lone surrogate can't be decoded.
        value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        lone = next(c for c in value if "\ud800" <= c <= "\udfff")
        return f"a lone surrogate ({lone!r})"
    return ""


def _key_problem(key: Any, path: str) -> TypeError | ValueError | None:
    if isinstance(key, str):
        reason = _string_problem(key)
        if reason:
            return ValueError(f"{path} can't be stored as JSON: a key holding {reason}")
    elif isinstance(key, float) and not math.isfinite(key):
        return ValueError(f"{path} can't be stored as JSON: a key {key!r}")
    elif key is not None and not isinstance(key, (int, float)):
        return TypeError(f"{path} is not JSON serializable: a key of type {type(key).__qualname__}")
    return None


def add_note(exc: BaseException, note: str) -> None:
    """Add a note, shown below the exception's message in tracebacks (PEP 678)."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10 keeps the note without showing it
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]


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
    return exc_class(*exc_data["exc_args"])


def exception_message(args: Any) -> str:
    """Return what ``str(exc)`` gives for an exception constructed with ``args`` (stored JSON)."""
    if not isinstance(args, list):
        return str(args)
    if len(args) == 1:
        return str(args[0])
    return str(tuple(args)) if args else ""
