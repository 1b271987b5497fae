"""The database backend: tasks are rows, run by the db_worker command."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps
from django.core.checks import messages
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import InsertQuery

from django_tasks.backends.base import BaseTaskBackend
from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.signals import task_enqueued
from django_tasks.task import Task
from django_tasks.task import TaskResult as BaseTaskResult

if TYPE_CHECKING:
    from .models import DBTaskResult

T = TypeVar("T")


@dataclass(frozen=True)
class TaskResult(BaseTaskResult[T]):
    """A TaskResult that knows its database row."""

    db_result: DBTaskResult


# INSERT statements compiled once per connection and set of columns: compiling
# one through the ORM costs more CPU than the database spends committing the row.
_insert_sql: dict[tuple[str, str, tuple[str, ...]], str] = {}


def insert_row(db_result: DBTaskResult, using: str) -> None:
    """INSERT a new row in one statement, reusing the compiled SQL."""
    from .services import execute_write

    model = type(db_result)
    if pre_save.has_listeners(model) or post_save.has_listeners(model):
        # Someone listens to the model's signals: take the ORM's full path.
        db_result.save(force_insert=True, using=using)
        return

    connection = connections[using]
    for field in model._meta.concrete_fields:
        field.pre_save(db_result, add=True)  # auto_now_add and friends
    # Columns left NULL are left out: fewer parameters to adapt and send.
    fields = [
        field
        for field in model._meta.concrete_fields
        if getattr(db_result, field.attname) is not None
    ]
    key = (using, connection.vendor, tuple(field.attname for field in fields))
    sql = _insert_sql.get(key)
    if sql is None:
        query = InsertQuery(model)
        query.insert_values(fields, [db_result])
        [(sql, _params)] = query.get_compiler(using=using).as_sql()
        _insert_sql[key] = sql
    params = [
        field.get_db_prep_save(getattr(db_result, field.attname), connection) for field in fields
    ]
    execute_write(connection, sql, params)
    db_result._state.adding = False
    db_result._state.db = using


class DatabaseBackend(BaseTaskBackend):
    """Store tasks as DBTaskResult rows for db_worker to run."""

    # Tasks may wait for run_after.
    supports_defer = True
    # Coroutine functions run through async_to_sync in the worker.
    supports_async_task = True
    # Results are rows: any process can read them.
    supports_get_result = True

    def _task_to_db_task(
        self, task: Task[Any, T], args: Iterable[Any], kwargs: dict[str, Any]
    ) -> DBTaskResult:
        from .models import DBTaskResult

        norm_args, norm_kwargs = self._normalize_arguments(args, kwargs)
        return DBTaskResult(
            args_kwargs={"args": norm_args, "kwargs": norm_kwargs},
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            run_after=task.run_after,
            backend_name=self.alias,
        )

    def enqueue(
        self, task: Task[Any, T], args: Iterable[Any], kwargs: dict[str, Any]
    ) -> TaskResult[T]:
        """Insert a NEW row for ``task`` (now, or when the transaction commits)."""
        from .models import DBTaskResult

        self.validate_task(task)
        db_result = self._task_to_db_task(task, args, kwargs)
        using = router.db_for_write(DBTaskResult)

        def save_result() -> None:
            insert_row(db_result, using)
            task_enqueued.send(type(self), task_result=db_result.task_result_for(task))

        self._enqueue_or_defer(task, save_result, using=using)
        return db_result.task_result_for(task)

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """Return the result with this id, read from its row in one query."""
        from .models import DBTaskResult

        try:
            return DBTaskResult.objects.get(id=result_id).task_result
        except (DBTaskResult.DoesNotExist, ValidationError):
            raise ResultDoesNotExist(result_id) from None

    async def aget_result(self, result_id: str) -> TaskResult[Any]:
        """Return the result with this id, read from its row in one query."""
        from .models import DBTaskResult

        try:
            return (await DBTaskResult.objects.aget(id=result_id)).task_result
        except (DBTaskResult.DoesNotExist, ValidationError):
            raise ResultDoesNotExist(result_id) from None

    def check(self, **kwargs: Any) -> Iterable[messages.CheckMessage]:
        """Yield configuration errors: app not installed, SQLite not EXCLUSIVE."""
        yield from super().check(**kwargs)

        backend_name = self.__class__.__name__

        if not apps.is_installed("django_tasks.backends.database"):
            yield messages.CheckMessage(
                messages.ERROR,
                f"{backend_name} configured as django_tasks backend, but database app not installed",
                "Insert 'django_tasks.backends.database' in INSTALLED_APPS",
            )
            return

        import django
        from django.db import connections

        from .models import DBTaskResult

        db_alias = router.db_for_read(DBTaskResult)
        connection = connections[db_alias]
        if django.VERSION >= (5, 1) and connection.vendor == "sqlite":
            connection.get_connection_params()
            if connection.transaction_mode != "EXCLUSIVE":  # type: ignore[attr-defined]
                yield messages.CheckMessage(
                    messages.ERROR,
                    f"{backend_name} is using SQLite non-exclusive transactions",
                    f"Set settings.DATABASES[{db_alias!r}]['OPTIONS']['transaction_mode'] to 'EXCLUSIVE'",
                )
