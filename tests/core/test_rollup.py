"""The roll-up of finished tasks per queue and minute (services.rollup).

Rows are made as production makes them: enqueued, then claimed and run as the
worker runs them (``services.claim_tasks`` + ``services.run_task``).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from django_tasks import ResultStatus
from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBQueue, DBQueueMinute, DBRollup, DBTaskResult
from django_tasks.backends.database.services import rollup
from django_tasks.backends.database.services.rollup import Counts, floor_minute
from tests import retry_tasks
from tests.worker_helpers import ROOT, Workers, fail_with, record_run, wait_until, worker_env
from tests.worker_settings import WORKER_TASKS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("database_tasks")]

WORKER_ID = "6f1c7a8e-1b0e-4c55-9f37-3f0a2d3b9c11"


@pytest.fixture
def database_tasks() -> Any:
    with override_settings(TASKS=WORKER_TASKS):
        yield


def run_all() -> Counter[str]:
    """Claim and run every ready task as the worker does; count the statuses saved."""
    statuses: Counter[str] = Counter()
    while rows := services.claim_tasks(
        backend_name="default", queue_names=None, worker_id=WORKER_ID, limit=50
    ):
        for row in rows:
            statuses[str(services.run_task(row, worker_id=WORKER_ID))] += 1
    return statuses


def finish_some(tmp_path: Path) -> None:
    """3 completed on "default", 2 completed and 1 failed on "mail", 1 cancelled."""
    log = str(tmp_path / "runs")
    for token in "abc":
        record_run.enqueue(log, token)
    for token in "de":
        record_run.using(queue_name="mail").enqueue(log, token)
    fail_with.using(queue_name="mail").enqueue(log, "f")
    cancelled = record_run.enqueue(log, "never")
    services.cancel_one(cancelled.id)
    assert run_all() == {ResultStatus.COMPLETE: 5, ResultStatus.FAILED: 1}


def later(minutes: float = 2) -> datetime:
    return timezone.now() + timedelta(minutes=minutes)


def totals(counted: dict[tuple[str, datetime], Counts]) -> dict[str, tuple[int, int]]:
    by_queue: dict[str, Counts] = {}
    for (queue, _minute), counts in counted.items():
        by_queue[queue] = by_queue.get(queue, Counts()) + counts
    return {queue: (c.completed, c.failed) for queue, c in sorted(by_queue.items())}


def test_counts_outcomes_per_queue_leaving_out_cancelled(tmp_path: Path) -> None:
    finish_some(tmp_path)
    counted = rollup.counts_by_minute("default", since=later(-10), until=later())
    assert totals(counted) == {"default": (3, 0), "mail": (2, 1)}
    # Every counted run was timed: the buckets hold them all.
    assert sum(sum(c.buckets) for c in counted.values()) == 6


def test_rolled_up_minutes_give_the_counts_the_results_gave(tmp_path: Path) -> None:
    finish_some(tmp_path)
    since, until = later(-10), later(3)
    before = rollup.counts_by_minute("default", since=since, until=until)

    rolled = calls = 0
    while step := rollup.roll_up(backend_name="default", now=later(3)):
        rolled += step
        calls += 1
    # The first roll-up of a backend starts a horizon back; the quiet minutes before
    # the first finished task are passed over at once, then ten minutes per call.
    assert rolled == rollup.HORIZON / timedelta(minutes=1)
    assert calls == 1
    assert DBQueueMinute.objects.exists()
    assert rollup.counts_by_minute("default", since=since, until=until) == before

    # Pruned results stay counted: the charts and totals keep them.
    DBTaskResult.objects.all().delete()
    assert rollup.counts_by_minute("default", since=since, until=until) == before
    queues = {q.name: (q.completed_total, q.failed_total) for q in DBQueue.objects.all()}
    assert queues == {"default": (3, 0), "mail": (2, 1)}


def test_a_minute_is_rolled_up_once_its_grace_has_passed(tmp_path: Path) -> None:
    finish_some(tmp_path)
    now = timezone.now()
    while rollup.roll_up(backend_name="default", now=now):
        pass
    # The current minute is not closed: its results are still read from the table.
    assert not DBQueueMinute.objects.filter(minute__gte=floor_minute(now)).exists()
    (rolled_until,) = DBRollup.objects.values_list("rolled_until", flat=True)
    assert rolled_until == floor_minute(now - rollup.GRACE)
    assert rollup.roll_up(backend_name="default", now=now) == 0


def test_a_failed_attempt_that_will_be_retried_is_not_a_failure_yet(tmp_path: Path) -> None:
    retry_tasks.always_fails.enqueue(str(tmp_path / "runs"), "x")  # three attempts
    (row,) = services.claim_tasks(backend_name="default", queue_names=None, worker_id=WORKER_ID)
    assert services.run_task(row, worker_id=WORKER_ID) == ResultStatus.NEW
    counted = rollup.counts_by_minute("default", since=later(-10), until=later())
    assert totals(counted) == {}
    # Its final outcome counts once, not once per attempt.
    run_all()
    counted = rollup.counts_by_minute("default", since=later(-10), until=later())
    assert totals(counted) == {"default": (0, 1)}


def test_queue_activity_windows_and_run_time_estimates(tmp_path: Path) -> None:
    finish_some(tmp_path)
    activity = rollup.queue_activity("default", now=later(0.01))
    mail = activity["mail"]
    assert (mail.completed_5m, mail.failed_5m) == (2, 1)
    assert (mail.completed_1d, mail.failed_1d) == (2, 1)
    assert mail.failure_rate_1h == pytest.approx(1 / 3)
    assert mail.p50_seconds is not None and 0 <= mail.p50_seconds <= rollup.RUN_TIME_BUCKETS[0]
    # An hour later the 5-minute window is empty and the day still holds them.
    hour_later = rollup.queue_activity("default", now=later(61))["mail"]
    assert (hour_later.completed_5m, hour_later.completed_1h, hour_later.completed_1d) == (0, 0, 2)


def test_series_puts_each_run_in_its_step(tmp_path: Path) -> None:
    finish_some(tmp_path)
    now = later(0.01)
    minutes = rollup.series("default", step=timedelta(minutes=1), steps=60, now=now)
    assert len(minutes.points) == 60 and minutes.starts[-1] == floor_minute(now)
    assert (minutes.total.completed, minutes.total.failed) == (5, 1)
    assert minutes.peak == max(p.finished for p in minutes.points) > 0
    hours = rollup.series("default", step=timedelta(hours=1), steps=24, queue_name="mail", now=now)
    assert hours.starts[-1] == now.replace(minute=0, second=0, microsecond=0)
    # In the current hour, or the one before if it just turned.
    recent = hours.points[-1] + hours.points[-2]
    assert (recent.completed, recent.failed) == (2, 1)
    assert sum(p.finished for p in hours.points[:-2]) == 0


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ((), 0.5, None),
        ((0, 0, 4), 0.5, 0.0175),  # halfway through (0.01, 0.025]
        ((4,), 1.0, 0.005),
        ((0,) * len(rollup.RUN_TIME_BUCKETS) + (3,), 0.95, 3600.0),  # the open bucket
    ],
)
def test_run_time_quantile_from_buckets(buckets: tuple[int, ...], q: float, expected: Any) -> None:
    assert Counts(buckets=buckets).run_time_quantile(q) == pytest.approx(expected)


@pytest.mark.slow
def test_four_processes_roll_up_each_minute_once(tmp_path: Path) -> None:
    finish_some(tmp_path)
    minutes = 8
    start = floor_minute(timezone.now()) - timedelta(minutes=minutes - 3)
    DBRollup.objects.create(backend_name="default", rolled_until=start)
    command = [
        *(sys.executable, "-m", "tests.rollup_driver"),
        *(start.isoformat(), str(minutes), str(tmp_path), "4"),
    ]
    drivers = [
        subprocess.Popen(
            command, env=worker_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(4)
    ]
    outputs = [d.communicate(timeout=120)[0].decode() for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0, 0, 0], outputs

    assert DBRollup.objects.get().rolled_until == start + timedelta(minutes=minutes)
    queues = {q.name: (q.completed_total, q.failed_total) for q in DBQueue.objects.all()}
    assert queues == {"default": (3, 0), "mail": (2, 1)}
    rolled = DBQueueMinute.objects.all()
    assert sum(m.completed for m in rolled) == 5 and sum(m.failed for m in rolled) == 1


@pytest.mark.slow
def test_running_workers_roll_up_to_the_last_closed_minute(
    tmp_path: Path, workers: Workers
) -> None:
    log = str(tmp_path / "runs")
    results = [record_run.enqueue(log, str(n)) for n in range(20)]
    started = [
        workers.start("--interval", "0.1", "--heartbeat-timeout", "2", tasks=WORKER_TASKS)
        for _ in range(2)
    ]

    def caught_up() -> bool:
        due = floor_minute(timezone.now() - rollup.GRACE)
        return DBRollup.objects.filter(rolled_until__gte=due).exists()

    wait_until(caught_up, timeout=60, what="the workers' roll-up to catch up a day")
    wait_until(
        lambda: DBTaskResult.objects.filter(status=ResultStatus.COMPLETE).count() == len(results),
        what="the tasks to run",
    )
    for worker in started:
        worker.send_signal()
    assert workers.wait_all() == [0, 0], workers.outputs()
    # Each minute of the day was counted once, by one worker or the other.
    assert DBRollup.objects.count() == 1
    assert "Rolling up finished tasks failed" not in workers.outputs()
