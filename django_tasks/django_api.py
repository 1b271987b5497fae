"""Django 6's ``django.tasks`` on this project's backends: the edges where the two APIs differ.

Both APIs share the table, the claim, the outcome and the dashboard; what
differs is the task object a decorator builds, how a task is validated, the
result a caller gets back, the signals and the exceptions.  Everything here is
inert before Django 6.0 (``AVAILABLE`` is False and nothing of ``django.tasks``
is imported).
"""

from __future__ import annotations

from dataclasses import dataclass
from traceback import format_exception
from typing import TYPE_CHECKING, Any

import django
from django.dispatch import Signal

from django_tasks import signals as our_signals
from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.task import ResultStatus
from django_tasks.utils import exception_message, exception_to_dict, get_module_path

if TYPE_CHECKING:
    from django_tasks.backends.base import BaseTaskBackend

AVAILABLE = django.VERSION >= (6, 0)
"""Whether ``django.tasks`` exists (Django 6.0 and later)."""

OURS = "django_tasks"
"""``DBTaskResult.api`` of a row enqueued through ``django_tasks`` (the 0.5.0 API)."""

DJANGO = "django.tasks"
"""``DBTaskResult.api`` of a row enqueued through Django's ``django.tasks``."""

DJANGO_STATUS_NAMES = {
    ResultStatus.NEW: "READY",
    ResultStatus.RUNNING: "RUNNING",
    ResultStatus.FAILED: "FAILED",
    ResultStatus.COMPLETE: "SUCCESSFUL",
}
"""What ``django.tasks`` calls each status (``TaskResultStatus``)."""

if AVAILABLE:
    from django.tasks import Task as DjangoTask
    from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
    from django.tasks import signals as django_signals
    from django.tasks.backends.base import BaseTaskBackend as DjangoBaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask
    from django.tasks.exceptions import TaskResultDoesNotExist as DjangoResultDoesNotExist

    class TaskResultDoesNotExist(ResultDoesNotExist, DjangoResultDoesNotExist):  # type: ignore[misc]
        """No result has this id: caught as either API's "does not exist" error."""

else:  # pragma: no cover - Django < 6

    class TaskResultDoesNotExist(ResultDoesNotExist):  # type: ignore[no-redef]
        """No result has this id."""


def is_django_task(task: object) -> bool:
    """Whether ``task`` was defined with ``django.tasks`` (never before Django 6)."""
    return AVAILABLE and isinstance(task, DjangoTask)


def api_of(task: object) -> str:
    """The API (``OURS`` or ``DJANGO``) that defined ``task``."""
    return DJANGO if is_django_task(task) else OURS


def django_task_waits_for_commit(task: Any) -> bool:
    """Whether a ``django.tasks`` task asked to be enqueued on commit (see
    ``DjangoTaskWithOnCommit``); by default its enqueue is part of the transaction."""
    return getattr(task, "enqueue_on_commit", None) is True


def validate_django_task(backend: BaseTaskBackend, task: Any) -> None:
    """Apply Django's own rules (and messages) to a ``django.tasks`` task.

    Backends that can't run such tasks refuse them here, at definition time.
    """
    if not backend.runs_django_tasks:
        raise InvalidTask(
            f"{type(backend).__qualname__} runs tasks of django_tasks only; for tasks "
            "defined with django.tasks use Django's own backend "
            "('django.tasks.backends.immediate.ImmediateBackend' or "
            "'django.tasks.backends.dummy.DummyBackend'), or "
            "'django_tasks.backends.database.DatabaseBackend'."
        )
    DjangoBaseTaskBackend.validate_task(backend, task)


def exception_data(exc: BaseException) -> dict[str, Any]:
    """What a ``django.tasks`` row stores of a failure: ``exception_to_dict(exc)``, or,
    if the exception's arguments aren't JSON, the rest (Django's ``TaskError`` keeps
    only the class path and the traceback) with the message as its one argument."""
    try:
        return dict(exception_to_dict(exc))
    except Exception:
        pass
    try:
        args = [str(exc)]
    except Exception:
        args = []
    return {
        "exc_type": get_module_path(type(exc)),
        "exc_args": args,
        "exc_traceback": "".join(format_exception(type(exc), exc, exc.__traceback__)),
    }


def without_nul(data: dict[str, Any]) -> dict[str, Any]:
    """``exception_data(...)`` with NUL bytes (which PostgreSQL refuses) written as ``\\x00``."""
    return {
        "exc_type": data["exc_type"].replace("\x00", "\\x00"),
        "exc_args": [exception_message(data["exc_args"]).replace("\x00", "\\x00")],
        "exc_traceback": data["exc_traceback"].replace("\x00", "\\x00"),
    }


def missing_result(result_id: str) -> ResultDoesNotExist:
    """The error for an unknown result id, which either API's callers can catch."""
    return TaskResultDoesNotExist(result_id)


@dataclass(frozen=True, slots=True)
class Signals:
    """The signals one API sends."""

    enqueued: Signal
    started: Signal
    finished: Signal


def signals_for(api: str) -> Signals:
    """The signals of ``api`` (``OURS`` or ``DJANGO``)."""
    if api == DJANGO:
        return _DJANGO_SIGNALS
    return _OUR_SIGNALS


_OUR_SIGNALS = Signals(
    enqueued=our_signals.task_enqueued,
    started=our_signals.task_started,
    finished=our_signals.task_finished,
)
if AVAILABLE:

    def _log_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
        # Our backends' django.tasks runs are logged like the others ("state=SUCCESSFUL"),
        # so db_worker's verbosity shows how each task ended, whichever API defined it.
        if getattr(sender, "runs_django_tasks", False):
            our_signals.log_task_finished(sender, task_result, **kwargs)

    django_signals.task_finished.connect(_log_finished, dispatch_uid="django_tasks.log_finished")
    _DJANGO_SIGNALS = Signals(
        enqueued=django_signals.task_enqueued,
        started=django_signals.task_started,
        finished=django_signals.task_finished,
    )


if AVAILABLE:
    _DJANGO_STATUSES = {
        status: TaskResultStatus[name] for status, name in DJANGO_STATUS_NAMES.items()
    }


def django_result(
    *,
    task: Any,
    id: str,  # noqa: A002 - Django's field name
    status: ResultStatus,
    enqueued_at: Any,
    started_at: Any,
    last_attempted_at: Any,
    finished_at: Any,
    args: list[Any],
    kwargs: dict[str, Any],
    backend: str,
    errors: list[tuple[str, str]],
    worker_ids: list[str],
    return_value: Any,
) -> Any:
    """A ``django.tasks.TaskResult``; ``errors`` as (exception class path, traceback).

    ``args`` and ``kwargs`` come from a row, JSON already: the fields are set
    directly, without ``__post_init__``'s JSON round trip of them (twice per task
    in the worker).
    """
    result = TaskResult.__new__(TaskResult)
    fields = {
        "task": task,
        "id": id,
        "status": _DJANGO_STATUSES[status],
        "enqueued_at": enqueued_at,
        "started_at": started_at,
        "finished_at": finished_at,
        "last_attempted_at": last_attempted_at,
        "args": args,
        "kwargs": kwargs,
        "backend": backend,
        "errors": [TaskError(exception_class_path=path, traceback=tb) for path, tb in errors],
        "worker_ids": worker_ids,
        "_return_value": return_value,
    }
    for name, value in fields.items():
        object.__setattr__(result, name, value)
    return result


def finish_result(
    result: Any,
    *,
    status: ResultStatus,
    finished_at: Any,
    return_value: Any,
    exception_data: Any,
) -> None:
    """Update a running ``django.tasks.TaskResult`` with its recorded outcome."""
    object.__setattr__(result, "status", _DJANGO_STATUSES[status])
    object.__setattr__(result, "finished_at", finished_at)
    object.__setattr__(result, "_return_value", return_value)
    failed = status == ResultStatus.FAILED and isinstance(exception_data, dict)
    if failed and exception_data.get("exc_type"):
        error = TaskError(
            exception_class_path=exception_data["exc_type"],
            traceback=exception_data.get("exc_traceback") or "",
        )
        result.errors.append(error)


def call(task: Any, task_result: Any, context_result: Any = None) -> Any:
    """Run ``task`` with the result's arguments.

    A ``django.tasks`` task that takes a context gets ``TaskContext`` first, around
    ``context_result`` (Django's TaskResult of the row; default ``task_result``).
    """
    if is_django_task(task) and task.takes_context:
        context = TaskContext(task_result=context_result or task_result)
        return task.call(context, *task_result.args, **task_result.kwargs)
    return task.call(*task_result.args, **task_result.kwargs)


def django_backend_checks(alias: str) -> Any:
    """The check messages of Django's own backend ``alias`` (a project using both)."""
    return task_backends[alias].check()


def replace_django_check() -> None:
    """Unregister ``django.tasks``' check: ours checks every backend in ``TASKS`` (Django's
    own too), and both read the same setting, so each message would come twice."""
    from django.core.checks import registry
    from django.tasks.checks import check_tasks

    registry.registry.registered_checks.discard(check_tasks)
