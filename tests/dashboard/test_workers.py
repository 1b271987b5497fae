"""The Workers page: each db_worker's tasks, memory, counters and heartbeat state."""

from __future__ import annotations

import os
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBWorker
from django_tasks.backends.database.worker.options import WorkerOptions
from django_tasks_admin.workers import (
    LATE,
    LOST,
    OK,
    heartbeat_interval,
    heartbeat_state,
    worker_states,
)
from tests import tasks as test_tasks

from .utils import DB_TASKS, DashboardTestCase, claim, search, url


def register(**kwargs: object) -> uuid.UUID:
    """Register a worker as db_worker does, and send one heartbeat."""
    worker_id = uuid.uuid4()
    services.register_worker(
        worker_id=worker_id,
        backend_name="default",
        queue_names=kwargs.pop("queue_names", None),  # type: ignore[arg-type]
        threads=kwargs.pop("threads", 2),  # type: ignore[arg-type]
    )
    assert services.heartbeat(worker_id=worker_id, tasks_done=7, tasks_failed=2)
    return worker_id


def silent_for(worker_id: uuid.UUID, seconds: float) -> None:
    """Make the worker's last heartbeat ``seconds`` old (as if it had stopped sending them)."""
    DBWorker.objects.filter(pk=worker_id).update(
        last_heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


class HeartbeatStateTests(DashboardTestCase):
    def test_interval_is_the_workers_own(self):
        for timeout in (0.2, 3, 20, 60, 600):
            options = WorkerOptions.from_command_line(
                queue_names=["*"],
                interval=1,
                batch=False,
                backend_name="default",
                startup_delay=False,
                heartbeat_timeout=timeout,
            )
            assert heartbeat_interval(timeout) == options.heartbeat_interval, timeout

    def test_late_after_two_intervals_lost_after_the_timeout(self):
        # timeout 20 s: a heartbeat every 4 s, late after 8 s.
        assert heartbeat_state(timedelta(seconds=7.9), 20) == OK
        assert heartbeat_state(timedelta(seconds=8.1), 20) == LATE
        assert heartbeat_state(timedelta(seconds=19.9), 20) == LATE
        assert heartbeat_state(timedelta(seconds=20.1), 20) == LOST

    def test_heartbeat_records_the_workers_memory(self):
        worker_id = register()
        rss = DBWorker.objects.get(pk=worker_id).rss_bytes
        if Path("/proc/self/statm").exists():
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            expected = pages * os.sysconf("SC_PAGE_SIZE")
            assert rss is not None
            # This process, measured a moment apart: within 10 %.
            assert abs(rss - expected) < expected / 10
        else:
            assert rss is None


class WorkersPageTests(DashboardTestCase):
    def test_shows_each_worker_with_its_current_tasks(self):
        worker_id = register(queue_names=["emails", "reports"], threads=4)
        result = test_tasks.noop_task.enqueue()
        claim(result.id, worker_id)
        with override_settings(TASKS=DB_TASKS):
            response = self.client.get(url("workers"))
        assert response.status_code == 200
        content = response.content.decode()
        row = search(rf'<tr id="dt-worker-{worker_id}".*?</tr>', content, re.S)[0]
        worker = DBWorker.objects.get(pk=worker_id)
        assert f"{worker.host}:{worker.pid}" in row
        assert 'data-state="ok"' in row
        assert "emails, reports" in row
        assert ">4<" in row  # threads
        assert url("change", result.id) in row
        assert "noop_task" in row
        assert search(r"running for [\d.]+ (ms|s)", row)
        assert ">7<" in row and ">2<" in row  # done, failed
        assert search(r"\d+(\.\d)?\s(MB|KB|bytes)", row)  # memory
        assert "late after 8 s, lost after 20 s" in row
        assert "ago" in search(r'class="dt-heartbeat-age">[^<]*', row)[0]

    def test_an_idle_worker_says_so(self):
        worker_id = register()
        content = self.client.get(url("workers")).content.decode()
        row = search(rf'<tr id="dt-worker-{worker_id}".*?</tr>', content, re.S)[0]
        assert "idle" in row

    def test_a_late_heartbeat_shows_at_once_then_lost(self):
        worker_id = register()
        silent_for(worker_id, 9)  # more than two intervals (8 s), less than the timeout
        content = self.client.get(url("workers")).content.decode()
        row = search(rf'<tr id="dt-worker-{worker_id}".*?</tr>', content, re.S)[0]
        assert 'data-state="late"' in row
        assert "1 worker's heartbeat is late." in content
        silent_for(worker_id, 25)
        content = self.client.get(url("workers")).content.decode()
        assert 'data-state="lost"' in content
        assert [s.state for s in worker_states()] == [LOST]

    def test_state_follows_the_backends_heartbeat_timeout(self):
        default: dict[str, Any] = dict(DB_TASKS["default"])  # type: ignore[call-overload]
        tasks = {"default": {**default, "OPTIONS": {"heartbeat_timeout": 60}}}
        worker_id = register()
        silent_for(worker_id, 9)
        with override_settings(TASKS=tasks):
            (state,) = worker_states()
        assert state.state == OK  # late only after 2 x 5 s (60 s / 5, at most 5 s)
        silent_for(worker_id, 11)
        with override_settings(TASKS=tasks):
            (state,) = worker_states()
        assert state.state == LATE

    def test_without_workers_says_none_runs(self):
        content = self.client.get(url("workers")).content.decode()
        assert "No db_worker is running" in content

    def test_htmx_poll_gets_the_region(self):
        register()
        response = self.htmx(url("workers"), "dt-workers")
        content = response.content.decode()
        assert response.status_code == 200
        assert "<html" not in content
        assert content.lstrip().startswith('<section id="dt-workers"')
        assert "every 3s [document.visibilityState === 'visible']" in content

    def test_query_count_does_not_grow_with_workers(self):
        def count() -> int:
            self.client.get(url("workers"))
            with CaptureQueriesContext(connection) as queries:
                self.client.get(url("workers"))
            return len(queries.captured_queries)

        first = register()
        claim(test_tasks.noop_task.enqueue().id, first)
        few = count()
        for _ in range(5):
            worker_id = register()
            claim(test_tasks.noop_task.enqueue().id, worker_id)
        assert count() == few

    def test_linked_from_the_overview_and_the_tabs(self):
        content = self.client.get(url("overview")).content.decode()
        assert f'href="{url("workers")}"' in content
        assert 'class="dt-workers-link"' in content

    def test_overview_marks_a_late_worker(self):
        worker_id = register()
        silent_for(worker_id, 9)
        content = self.client.get(url("overview")).content.decode()
        assert 'data-state="late"' in content

    def test_staff_with_view_permission_only(self):
        register()
        self.client.force_login(self.viewer)
        assert self.client.get(url("workers")).status_code == 200
        self.client.force_login(self.nobody)
        assert self.client.get(url("workers")).status_code == 403
        self.client.logout()
        response = self.client.get(url("workers"))
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
