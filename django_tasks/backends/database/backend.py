"""The database backend: tasks are rows, run by the db_worker command."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID, uuid4

import django
from django.apps import apps
from django.core.checks import messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from django_tasks.backends.base import (
    BaseTaskBackend,
    connection_in_transaction,
    has_databases,
    in_transaction,
)
from django_tasks.django_api import (
    api_of,
    django_task_waits_for_commit,
    is_django_task,
    missing_result,
    signals_for,
)
from django_tasks.task import LIVE_STATUSES, Task

from .options import KNOWN_OPTIONS, DatabaseOptions
from .results import TaskResult
from .utils import listened
from .writes import FAST_VENDORS, NewRow, insert_task, insert_task_unless_held

if TYPE_CHECKING:
    from .models import DBTaskResult

__all__ = ["DatabaseBackend", "TaskResult"]

T = TypeVar("T")

RowSettings = tuple[int, float | None, str | None]
"""``(max_attempts, time_limit, unique_key)`` of a row (``DatabaseOptions.row_settings``)."""

# A keyed enqueue that found the key held, then no live row holding it (it finished
# in between), tries again: this many times in all.
UNIQUE_ENQUEUE_ROUNDS = 5

_LIVE = sorted(LIVE_STATUSES)


def _model() -> type[DBTaskResult]:
    # Backends are built while settings load, before the app registry is ready:
    # the model is imported when first used (then kept: enqueue asks three times).
    global _MODEL
    if _MODEL is None:
        from .models import DBTaskResult

        _MODEL = DBTaskResult
    return _MODEL


_MODEL: type[DBTaskResult] | None = None


class DatabaseBackend(BaseTaskBackend):
    """Store tasks as DBTaskResult rows for db_worker to run."""

    # Tasks may wait for run_after.
    supports_defer = True
    # Coroutine functions run through async_to_sync in the worker.
    supports_async_task = True
    # Results are rows: any process can read them.
    supports_get_result = True
    # Tasks defined with Django 6's django.tasks run here too.
    runs_django_tasks = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Parsed once; bad values are reported by check(), not raised here.
        self.db_options = DatabaseOptions.parse(self.options, backend_name=self.alias)

    def enqueue(
        self, task: Task[Any, T], args: Iterable[Any], kwargs: dict[str, Any]
    ) -> TaskResult[T]:
        """Insert a NEW row for ``task`` (now, or when the transaction commits).

        A task with a unique key whose key a waiting or running row of the task
        holds gets that row's result instead (see ``_enqueue_unique``).
        """
        self.validate_task(task)
        args_kwargs_json = self._arguments_json(args, kwargs)
        using = router.db_for_write(_model())
        connection = connections[using]
        settings = self.db_options.row_settings(task)
        if settings[2] is not None:
            return self._enqueue_unique(task, args_kwargs_json, connection, settings)
        if self._get_enqueue_on_commit_for_task(task, using):
            return self._enqueue_on_commit(task, args_kwargs_json, using, settings)
        in_transaction = connection_in_transaction(connection)
        task_result = self._insert(
            task, args_kwargs_json, connection, in_transaction=in_transaction, settings=settings
        )
        signals_for(api_of(task)).enqueued.send(type(self), task_result=task_result)
        return task_result

    def _get_enqueue_on_commit_for_task(
        self, task: Task[Any, Any], using: str | None = None
    ) -> bool:
        """As the base class; a ``django.tasks`` task waits for a commit only when it
        asked to with ``@task(enqueue_on_commit=True)`` (Django 6.1)."""
        if is_django_task(task):
            return django_task_waits_for_commit(task) and has_databases() and in_transaction(using)
        return super()._get_enqueue_on_commit_for_task(task, using)

    def _enqueue_on_commit(
        self, task: Task[Any, T], args_kwargs_json: str, using: str, settings: RowSettings
    ) -> TaskResult[T]:
        """Insert the row when the transaction on ``using`` commits."""
        # enqueued_at is stamped when written.
        pending = self._row(task, args_kwargs_json, enqueued_at=None, settings=settings)

        def save_result() -> None:
            connection = connections[using]
            task_result = self._insert(
                task,
                args_kwargs_json,
                connection,
                in_transaction=connection_in_transaction(connection),
                row_id=pending.id,
                settings=settings,
            )
            pending.enqueued_at = cast(datetime, task_result.enqueued_at)  # what enqueue() returned
            pending._state.adding, pending._state.db = False, using
            signals_for(api_of(task)).enqueued.send(type(self), task_result=task_result)

        transaction.on_commit(save_result, using=using)
        return pending.task_result_for(task)

    def _row(
        self,
        task: Task[Any, T],
        args_kwargs_json: str,
        *,
        enqueued_at: datetime | None,
        row_id: UUID | None = None,
        settings: RowSettings | None = None,
    ) -> DBTaskResult:
        max_attempts, time_limit, unique_key = settings or self.db_options.row_settings(task)
        return _model().new_row(
            id=row_id,
            enqueued_at=enqueued_at,
            args_kwargs=json.loads(args_kwargs_json),
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            run_after=task.run_after,
            backend_name=self.alias,
            api=api_of(task),
            max_attempts=max_attempts,
            time_limit=time_limit,
            unique_key=unique_key,
        )

    def _insert(
        self,
        task: Task[Any, T],
        args_kwargs_json: str,
        connection: BaseDatabaseWrapper,
        *,
        in_transaction: bool,
        row_id: UUID | None = None,
        settings: RowSettings | None = None,
    ) -> TaskResult[T]:
        """Write the NEW row now; return its result.

        On PostgreSQL and SQLite the INSERT goes out first and the result is built
        while the database commits it; elsewhere, or when someone listens to the
        model's save signals, the ORM saves the row.
        """
        row_id, enqueued_at = row_id or uuid4(), timezone.now()
        settings = settings or self.db_options.row_settings(task)

        def result() -> TaskResult[T]:
            db_result = self._row(
                task, args_kwargs_json, enqueued_at=enqueued_at, row_id=row_id, settings=settings
            )
            if not fast:
                db_result.save(force_insert=True, using=using)
            db_result._state.adding, db_result._state.db = False, using
            return db_result.task_result_for(task)

        using = connection.alias
        model = _model()
        fast = connection.vendor in FAST_VENDORS and not listened(model, pre_save, post_save)
        if not fast:
            return result()
        pending = insert_task(
            connection,
            self._new_row(task, args_kwargs_json, row_id, enqueued_at, settings),
            in_transaction=in_transaction,
        )
        try:
            return result()  # while the database commits the row
        finally:
            pending()

    def _new_row(
        self,
        task: Task[Any, Any],
        args_kwargs_json: str,
        row_id: UUID,
        enqueued_at: datetime,
        settings: RowSettings,
    ) -> NewRow:
        """The values of ``task``'s INSERT, for the fast path's statement."""
        max_attempts, time_limit, unique_key = settings
        return NewRow(
            row_id=row_id,
            enqueued_at=enqueued_at,
            args_kwargs_json=args_kwargs_json,
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            backend_name=self.alias,
            run_after=task.run_after,
            api=api_of(task),
            max_attempts=max_attempts,
            time_limit=time_limit,
            unique_key=unique_key,
        )

    def _enqueue_unique(
        self,
        task: Task[Any, T],
        args_kwargs_json: str,
        connection: BaseDatabaseWrapper,
        settings: RowSettings,
    ) -> TaskResult[T]:
        """Insert a NEW row with a unique key, or return the live row that holds the key.

        The partial unique index ``dtdb_unique_live_key`` decides (one waiting or
        running row per task path and key), so concurrent enqueues store one row.
        ``task_enqueued`` is sent only when a row was stored.  In a transaction
        the row is written at once, also for a task that waits for the commit:
        only then can the index say which result is the task's.  Its signal still
        waits for the commit, and a rollback removes the row.
        """
        using = connection.alias
        waits_for_commit = self._get_enqueue_on_commit_for_task(task, using)
        task_result, stored = self._insert_unique(task, args_kwargs_json, connection, settings)
        if stored:
            enqueued = signals_for(api_of(task)).enqueued

            def send() -> None:
                enqueued.send(type(self), task_result=task_result)

            if waits_for_commit:
                transaction.on_commit(send, using=using)
            else:
                send()
        return task_result

    def _insert_unique(
        self,
        task: Task[Any, T],
        args_kwargs_json: str,
        connection: BaseDatabaseWrapper,
        settings: RowSettings,
    ) -> tuple[TaskResult[T], bool]:
        """Return the new row's result and True, or the live key holder's and False."""
        using = connection.alias
        model = _model()
        unique_key = settings[2]
        fast = connection.vendor in FAST_VENDORS and not listened(model, pre_save, post_save)
        error: IntegrityError | None = None
        for _ in range(UNIQUE_ENQUEUE_ROUNDS):
            enqueued_at = timezone.now()
            row = self._row(
                task, args_kwargs_json, enqueued_at=enqueued_at, row_id=uuid4(), settings=settings
            )
            if fast:
                stored = insert_task_unless_held(
                    connection,
                    self._new_row(task, args_kwargs_json, row.id, enqueued_at, settings),
                    in_transaction=connection_in_transaction(connection),
                )
            else:
                try:
                    # A savepoint in a transaction: a held key must not break it.
                    with transaction.atomic(using=using):
                        row.save(force_insert=True, using=using)
                    stored = True
                except IntegrityError as e:  # the key, or another constraint
                    stored, error = False, e
            if stored:
                row._state.adding, row._state.db = False, using
                return row.task_result_for(task), True
            holder = (
                model.objects.using(using)
                .filter(task_path=task.module_path, unique_key=unique_key, status__in=_LIVE)
                .first()
            )
            if holder is not None:
                return self._holder_result(task, holder), False
        if error is not None:
            raise error  # not the unique key: no live row holds it
        raise IntegrityError(
            f"Could not enqueue {task.module_path} with unique key {unique_key!r}: "
            f"the key was held each of {UNIQUE_ENQUEUE_ROUNDS} times, by a row that "
            "had finished when read"
        )

    def _holder_result(self, task: Task[Any, T], holder: DBTaskResult) -> TaskResult[T]:
        """The result of the live row holding ``task``'s key, its task as the row says."""
        if (task.priority, task.queue_name, task.run_after) != (
            holder.priority,
            holder.queue_name,
            holder.run_after,
        ):
            task = dataclasses.replace(
                task,
                priority=holder.priority,
                queue_name=holder.queue_name,
                run_after=holder.run_after,
            )
        return holder.task_result_for(task)

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """Return the result with this id, read from its row in one query."""
        model = _model()
        try:
            return model.objects.get(id=result_id).task_result
        except (model.DoesNotExist, ValidationError):
            raise missing_result(result_id) from None

    async def aget_result(self, result_id: str) -> TaskResult[Any]:
        """Return the result with this id, read from its row in one query."""
        model = _model()
        try:
            return (await model.objects.aget(id=result_id)).task_result
        except (model.DoesNotExist, ValidationError):
            raise missing_result(result_id) from None

    def check(self, **kwargs: Any) -> Iterable[messages.CheckMessage]:
        """Yield configuration errors: app not installed, SQLite not EXCLUSIVE."""
        yield from super().check(**kwargs)

        for message in self.db_options.errors:
            yield messages.Error(message, id="django_tasks.database.E001")
        if self.db_options.unknown_keys:
            yield messages.Warning(
                f"Unknown OPTIONS of backend {self.alias!r}: "
                f"{', '.join(map(repr, self.db_options.unknown_keys))}",
                hint=f"The OPTIONS a DatabaseBackend reads: {', '.join(KNOWN_OPTIONS)}",
                id="django_tasks.database.W001",
            )

        backend_name = self.__class__.__name__

        if not apps.is_installed("django_tasks.backends.database"):
            yield messages.CheckMessage(
                messages.ERROR,
                f"{backend_name} configured as django_tasks backend, but database app not installed",
                "Insert 'django_tasks.backends.database' in INSTALLED_APPS",
            )
            return

        db_alias = router.db_for_read(_model())
        connection = connections[db_alias]
        if django.VERSION >= (5, 1) and connection.vendor == "sqlite":
            connection.get_connection_params()
            if connection.transaction_mode != "EXCLUSIVE":  # type: ignore[attr-defined]
                yield messages.CheckMessage(
                    messages.ERROR,
                    f"{backend_name} is using SQLite non-exclusive transactions",
                    f"Set settings.DATABASES[{db_alias!r}]['OPTIONS']['transaction_mode'] to 'EXCLUSIVE'",
                )
