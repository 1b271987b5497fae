"""The task result table, its querysets, and the worker registry."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Any

import django
from django.core.exceptions import SuspiciousOperation
from django.db import models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.ddl_references import Statement
from django.db.models import F, OrderBy, Q
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from django_tasks import django_api
from django_tasks.task import (
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE_NAME,
    FINISHED_STATUSES,
    LIVE_STATUSES,
    MAX_PRIORITY,
    MIN_PRIORITY,
    ResultStatus,
    Task,
)
from django_tasks.utils import retry

from .attempts import Attempt
from .claims import claim_row
from .outcomes import Outcome, exception_data_for, record_outcome
from .results import TaskResult, task_result_for
from .utils import listened

API_CHOICES = [
    (django_api.OURS, "django_tasks"),
    (django_api.DJANGO, "django.tasks"),
]

_API_DB_DEFAULT: dict[str, Any] = (
    {"db_default": django_api.OURS} if django.VERSION >= (5, 0) else {}
)

_CONDITION = "condition" if django.VERSION >= (5, 1) else "check"

_ONE_DB_DEFAULT: dict[str, Any] = {"db_default": 1} if django.VERSION >= (5, 0) else {}


class DBTaskResultQuerySet(models.QuerySet["DBTaskResult"]):
    def ready(self) -> DBTaskResultQuerySet:
        """Return tasks that are ready to run now."""
        return self.filter(
            Q(run_after__lte=timezone.now()) | Q(run_after__isnull=True),
            status=ResultStatus.NEW,
        )

    def new(self) -> DBTaskResultQuerySet:
        """Return tasks that have not started."""
        return self.filter(status=ResultStatus.NEW)

    def complete(self) -> DBTaskResultQuerySet:
        """Return tasks that completed."""
        return self.filter(status=ResultStatus.COMPLETE)

    def failed(self) -> DBTaskResultQuerySet:
        """Return tasks that failed."""
        return self.filter(status=ResultStatus.FAILED)

    def running(self) -> DBTaskResultQuerySet:
        """Return tasks that are running."""
        return self.filter(status=ResultStatus.RUNNING)

    def finished(self) -> DBTaskResultQuerySet:
        """Return tasks that completed or failed."""
        return self.filter(status__in=sorted(FINISHED_STATUSES))

    def prunable(
        self,
        *,
        min_age_days: int = 14,
        failed_min_age_days: int | None = None,
        now: datetime | None = None,
    ) -> DBTaskResultQuerySet:
        """Return finished tasks old enough to delete.

        COMPLETE rows qualify once finished ``min_age_days`` ago, FAILED rows once
        finished ``failed_min_age_days`` ago (None or 0: ``min_age_days``).
        """
        complete_before, failed_before = prune_cutoffs(
            min_age_days=min_age_days, failed_min_age_days=failed_min_age_days, now=now
        )
        return self.filter(
            Q(status=ResultStatus.COMPLETE, finished_at__lte=complete_before)
            | Q(status=ResultStatus.FAILED, finished_at__lte=failed_before)
        )

    @retry()
    def get_locked(self) -> DBTaskResult | None:
        """Return the first row, locked (skipping rows locked elsewhere), or None."""
        return self.select_for_update(skip_locked=True).first()


def prune_cutoffs(
    *, min_age_days: int, failed_min_age_days: int | None = None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """Return the newest ``finished_at`` that may be pruned, for COMPLETE and FAILED."""
    now = now or timezone.now()
    # Upstream quirk: a failed age of 0 means "same as min_age_days", like None.
    failed_days = failed_min_age_days or min_age_days
    return now - timedelta(days=min_age_days), now - timedelta(days=failed_days)


class NullsOrderIndex(models.Index):
    """An index that drops NULLS FIRST/LAST where it cannot be indexed (SQLite, MySQL).

    PostgreSQL needs ``run_after DESC NULLS LAST`` in the index to read rows in model
    order; SQLite rejects the clause in an index, and its DESC sorts NULLs last anyway.
    """

    def create_sql(
        self,
        model: type[models.Model],
        schema_editor: BaseDatabaseSchemaEditor,
        using: str = "",
        **kwargs: Any,
    ) -> Statement:
        index = self
        if schema_editor.connection.vendor in ("sqlite", "mysql"):
            index = copy.copy(self)
            index.expressions = tuple(
                OrderBy(e.expression, descending=e.descending) if isinstance(e, OrderBy) else e
                for e in self.expressions
            )
        return super(NullsOrderIndex, index).create_sql(model, schema_editor, using=using, **kwargs)


class DBTaskResult(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    status = models.CharField(
        _("status"),
        choices=ResultStatus.choices,
        default=ResultStatus.NEW,
        max_length=max(len(value) for value in ResultStatus.values),
    )

    enqueued_at = models.DateTimeField(_("enqueued at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True)
    finished_at = models.DateTimeField(_("finished at"), null=True)

    args_kwargs = models.JSONField(_("args kwargs"))

    priority = models.IntegerField(_("priority"), default=DEFAULT_PRIORITY)

    task_path = models.TextField(_("task path"))

    queue_name = models.TextField(_("queue name"), default=DEFAULT_QUEUE_NAME)
    backend_name = models.TextField(_("backend name"))

    run_after = models.DateTimeField(_("run after"), null=True)

    return_value = models.JSONField(_("return value"), default=None, null=True)

    exception_data = models.JSONField(_("exception data"), default=None, null=True)

    # Beyond upstream: which worker process holds a RUNNING row (for recovery),
    # and the failures of earlier attempts kept by retry().
    worker_id = models.UUIDField(_("worker id"), null=True, blank=True)
    attempts = models.JSONField(_("attempts"), default=list, blank=True)
    # Which API enqueued the row, so it comes back in that API's shape.  The database
    # default (Django 5.0+) lets processes still on the previous release enqueue while
    # a rolling deploy migrates.
    api = models.CharField(
        _("API"),
        max_length=16,
        choices=API_CHOICES,
        default=django_api.OURS,
        blank=True,
        **_API_DB_DEFAULT,
    )
    # Lifecycle settings, resolved at enqueue (see django_tasks.lifecycle): how many
    # attempts in all (earlier ones are in ``attempts``), the time limit of each,
    # and the key no other waiting or running result of the task may share.
    max_attempts = models.PositiveIntegerField(_("max attempts"), default=1, **_ONE_DB_DEFAULT)
    time_limit = models.FloatField(_("time limit (seconds)"), null=True, blank=True)
    unique_key = models.TextField(_("unique key"), null=True, blank=True)

    objects = DBTaskResultQuerySet.as_manager()

    class Meta:
        ordering = [
            F("priority").desc(),
            F("run_after").desc(nulls_last=True),
            "enqueued_at",
        ]
        verbose_name = _("Task Result")
        verbose_name_plural = _("Task Results")
        constraints = [
            # `check` was renamed `condition` in Django 5.1 (and removed in 6.0).
            models.CheckConstraint(  # type: ignore[call-overload]
                **{_CONDITION: Q(priority__range=(MIN_PRIORITY, MAX_PRIORITY))},
                name="priority_range",
            ),
            # One waiting or running result per task and unique key: the database
            # settles concurrent enqueues.
            models.UniqueConstraint(
                fields=["task_path", "unique_key"],
                condition=Q(unique_key__isnull=False, status__in=sorted(LIVE_STATUSES)),
                name="dtdb_unique_live_key",
            ),
        ]
        indexes = [
            # The worker's claim query: ready() rows of one backend and queue, in
            # model order.  Partial, so it holds only the NEW rows.
            NullsOrderIndex(
                F("backend_name"),
                F("queue_name"),
                F("priority").desc(),
                F("run_after").desc(nulls_last=True),
                F("enqueued_at"),
                condition=Q(status=ResultStatus.NEW),
                name="dtdb_claim_idx",
            ),
            # The same for workers on several queues (or "*"): queue_name is then a
            # filter, and the index still yields rows in model order (no sort).
            NullsOrderIndex(
                F("backend_name"),
                F("priority").desc(),
                F("run_after").desc(nulls_last=True),
                F("enqueued_at"),
                condition=Q(status=ResultStatus.NEW),
                name="dtdb_claim_any_queue_idx",
            ),
            # Pruning (status + finished_at range) and "failed, newest first".
            models.Index(fields=["status", "finished_at"], name="dtdb_status_finished_idx"),
            # Listings: newest first, optionally filtered by status, queue or task.  The
            # dashboard's pages are ranges of these: (enqueued_at, id) for its default
            # sort, and (status|queue|task, enqueued_at) for the sorts by those columns.
            models.Index(fields=["enqueued_at", "id"], name="dtdb_enqueued_id_idx"),
            models.Index(fields=["status", "enqueued_at"], name="dtdb_status_enqueued_idx"),
            models.Index(fields=["queue_name", "enqueued_at"], name="dtdb_queue_enqueued_idx"),
            models.Index(fields=["task_path", "enqueued_at"], name="dtdb_task_enqueued_idx"),
            # The dashboard sorted by finished_at, pages read as ranges of it.
            models.Index(fields=["finished_at", "id"], name="dtdb_finished_id_idx"),
            # The dashboard's "waiting to retry" rows (NEW after a failed attempt), newest
            # first.  Partial: it holds only those rows, few even in a long backlog.
            models.Index(
                fields=["enqueued_at"],
                condition=Q(status=ResultStatus.NEW) & ~Q(attempts=[]),
                name="dtdb_retrying_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_path} ({self.id})"

    @classmethod
    def new_row(
        cls,
        *,
        id: uuid.UUID | None = None,  # noqa: A002 - the field's name
        enqueued_at: datetime | None,
        args_kwargs: dict[str, Any],
        priority: int,
        task_path: str,
        queue_name: str,
        run_after: datetime | None,
        backend_name: str,
        api: str = django_api.OURS,
        max_attempts: int = 1,
        time_limit: float | None = None,
        unique_key: str | None = None,
    ) -> DBTaskResult:
        """A NEW, unsaved row, as ``DBTaskResult(...)`` builds it, in a fraction of the time.

        Enqueue builds one per task.  With ``pre_init``/``post_init`` receivers
        for the model, ``__init__`` does it (and sends them).
        """
        if listened(cls, pre_init, post_init):
            return cls(  # type: ignore[misc]  # enqueued_at may wait for the commit
                id=id or uuid.uuid4(),
                enqueued_at=enqueued_at,
                args_kwargs=args_kwargs,
                priority=priority,
                task_path=task_path,
                queue_name=queue_name,
                run_after=run_after,
                backend_name=backend_name,
                api=api,
                max_attempts=max_attempts,
                time_limit=time_limit,
                unique_key=unique_key,
            )
        # What __init__ would do with these values, minus its generic work.
        row = cls.__new__(cls)
        row._state = ModelState()
        row.__dict__.update(
            id=id or uuid.uuid4(),
            status=ResultStatus.NEW.value,
            enqueued_at=enqueued_at,
            started_at=None,
            finished_at=None,
            args_kwargs=args_kwargs,
            priority=priority,
            task_path=task_path,
            queue_name=queue_name,
            backend_name=backend_name,
            run_after=run_after,
            return_value=None,
            exception_data=None,
            worker_id=None,
            attempts=[],
            api=api,
            max_attempts=max_attempts,
            time_limit=time_limit,
            unique_key=unique_key,
        )
        return row

    @property
    def task(self) -> Task[Any, Any]:
        """Import the task this row runs, configured as the row says.

        A task of either API: ``django_tasks`` or Django 6's ``django.tasks``.
        """
        task: Task[Any, Any] = import_string(self.task_path)

        if not isinstance(task, Task) and not django_api.is_django_task(task):
            raise SuspiciousOperation(f"Task {self.id} does not point to a Task ({self.task_path})")

        return task.using(
            priority=self.priority,
            queue_name=self.queue_name,
            run_after=self.run_after,
            backend=self.backend_name,
        )

    @property
    def task_result(self) -> TaskResult[Any]:
        """The public TaskResult for this row."""
        return self.task_result_for(self.task)

    def task_result_for(self, task: Task[Any, Any]) -> TaskResult[Any]:
        """The public TaskResult for this row, for a task already at hand."""
        return task_result_for(self, task)

    @property
    def attempt_history(self) -> list[Attempt]:
        """The earlier attempts kept by retries and recoveries, oldest first."""
        return [Attempt.from_json(a if isinstance(a, dict) else {}) for a in self.attempts or []]

    @retry(backoff_delay=0)
    def claim(self, worker_id: uuid.UUID | str | None = None) -> None:
        """Mark the task RUNNING (held by ``worker_id``): the worker's claim, for one row."""
        claim_row(self, worker_id=worker_id)

    @retry()
    def set_complete(self, return_value: Any) -> None:
        """Record a successful run, as the worker records one."""
        record_outcome(self, Outcome.complete(return_value), only_running=False)

    @retry()
    def set_failed(self, exc: BaseException) -> None:
        """Record a failed run and its exception, as the worker records one."""
        outcome = Outcome.failed(exception_data_for(self.pk, exc))
        record_outcome(self, outcome, only_running=False)


class DBWorker(models.Model):
    """A running db_worker process, as last reported by its heartbeat."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    backend_name = models.TextField(_("backend name"))
    host = models.TextField(_("host"))
    pid = models.IntegerField(_("pid"))
    queues = models.JSONField(_("queues"), default=list)
    threads = models.IntegerField(_("threads"), default=1)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    last_heartbeat_at = models.DateTimeField(_("last heartbeat at"), default=timezone.now)
    tasks_done = models.IntegerField(_("tasks done"), default=0)
    tasks_failed = models.IntegerField(_("tasks failed"), default=0)
    # Idle and listening: on PostgreSQL an enqueue sends NOTIFY only while some
    # worker of its backend says so (a notification costs every enqueue).
    waiting = models.BooleanField(_("waiting for tasks"), default=False)
    # Resident memory of the process at its last heartbeat (None: not measurable here).
    rss_bytes = models.BigIntegerField(_("resident memory (bytes)"), null=True, blank=True)

    class Meta:
        verbose_name = _("Worker")
        verbose_name_plural = _("Workers")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


class DBSchedule(models.Model):
    """What the database knows of one schedule of ``OPTIONS["schedules"]``.

    Created the first time a worker, the command or the dashboard sees the schedule.
    """

    backend_name = models.TextField(_("backend name"))
    name = models.TextField(_("name"))
    # Switched by the dashboard or the command; every worker reads it at each tick.
    enabled = models.BooleanField(_("enabled"), default=True)
    # The newest tick handled (run or skipped): only later ticks are due.
    last_tick = models.DateTimeField(_("last tick"))
    # The expression and time zone last_tick was counted with: when the settings
    # change them, counting restarts from the change (nothing is caught up).
    expression = models.TextField(_("cron expression"))
    timezone = models.TextField(_("time zone"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("Schedule")
        verbose_name_plural = _("Schedules")
        ordering = ["backend_name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["backend_name", "name"], name="dtdb_schedule_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.backend_name})"


class DBScheduledRun(models.Model):
    """A run of a schedule: the tick it is for, and the task result it enqueued.

    One row per schedule and tick, enforced by the database: of several workers
    enqueuing the same tick, one inserts the row (and the result, in the same
    transaction); the others' inserts fail.  "Run now" rows (``manual``) are extra.
    """

    backend_name = models.TextField(_("backend name"))
    schedule_name = models.TextField(_("schedule name"))
    tick = models.DateTimeField(_("tick"))
    manual = models.BooleanField(_("run now"), default=False)
    enqueued_at = models.DateTimeField(_("enqueued at"), default=timezone.now)
    # No foreign key constraint: pruning deletes results without looking here.
    result = models.ForeignKey(
        DBTaskResult,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("result"),
    )

    class Meta:
        verbose_name = _("Scheduled run")
        verbose_name_plural = _("Scheduled runs")
        ordering = ["-enqueued_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["backend_name", "schedule_name", "tick"],
                condition=Q(manual=False),
                name="dtdb_one_run_per_tick",
            ),
        ]
        indexes = [
            models.Index(
                fields=["backend_name", "schedule_name", "-enqueued_at"],
                name="dtdb_schedule_runs_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_name} at {self.tick.isoformat()}"


class DBQueue(models.Model):
    """One queue of a backend: whether it is paused, and its finished tasks counted so far.

    Created the first time a queue is paused or rolled up (see ``services.queues``
    and ``services.rollup``); a queue without a row runs and has counted nothing.
    """

    backend_name = models.TextField(_("backend name"))
    name = models.TextField(_("name"))
    # Workers claim nothing from a paused queue; enqueue still accepts its tasks.
    paused = models.BooleanField(_("paused"), default=False)
    # Who paused or resumed it last, and when ("" and None: never).
    changed_by = models.TextField(_("changed by"), blank=True, default="")
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)
    # Final outcomes counted by the roll-up since it started: they only grow, so
    # monitoring can take rates of them (pruning results does not lower them).
    completed_total = models.BigIntegerField(_("completed in all"), default=0)
    failed_total = models.BigIntegerField(_("failed in all"), default=0)

    class Meta:
        verbose_name = _("Queue")
        verbose_name_plural = _("Queues")
        ordering = ["backend_name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["backend_name", "name"], name="dtdb_queue_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.backend_name})"


class DBQueueMinute(models.Model):
    """The tasks of one queue that finished in one minute: the roll-up behind the charts.

    ``run_time_buckets`` counts run times (started to finished) per bucket of
    ``services.rollup.RUN_TIME_BUCKETS``, for medians and percentiles that need no
    result rows.
    """

    backend_name = models.TextField(_("backend name"))
    queue_name = models.TextField(_("queue name"))
    minute = models.DateTimeField(_("minute"))
    completed = models.IntegerField(_("completed"), default=0)
    failed = models.IntegerField(_("failed"), default=0)
    run_time_buckets = models.JSONField(_("run time buckets"), default=list)

    class Meta:
        verbose_name = _("Queue minute")
        verbose_name_plural = _("Queue minutes")
        ordering = ["backend_name", "minute", "queue_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["backend_name", "minute", "queue_name"], name="dtdb_queue_minute"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.queue_name} at {self.minute.isoformat()}"


class DBRollup(models.Model):
    """How far the roll-up of a backend got: minutes before ``rolled_until`` are counted.

    Workers move it on with a conditional UPDATE, so each minute is counted once.
    """

    backend_name = models.TextField(_("backend name"), unique=True)
    rolled_until = models.DateTimeField(_("rolled up until"))

    class Meta:
        verbose_name = _("Roll-up")
        verbose_name_plural = _("Roll-ups")

    def __str__(self) -> str:
        return f"{self.backend_name} until {self.rolled_until.isoformat()}"
