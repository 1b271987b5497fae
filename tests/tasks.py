"""Module-level tasks used by the test suite.

Every function here is importable by its ``module_path`` (``tests.tasks.<name>``),
which is what the backends and the database worker rely on.  Append new tasks at
the end; keep this a plain module (no test code, no side effects beyond the tasks).
"""

from __future__ import annotations

import time
from typing import Any

from django_tasks import task


@task()
def noop_task(*args: Any, **kwargs: Any) -> None:
    return None


@task
async def noop_task_async(*args: Any, **kwargs: Any) -> None:
    return None


@task()
def calculate_meaning_of_life() -> int:
    return 42


@task()
async def calculate_meaning_of_life_async() -> int:
    return 42


@task()
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Return the (JSON-normalised) arguments the task received."""
    return {"args": list(args), "kwargs": kwargs}


@task()
async def echo_async(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task()
def argument_types(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Return the type names of the arguments the function was called with."""
    return {
        "args": [type(arg).__name__ for arg in args],
        "kwargs": {key: type(value).__name__ for key, value in kwargs.items()},
    }


@task()
def failing_task_value_error() -> None:
    raise ValueError("This task failed due to ValueError")


@task()
def failing_task_system_exit() -> None:
    raise SystemExit("This task failed due to SystemExit")


@task()
def failing_task_keyboard_interrupt() -> None:
    raise KeyboardInterrupt("This task failed due to KeyboardInterrupt")


@task()
async def failing_task_async() -> None:
    raise ValueError("This async task failed")


@task()
def complex_exception() -> None:
    # The exception's argument is not JSON-serialisable, so it can't be stored.
    raise ValueError(ValueError("This task failed"))


@task()
def complex_return_value() -> Any:
    # Neither JSON-serialisable nor picklable.
    return lambda: True


@task()
def exit_task() -> None:
    exit(1)


@task(enqueue_on_commit=True)
def enqueue_on_commit_task() -> None:
    pass


@task(enqueue_on_commit=False)
def never_enqueue_on_commit_task() -> None:
    pass


@task()
def hang() -> None:
    """Do nothing for 5 minutes."""
    time.sleep(300)


@task()
def sleep_task(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(priority=5, queue_name="queue-1")
def queue_1_task() -> str:
    return "queue-1"
