"""Recording how a run ended (RUNNING -> COMPLETE, FAILED, or NEW to retry): one UPDATE.

The worker records through :func:`record_outcome` with its worker id, so a row
recovered by another worker meanwhile is left alone; ``DBTaskResult.set_complete()``
and ``set_failed()`` record through it unconditionally, as upstream's did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import DatabaseError, connections, router
from django.utils import timezone

from django_tasks.task import ResultStatus
from django_tasks.utils import exception_to_dict

from .attempts import Attempt
from .utils import normalize_uuid
from .writes import update_outcome

if TYPE_CHECKING:
    from .models import DBTaskResult

logger = logging.getLogger("django_tasks.backends.database")
worker_logger = logging.getLogger("django_tasks.backends.database.db_worker")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The columns that record how a run ended."""

    status: ResultStatus
    finished_at: datetime | None
    return_value: Any = None
    exception_data: Any = None
    started_at: datetime | None = None
    """When the run started; None leaves the column as it is."""
    requeue: tuple[tuple[str, Any], ...] = ()
    """For a retry: the further columns that put the row back to waiting."""

    @classmethod
    def complete(cls, return_value: Any, *, started_at: datetime | None = None) -> Outcome:
        """A successful run that returned ``return_value`` (JSON-ready)."""
        return cls(
            status=ResultStatus.COMPLETE,
            finished_at=timezone.now(),
            return_value=return_value,
            started_at=started_at,
        )

    @classmethod
    def failed(cls, exception_data: Any, *, started_at: datetime | None = None) -> Outcome:
        """A failed run; ``exception_data`` from :func:`exception_data_for` (None: unknown)."""
        return cls(
            status=ResultStatus.FAILED,
            finished_at=timezone.now(),
            exception_data=exception_data,
            started_at=started_at,
        )

    @classmethod
    def retry(
        cls, row: DBTaskResult, exception_data: Any, *, delay: float, worker_id: Any
    ) -> Outcome:
        """A failed attempt of ``row`` to run again in ``delay`` seconds.

        The row goes back to NEW, its run columns cleared, ``run_after`` set and the
        attempt appended to ``attempts`` (as a manual retry keeps it).
        """
        now = timezone.now()
        attempt = Attempt.failed(
            exception_data=exception_data,
            enqueued_at=row.enqueued_at,
            started_at=row.started_at,
            finished_at=now,
            worker_id=worker_id or row.worker_id,
        )
        return cls(
            status=ResultStatus.NEW,
            finished_at=None,
            requeue=(
                ("started_at", None),
                ("worker_id", None),
                ("run_after", now + timedelta(seconds=delay)),
                ("attempts", [*(row.attempts or []), attempt.to_json()]),
            ),
        )

    def columns(self) -> dict[str, Any]:
        if self.requeue:
            return {
                "status": self.status,
                "finished_at": None,
                "return_value": None,
                "exception_data": None,
                **dict(self.requeue),
            }
        columns = {
            "status": self.status,
            "finished_at": self.finished_at,
            "return_value": self.return_value,
            "exception_data": self.exception_data,
        }
        if self.started_at is not None:
            columns["started_at"] = self.started_at
        return columns


def exception_data_for(row_id: Any, exc: BaseException) -> Any:
    """``exception_to_dict(exc)``, or None with an ERROR log if it can't be stored."""
    try:
        return exception_to_dict(exc)
    except Exception:
        logger.exception("Task id=%s unable to save exception", normalize_uuid(row_id))
        return None


def record_outcome(
    row: DBTaskResult,
    outcome: Outcome,
    *,
    worker_id: UUID | str | None = None,
    only_running: bool = True,
) -> bool:
    """Write ``outcome`` to ``row`` in one UPDATE and copy it onto ``row``.

    ``only_running``: only while the row is still RUNNING (for ``worker_id``,
    when given); returns False, with a warning, if it no longer is.  Otherwise
    the UPDATE is unconditional and a missing row raises DatabaseError.
    """
    using = router.db_for_write(type(row), instance=row)
    connection = connections[using]
    columns = outcome.columns()
    if not update_outcome(
        connection, row.pk, columns, only_running=only_running, worker_id=worker_id
    ):
        if not only_running:
            raise DatabaseError(f"Task result {row.pk} could not be saved: its row is gone")
        # A retry after a lost reply may find its own earlier write (same finished_at,
        # or for a retry the same run_after).
        mine = type(row)._default_manager.using(using).filter(pk=row.pk, status=outcome.status)
        if outcome.requeue:
            mine = mine.filter(run_after=columns["run_after"])
        else:
            mine = mine.filter(finished_at=outcome.finished_at)
            if worker_id is not None:
                mine = mine.filter(worker_id=worker_id)
        if not mine.exists():
            worker_logger.warning(
                "Task id=%s was recovered by another worker while it ran: its outcome (%s) "
                "was not saved",
                normalize_uuid(row.pk),
                outcome.status,
            )
            return False
    for name, value in columns.items():
        setattr(row, name, value)
    return True
