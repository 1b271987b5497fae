"""The dashboard's permissions, and its background bulk retry and cancel jobs."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import FINISHED_STATUSES, ResultStatus

RETRY_PERMISSION = "django_tasks_admin.retry_taskresult"
PRUNE_PERMISSION = "django_tasks_admin.prune_taskresult"
CANCEL_PERMISSION = "django_tasks_admin.cancel_taskresult"
SCHEDULES_PERMISSION = "django_tasks_admin.manage_schedules"
QUEUES_PERMISSION = "django_tasks_admin.pause_queues"


class TaskDashboard(DBTaskResult):
    """Holds the dashboard's permissions: a proxy with no admin and no table of its own.

    Viewing needs ``django_tasks_database.view_dbtaskresult``; retrying, pruning and
    cancelling need these, so a team can hand out read-only access.  The codenames keep their
    first names (``*_taskresult``), so permissions already granted stay valid.
    """

    class Meta:
        proxy = True
        default_permissions = ()
        permissions = [
            ("retry_taskresult", _("Can retry task results")),
            ("prune_taskresult", _("Can prune task results")),
            ("cancel_taskresult", _("Can cancel waiting task results")),
            ("manage_schedules", _("Can disable, enable and run schedules now")),
            ("pause_queues", _("Can pause and resume queues")),
        ]
        verbose_name = _("tasks dashboard")
        verbose_name_plural = _("tasks dashboard")


BULK_ACTIONS = [("retry", _("retry")), ("cancel", _("cancel"))]


class BulkRetry(models.Model):
    """A "retry (or cancel) all matching" too large for one request, run in the background."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    requested_by = models.CharField(_("requested by"), max_length=150, blank=True)
    # The results list's query string: the same filters select the rows again.
    query = models.TextField(_("query"), blank=True)
    action = models.CharField(_("action"), choices=BULK_ACTIONS, default="retry", max_length=8)
    # Retry: only rows that had failed by then (a row failing again later is not).
    # Cancel: only rows enqueued by then (work enqueued afterwards is not cancelled).
    failed_before = models.DateTimeField(_("failed before"))
    total = models.IntegerField(_("total"))
    # Rows retried, or cancelled (by ``action``).
    retried = models.IntegerField(_("retried"), default=0)
    refused = models.IntegerField(_("refused"), default=0)
    status = models.CharField(
        _("status"), choices=ResultStatus.choices, default=ResultStatus.NEW, max_length=8
    )
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("bulk retry")
        verbose_name_plural = _("bulk retries")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"bulk {self.action} {self.id} ({self.retried}/{self.total})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        done = self.retried + self.refused
        return min(100, round(100 * done / self.total)) if self.total else 0
