"""The Prometheus endpoint: what it counts, and who may read it."""

from __future__ import annotations

import sys
import uuid
from datetime import timedelta
from typing import Any

from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from django_tasks.backends.database import services
from django_tasks.backends.database.services import rollup
from django_tasks.backends.database.services.queues import pause_queue
from tests import tasks as test_tasks

from .utils import DashboardTestCase, run_attempt, url


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each sample's value by (name, sorted labels), as Prometheus parses the page."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


class MetricsTests(DashboardTestCase):
    def scrape(self, client: Client | None = None, **headers: Any) -> Any:
        return (client or self.client).get(url("metrics"), **headers)

    def test_queues_throughput_failures_and_workers(self) -> None:
        for _ in range(3):
            test_tasks.noop_task.using(queue_name="mail").enqueue()
        test_tasks.noop_task.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
        done = test_tasks.calculate_meaning_of_life.enqueue()
        run_attempt(done.id)
        failed = test_tasks.failing_task_value_error.enqueue()
        run_attempt(failed.id)
        while rollup.roll_up(backend_name="default", now=timezone.now() + timedelta(minutes=2)):
            pass
        pause_queue(backend_name="default", queue_name="mail", by="admin")
        services.register_worker(
            worker_id=uuid.uuid4(), backend_name="default", queue_names=None, threads=1
        )

        response = self.scrape()
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain; version="))
        values = samples(response.content.decode())
        mail = {"backend": "default", "queue": "mail"}
        default = {"backend": "default", "queue": "default"}
        self.assertEqual(values[key("django_tasks_queue_ready", **mail)], 3)
        self.assertEqual(values[key("django_tasks_queue_paused", **mail)], 1)
        self.assertEqual(values[key("django_tasks_queue_paused", **default)], 0)
        self.assertEqual(values[key("django_tasks_queue_deferred", **default)], 1)
        self.assertGreater(values[key("django_tasks_queue_latency_seconds", **mail)], 0)
        self.assertEqual(values[key("django_tasks_queue_latency_seconds", **default)], 0)
        completed = key("django_tasks_finished_total", outcome="completed", **default)
        self.assertEqual(values[completed], 1)
        self.assertEqual(values[key("django_tasks_finished_total", outcome="failed", **default)], 1)
        self.assertIn(key("django_tasks_run_time_seconds", quantile="0.5", **default), values)
        self.assertEqual(values[key("django_tasks_workers", backend="default", state="ok")], 1)
        self.assertEqual(values[key("django_tasks_workers", backend="default", state="lost")], 0)

    def test_needs_a_login_with_view_permission(self) -> None:
        self.assertEqual(self.scrape(Client()).status_code, 403)
        self.client.force_login(self.nobody)
        response = self.scrape()
        self.assertEqual(response.status_code, 403)
        self.assertIn(b"METRICS_TOKEN", response.content)
        self.client.force_login(self.viewer)
        self.assertEqual(self.scrape().status_code, 200)

    @override_settings(DJANGO_TASKS_ADMIN={"METRICS_TOKEN": "s3cret"})
    def test_or_the_bearer_token(self) -> None:
        anonymous = Client()
        ok = self.scrape(anonymous, HTTP_AUTHORIZATION="Bearer s3cret")
        self.assertEqual(ok.status_code, 200)
        self.assertIn(b"django_tasks_queue_ready", ok.content)
        for wrong in ("Bearer nope", "Basic s3cret", "s3cret", ""):
            self.assertEqual(self.scrape(anonymous, HTTP_AUTHORIZATION=wrong).status_code, 403)

    def test_without_prometheus_client_says_what_to_install(self) -> None:
        saved = {
            name: sys.modules[name]
            for name in list(sys.modules)
            if name.startswith("prometheus_client")
        }
        try:
            for name in saved:
                sys.modules[name] = None  # type: ignore[assignment]
            response = self.scrape()
        finally:
            sys.modules.update(saved)
        self.assertEqual(response.status_code, 501)
        self.assertIn(b"django-tasks-plus[metrics]", response.content)
