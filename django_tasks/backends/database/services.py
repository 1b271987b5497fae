"""Operations on task rows, shared by db_worker, prune_db_task_results and the dashboard.

Commands and views stay thin: they parse input, call one function here, and
report the count or outcome it returns.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.db.models import Case, Count, F, JSONField, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Now
from django.utils import timezone

from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.signals import task_finished, task_started
from django_tasks.task import ResultStatus, Task
from django_tasks.utils import exception_to_dict, json_normalize

from .utils import normalize_uuid
from .writes import execute_write

if TYPE_CHECKING:
    from .backend import TaskResult
    from .models import DBTaskResult, DBTaskResultQuerySet, DBWorker


class RetryRefused(Exception):
    """A result cannot be retried (it is not FAILED)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryOutcome:
    """What retry() did: how many rows went back to NEW, and which were refused."""

    retried: int
    refused: int


# --- retry and prune (owned by the database-backend engineer) -------------------

RETRY_BATCH_SIZE = 500


def retry(
    *,
    results: DBTaskResultQuerySet | Iterable[str | UUID],
    limit: int | None = None,
    batch_size: int = RETRY_BATCH_SIZE,
) -> RetryOutcome:
    """Put FAILED results back to NEW, keeping their ids and their failure history.

    ``results`` is a queryset or result ids.  Each FAILED row gets its failure
    appended to ``attempts``, its run columns cleared and ``enqueued_at`` reset, in
    one conditional UPDATE per batch (a row changed meanwhile is left alone).
    Selected rows that are not FAILED, and ids that are missing or malformed, are
    refused.  ``limit`` caps how many selected rows are considered (oldest
    enqueued first).
    """
    refused = 0
    retried = 0
    batches, using, malformed = _retry_batches(results, limit=limit, batch_size=batch_size)
    refused += malformed
    for batch in batches:
        done = _retry_batch(batch, using=using)
        retried += done
        refused += len(batch) - done
    return RetryOutcome(retried=retried, refused=refused)


def retry_preview(
    *, results: DBTaskResultQuerySet | Iterable[str | UUID], limit: int | None = None
) -> RetryOutcome:
    """Count what retry() with the same arguments would do, changing nothing."""
    from .models import DBTaskResult

    if isinstance(results, QuerySet):
        selected = results
        if limit is not None or results.query.is_sliced:
            pks = _ids_of_queryset(results, limit=limit)
            selected = DBTaskResult.objects.using(results.db).filter(pk__in=pks)
        counts = selected.order_by().aggregate(
            total=Count("pk"), failed=Count("pk", filter=Q(status=ResultStatus.FAILED))
        )
        return RetryOutcome(retried=counts["failed"], refused=counts["total"] - counts["failed"])

    ids, malformed = _parse_ids(results)
    if limit is not None:
        ids = ids[:limit]
    failed = DBTaskResult.objects.filter(pk__in=ids, status=ResultStatus.FAILED).count()
    return RetryOutcome(retried=failed, refused=len(ids) - failed + malformed)


def retry_one(result_id: str | UUID) -> DBTaskResult:
    """Retry one result; raise RetryRefused with a clear message if it is not FAILED.

    Missing or malformed ids raise ResultDoesNotExist.  Returns the row, now NEW.
    """
    from .models import DBTaskResult

    try:
        row = DBTaskResult.objects.get(pk=result_id)
    except (DBTaskResult.DoesNotExist, ValidationError):
        raise ResultDoesNotExist(result_id) from None
    if row.status == ResultStatus.FAILED and retry(results=[row.pk]).retried:
        row.refresh_from_db()
        return row
    # Not FAILED, or it stopped being FAILED since we read it.
    row.refresh_from_db(fields=["status"])
    raise RetryRefused(
        f"Task result {normalize_uuid(row.pk)} cannot be retried: "
        f"its status is {row.status}, only FAILED results can be retried"
    )


def prune(
    *,
    backend_name: str,
    queue_names: Sequence[str] | None,
    min_age_days: int = 14,
    failed_min_age_days: int | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
) -> int:
    """Delete (or with dry_run count) finished results older than the given ages.

    COMPLETE rows go once finished ``min_age_days`` ago; FAILED rows once finished
    ``failed_min_age_days`` ago (None or 0: ``min_age_days``).  NEW and RUNNING
    rows are never touched.  Only rows of ``backend_name`` and ``queue_names``
    (None: every queue) count.  Rows are deleted ``batch_size`` at a time, each
    batch its own short statement, so no long lock is ever held.  Returns how
    many rows were (or, with ``dry_run``, would be) deleted.
    """
    from .models import DBTaskResult, prune_cutoffs

    if min_age_days < 0 or (failed_min_age_days or 0) < 0:
        raise ValueError("Ages must be zero or more days")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")

    results = DBTaskResult.objects.filter(backend_name=backend_name)
    if queue_names is not None:
        results = results.filter(queue_name__in=list(queue_names))
    now = timezone.now()

    if dry_run:
        return results.prunable(
            min_age_days=min_age_days, failed_min_age_days=failed_min_age_days, now=now
        ).count()

    complete_before, failed_before = prune_cutoffs(
        min_age_days=min_age_days, failed_min_age_days=failed_min_age_days, now=now
    )
    deleted = 0
    for status, finished_before in (
        (ResultStatus.COMPLETE, complete_before),
        (ResultStatus.FAILED, failed_before),
    ):
        deleted += _delete_in_batches(
            results.filter(status=status, finished_at__lte=finished_before), batch_size
        )
    return deleted


def _delete_in_batches(results: QuerySet[DBTaskResult], batch_size: int) -> int:
    """Delete ``results`` oldest first, ``batch_size`` rows per DELETE."""
    deleted = 0
    oldest: datetime | None = None
    while True:
        # Start at the last batch's newest finished_at: the index range scan then
        # skips the rows already deleted (dead until vacuumed) instead of revisiting them.
        remaining = results if oldest is None else results.filter(finished_at__gte=oldest)
        batch = list(
            remaining.order_by("finished_at").values_list("pk", "finished_at")[:batch_size]
        )
        if not batch:
            return deleted
        # Repeat the selection's conditions: a row retried meanwhile is not deleted.
        count, _ = results.filter(pk__in=[pk for pk, _ in batch]).delete()
        deleted += count
        oldest = batch[-1][1]
        if len(batch) < batch_size:
            return deleted


def _parse_ids(ids: Iterable[str | UUID]) -> tuple[list[UUID], int]:
    """Return the distinct well-formed ids, in order, and how many were malformed."""
    valid: dict[UUID, None] = {}
    malformed = 0
    for val in ids:
        try:
            valid[val if isinstance(val, UUID) else UUID(str(val))] = None
        except ValueError:
            malformed += 1
    return list(valid), malformed


def _ids_of_queryset(results: QuerySet[DBTaskResult], *, limit: int | None) -> list[UUID]:
    """Return the ids of ``results`` (oldest enqueued first, at most ``limit``)."""
    if results.query.is_sliced:  # already cut: its order can't change
        pks = list(results.values_list("pk", flat=True))
        return pks if limit is None else pks[:limit]
    ordered = results.order_by("enqueued_at", "pk").values_list("pk", flat=True)
    return list(ordered if limit is None else ordered[:limit])


def _retry_batches(
    results: DBTaskResultQuerySet | Iterable[str | UUID], *, limit: int | None, batch_size: int
) -> tuple[Iterator[list[UUID]], str, int]:
    """Return batches of candidate ids, the database to use, and the malformed count."""
    from .models import DBTaskResult

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if limit is not None and limit < 0:
        raise ValueError("limit must be zero or more")

    if isinstance(results, QuerySet):
        if limit is not None or results.query.is_sliced:
            return _chunks(_ids_of_queryset(results, limit=limit), batch_size), results.db, 0
        return _keyset_batches(results, batch_size), results.db, 0

    ids, malformed = _parse_ids(results)
    if limit is not None:
        ids = ids[:limit]
    return _chunks(ids, batch_size), router.db_for_write(DBTaskResult), malformed


def _chunks(ids: list[UUID], size: int) -> Iterator[list[UUID]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _keyset_batches(results: QuerySet[DBTaskResult], size: int) -> Iterator[list[UUID]]:
    """Yield the ids of ``results`` in pk order, ``size`` at a time, never re-reading."""
    last: UUID | None = None
    while True:
        page = (
            results.order_by("pk") if last is None else results.filter(pk__gt=last).order_by("pk")
        )
        ids = list(page.values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        if len(ids) < size:
            return
        last = ids[-1]


def _retry_batch(ids: list[UUID], *, using: str) -> int:
    """Retry the FAILED rows among ``ids`` in one UPDATE; return how many."""
    from .models import DBTaskResult

    rows = DBTaskResult.objects.using(using).filter(pk__in=ids, status=ResultStatus.FAILED)
    with transaction.atomic(using=using):
        # Lock the rows (PostgreSQL; SQLite's transaction locks the database) so the
        # history we append is the one we overwrite.
        failed = list(
            rows.select_for_update()
            .order_by()
            .values("pk", "exception_data", "enqueued_at", "started_at", "finished_at")
            .annotate(previous_worker_id=F("worker_id"), previous_attempts=F("attempts"))
        )
        if not failed:
            return 0
        attempts: Any = Case(
            *(
                When(
                    pk=row["pk"],
                    then=Value(
                        [*(row["previous_attempts"] or []), _attempt_record(row)],
                        output_field=JSONField(),
                    ),
                )
                for row in failed
            ),
            default=F("attempts"),
            output_field=JSONField(),
        )
        if connections[using].features.requires_casted_case_in_updates:
            attempts = Cast(attempts, output_field=JSONField())
        return rows.filter(pk__in=[row["pk"] for row in failed]).update(
            status=ResultStatus.NEW,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            return_value=None,
            exception_data=None,
            worker_id=None,
            attempts=attempts,
        )


def _attempt_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """Describe one failed attempt, for the row's ``attempts`` list."""
    data = row["exception_data"] if isinstance(row["exception_data"], dict) else {}
    return {
        "exception_class_path": data.get("exc_type"),
        "message": _exception_message(data["exc_args"]) if "exc_args" in data else None,
        "traceback": data.get("exc_traceback"),
        "enqueued_at": _isoformat(row["enqueued_at"]),
        "started_at": _isoformat(row["started_at"]),
        "finished_at": _isoformat(row["finished_at"]),
        "worker_id": normalize_uuid(row["previous_worker_id"])
        if row["previous_worker_id"]
        else None,
    }


def _exception_message(args: Any) -> str:
    """Return ``str(exc)`` for an exception with these args (as BaseException does)."""
    if not isinstance(args, list):
        return str(args)
    if len(args) == 1:
        return str(args[0])
    return str(tuple(args)) if args else ""


def _isoformat(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- claiming, running and recovery (owned by the worker engineer) ----------------

logger = logging.getLogger("django_tasks.backends.database")
worker_logger = logging.getLogger("django_tasks.backends.database.db_worker")

T = TypeVar("T")

DEFAULT_HEARTBEAT_TIMEOUT = 20.0
"""Seconds without a heartbeat after which a worker counts as lost."""

LOST_TASK_POLICIES = ("fail", "requeue")
"""``OPTIONS["lost_tasks"]``: fail lost tasks (default) or put them back to NEW."""


class WorkerLost(Exception):
    """The worker running a task stopped sending heartbeats."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryOutcome:
    """What recover_lost_tasks() did."""

    failed: int
    requeued: int
    workers_removed: int


def heartbeat_timeout_for(backend_name: str | None) -> float:
    """Return the backend's ``OPTIONS["heartbeat_timeout"]`` in seconds (or the default)."""
    from django_tasks import tasks
    from django_tasks.exceptions import InvalidTaskBackendError

    if backend_name is None:
        return DEFAULT_HEARTBEAT_TIMEOUT
    try:
        options = tasks[backend_name].options
    except InvalidTaskBackendError:
        return DEFAULT_HEARTBEAT_TIMEOUT
    return float(options.get("heartbeat_timeout", DEFAULT_HEARTBEAT_TIMEOUT))


def lost_task_policy_for(backend_name: str) -> str:
    """Return the backend's ``OPTIONS["lost_tasks"]``: "fail" (default) or "requeue"."""
    from django_tasks import tasks

    policy = str(tasks[backend_name].options.get("lost_tasks", "fail"))
    if policy not in LOST_TASK_POLICIES:
        raise ValueError(
            f"OPTIONS['lost_tasks'] of backend '{backend_name}' must be one of "
            f"{', '.join(LOST_TASK_POLICIES)}, not {policy!r}"
        )
    return policy


def claim_tasks(
    *,
    backend_name: str,
    queue_names: Sequence[str] | None,
    worker_id: UUID | str,
    limit: int = 1,
) -> list[DBTaskResult]:
    """Claim up to ``limit`` ready tasks for ``worker_id`` and return them in model order.

    Claimed rows are RUNNING and carry the worker's id, so no other worker takes
    them.  ``queue_names`` None means every queue.  One statement, so one short
    transaction: on PostgreSQL ``FOR UPDATE SKIP LOCKED`` steps over rows other
    workers are claiming; on SQLite the UPDATE holds the write lock only while it
    runs, and a read-only probe first keeps idle polls from taking it at all.
    """
    from .models import DBTaskResult

    if limit < 1 or (queue_names is not None and not queue_names):
        return []
    using = router.db_for_write(DBTaskResult)
    connection = connections[using]
    sql = _ClaimSQL(connection, backend_name=backend_name, queue_names=queue_names)
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
    return sorted(DBTaskResult.objects.db_manager(using).raw(statement, params), key=_model_order)


class _ClaimSQL:
    """The claim statements, written out so each is one round trip."""

    def __init__(
        self, connection: Any, *, backend_name: str, queue_names: Sequence[str] | None
    ) -> None:
        from .models import DBTaskResult

        self.connection = connection
        self.meta = DBTaskResult._meta
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

    def _set(self, now: Any, worker_id: UUID | str) -> tuple[str, list[Any]]:
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


def _claim_tasks_portable(
    using: str,
    *,
    backend_name: str,
    queue_names: Sequence[str] | None,
    worker_id: UUID | str,
    limit: int,
) -> list[DBTaskResult]:
    """Claim with the ORM: SELECT (skip locked) then UPDATE, in an exclusive transaction."""
    from .models import DBTaskResult
    from .utils import exclusive_transaction

    ready = DBTaskResult.objects.using(using).ready().filter(backend_name=backend_name)
    if queue_names is not None:
        ready = ready.filter(queue_name__in=list(queue_names))
    with exclusive_transaction(using):
        if connections[using].features.has_select_for_update_skip_locked:
            ready = ready.select_for_update(skip_locked=True)
        rows = list(ready[:limit])
        now = timezone.now()
        DBTaskResult.objects.using(using).filter(pk__in=[row.pk for row in rows]).update(
            status=ResultStatus.RUNNING, started_at=now, worker_id=worker_id
        )
    for row in rows:
        row.status, row.started_at, row.worker_id = ResultStatus.RUNNING, now, worker_id  # type: ignore[assignment]
    return rows


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
    from .models import DBTaskResult

    held = DBTaskResult.objects.filter(status=ResultStatus.RUNNING, worker_id=worker_id)
    if ids is not None:
        held = held.filter(pk__in=list(ids))
    excluded = list(exclude)
    if excluded:
        held = held.exclude(pk__in=excluded)
    return held.update(status=ResultStatus.NEW, started_at=None, worker_id=None)


def run_task(
    db_result: DBTaskResult,
    *,
    worker_id: UUID | str | None = None,
    call_guard: Callable[[], AbstractContextManager[Any]] = nullcontext,
    db_retry: Callable[[Callable[[], bool]], bool] | None = None,
    tasks: TaskCache | None = None,
) -> ResultStatus | None:
    """Run a claimed task, record its outcome and send the signals; never raise for it.

    Sends ``task_started``, calls the task (inside ``call_guard()``), then records
    COMPLETE or FAILED with one conditional UPDATE (only while the row is still
    RUNNING for ``worker_id``) and sends ``task_finished`` -- for failures from
    inside the ``except`` block, so receivers can log the traceback.  A row whose
    task can't be imported, or isn't a Task, ends FAILED with an ERROR log.
    ``db_retry(write)`` wraps each write (the worker retries connection errors);
    ``tasks`` remembers resolved tasks across calls.  Returns the status saved, or
    None when the row was no longer ours to save.
    """
    save = db_retry or _call
    db_result.started_at = timezone.now()
    try:
        task, backend_type = (tasks or TaskCache()).resolve(db_result)
        task_result = _task_result(db_result, task)
    except BaseException as e:  # ImportError, SuspiciousOperation, bad arguments...
        saved = _save_failure(db_result, e, worker_id, save)
        worker_logger.exception("Task id=%s failed unexpectedly", normalize_uuid(db_result.pk))
        return ResultStatus.FAILED if saved else None

    worker_logger.info(
        "Task id=%s path=%s state=%s", task_result.id, db_result.task_path, ResultStatus.RUNNING
    )
    try:
        task_started.send(sender=backend_type, task_result=task_result)
        with call_guard():
            return_value = task.call(*task_result.args, **task_result.kwargs)
        outcome = _outcome(db_result, return_value=json_normalize(return_value))
        saved = save(lambda: _save_outcome(db_result, worker_id, outcome))
    except BaseException as e:
        if not _save_failure(db_result, e, worker_id, save):
            return None
        task_finished.send(sender=backend_type, task_result=_task_result(db_result, task))
        return ResultStatus.FAILED
    if not saved:
        return None
    task_finished.send(sender=backend_type, task_result=_task_result(db_result, task))
    return ResultStatus.COMPLETE


class TaskCache:
    """Resolve rows' tasks, each (path, priority, queue, run_after, backend) once.

    For one worker's lifetime, over which settings don't change: importing and
    validating a task costs more than running a no-op one.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._tasks: dict[tuple[Any, ...], tuple[Task[Any, Any], type[Any]]] = {}

    def resolve(self, db_result: DBTaskResult) -> tuple[Task[Any, Any], type[Any]]:
        """Return the row's task and its backend's class (import errors propagate)."""
        key = (
            db_result.task_path,
            db_result.priority,
            db_result.queue_name,
            db_result.run_after,
            db_result.backend_name,
        )
        resolved = self._tasks.get(key)
        if resolved is None:
            task = db_result.task
            resolved = (task, type(task.get_backend()))
            if len(self._tasks) >= self.size:
                self._tasks.clear()
            self._tasks[key] = resolved
        return resolved


def fail_task(
    db_result: DBTaskResult, exc: BaseException, *, worker_id: UUID | str | None = None
) -> bool:
    """Record ``exc`` as the outcome of a RUNNING row held by ``worker_id``."""
    outcome = _outcome(db_result, exception_data=_exception_data(db_result, exc))
    return _save_outcome(db_result, worker_id, outcome)


def _call(write: Callable[[], bool]) -> bool:
    return write()


def _save_failure(
    db_result: DBTaskResult,
    exc: BaseException,
    worker_id: UUID | str | None,
    save: Callable[[Callable[[], bool]], bool],
) -> bool:
    exception_data = _exception_data(db_result, exc)
    outcome = _outcome(db_result, exception_data=exception_data)
    try:
        return save(lambda: _save_outcome(db_result, worker_id, outcome))
    except Exception:
        if exception_data is None:
            raise
    # The database refused the exception's text (e.g. a NUL byte on PostgreSQL).
    logger.exception("Task id=%s unable to save exception", normalize_uuid(db_result.pk))
    outcome = _outcome(db_result, exception_data=None)
    return save(lambda: _save_outcome(db_result, worker_id, outcome))


def _exception_data(db_result: DBTaskResult, exc: BaseException) -> Any:
    try:
        return exception_to_dict(exc)
    except Exception:
        logger.exception("Task id=%s unable to save exception", normalize_uuid(db_result.pk))
        return None


_NOTHING: Any = object()


def _outcome(
    db_result: DBTaskResult, *, return_value: Any = None, exception_data: Any = _NOTHING
) -> dict[str, Any]:
    """The columns recording a run: COMPLETE, or FAILED when ``exception_data`` is given."""
    failed = exception_data is not _NOTHING
    return {
        "status": ResultStatus.FAILED if failed else ResultStatus.COMPLETE,
        "started_at": db_result.started_at,
        "finished_at": timezone.now(),
        "return_value": None if failed else return_value,
        "exception_data": exception_data if failed else None,
    }


def _save_outcome(
    db_result: DBTaskResult, worker_id: UUID | str | None, outcome: dict[str, Any]
) -> bool:
    """Write ``outcome`` if the row is still RUNNING for ``worker_id``; False if it isn't.

    One UPDATE written out by hand: this runs once per task, and building it
    with the ORM costs more than the round trip.
    """
    from .models import DBTaskResult

    using = router.db_for_write(DBTaskResult)
    connection = connections[using]
    meta = DBTaskResult._meta
    columns = list(outcome)
    key = (connection.vendor, tuple(columns), worker_id is not None)
    sql = _OUTCOME_SQL.get(key)
    if sql is None:
        qn = connection.ops.quote_name

        def column(name: str) -> str:
            field: Any = meta.get_field(name)
            return str(qn(field.column))

        assignments = ", ".join(f"{column(name)} = %s" for name in columns)
        sql = (
            f"UPDATE {qn(meta.db_table)} SET {assignments} WHERE {column('id')} = %s"
            f" AND {column('status')} = '{ResultStatus.RUNNING}'"
        )
        if worker_id is not None:
            sql += f" AND {column('worker_id')} = %s"
        _OUTCOME_SQL[key] = sql
    params = [_prep(name, value, connection) for name, value in outcome.items()]
    params.append(_prep("id", db_result.pk, connection))
    if worker_id is not None:
        params.append(_prep("worker_id", worker_id, connection))
    if not execute_write(connection, sql, params):
        # A retry after a lost reply may find its own earlier write (same finished_at).
        rows = DBTaskResult.objects.using(using).filter(pk=db_result.pk)
        if worker_id is not None:
            rows = rows.filter(worker_id=worker_id)
        if not rows.filter(status=outcome["status"], finished_at=outcome["finished_at"]).exists():
            worker_logger.warning(
                "Task id=%s was recovered by another worker while it ran: its outcome (%s) "
                "was not saved",
                normalize_uuid(db_result.pk),
                outcome["status"],
            )
            return False
    for name, value in outcome.items():
        setattr(db_result, name, value)
    return True


_OUTCOME_SQL: dict[tuple[Any, ...], str] = {}


def _prep(name: str, value: Any, connection: Any) -> Any:
    """Adapt ``value`` for field ``name`` as a save would (JSON None is SQL NULL).

    The common types are adapted directly: Django's field methods cost more than
    the UPDATE itself on SQLite.
    """
    from .models import DBTaskResult

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
    field: Any = DBTaskResult._meta.get_field(name)
    return field.get_db_prep_save(value, connection)


_JSON_FIELDS = frozenset({"return_value", "exception_data", "args_kwargs", "attempts"})
_UUID_FIELDS = frozenset({"id", "worker_id"})


def _task_result(db_result: DBTaskResult, task: Task[Any, Any]) -> TaskResult[Any]:
    """Build the row's TaskResult around an already resolved task."""
    from .backend import TaskResult

    fields = {
        "db_result": db_result,
        "task": task,
        "id": normalize_uuid(db_result.pk),
        "status": ResultStatus(db_result.status),
        "enqueued_at": db_result.enqueued_at,
        "started_at": db_result.started_at,
        "finished_at": db_result.finished_at,
        "args": db_result.args_kwargs["args"],
        "kwargs": db_result.args_kwargs["kwargs"],
        "backend": db_result.backend_name,
        "_return_value": db_result.return_value,
        "_exception_data": db_result.exception_data,
    }
    result = TaskResult.__new__(TaskResult)
    # Twice per task: filling __dict__ skips the frozen dataclass's setattr per field.
    result.__dict__.update(fields)
    return result


# Workers: registration, heartbeats, recovery, and what the dashboard reads.


def register_worker(
    *,
    worker_id: UUID | str,
    backend_name: str,
    queue_names: Sequence[str] | None,
    threads: int,
    waiting: bool = False,
) -> None:
    """Record a starting worker process (timestamps from the database's clock)."""
    from .models import DBWorker

    DBWorker.objects.create(
        id=worker_id,
        backend_name=backend_name,
        host=socket.gethostname(),
        pid=os.getpid(),
        queues=["*"] if queue_names is None else list(queue_names),
        threads=threads,
        started_at=Now(),
        last_heartbeat_at=Now(),
        waiting=waiting,
    )


def heartbeat(
    *, worker_id: UUID | str, tasks_done: int = 0, tasks_failed: int = 0, waiting: bool = False
) -> bool:
    """Refresh a worker's heartbeat, counters and waiting flag; False if its row is gone."""
    from .models import DBWorker

    return bool(
        DBWorker.objects.filter(pk=worker_id).update(
            last_heartbeat_at=Now(),
            tasks_done=tasks_done,
            tasks_failed=tasks_failed,
            waiting=waiting,
        )
    )


def set_worker_waiting(*, worker_id: UUID | str, waiting: bool) -> None:
    """Say whether the worker is idle and waits for a notification (PostgreSQL)."""
    from .models import DBWorker

    DBWorker.objects.filter(pk=worker_id).update(waiting=waiting)


def unregister_worker(*, worker_id: UUID | str) -> int:
    """Release the worker's unstarted claims and delete its row; return claims released."""
    from .models import DBWorker

    released = release_tasks(worker_id=worker_id)
    DBWorker.objects.filter(pk=worker_id).delete()
    return released


def _cutoff(heartbeat_timeout: float) -> Any:
    return Now() - timedelta(seconds=heartbeat_timeout)


def live_workers(
    *, backend_name: str | None = None, heartbeat_timeout: float | None = None
) -> QuerySet[DBWorker]:
    """Return workers whose last heartbeat is within the timeout."""
    from .models import DBWorker

    timeout = heartbeat_timeout or heartbeat_timeout_for(backend_name)
    workers = DBWorker.objects.filter(last_heartbeat_at__gte=_cutoff(timeout))
    return workers if backend_name is None else workers.filter(backend_name=backend_name)


def lost_workers(
    *, backend_name: str | None = None, heartbeat_timeout: float | None = None
) -> QuerySet[DBWorker]:
    """Return workers whose heartbeat is older than the timeout (not yet cleaned up)."""
    from .models import DBWorker

    timeout = heartbeat_timeout or heartbeat_timeout_for(backend_name)
    workers = DBWorker.objects.filter(last_heartbeat_at__lt=_cutoff(timeout))
    return workers if backend_name is None else workers.filter(backend_name=backend_name)


def orphaned_tasks(
    *, backend_name: str | None = None, heartbeat_timeout: float | None = None
) -> DBTaskResultQuerySet:
    """Return RUNNING rows whose worker is lost or unregistered (what recovery acts on)."""
    from .models import DBTaskResult, DBWorker

    timeout = heartbeat_timeout or heartbeat_timeout_for(backend_name)
    live = DBWorker.objects.filter(last_heartbeat_at__gte=_cutoff(timeout)).values("pk")
    rows = DBTaskResult.objects.running().filter(worker_id__isnull=False)
    rows = rows.exclude(worker_id__in=live)
    return rows if backend_name is None else rows.filter(backend_name=backend_name)


def recover_lost_tasks(
    *,
    backend_name: str,
    heartbeat_timeout: float | None = None,
    policy: str | None = None,
) -> RecoveryOutcome:
    """Recover RUNNING tasks of lost workers, then delete those workers' rows.

    A worker is lost when its heartbeat is older than ``heartbeat_timeout``
    (default: the backend's ``OPTIONS["heartbeat_timeout"]``) or its row is gone.
    ``policy`` (default ``OPTIONS["lost_tasks"]``): "fail" records each task
    FAILED with a WorkerLost "worker lost" error (so nothing runs twice
    silently) and sends ``task_finished``; "requeue" puts it back to NEW
    (at-least-once), noting the lost attempt in ``attempts``.
    """
    from .models import DBTaskResult, DBWorker

    timeout = heartbeat_timeout or heartbeat_timeout_for(backend_name)
    policy = policy or lost_task_policy_for(backend_name)
    if policy not in LOST_TASK_POLICIES:
        raise ValueError(f"policy must be one of {', '.join(LOST_TASK_POLICIES)}")
    cutoff = _cutoff(timeout)

    lost = orphaned_tasks(backend_name=backend_name, heartbeat_timeout=timeout)
    by_worker: dict[Any, list[Any]] = {}
    for pk, worker_id in lost.values_list("pk", "worker_id"):
        by_worker.setdefault(worker_id, []).append(pk)
    workers = DBWorker.objects.in_bulk(list(by_worker))
    live = DBWorker.objects.filter(last_heartbeat_at__gte=cutoff).values("pk")

    failed = requeued = 0
    for worker_id, pks in by_worker.items():
        message = _worker_lost_message(worker_id, workers.get(worker_id), timeout)
        # Repeat the conditions: a row finished, or a worker back, meanwhile is left alone.
        held = DBTaskResult.objects.filter(
            pk__in=pks, status=ResultStatus.RUNNING, worker_id=worker_id
        ).exclude(worker_id__in=live)
        if policy == "fail":
            failed += _fail_lost(held, message)
        else:
            requeued += _requeue_lost(held, message)
        worker_logger.warning(
            "Recovered tasks of a lost worker (%s): %s",
            "failed" if policy == "fail" else "requeued",
            message,
        )

    removed, _ = (
        DBWorker.objects.filter(backend_name=backend_name, last_heartbeat_at__lt=cutoff)
        .exclude(
            pk__in=DBTaskResult.objects.running()
            .filter(worker_id__isnull=False)
            .values("worker_id")
        )
        .delete()
    )
    return RecoveryOutcome(failed=failed, requeued=requeued, workers_removed=removed)


def _worker_lost_message(worker_id: Any, worker: DBWorker | None, timeout: float) -> str:
    if worker is None:
        return f"worker lost: worker {normalize_uuid(worker_id)} is no longer registered"
    return (
        f"worker lost: worker {normalize_uuid(worker_id)} ({worker.host} pid {worker.pid}) "
        f"sent no heartbeat for more than {timeout:g}s"
    )


def _fail_lost(held: DBTaskResultQuerySet, message: str) -> int:
    """Mark ``held`` FAILED with a WorkerLost error; send task_finished for each."""
    from .models import DBTaskResult

    finished_at = timezone.now()
    exception_data = exception_to_dict(WorkerLost(message))
    pks = list(held.values_list("pk", flat=True))
    count = held.filter(pk__in=pks).update(
        status=ResultStatus.FAILED,
        finished_at=finished_at,
        return_value=None,
        exception_data=exception_data,
    )
    # The rows this call failed carry its exact finished_at.
    for row in DBTaskResult.objects.filter(
        pk__in=pks, status=ResultStatus.FAILED, finished_at=finished_at
    ):
        try:
            task = row.task
            raise WorkerLost(message)
        except WorkerLost:
            task_finished.send(sender=type(task.get_backend()), task_result=_task_result(row, task))
        except Exception:  # the task vanished too: nothing to tell receivers about
            worker_logger.debug("Task id=%s: no task_finished (unresolvable)", row.pk)
    return count


def _requeue_lost(held: DBTaskResultQuerySet, message: str) -> int:
    """Put ``held`` back to NEW, appending the lost attempt to each row's ``attempts``."""
    now = timezone.now()
    count = 0
    for pk, worker_id, attempts, enqueued_at, started_at in held.values_list(
        "pk", "worker_id", "attempts", "enqueued_at", "started_at"
    ):
        record = {
            "exception_class_path": f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
            "message": message,
            "traceback": None,
            "enqueued_at": _isoformat(enqueued_at),
            "started_at": _isoformat(started_at),
            "finished_at": _isoformat(now),
            "worker_id": normalize_uuid(worker_id) if worker_id else None,
        }
        count += held.filter(pk=pk).update(
            status=ResultStatus.NEW,
            started_at=None,
            worker_id=None,
            attempts=Value([*(attempts or []), record], output_field=JSONField()),
        )
    return count
