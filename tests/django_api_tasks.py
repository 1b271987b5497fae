# mypy: disable-error-code="untyped-decorator"
"""Tasks written with Django 6's ``django.tasks`` (tests.core.test_django_api).

Import only where the default task backend is our DatabaseBackend: the
ImmediateBackend of tests.settings refuses ``django.tasks`` tasks at definition
time.  Worker subprocesses (tests.worker_settings) import it as any task module.

Receivers of Django's signals, connected here, append one JSON line per signal
to the file named by DJANGO_TASKS_TEST_SIGNALS_FILE (set for worker
subprocesses by the tests), the way tests.worker_helpers records runs.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.tasks import signals as django_signals
from django.tasks import task

from django_tasks import signals as our_signals
from tests.worker_helpers import _append

SIGNALS_FILE_ENV = "DJANGO_TASKS_TEST_SIGNALS_FILE"


def _record_signal(api: str, name: str, sender: Any, task_result: Any) -> None:
    path = os.environ.get(SIGNALS_FILE_ENV)
    if not path:
        return
    line = {
        "api": api,
        "signal": name,
        "sender": f"{sender.__module__}.{sender.__qualname__}",
        "result_class": f"{type(task_result).__module__}.{type(task_result).__qualname__}",
        "status": str(task_result.status),
        "id": task_result.id,
        "task": task_result.task.module_path
        if hasattr(task_result.task, "module_path")
        else task_result.task.func.__qualname__,
        "attempts": getattr(task_result, "attempts", None),
    }
    _append(path, json.dumps(line, separators=(",", ":")))


def _receiver(api: str, name: str) -> Any:
    def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
        _record_signal(api, name, sender, task_result)

    return receive


_RECEIVERS = {
    ("django.tasks", "enqueued"): _receiver("django.tasks", "enqueued"),
    ("django.tasks", "started"): _receiver("django.tasks", "started"),
    ("django.tasks", "finished"): _receiver("django.tasks", "finished"),
    ("django_tasks", "enqueued"): _receiver("django_tasks", "enqueued"),
    ("django_tasks", "started"): _receiver("django_tasks", "started"),
    ("django_tasks", "finished"): _receiver("django_tasks", "finished"),
}
for (_api, _name), _func in _RECEIVERS.items():
    _signals = django_signals if _api == "django.tasks" else our_signals
    getattr(_signals, f"task_{_name}").connect(_func, weak=False)


@task(backend="default")
def add(a: int, b: int) -> int:
    return a + b


@task(backend="default")
async def add_async(a: int, b: int) -> int:
    return a + b


@task(backend="default", priority=5, queue_name="default")
def record(path: str, token: str) -> str:
    """Append ``token`` to ``path`` (one line per run)."""
    _append(path, token)
    return token


@task(backend="default", takes_context=True)
def with_context(context: Any, path: str, token: str) -> dict[str, Any]:
    """Record the attempt number; return what the context said."""
    _append(path, f"{token}:{context.attempt}")
    return {
        "attempt": context.attempt,
        "id": context.task_result.id,
        "args": context.task_result.args,
        "status": str(context.task_result.status),
    }


@task(backend="default", takes_context=True)
async def with_context_async(context: Any, token: str) -> list[Any]:
    return [token, context.attempt, context.task_result.id]


@task(backend="default")
def fail(message: str) -> None:
    raise ValueError(message)


@task(backend="default")
def fail_once(path: str) -> str:
    """Fail the first time (no file at ``path`` yet), succeed the next."""
    if not os.path.exists(path):
        _append(path, "failed")
        raise ValueError("first run fails")
    _append(path, "succeeded")
    return "second run succeeds"


@task(backend="default")
def fail_with_local_exception(message: str) -> None:
    """Raise an exception class that can't be imported back (defined in here)."""

    class LocalError(Exception):
        pass

    raise LocalError(message)


@task(backend="default")
def fail_with_unstorable_arguments() -> None:
    """Raise an exception whose argument isn't JSON (so ``exc_args`` can't be stored)."""
    raise ValueError(ValueError("not JSON"))


@task(backend="default")
def fail_with_nul() -> None:
    """Raise an exception whose text has a NUL byte (which PostgreSQL's text refuses)."""
    raise ValueError("before\x00after")
