"""Live regions: htmx requests, poll fingerprints, and how idle polls are answered."""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpRequest, HttpResponse
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's HtmxMiddleware."""

    htmx: HtmxDetails


def fingerprint(values: Any) -> str:
    """A short digest of what a live region shows, to answer idle polls with 204."""
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def no_change() -> HttpResponse:
    """The answer to a poll when nothing changed: htmx swaps nothing on 204."""
    return HttpResponse(status=204)
