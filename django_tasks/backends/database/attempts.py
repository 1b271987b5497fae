"""The record of one earlier attempt, kept in a row's ``attempts`` list.

A retry (dashboard, admin action, ``services.retry``) keeps the failure it
clears; a "worker lost" recovery that requeues keeps the lost run.  Both write
an :class:`Attempt` with :meth:`Attempt.to_json`; readers use
``DBTaskResult.attempt_history`` (:meth:`Attempt.from_json`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django_tasks.utils import exception_message

from .utils import normalize_uuid


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One finished attempt of a task that was later run again."""

    exception_class_path: str | None
    message: str | None
    traceback: str | None
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None

    @classmethod
    def failed(
        cls,
        *,
        exception_data: Any,
        enqueued_at: datetime | None,
        started_at: datetime | None,
        finished_at: datetime | None,
        worker_id: UUID | str | None,
    ) -> Attempt:
        """The attempt recorded by a FAILED row's columns (``exception_data`` may be None)."""
        data = exception_data if isinstance(exception_data, dict) else {}
        return cls(
            exception_class_path=data.get("exc_type"),
            message=exception_message(data["exc_args"]) if "exc_args" in data else None,
            traceback=data.get("exc_traceback"),
            enqueued_at=enqueued_at,
            started_at=started_at,
            finished_at=finished_at,
            worker_id=normalize_uuid(worker_id) if worker_id else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in ``attempts`` (datetimes in ISO 8601)."""
        return {
            "exception_class_path": self.exception_class_path,
            "message": self.message,
            "traceback": self.traceback,
            "enqueued_at": _isoformat(self.enqueued_at),
            "started_at": _isoformat(self.started_at),
            "finished_at": _isoformat(self.finished_at),
            "worker_id": self.worker_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        """Read a stored record back; missing keys are None."""
        return cls(
            exception_class_path=data.get("exception_class_path"),
            message=data.get("message"),
            traceback=data.get("traceback"),
            enqueued_at=_parse(data.get("enqueued_at")),
            started_at=_parse(data.get("started_at")),
            finished_at=_parse(data.get("finished_at")),
            worker_id=data.get("worker_id"),
        )


def _isoformat(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
