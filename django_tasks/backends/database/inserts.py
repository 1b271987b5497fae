"""The INSERT behind an enqueue: one statement, compiled once, sent ahead of the Python work.

An enqueue is one INSERT, and on PostgreSQL that statement also wakes idle
workers: a ``NOTIFY`` (delivered on commit) when the task is ready and a worker
of the backend says it waits (``DBWorker.waiting``).  Outside a transaction the
statement is a named prepared one (parsing and planning it would cost more than
executing it); inside one, only the first enqueue per queue carries the
``NOTIFY``, since PostgreSQL folds a transaction's notifications into one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.sql import InsertQuery
from django.utils import timezone

from django_tasks.task import ResultStatus

from .utils import db_value
from .writes import Outcome, send_write

NOTIFY_CHANNEL = "django_tasks"
"""PostgreSQL channel that wakes idle workers; payload ``"<backend>\\n<queue>"``."""

# The columns an enqueue writes, in the order of the parameters; the others stay
# NULL (or, for ``run_after``, are added when set).
_COLUMNS = (
    "id",
    "status",
    "enqueued_at",
    "args_kwargs",
    "priority",
    "task_path",
    "queue_name",
    "backend_name",
    "attempts",
)

_NEW = ResultStatus.NEW.value

# Vendors whose JSON columns take JSON text as it is: PostgreSQL casts it, SQLite
# stores it.  Others save through the ORM.
FAST_VENDORS = frozenset({"postgresql", "sqlite"})

# Compiled statements, per database, statement kind, and whether run_after is set.
_sql: dict[tuple[str, str, bool], str] = {}


def start_insert(
    connection: BaseDatabaseWrapper,
    *,
    in_transaction: bool,
    row_id: UUID,
    enqueued_at: datetime,
    args_kwargs_json: str,
    priority: int,
    task_path: str,
    queue_name: str,
    backend_name: str,
    run_after: datetime | None,
) -> Outcome:
    """Send the INSERT of a NEW row; return what waits for it (see ``send_write``).

    ``connection.vendor`` must be one of ``FAST_VENDORS``; ``in_transaction``
    says whether it is in one (atomic block or autocommit off).
    """
    using = connection.alias
    params: list[Any] = [
        row_id,
        _NEW,
        enqueued_at,
        args_kwargs_json,
        priority,
        task_path,
        queue_name,
        backend_name,
        "[]",
    ]
    if run_after is not None:
        params.append(run_after)
    if connection.vendor != "postgresql":
        sql = _statement(using, "insert", run_after)
        return send_write(connection, sql, _prep(params, connection))

    if not in_transaction:
        sql = _statement(using, "insert_notify", run_after)
        return send_write(connection, sql, params, prepare=True)
    ready = run_after is None or run_after <= timezone.now()
    if ready and _first_in_transaction(connection, (backend_name, queue_name)):
        return send_write(connection, _statement(using, "insert_notify", run_after), params)
    return send_write(connection, _statement(using, "insert", run_after), params)


def _prep(params: list[Any], connection: BaseDatabaseWrapper) -> list[Any]:
    """Adapt the id and datetimes as the fields would (SQLite: hex text, naive UTC).

    The JSON columns are JSON text already, which SQLite stores as it is.
    """
    return [
        value if type(value) in (str, int) else db_value(name, value, connection)
        for name, value in zip((*_COLUMNS, "run_after"), params, strict=False)
    ]


def _fields(*, with_run_after: bool) -> list[Any]:
    from .models import DBTaskResult

    names = (*_COLUMNS, "run_after") if with_run_after else _COLUMNS
    return [DBTaskResult._meta.get_field(name) for name in names]


# Per connection, the transaction (its list of on-commit hooks, replaced by Django
# at every commit and rollback) and the queues already notified in it.
_notified: WeakKeyDictionary[Any, tuple[list[Any], set[tuple[str, str]]]] = WeakKeyDictionary()


def _first_in_transaction(connection: Any, key: tuple[str, str]) -> bool:
    """Whether no earlier enqueue of this transaction notified ``key``'s workers."""
    seen = _notified.get(connection)
    if seen is None or seen[0] is not connection.run_on_commit:
        seen = _notified[connection] = (connection.run_on_commit, set())
    if key in seen[1]:
        return False
    seen[1].add(key)
    return True


def _statement(using: str, kind: str, run_after: datetime | None) -> str:
    key = (using, kind, run_after is not None)
    sql = _sql.get(key)
    if sql is None:
        sql = _sql[key] = _compile(using, kind, with_run_after=run_after is not None)
    return sql


def _compile(using: str, kind: str, *, with_run_after: bool) -> str:
    from .models import DBTaskResult, DBWorker

    meta = DBTaskResult._meta
    query = InsertQuery(DBTaskResult)
    query.insert_values(
        _fields(with_run_after=with_run_after), [DBTaskResult(run_after=timezone.now())]
    )
    [(sql, _params)] = query.get_compiler(using=using).as_sql()
    if kind == "insert":
        return str(sql)
    # NOTIFY from the same statement, when the task is ready now and a worker of
    # its backend waits for one.
    qn = connections[using].ops.quote_name
    columns = {field.name: qn(field.column) for field in meta.concrete_fields}
    backend, queue, run_after = columns["backend_name"], columns["queue_name"], columns["run_after"]
    return (
        f"WITH new AS ({sql} RETURNING {backend}, {queue}, {run_after}) "
        f"SELECT pg_notify('{NOTIFY_CHANNEL}', left(new.{backend} || E'\\n' || new.{queue}, 7999))"
        f" FROM new WHERE (new.{run_after} IS NULL OR new.{run_after} <= now())"
        f" AND EXISTS (SELECT 1 FROM {qn(DBWorker._meta.db_table)} w"
        f" WHERE w.{qn('waiting')} AND w.{qn('backend_name')} = new.{backend})"
    )
