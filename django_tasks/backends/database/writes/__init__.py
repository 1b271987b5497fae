"""The two writes on the hot path, sent without the ORM: a task's INSERT and its outcome.

- :func:`insert_task` sends the INSERT of a NEW row (``enqueue()``);
- :func:`insert_task_unless_held` inserts a NEW row with a unique key, unless a
  waiting or running row of the task holds the key (``enqueue()`` of such tasks);
- :func:`update_outcome` writes a finished run's columns (the worker, and
  ``DBTaskResult.set_complete()`` / ``set_failed()``).

On PostgreSQL with psycopg 3 both go out through libpq as prepared statements
(``sender``): ``benchmarks/write_paths.py`` measures that against Django's
cursor with ``server_side_binding``.  SQLite statements go to sqlite3 directly;
other databases, and any connection whose queries are watched, use Django's
cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from django_tasks.task import ResultStatus

from . import sender, statements
from .sender import Pending
from .statements import NOTIFY_CHANNEL

# Vendors whose JSON columns take JSON text as it is: PostgreSQL casts it, SQLite
# stores it.  Others save through the ORM.
FAST_VENDORS = frozenset({"postgresql", "sqlite"})

_NEW = ResultStatus.NEW.value


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs enqueue 2 us
class NewRow:
    """The values of a NEW row's INSERT (the other columns keep their defaults)."""

    row_id: UUID
    enqueued_at: datetime
    args_kwargs_json: str
    priority: int
    task_path: str
    queue_name: str
    backend_name: str
    run_after: datetime | None
    api: str
    max_attempts: int = 1
    time_limit: float | None = None
    unique_key: str | None = None

    def params(self) -> tuple[list[Any], tuple[str, ...]]:
        """The INSERT's parameters, and the ``OPTIONAL_COLUMNS`` among them."""
        params: list[Any] = [
            self.row_id,
            _NEW,
            self.enqueued_at,
            self.args_kwargs_json,
            self.priority,
            self.task_path,
            self.queue_name,
            self.backend_name,
            "[]",
            self.api,
            self.max_attempts,
        ]
        if self.run_after is None and self.time_limit is None and self.unique_key is None:
            return params, ()
        values = {
            "run_after": self.run_after,
            "time_limit": self.time_limit,
            "unique_key": self.unique_key,
        }
        optional = tuple(name for name, value in values.items() if value is not None)
        params.extend(values[name] for name in optional)
        return params, optional


def insert_task(connection: BaseDatabaseWrapper, row: NewRow, *, in_transaction: bool) -> Pending:
    """Send the INSERT of a NEW row; return what waits for it (see ``sender.send``).

    ``connection.vendor`` must be one of ``FAST_VENDORS``; ``in_transaction``
    says whether it is in one (atomic block or autocommit off).  On PostgreSQL
    the statement also wakes idle workers: a ``NOTIFY`` (delivered on commit)
    when the task is ready and a worker of the backend waits.  Outside a
    transaction it is a named prepared statement; inside one, only the first
    enqueue per queue carries the ``NOTIFY``, since PostgreSQL folds a
    transaction's notifications into one.
    """
    using = connection.alias
    params, optional = row.params()
    if connection.vendor != "postgresql":
        sql = statements.insert_sql(using, notify=False, optional=optional)
        return sender.send(connection, sql, statements.adapt_insert(params, optional, connection))
    if not in_transaction:
        sql = statements.insert_sql(using, notify=True, optional=optional)
        return sender.send(connection, sql, params, prepare=True)
    ready = row.run_after is None or row.run_after <= timezone.now()
    key = (row.backend_name, row.queue_name)
    notify = ready and statements.first_in_transaction(connection, key)
    sql = statements.insert_sql(using, notify=notify, optional=optional)
    return sender.send(connection, sql, params)


def insert_task_unless_held(
    connection: BaseDatabaseWrapper, row: NewRow, *, in_transaction: bool
) -> bool:
    """Insert a NEW row with a ``unique_key``; return False if a live row holds the key.

    One ``INSERT ... ON CONFLICT DO NOTHING`` on the partial unique index: the
    database decides, also between concurrent enqueues (on PostgreSQL, the
    INSERT waits for a transaction that inserted the same key to end).  It never
    raises for a held key, so a caller's transaction goes on.  Waits for the
    outcome (the caller needs it).  On PostgreSQL it wakes idle workers as
    :func:`insert_task` does; in a transaction every such INSERT may notify,
    since a skipped one notifies no one.
    """
    params, optional = row.params()
    using = connection.alias
    if connection.vendor != "postgresql":
        sql = statements.insert_unless_held_sql(using, notify=False, optional=optional)
        params = statements.adapt_insert(params, optional, connection)
        return sender.execute(connection, sql, params) > 0
    sql = statements.insert_unless_held_sql(using, notify=True, optional=optional)
    return sender.send(connection, sql, params, prepare=not in_transaction)() > 0


def update_outcome(
    connection: BaseDatabaseWrapper,
    row_id: UUID | str,
    columns: dict[str, Any],
    *,
    only_running: bool,
    worker_id: UUID | str | None = None,
) -> int:
    """Write ``columns`` (field name: value) to the row; return the number of rows changed.

    ``only_running``: only while the row is RUNNING (and, with ``worker_id``,
    held by that worker).
    """
    sql = statements.outcome_sql(
        connection,
        tuple(columns),
        only_running=only_running,
        held_by_worker=worker_id is not None,
    )
    adapt = statements.adapt
    params = [adapt(name, value, connection) for name, value in columns.items()]
    params.append(adapt("id", row_id, connection))
    if worker_id is not None:
        params.append(adapt("worker_id", worker_id, connection))
    return sender.execute(connection, sql, params)


__all__ = [
    "NewRow",
    "FAST_VENDORS",
    "NOTIFY_CHANNEL",
    "Pending",
    "insert_task",
    "insert_task_unless_held",
    "update_outcome",
]
