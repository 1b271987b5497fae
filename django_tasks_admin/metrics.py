"""Metrics for Prometheus: queues, throughput, failures and workers, read at each scrape.

Built from what the Queues and Workers pages read (``services.queues``,
``services.rollup``, ``workers``), so the numbers agree with the dashboard.
Needs prometheus-client (``pip install "django-tasks-plus[metrics]"``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from django_tasks.backends.database.services.queues import COUNT_CAP, queue_states
from django_tasks.backends.database.services.rollup import queue_activity, queue_totals

from .workers import LATE, LOST, OK, worker_states

PREFIX = "django_tasks"


class TasksCollector:
    """A prometheus-client collector: every value comes from the database at collect()."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["backend", "queue"]
        ready = GaugeMetricFamily(
            f"{PREFIX}_queue_ready",
            f"Tasks ready to run now, not yet claimed (counted up to {COUNT_CAP + 1}).",
            labels=labels,
        )
        deferred = GaugeMetricFamily(
            f"{PREFIX}_queue_deferred",
            f"Tasks waiting for their run_after time (counted up to {COUNT_CAP + 1}).",
            labels=labels,
        )
        running = GaugeMetricFamily(
            f"{PREFIX}_queue_running", "Tasks a worker is running.", labels=labels
        )
        latency = GaugeMetricFamily(
            f"{PREFIX}_queue_latency_seconds",
            "How long the longest-waiting ready task has waited (0: none waits).",
            labels=labels,
        )
        paused = GaugeMetricFamily(
            f"{PREFIX}_queue_paused", "1 while the queue is paused, else 0.", labels=labels
        )
        states = queue_states()
        for state in states:
            values = [state.backend_name, state.name]
            ready.add_metric(values, state.waiting + state.waiting_capped)
            deferred.add_metric(values, state.deferred + state.deferred_capped)
            running.add_metric(values, state.running + state.running_capped)
            wait = state.latency
            latency.add_metric(values, wait.total_seconds() if wait is not None else 0.0)
            paused.add_metric(values, 1 if state.paused else 0)
        yield from (ready, deferred, running, latency, paused)

        finished = CounterMetricFamily(
            f"{PREFIX}_finished",
            "Tasks finished, by final outcome, as counted by the workers' roll-up (each "
            "minute about a minute after it ends; pruning does not lower it).",
            labels=[*labels, "outcome"],
        )
        for (backend, queue), row in sorted(queue_totals().items()):
            finished.add_metric([backend, queue, "completed"], row.completed_total)
            finished.add_metric([backend, queue, "failed"], row.failed_total)
        yield finished

        run_time = GaugeMetricFamily(
            f"{PREFIX}_run_time_seconds",
            "Run time of the tasks that finished in the last hour, estimated from buckets.",
            labels=[*labels, "quantile"],
        )
        for backend in sorted({s.backend_name for s in states}):
            for queue, activity in queue_activity(backend).items():
                for quantile, seconds in (
                    ("0.5", activity.p50_seconds),
                    ("0.95", activity.p95_seconds),
                ):
                    if seconds is not None:
                        run_time.add_metric([backend, queue, quantile], seconds)
        yield run_time

        workers = GaugeMetricFamily(
            f"{PREFIX}_workers",
            "Registered db_worker processes, by heartbeat state (ok, late, lost).",
            labels=["backend", "state"],
        )
        by_state = Counter((w.worker.backend_name, w.state) for w in worker_states())
        for backend in sorted({b for b, _ in by_state} | {s.backend_name for s in states}):
            for state_name in (OK, LATE, LOST):
                workers.add_metric([backend, state_name], by_state[backend, state_name])
        yield workers


def render() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(TasksCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
