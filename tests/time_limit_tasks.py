"""Tasks for the time-limit tests: they record each run's start (and end) in a file.

Each appends ``token`` to ``path`` when it starts, as ``tests.worker_helpers.record_run``
does, so tests count runs; the slow ones append ``token-finished`` if they ever return.
"""

from __future__ import annotations

import os
import threading
import time

from django_tasks import task
from tests.worker_helpers import _append


@task()
def sleeps(path: str, token: str, seconds: float) -> str:
    """Block in ``time.sleep`` (a C call: an executor thread can't be interrupted in it)."""
    _append(path, token)
    time.sleep(seconds)
    _append(path, f"{token}-finished")
    return token


@task()
def spins(path: str, token: str) -> None:
    """Loop in Python forever."""
    _append(path, token)
    while True:
        pass


@task()
def waits_for_shell(path: str, token: str, seconds: int) -> str:
    """Block in C's ``system()``, which no signal interrupts, even on the main thread."""
    _append(path, token)
    os.system(f"sleep {int(seconds)}")  # noqa: S605 - a fixed command
    _append(path, f"{token}-finished")
    return token


@task()
def quick(path: str, token: str) -> str:
    """Finish at once."""
    _append(path, token)
    return token


@task(time_limit=1, max_attempts=2, backoff=0)
def spins_twice(path: str, token: str) -> None:
    """Loop forever, with a time limit and a second attempt from the decorator."""
    _append(path, token)
    while True:
        pass


@task()
def records_threads(path: str) -> None:
    """Append the names of the worker process's threads, one line."""
    _append(path, ",".join(sorted(thread.name for thread in threading.enumerate())))
