"""Tasks for the automatic-retry tests: each run appends a line to a file."""

from __future__ import annotations

from datetime import timedelta

from django_tasks import RetryLater, task
from tests.worker_helpers import _append, runs


def _run_number(path: str, token: str) -> int:
    _append(path, token)
    return runs(path)[token]


@task(max_attempts=3, backoff=0)
def flaky(path: str, token: str, failures: int) -> int:
    """Fail the first ``failures`` runs (per token), then return the run number."""
    number = _run_number(path, token)
    if number <= failures:
        raise ValueError(f"{token} failed on run {number}")
    return number


@task(max_attempts=3, backoff=0)
def always_fails(path: str, token: str) -> None:
    number = _run_number(path, token)
    raise ValueError(f"{token} failed on run {number}")


@task(max_attempts=3, retry_on=(KeyError,), backoff=0)
def fails_with(path: str, token: str, kind: str) -> None:
    """Raise KeyError (retried) or TypeError (not retried)."""
    _run_number(path, token)
    raise KeyError(token) if kind == "key" else TypeError(token)


@task(max_attempts=2)
def snoozes(path: str, token: str, seconds: float) -> int:
    """Ask to run again in ``seconds`` the first time, then complete."""
    number = _run_number(path, token)
    if number == 1:
        raise RetryLater(timedelta(seconds=seconds))
    return number


def broken_backoff(attempt: int, exception: BaseException) -> float:
    raise ZeroDivisionError("the backoff is broken")


@task(max_attempts=3, backoff=broken_backoff)
def fails_with_broken_backoff(path: str, token: str) -> None:
    _run_number(path, token)
    raise ValueError(token)


@task(max_attempts=5, backoff=lambda attempt, exception: 10 * attempt)
def fails_with_linear_backoff(path: str, token: str) -> None:
    _run_number(path, token)
    raise ValueError(token)


@task()
def fails_once_without_settings(path: str, token: str) -> None:
    """No settings of its own: OPTIONS decide."""
    _run_number(path, token)
    raise ValueError(token)
