"""The interface every task backend implements."""

from __future__ import annotations

import json
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterable
from datetime import datetime
from inspect import iscoroutinefunction
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.checks import messages
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from django_tasks.django_api import is_django_task, validate_django_task
from django_tasks.exceptions import InvalidTaskError
from django_tasks.task import MAX_PRIORITY, MIN_PRIORITY, Task, TaskResult
from django_tasks.utils import MAX_JSON_DEPTH, add_note, is_global_function, json_dumps_strict

T = TypeVar("T")


def has_databases() -> bool:
    """Return whether the project configures a real database."""
    # Django's connection handler turns an empty DATABASES into a dummy "default":
    # that is no database.  Consult both the handler and the setting (either may be
    # swapped in tests).
    configured = (connections.settings, getattr(settings, "DATABASES", None) or {})
    return all(
        any(db.get("ENGINE", "") not in ("", "django.db.backends.dummy") for db in dbs.values())
        for dbs in configured
    )


def connection_in_transaction(connection: BaseDatabaseWrapper) -> bool:
    """Return whether ``connection`` is inside a transaction, without connecting.

    That is an ``atomic()`` block, or an open connection with autocommit off.  A
    connection that is not open is not in a transaction: ``transaction.on_commit()``
    would run a callback at once there too (after connecting, which this avoids).
    """
    return connection.in_atomic_block or (
        connection.connection is not None and not connection.autocommit
    )


def in_transaction(using: str | None = None) -> bool:
    """Return whether the connection ``using`` is inside a transaction (never connects)."""
    return connection_in_transaction(connections[using or DEFAULT_DB_ALIAS])


class BaseTaskBackend(metaclass=ABCMeta):
    """Validate, enqueue and (optionally) fetch task results."""

    task_class = Task

    # Can tasks be enqueued with run_after?
    supports_defer = False
    # Can coroutine functions be enqueued?
    supports_async_task = False
    # Can results be retrieved later, from any thread or process?
    supports_get_result = False
    # Are tasks run in priority order?  (Django 6's flag; django_tasks has always
    # accepted priorities.)
    supports_priority = True
    # Can it run tasks defined with Django 6's django.tasks?
    runs_django_tasks = False

    def __init__(
        self,
        options: dict[str, Any] | str | None = None,
        params: dict[str, Any] | None = None,
        *,
        alias: str | None = None,
    ) -> None:
        # Django 6's django.tasks builds backends as (alias=, params=) when the same
        # TASKS setting is read by both: accept that form too.
        if isinstance(options, str):
            alias, options = options, None
        if options is None:
            options = {**(params or {}), "ALIAS": alias}
        self.alias: str = options["ALIAS"]
        self.queues: set[str] = set(options.get("QUEUES", ["default"]))
        self.enqueue_on_commit: bool = bool(options.get("ENQUEUE_ON_COMMIT", True))
        self.options: dict[str, Any] = dict(options.get("OPTIONS", {}))

    def _get_enqueue_on_commit_for_task(
        self, task: Task[Any, Any], using: str | None = None
    ) -> bool:
        """Return whether enqueuing ``task`` now waits for a transaction to commit.

        It does when the task asks to (its own setting wins over the backend's),
        a database is configured, and the connection ``using`` (default: the
        default database) is in a transaction: outside one, ``on_commit`` would
        run the enqueue at once, and so does the backend.  Read from the
        connection's own state, so a test that forbids database access (and so
        never opens a transaction) gets False without anything being connected.
        """
        if is_django_task(task):
            return False  # django.tasks has no enqueue_on_commit: part of the transaction
        if isinstance(task.enqueue_on_commit, bool):
            wanted = task.enqueue_on_commit
        else:
            wanted = self.enqueue_on_commit
        return wanted and has_databases() and in_transaction(using)

    def _enqueue_or_defer(
        self, task: Task[Any, Any], func: Callable[[], None], using: str | None = None
    ) -> None:
        """Run ``func`` when the transaction on ``using`` commits, if the task waits for
        a commit (see ``_get_enqueue_on_commit_for_task``); otherwise now."""
        using = using or DEFAULT_DB_ALIAS
        if self._get_enqueue_on_commit_for_task(task, using):
            transaction.on_commit(func, using=using)
        else:
            func()

    def validate_task(self, task: Task[Any, Any]) -> None:
        """Raise InvalidTaskError if this backend cannot run ``task``.

        Tasks defined with Django 6's ``django.tasks`` get Django's rules and
        ``InvalidTask`` instead.
        """
        if is_django_task(task):
            validate_django_task(self, task)
            return
        if not is_global_function(task.func):
            raise InvalidTaskError("Task function must be a globally importable function")
        if not self.supports_async_task and iscoroutinefunction(task.func):
            raise InvalidTaskError("Backend does not support async tasks")
        if (
            not isinstance(task.priority, (int, float))
            or isinstance(task.priority, bool)
            or task.priority < MIN_PRIORITY
            or task.priority > MAX_PRIORITY
            or int(task.priority) != task.priority
        ):
            raise InvalidTaskError(
                f"priority must be a whole number between {MIN_PRIORITY} and {MAX_PRIORITY}"
            )
        if not self.supports_defer and task.run_after is not None:
            raise InvalidTaskError("Backend does not support run_after")
        if task.run_after is not None:
            if not isinstance(task.run_after, datetime):
                raise TypeError(
                    f"run_after must be an aware datetime, not {type(task.run_after).__qualname__}"
                )
            if not timezone.is_aware(task.run_after):
                raise InvalidTaskError("run_after must be an aware datetime")
        if self.queues and task.queue_name not in self.queues:
            error = InvalidTaskError(f"Queue '{task.queue_name}' is not valid for backend")
            # The message is fixed (users' tests match it); the note, shown below it
            # in tracebacks, says which backend and which queues it allows.
            add_note(
                error,
                f"Backend '{self.alias}' allows queues: "
                f"{', '.join(repr(q) for q in sorted(self.queues))} "
                f"(TASKS['{self.alias}']['QUEUES']).",
            )
            raise error

    def _normalize_arguments(
        self, args: Iterable[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Return JSON-normalised arguments; refused as by ``_arguments_json``."""
        decoded = json.loads(self._arguments_json(args, kwargs))
        return decoded["args"], decoded["kwargs"]

    def _arguments_json(self, args: Iterable[Any], kwargs: dict[str, Any]) -> str:
        """Return ``{"args": ..., "kwargs": ...}`` as JSON text.

        For backends that store the text: ``json.loads`` of it gives the arguments
        as ``_normalize_arguments`` would.  Arguments a database can't store as JSON
        are refused, naming the argument: TypeError for a type JSON lacks, ValueError
        for NaN/Infinity, NUL characters, lone surrogates or too deep nesting.
        """
        arguments = {"args": list(args), "kwargs": kwargs}
        try:
            # Two levels ({"args": [...]}) above the arguments' own.
            return json_dumps_strict(arguments, name="Task arguments", max_depth=MAX_JSON_DEPTH + 2)
        except (TypeError, ValueError) as e:
            error = e
        # The slow path, only for refused arguments: find which one, to name it.
        for index, value in enumerate(arguments["args"]):
            json_dumps_strict(value, name=f"Task argument args[{index}]")
        for key, value in kwargs.items():
            json_dumps_strict(value, name=f"Task argument kwargs[{key!r}]")
        raise error

    @abstractmethod
    def enqueue(
        self, task: Task[Any, T], args: Iterable[Any], kwargs: dict[str, Any]
    ) -> TaskResult[T]:
        """Queue ``task`` to run with these arguments."""

    async def aenqueue(
        self, task: Task[Any, T], args: Iterable[Any], kwargs: dict[str, Any]
    ) -> TaskResult[T]:
        """Queue ``task`` to run with these arguments."""
        return await sync_to_async(self.enqueue, thread_sensitive=True)(
            task=task, args=args, kwargs=kwargs
        )

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """Return the result with this id."""
        raise NotImplementedError("This backend does not support retrieving or refreshing results.")

    async def aget_result(self, result_id: str) -> TaskResult[Any]:
        """Return the result with this id."""
        return await sync_to_async(self.get_result, thread_sensitive=True)(result_id=result_id)

    def check(self, **kwargs: Any) -> Iterable[messages.CheckMessage]:
        """Yield system check messages about this backend's configuration."""
        if self.enqueue_on_commit and not has_databases():
            yield messages.CheckMessage(
                messages.ERROR,
                "`ENQUEUE_ON_COMMIT` cannot be used when no databases are configured",
                hint="Set `ENQUEUE_ON_COMMIT` to False",
            )
