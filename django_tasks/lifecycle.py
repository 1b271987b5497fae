"""A task's lifecycle settings: attempts, which errors retry, backoff, time limit, uniqueness.

They come from four places, later ones winning: the defaults here, a backend's
``OPTIONS["task_defaults"]``, the task itself (decorator keywords or ``.using()``)
and the backend's ``OPTIONS["task_overrides"][task_path]``.  Each is checked by
:func:`check_settings` where it is given, so a mistake is reported when a task is
defined or ``manage.py check`` runs, never in the worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from random import random as uniform
from typing import Any, TypeAlias

from .exceptions import InvalidTaskError

Backoff: TypeAlias = (
    "float | int | timedelta | Callable[[int, BaseException], float | int | timedelta]"
)
"""Seconds to wait before the next attempt, or ``(attempt, exception) -> seconds``."""

SETTING_NAMES = ("max_attempts", "retry_on", "backoff", "time_limit", "unique_key")
"""The lifecycle keywords a task, ``task_defaults`` and ``task_overrides`` accept."""

MAX_UNIQUE_KEY_LENGTH = 255


class RetryLater(Exception):  # noqa: N818 - the name users raise
    """Raised by a task to run again after ``delay`` (seconds or a timedelta).

    Counts as an attempt: when none are left, the task fails with this exception.
    """

    def __init__(self, delay: float | int | timedelta = 0) -> None:
        seconds = _seconds(delay)
        if seconds is None or seconds < 0:
            raise ValueError(
                f"RetryLater's delay must be seconds (a number >= 0) or a timedelta, not {delay!r}"
            )
        super().__init__(seconds)
        self.delay = seconds


class TimeLimitExceeded(Exception):  # noqa: N818 - reads as what happened
    """A task ran longer than its time limit; the worker ended the attempt."""


@dataclass(frozen=True, slots=True)
class Exponential:
    """The default backoff: ``base * 2 ** (attempt - 1)`` seconds, at most ``cap``.

    With ``jitter`` j, each delay is scaled by a factor drawn from [1 - j, 1] with
    ``random_source`` (inject a fixed one to make delays predictable in tests).
    """

    base: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.25
    random_source: Callable[[], float] = uniform

    def __call__(self, attempt: int, exception: BaseException) -> float:
        delay = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return float(delay * (1 - self.jitter * self.random_source()))


DEFAULT_BACKOFF = Exponential()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSettings:
    """The lifecycle settings one task runs with, all sources merged."""

    max_attempts: int = 1
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: Backoff = DEFAULT_BACKOFF
    time_limit: float | None = None
    unique_key: str | None = None

    def merged(self, values: Mapping[str, Any]) -> TaskSettings:
        """A copy with ``values`` (checked by :func:`check_settings`) applied."""
        if not values:
            return self
        fields = {name: getattr(self, name) for name in SETTING_NAMES}
        fields.update(values)
        return TaskSettings(**fields)

    def retries(self, exception: BaseException) -> bool:
        """Whether a failure with ``exception`` may be retried (attempts permitting)."""
        return isinstance(exception, (RetryLater, *self.retry_on))

    def delay(self, attempt: int, exception: BaseException) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one.

        Raises ValueError if a backoff callable returns something that isn't a
        number of seconds; its own exceptions propagate.
        """
        if isinstance(exception, RetryLater):
            return exception.delay
        backoff = self.backoff
        value = backoff(attempt, exception) if callable(backoff) else backoff
        seconds = _seconds(value)
        if seconds is None or seconds < 0:
            raise ValueError(
                f"The backoff {backoff!r} returned {value!r} for attempt {attempt}: "
                "it must return seconds (a number >= 0) or a timedelta"
            )
        return seconds


DEFAULTS = TaskSettings()


def check_settings(values: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Return ``values`` normalised; raise TypeError/ValueError naming what is wrong.

    ``where`` says where they were given, for the message ("task app.tasks.report",
    "OPTIONS['task_defaults'] of backend 'default'").  None values are left out.
    """
    unknown = sorted(str(name) for name in values if name not in SETTING_NAMES)
    if unknown:
        raise TypeError(
            f"Unknown task setting(s) {', '.join(map(repr, unknown))} in {where}; "
            f"the settings are {', '.join(SETTING_NAMES)}"
        )
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if value is not None:
            checked[name] = _CHECKS[name](value, f"{name} of {where}")
    return checked


def _check_max_attempts(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a whole number of attempts >= 1, not {value!r}")
    return value


def _check_retry_on(value: Any, what: str) -> tuple[type[BaseException], ...]:
    classes = value if isinstance(value, (tuple, list)) else (value,)
    if not classes or not all(
        isinstance(c, type) and issubclass(c, BaseException) for c in classes
    ):
        raise TypeError(f"{what} must be an exception class or a tuple of them, not {value!r}")
    return tuple(classes)


def _check_backoff(value: Any, what: str) -> Backoff:
    if callable(value):
        return value  # type: ignore[no-any-return]
    seconds = _seconds(value)
    if seconds is None or seconds < 0:
        raise TypeError(
            f"{what} must be seconds (a number >= 0), a timedelta, or a callable "
            f"(attempt, exception) -> seconds, not {value!r}"
        )
    return seconds


def _check_time_limit(value: Any, what: str) -> float:
    seconds = _seconds(value)
    if seconds is None or seconds <= 0:
        raise ValueError(f"{what} must be seconds (a number > 0) or a timedelta, not {value!r}")
    return seconds


def _check_unique_key(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_UNIQUE_KEY_LENGTH:
        raise TypeError(
            f"{what} must be a non-empty string of at most {MAX_UNIQUE_KEY_LENGTH} "
            f"characters, not {value!r}"
        )
    return value


_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "max_attempts": _check_max_attempts,
    "retry_on": _check_retry_on,
    "backoff": _check_backoff,
    "time_limit": _check_time_limit,
    "unique_key": _check_unique_key,
}


def _seconds(value: Any) -> float | None:
    """``value`` as finite seconds, or None if it is not a number or a timedelta."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def task_settings_of(task: Any) -> dict[str, Any]:
    """The lifecycle settings set on ``task`` itself (either API), without the unset ones."""
    values = {}
    for name in SETTING_NAMES:
        value = getattr(task, name, None)
        if value is not None:
            values[name] = value
    return values


def check_task_settings(values: Mapping[str, Any], *, task_path: str) -> dict[str, Any]:
    """``values`` given to the task ``task_path``, normalised.

    Raises InvalidTaskError naming the setting, what it must be and the task.
    """
    try:
        return check_settings(values, where=f"task {task_path}")
    except (TypeError, ValueError) as e:
        raise InvalidTaskError(str(e)) from None


__all__ = [
    "DEFAULTS",
    "DEFAULT_BACKOFF",
    "SETTING_NAMES",
    "Exponential",
    "RetryLater",
    "TaskSettings",
    "TimeLimitExceeded",
    "check_settings",
    "check_task_settings",
    "task_settings_of",
]
