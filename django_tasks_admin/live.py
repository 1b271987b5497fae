"""Live regions: htmx requests, poll fingerprints, and how idle polls are answered."""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpRequest, HttpResponse

from django_tasks.task import ResultStatus

LIVE_STATUSES = (ResultStatus.NEW, ResultStatus.RUNNING)
FINISHED_STATUSES = (ResultStatus.COMPLETE, ResultStatus.FAILED)
HTTP_STOP_POLLING = 286


def htmx_target(request: HttpRequest) -> str | None:
    """The id of the element an htmx request targets, or None if it isn't htmx."""
    htmx = getattr(request, "htmx", None)
    if htmx is not None:
        return htmx.target if htmx else None
    if request.headers.get("HX-Request") == "true":  # HtmxMiddleware not installed
        return request.headers.get("HX-Target") or ""
    return None


def fingerprint(values: Any) -> str:
    """A short digest of what a live region shows, to answer idle polls with 204."""
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def no_change() -> HttpResponse:
    """The answer to a poll when nothing changed: htmx swaps nothing on 204."""
    return HttpResponse(status=204)
