"""What the result detail page shows of a row."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from django_tasks.backends.database.attempts import Attempt
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.backends.database.services import is_cancelled, paused_queues
from django_tasks.task import LIVE_STATUSES, ResultStatus
from django_tasks.utils import exception_message

from .attempts import attempt_line, is_time_limit, seconds_text
from .formatting import duration_text, pretty_json, task_name
from .live import fingerprint
from .tables import django_status_name
from .tracebacks import parse_traceback

# The columns whose change re-renders a polled detail page.  A failed attempt that is
# retried between two polls leaves the row NEW as before: its new run_after tells.
POLL_FIELDS = ("status", "started_at", "finished_at", "enqueued_at", "run_after")


def result_context(result: DBTaskResult, *, request: HttpRequest, admin: Any) -> dict[str, Any]:
    """What the detail page (and its live region) shows of ``result``."""
    name, module = task_name(result.task_path)
    data = result.exception_data if isinstance(result.exception_data, dict) else None
    args_kwargs = result.args_kwargs if isinstance(result.args_kwargs, dict) else {}
    waiting_from = max(filter(None, [result.enqueued_at, result.run_after]), default=None)
    worker = None
    if result.worker_id:
        worker = DBWorker.objects.filter(pk=result.worker_id).first()
    live = result.status in LIVE_STATUSES
    history = result.attempt_history
    first_enqueued = history[0].enqueued_at if history else None
    return {
        "result": result,
        # django.tasks' name for the status, on its rows, where it differs from ours.
        "django_status": django_status_name(result.status, result.api),
        "task_name": name,
        "task_module": module,
        "live": live,
        "fingerprint": fingerprint(tuple(getattr(result, name) for name in POLL_FIELDS)),
        "waiting": duration_text(result.started_at - waiting_from)
        if result.started_at and waiting_from
        else None,
        "running": duration_text(result.finished_at - result.started_at)
        if result.finished_at and result.started_at
        else None,
        "args_json": pretty_json(args_kwargs.get("args", [])),
        "kwargs_json": pretty_json(args_kwargs.get("kwargs", {})),
        "return_json": pretty_json(result.return_value)
        if result.status == ResultStatus.COMPLETE
        else None,
        "exception": {
            "type": data.get("exc_type", ""),
            "message": exception_message(data.get("exc_args", [])),
            "sections": parse_traceback(data.get("exc_traceback")),
            "raw": data.get("exc_traceback", ""),
            "time_limit": is_time_limit(data.get("exc_type")),
        }
        if data
        else None,
        # Newest first, numbered from the first attempt.
        "attempts": [_attempt(a, number) for number, a in reversed(list(enumerate(history, 1)))],
        "attempt_line": attempt_line(result),
        # A retry by hand re-enqueues (enqueued_at reset): the first attempt kept the original.
        "first_enqueued_at": first_enqueued if first_enqueued != result.enqueued_at else None,
        "time_limit_text": seconds_text(result.time_limit) if result.time_limit is not None else "",
        "worker": worker,
        "queue_paused": result.queue_name in paused_queues(result.backend_name),
        "can_retry_this": result.status == ResultStatus.FAILED
        and admin.has_retry_permission(request),
        "can_cancel_this": result.status == ResultStatus.NEW
        and admin.has_cancel_permission(request),
        "cancelled": is_cancelled(result),
        "cancel_url": reverse(admin.dashboard_url_name("cancel"), args=[result.pk]),
        "detail_url": reverse(admin.dashboard_url_name("change"), args=[result.pk]),
        "retry_url": reverse(admin.dashboard_url_name("retry"), args=[result.pk]),
    }


def _attempt(attempt: Attempt, number: int) -> dict[str, Any]:
    started, finished = attempt.started_at, attempt.finished_at
    return {
        "enqueued_at": attempt.enqueued_at,
        "started_at": started,
        "finished_at": finished,
        "number": number,
        "exception_class_path": attempt.exception_class_path or "",
        "time_limit": is_time_limit(attempt.exception_class_path),
        "message": attempt.message or "",
        "sections": parse_traceback(attempt.traceback),
        "worker_id": attempt.worker_id,
        "running": duration_text(finished - started) if started and finished else None,
    }
