"""Claiming: handing ready tasks to a worker (NEW -> RUNNING), and giving unstarted ones back.

The worker claims a batch with :func:`claim_tasks`; ``DBTaskResult.claim()``
claims one row it already holds with :func:`claim_row`.  Both set the same
columns through :class:`ClaimSQL`: one hand-written statement per claim
(PostgreSQL, SQLite with RETURNING), the ORM's locking SELECT elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.apps import apps
from django.db import DatabaseError, connections, router
from django.utils import timezone

from django_tasks.task import ResultStatus

from .utils import exclusive_transaction
from .writes import sender
from .writes.statements import APP_LABEL, result_model

if TYPE_CHECKING:
    from .models import DBTaskResult


def claim_tasks(
    *,
    backend_name: str,
    queue_names: Sequence[str] | None,
    worker_id: UUID | str,
    limit: int = 1,
) -> list[DBTaskResult]:
    """Claim up to ``limit`` ready tasks for ``worker_id`` and return them in model order.

    Claimed rows are RUNNING and carry the worker's id, so no other worker takes
    them.  ``queue_names`` None means every queue; paused queues (``DBQueue``) are
    left out by the statement itself, so a pause holds from its commit on, at no
    extra round trip.  One statement, so one short
    transaction: on PostgreSQL ``FOR UPDATE SKIP LOCKED`` steps over rows other
    workers are claiming; on SQLite the UPDATE holds the write lock only while it
    runs, and a read-only probe first keeps idle polls from taking it at all.
    """
    model = result_model()
    if limit < 1 or (queue_names is not None and not queue_names):
        return []
    using = router.db_for_write(model)
    connection = connections[using]
    sql = ClaimSQL(connection, backend_name=backend_name, queue_names=queue_names)
    now = timezone.now()

    if connection.vendor == "postgresql":
        statement, params = sql.claim_postgresql(now=now, limit=limit, worker_id=worker_id)
    elif connection.vendor == "sqlite" and connection.features.can_return_columns_from_insert:
        with connection.cursor() as cursor:
            cursor.execute(*sql.probe(now=now))
            if cursor.fetchone() is None:
                return []
        statement, params = sql.claim_sqlite(now=now, limit=limit, worker_id=worker_id)
    else:
        return _claim_tasks_portable(
            using,
            backend_name=backend_name,
            queue_names=queue_names,
            worker_id=worker_id,
            limit=limit,
        )
    # RETURNING gives rows in no particular order.
    rows = list(model.objects.db_manager(using).raw(statement, params))
    return sorted(rows, key=_model_order)


def claim_row(row: DBTaskResult, *, worker_id: UUID | str | None = None) -> None:
    """Mark ``row`` RUNNING for ``worker_id``, whatever its status: one UPDATE.

    For rows already chosen and locked (``get_locked()``); raise DatabaseError
    if the row is gone.
    """
    connection = connections[router.db_for_write(type(row), instance=row)]
    now = timezone.now()
    statement, params = ClaimSQL(connection).claim_ids([row.pk], now=now, worker_id=worker_id)
    if not sender.execute(connection, statement, params):
        raise DatabaseError(f"Task result {row.pk} could not be claimed: its row is gone")
    row.status, row.started_at, row.worker_id = ResultStatus.RUNNING, now, worker_id


class ClaimSQL:
    """The claim statements, written out so each is one round trip."""

    def __init__(
        self,
        connection: Any,
        *,
        backend_name: str = "",
        queue_names: Sequence[str] | None = None,
    ) -> None:
        self.connection = connection
        self.meta = result_model()._meta
        self.table = connection.ops.quote_name(self.meta.db_table)
        c = self.col
        # Literal statuses (constants) let the planner use the partial claim index.
        self.where = (
            f"{c('status')} = '{ResultStatus.NEW}' AND {c('backend_name')} = %s"
            f" AND ({c('run_after')} IS NULL OR {c('run_after')} <= %s)"
        )
        self.where_params: list[Any] = [backend_name]
        self.queue_params: list[Any] = []
        if queue_names is not None:
            placeholders = ", ".join(["%s"] * len(queue_names))
            self.where += f" AND {c('queue_name')} IN ({placeholders})"
            self.queue_params = list(queue_names)
        # Paused queues: a subquery of the small DBQueue table, read once per claim.
        queues = _queue_model()._meta
        q = connection.ops.quote_name
        self.where += (
            f" AND {c('queue_name')} NOT IN (SELECT {q('name')} FROM {q(queues.db_table)}"
            f" WHERE {q('backend_name')} = %s AND {q('paused')} = %s)"
        )
        self.queue_params += [backend_name, True]
        # DESC puts NULLs last on SQLite already; PostgreSQL needs telling.
        nulls_last = " NULLS LAST" if connection.vendor == "postgresql" else ""
        self.order = (
            f"{c('priority')} DESC, {c('run_after')} DESC{nulls_last}, {c('enqueued_at')} ASC"
        )

    def col(self, name: str) -> str:
        field: Any = self.meta.get_field(name)
        return str(self.connection.ops.quote_name(field.column))

    def prep(self, name: str, value: Any) -> Any:
        field: Any = self.meta.get_field(name)
        return field.get_db_prep_value(value, self.connection)

    def _params(self, now: Any) -> list[Any]:
        return [*self.where_params, self.prep("run_after", now), *self.queue_params]

    def _set(self, now: Any, worker_id: UUID | str | None) -> tuple[str, list[Any]]:
        """The columns every claim sets: RUNNING, ``started_at``, ``worker_id``."""
        c = self.col
        return (
            f"{c('status')} = '{ResultStatus.RUNNING}', {c('started_at')} = %s, "
            f"{c('worker_id')} = %s",
            [self.prep("started_at", now), self.prep("worker_id", worker_id)],
        )

    def probe(self, *, now: Any) -> tuple[str, list[Any]]:
        return f"SELECT 1 FROM {self.table} WHERE {self.where} LIMIT 1", self._params(now)

    def claim_postgresql(
        self, *, now: Any, limit: int, worker_id: UUID | str
    ) -> tuple[str, list[Any]]:
        set_sql, set_params = self._set(now, worker_id)
        pk = self.col("id")
        return (
            f"WITH claimable AS (SELECT {pk} FROM {self.table} WHERE {self.where}"
            f" ORDER BY {self.order} LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" UPDATE {self.table} SET {set_sql} FROM claimable"
            f" WHERE {self.table}.{pk} = claimable.{pk} RETURNING {self.table}.*",
            [*self._params(now), limit, *set_params],
        )

    def claim_sqlite(self, *, now: Any, limit: int, worker_id: UUID | str) -> tuple[str, list[Any]]:
        set_sql, set_params = self._set(now, worker_id)
        pk = self.col("id")
        return (
            f"UPDATE {self.table} SET {set_sql} WHERE {pk} IN (SELECT {pk} FROM {self.table}"
            f" WHERE {self.where} ORDER BY {self.order} LIMIT %s) RETURNING *",
            [*set_params, *self._params(now), limit],
        )

    def claim_ids(
        self, pks: Sequence[Any], *, now: Any, worker_id: UUID | str | None
    ) -> tuple[str, list[Any]]:
        """Claim these rows, whatever their status."""
        set_sql, set_params = self._set(now, worker_id)
        placeholders = ", ".join(["%s"] * len(pks))
        return (
            f"UPDATE {self.table} SET {set_sql} WHERE {self.col('id')} IN ({placeholders})",
            [*set_params, *(self.prep("id", pk) for pk in pks)],
        )


def _claim_tasks_portable(
    using: str,
    *,
    backend_name: str,
    queue_names: Sequence[str] | None,
    worker_id: UUID | str,
    limit: int,
) -> list[DBTaskResult]:
    """Claim with the ORM's locking SELECT (skip locked), then UPDATE, in one transaction."""
    connection = connections[using]
    ready = result_model().objects.using(using).ready().filter(backend_name=backend_name)
    if queue_names is not None:
        ready = ready.filter(queue_name__in=list(queue_names))
    ready = ready.exclude(queue_name__in=_paused(backend_name))
    with exclusive_transaction(using):
        if connection.features.has_select_for_update_skip_locked:
            ready = ready.select_for_update(skip_locked=True)
        rows: list[DBTaskResult] = list(ready[:limit])
        now = timezone.now()
        if rows:
            statement, params = ClaimSQL(connection).claim_ids(
                [row.pk for row in rows], now=now, worker_id=worker_id
            )
            sender.execute(connection, statement, params)
    for row in rows:
        row.status, row.started_at, row.worker_id = ResultStatus.RUNNING, now, worker_id
    return rows


def _queue_model() -> Any:
    """The DBQueue model, from the app registry (the models module imports this one)."""
    return apps.get_model(APP_LABEL, "DBQueue")


def _paused(backend_name: str) -> Any:
    """The names of the paused queues of ``backend_name``, as a queryset (for subqueries)."""
    return _queue_model().objects.filter(backend_name=backend_name, paused=True).values("name")


def _model_order(row: DBTaskResult) -> tuple[Any, ...]:
    """Sort key matching DBTaskResult.Meta.ordering."""
    run_after = row.run_after
    return (
        -row.priority,
        run_after is None,
        -run_after.timestamp() if run_after is not None else 0.0,
        row.enqueued_at,
    )


def release_tasks(
    *, worker_id: UUID | str, ids: Iterable[UUID | str] | None = None, exclude: Iterable[Any] = ()
) -> int:
    """Put tasks claimed by ``worker_id`` but not started back to NEW; return how many.

    ``ids`` limits this to those rows; ``exclude`` spares rows the worker is running.
    """
    held = result_model().objects.filter(status=ResultStatus.RUNNING, worker_id=worker_id)
    if ids is not None:
        held = held.filter(pk__in=list(ids))
    excluded = list(exclude)
    if excluded:
        held = held.exclude(pk__in=excluded)
    return held.update(status=ResultStatus.NEW, started_at=None, worker_id=None)
