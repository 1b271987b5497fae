"""The SQL of the two hot writes, compiled once per database, and their parameters.

The model is looked up through the app registry, so this package never imports
``models`` (which imports it).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID
from weakref import WeakKeyDictionary

from django.apps import apps
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.sql import InsertQuery, Query
from django.utils import timezone

from django_tasks.task import ResultStatus

if TYPE_CHECKING:
    from django_tasks.backends.database.models import DBTaskResult

APP_LABEL = "django_tasks_database"

NOTIFY_CHANNEL = "django_tasks"
"""PostgreSQL channel that wakes idle workers; payload ``"<backend>\\n<queue>"``."""

UNIQUE_LIVE_KEY = "dtdb_unique_live_key"
"""The partial unique index: one waiting or running row per task path and unique key."""

# The columns an enqueue writes, in the order of the parameters, followed by those
# of ``OPTIONAL_COLUMNS`` that are set; the others stay NULL.
INSERT_COLUMNS = (
    "id",
    "status",
    "enqueued_at",
    "args_kwargs",
    "priority",
    "task_path",
    "queue_name",
    "backend_name",
    "attempts",
    "api",
    "max_attempts",
)
OPTIONAL_COLUMNS = ("run_after", "time_limit", "unique_key")

_JSON_FIELDS = frozenset({"return_value", "exception_data", "args_kwargs", "attempts"})
_UUID_FIELDS = frozenset({"id", "worker_id"})


def result_model() -> type[DBTaskResult]:
    """The DBTaskResult model, from the app registry (this package can't import it)."""
    return cast("type[DBTaskResult]", apps.get_model(APP_LABEL, "DBTaskResult"))


def adapt(name: str, value: Any, connection: BaseDatabaseWrapper) -> Any:
    """Adapt ``value`` for DBTaskResult's field ``name`` as a save would (JSON None is NULL).

    The common types are adapted directly: Django's field methods cost more than
    the UPDATE itself on SQLite.
    """
    if value is None:
        return None
    if name in _JSON_FIELDS:
        return connection.ops.adapt_json_value(value, None)
    if isinstance(value, ResultStatus):
        return value.value
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, UUID) and name in _UUID_FIELDS:
        return value if connection.features.has_native_uuid_field else value.hex
    field: Any = result_model()._meta.get_field(name)
    return field.get_db_prep_save(value, connection)


def adapt_insert(
    params: list[Any], optional: tuple[str, ...], connection: BaseDatabaseWrapper
) -> list[Any]:
    """Adapt the INSERT's id and datetimes as the fields would (SQLite: hex text, naive UTC).

    The JSON columns are JSON text already, which SQLite stores as it is.
    """
    return [
        value if type(value) in (str, int, float) else adapt(name, value, connection)
        for name, value in zip((*INSERT_COLUMNS, *optional), params, strict=True)
    ]


# --- the INSERT of a NEW row -------------------------------------------------------

_insert_sql: dict[tuple[str, bool, tuple[str, ...]], str] = {}


def insert_sql(using: str, *, notify: bool, optional: tuple[str, ...]) -> str:
    """The INSERT of a NEW row (``%s`` placeholders: ``INSERT_COLUMNS``, then ``optional``).

    ``notify`` (PostgreSQL): the same statement also sends ``NOTIFY`` when the
    task is ready now and a worker of its backend says it waits.
    """
    key = (using, notify, optional)
    sql = _insert_sql.get(key)
    if sql is None:
        sql = _insert_sql[key] = _compile_insert(using, notify=notify, optional=optional)
    return sql


_insert_unless_held_sql: dict[tuple[str, bool, tuple[str, ...]], str] = {}


def insert_unless_held_sql(using: str, *, notify: bool, optional: tuple[str, ...]) -> str:
    """The INSERT of a NEW row that inserts nothing if its unique key is held.

    ``ON CONFLICT`` names the partial unique index ``UNIQUE_LIVE_KEY`` (columns
    and predicate), so only a live row with the same task path and key is
    skipped; any other error is raised.  The statement's row count is the
    number of rows inserted (0 or 1), with ``notify`` too.
    """
    key = (using, notify, optional)
    sql = _insert_unless_held_sql.get(key)
    if sql is None:
        sql = _insert_unless_held_sql[key] = _compile_insert(
            using, notify=notify, optional=optional, unless_held=True
        )
    return sql


def _compile_insert(
    using: str, *, notify: bool, optional: tuple[str, ...], unless_held: bool = False
) -> str:
    model = result_model()
    meta = model._meta
    names = (*INSERT_COLUMNS, *optional)
    query = InsertQuery(model)
    query.insert_values(
        [meta.get_field(name) for name in names],  # type: ignore[misc]
        [model(run_after=timezone.now())],
    )
    [(sql, _params)] = query.get_compiler(using=using).as_sql()
    sql = str(sql)
    if unless_held:
        sql = f"{sql} {_on_conflict_of_live_key(using)}"
    if not notify:
        return sql
    qn = connections[using].ops.quote_name
    columns = {field.name: qn(field.column) for field in meta.concrete_fields}
    backend, queue, run_after = columns["backend_name"], columns["queue_name"], columns["run_after"]
    workers = qn(apps.get_model(APP_LABEL, "DBWorker")._meta.db_table)
    notify_call = (
        f"pg_notify('{NOTIFY_CHANNEL}', left(new.{backend} || E'\\n' || new.{queue}, 7999))"
    )
    wanted = (
        f"(new.{run_after} IS NULL OR new.{run_after} <= now())"
        f" AND EXISTS (SELECT 1 FROM {workers} w"
        f" WHERE w.{qn('waiting')} AND w.{qn('backend_name')} = new.{backend})"
    )
    returning = f"RETURNING {backend}, {queue}, {run_after}"
    if unless_held:
        # One row per row inserted, so that the row count says whether it was.
        return (
            f"WITH new AS ({sql} {returning}) "
            f"SELECT CASE WHEN {wanted} THEN {notify_call} END FROM new"
        )
    return f"WITH new AS ({sql} {returning}) SELECT {notify_call} FROM new WHERE {wanted}"


def _on_conflict_of_live_key(using: str) -> str:
    """``ON CONFLICT (<columns>) WHERE <predicate> DO NOTHING`` for ``UNIQUE_LIVE_KEY``.

    Compiled from the model's constraint as the migration compiled it: SQLite
    uses a partial index for an upsert only when the WHERE clauses match.
    """
    model = result_model()
    meta = model._meta
    [constraint] = [c for c in meta.constraints if c.name == UNIQUE_LIVE_KEY]
    connection = connections[using]
    qn = connection.ops.quote_name
    fields: list[Any] = [meta.get_field(name) for name in constraint.fields]  # type: ignore[attr-defined]
    target = ", ".join(qn(field.column) for field in fields)
    query = Query(model=model, alias_cols=False)
    where = query.build_where(constraint.condition)  # type: ignore[attr-defined]
    predicate, params = where.as_sql(query.get_compiler(connection=connection), connection)
    # The parameters are status names: quoted as SQL string literals.
    literals = tuple("'{}'".format(str(value).replace("'", "''")) for value in params)
    return f"ON CONFLICT ({target}) WHERE {predicate % literals} DO NOTHING"


# Per connection, the transaction (its list of on-commit hooks, replaced by Django
# at every commit and rollback) and the queues already notified in it.
_notified: WeakKeyDictionary[Any, tuple[list[Any], set[tuple[str, str]]]] = WeakKeyDictionary()


def first_in_transaction(connection: Any, key: tuple[str, str]) -> bool:
    """Whether no earlier enqueue of this transaction notified ``key``'s workers."""
    seen = _notified.get(connection)
    if seen is None or seen[0] is not connection.run_on_commit:
        seen = _notified[connection] = (connection.run_on_commit, set())
    if key in seen[1]:
        return False
    seen[1].add(key)
    return True


# --- the UPDATE recording an outcome ---------------------------------------------------

_update_sql: dict[tuple[str, tuple[str, ...], bool, bool], str] = {}


def outcome_sql(
    connection: BaseDatabaseWrapper,
    columns: tuple[str, ...],
    *,
    only_running: bool,
    held_by_worker: bool,
) -> str:
    """``UPDATE ... SET <columns> WHERE id = %s`` [and still RUNNING [for the worker %s]]."""
    key = (connection.alias, columns, only_running, held_by_worker)
    sql = _update_sql.get(key)
    if sql is None:
        meta = result_model()._meta
        qn = connection.ops.quote_name

        def column(name: str) -> str:
            field: Any = meta.get_field(name)
            return str(qn(field.column))

        assignments = ", ".join(f"{column(name)} = %s" for name in columns)
        sql = f"UPDATE {qn(meta.db_table)} SET {assignments} WHERE {column('id')} = %s"
        if only_running:
            sql += f" AND {column('status')} = '{ResultStatus.RUNNING}'"
        if held_by_worker:
            sql += f" AND {column('worker_id')} = %s"
        _update_sql[key] = sql
    return sql
