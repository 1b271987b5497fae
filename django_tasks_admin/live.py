"""Live regions: htmx requests, poll fingerprints, and how idle polls are answered.

A live region polls its own URL with the fingerprint of what it shows; the view
answers 204 (htmx swaps nothing) while the fingerprint is the same, and the region
re-rendered otherwise.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.db import connections, router
from django.db.models import Count, F, QuerySet, Sum, Value
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse
from django_htmx.middleware import HtmxDetails

from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.backends.database.services import heartbeat_timeout_for
from django_tasks.backends.database.services.queues import database_backends
from django_tasks.task import ResultStatus

from .workers import heartbeat_interval


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's HtmxMiddleware."""

    htmx: HtmxDetails


def fingerprint(values: Any) -> str:
    """A short digest of what a live region shows, to answer idle polls with 204."""
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def no_change() -> HttpResponse:
    """The answer to a poll when nothing changed: htmx swaps nothing on 204."""
    return HttpResponse(status=204)


def _whole(query: QuerySet[Any], **aggregate: Any) -> QuerySet[Any]:
    """One aggregate over all of ``query``, as a one-column, one-row subquery."""
    (name,) = aggregate
    grouped: QuerySet[Any] = query.annotate(_all=Value(1)).values("_all").annotate(**aggregate)
    return grouped.values(name)


def overview_probes() -> list[QuerySet[Any]]:
    """The one-value queries whose answers change whenever the overview would.

    Every change of a result stamps a column they read, through an index in
    model order: an enqueue or a retry (newest ``enqueued_at``), a claim (the number
    of RUNNING rows, as small as the workers' threads), an outcome (newest
    ``finished_at`` per status), a prune (oldest ``enqueued_at``), a deferred task
    coming due (the next future ``run_after``).  Of workers (a table of a few rows):
    their number, newest start, task counters, and how many are late or lost by
    their backend's heartbeat timeout.
    """
    results = DBTaskResult.objects.order_by()
    workers = DBWorker.objects.order_by()
    probes: list[QuerySet[Any]] = [
        results.order_by("-enqueued_at").values("enqueued_at")[:1],
        results.order_by("enqueued_at").values("enqueued_at")[:1],
        _whole(results.filter(status=ResultStatus.RUNNING), n=Count("pk")),
        results.filter(status=ResultStatus.NEW, run_after__gt=Now())
        .order_by("run_after")
        .values("run_after")[:1],
        results.filter(status=ResultStatus.COMPLETE)
        .order_by("-finished_at")
        .values("finished_at")[:1],
        results.filter(status=ResultStatus.FAILED)
        .order_by("-finished_at")
        .values("finished_at")[:1],
        _whole(workers, n=Count("pk")),
        workers.order_by("-started_at").values("started_at")[:1],
        _whole(workers, n=Sum(F("tasks_done") + F("tasks_failed"))),
    ]
    for backend_name in sorted(database_backends()):
        timeout = heartbeat_timeout_for(backend_name)
        for seconds in (2 * heartbeat_interval(timeout), timeout):
            silent = workers.filter(
                backend_name=backend_name,
                last_heartbeat_at__lt=Now() - timedelta(seconds=seconds),
            )
            probes.append(_whole(silent, n=Count("pk")))
    return probes


def read_probes(probes: list[QuerySet[Any]]) -> tuple[Any, ...]:
    """Run one-value queries as one statement (``SELECT (q1), (q2), ...``): one round trip."""
    using = router.db_for_read(DBTaskResult)
    parts, params = [], []
    for probe in probes:
        sql, probe_params = probe.query.get_compiler(using=using).as_sql()
        parts.append(f"({sql})")
        params.extend(probe_params)
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    return tuple(row)


def overview_fingerprint() -> str:
    """The fingerprint of the overview: one statement of cheap probes."""
    return fingerprint(read_probes(overview_probes()))
