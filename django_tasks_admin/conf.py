"""Dashboard settings: ``DJANGO_TASKS_ADMIN = {...}`` overrides these defaults."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Rows per page of the results list.
    "PER_PAGE": 50,
    # Seconds between two polls of a live region (list rows, detail page, progress bar).
    "POLL_SECONDS": 3,
    # "Retry all matching" and "cancel all matching" change at most this many rows
    # within the request; larger sets run as a background task.
    "RETRY_CAP": 1000,
    # Backend alias that runs the background bulk retry or cancel (None: the default backend).
    "BULK_RETRY_BACKEND": None,
    # Queue of that task (None: "default"); a db_worker must serve it.
    "BULK_RETRY_QUEUE": None,
    # Rows per UPDATE in the background bulk retry or cancel (progress is saved after each).
    "BULK_RETRY_BATCH": 500,
    # Failures listed on the overview.
    "RECENT_FAILURES": 10,
    # The bearer token Prometheus sends to read the metrics endpoint without a login
    # (None: only logged-in staff who may view task results can read it).
    "METRICS_TOKEN": None,
    # A traceback frame whose file path contains one of these is a library frame.
    "LIBRARY_PATH_MARKERS": ("/site-packages/", "/dist-packages/", "<frozen "),
}


def get(name: str) -> Any:
    """Return the setting ``name`` (the project's value, else the default)."""
    overrides: dict[str, Any] = getattr(settings, "DJANGO_TASKS_ADMIN", {}) or {}
    return overrides.get(name, DEFAULTS[name])
