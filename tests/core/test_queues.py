"""Queues: pause and resume, what workers skip, the backlog counts, and db_task_queues.

The worker tests run real ``db_worker`` subprocesses: a paused queue is not
claimed from while the worker serves others, its tasks run within a poll interval
of the resume, and the pause outlives the worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks import ResultStatus
from django_tasks.backends.database import claims, services
from django_tasks.backends.database.models import DBQueue, DBTaskResult
from django_tasks.backends.database.services import queues
from tests.worker_helpers import Workers, record_run, runs, wait_until
from tests.worker_settings import WORKER_TASKS

pytestmark = [pytest.mark.django_db(transaction=True)]

WORKER_ID = uuid.uuid4()

QUEUES_TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": ["default", "emails", "reports"],
        "ENQUEUE_ON_COMMIT": False,
    },
    "anyqueue": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": [],
        "ENQUEUE_ON_COMMIT": False,
    },
    "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": []},
}


@pytest.fixture(autouse=True)
def queue_backends() -> Iterator[None]:
    with override_settings(TASKS=QUEUES_TASKS):
        yield


def make_row(queue: str = "default", backend: str = "default", **fields: Any) -> DBTaskResult:
    fields = {
        "args_kwargs": {"args": [], "kwargs": {}},
        "task_path": "tests.worker_helpers.record_run",
        "backend_name": backend,
        "queue_name": queue,
        **fields,
    }
    return DBTaskResult.objects.create(**fields)


# --- pause and resume ----------------------------------------------------------------


def test_pause_then_resume_change_the_row_once() -> None:
    assert services.pause_queue(backend_name="default", queue_name="emails", by="alice")
    row = DBQueue.objects.get(backend_name="default", name="emails")
    assert row.paused and row.changed_by == "alice" and row.changed_at is not None
    assert not services.pause_queue(backend_name="default", queue_name="emails", by="bob")
    row.refresh_from_db()
    assert row.changed_by == "alice"  # nothing changed: nothing recorded

    assert services.resume_queue(backend_name="default", queue_name="emails", by="bob")
    row.refresh_from_db()
    assert not row.paused and row.changed_by == "bob"
    assert not services.resume_queue(backend_name="default", queue_name="emails")


def test_resuming_a_queue_never_paused_stores_nothing() -> None:
    assert not services.resume_queue(backend_name="default", queue_name="reports")
    assert not DBQueue.objects.exists()


def test_paused_queues_are_per_backend() -> None:
    services.pause_queue(backend_name="default", queue_name="emails")
    services.pause_queue(backend_name="default", queue_name="reports")
    services.pause_queue(backend_name="anyqueue", queue_name="anything")
    services.resume_queue(backend_name="default", queue_name="reports")
    assert services.paused_queues("default") == frozenset({"emails"})
    assert services.paused_queues("anyqueue") == frozenset({"anything"})


def test_unknown_backend_is_refused_naming_the_database_backends() -> None:
    with pytest.raises(services.UnknownQueue) as e:
        services.pause_queue(backend_name="nope", queue_name="default")
    assert str(e.value) == (
        "'nope' is not a database backend; database backends: 'anyqueue', 'default'"
    )
    with pytest.raises(services.UnknownQueue, match="'immediate' is not a database backend"):
        services.pause_queue(backend_name="immediate", queue_name="default")
    assert not DBQueue.objects.exists()


def test_queue_outside_queues_setting_is_refused_naming_the_allowed() -> None:
    with pytest.raises(services.UnknownQueue) as e:
        services.pause_queue(backend_name="default", queue_name="mails")
    assert str(e.value) == (
        "Backend 'default' has no queue 'mails'; its queues "
        "(TASKS['default']['QUEUES']): 'default', 'emails', 'reports'"
    )
    assert isinstance(e.value, ValueError)
    with pytest.raises(services.UnknownQueue, match="no queue ''"):
        services.resume_queue(backend_name="default", queue_name="")
    # An empty QUEUES allows any name.
    assert services.pause_queue(backend_name="anyqueue", queue_name="made-up")


def test_enqueue_still_accepts_tasks_of_a_paused_queue() -> None:
    services.pause_queue(backend_name="default", queue_name="emails")
    result = record_run.using(queue_name="emails").enqueue("/dev/null", "x")
    row = DBTaskResult.objects.get(pk=result.id)
    assert (row.status, row.queue_name) == (ResultStatus.NEW, "emails")


# --- claims ------------------------------------------------------------------------


def claimed(**kwargs: Any) -> list[str]:
    rows = claims.claim_tasks(backend_name="default", worker_id=WORKER_ID, limit=10, **kwargs)
    return sorted(row.queue_name for row in rows)


def pause(*names: str) -> None:
    for name in names:
        services.pause_queue(backend_name="default", queue_name=name)


def test_claim_skips_paused_queues_of_any_queue_worker() -> None:
    for queue in ["default", "emails", "reports"]:
        make_row(queue)
    pause("emails", "reports")
    assert claimed(queue_names=None) == ["default"]
    services.resume_queue(backend_name="default", queue_name="reports")
    assert claimed(queue_names=None) == ["reports"]  # from the resume's commit on
    assert DBTaskResult.objects.get(queue_name="emails").status == ResultStatus.NEW


def test_claim_skips_paused_names_of_a_queue_list() -> None:
    for queue in ["default", "emails", "reports"]:
        make_row(queue)
    pause("emails")
    assert claimed(queue_names=["emails", "reports"]) == ["reports"]
    assert claimed(queue_names=["emails"]) == []
    assert DBTaskResult.objects.filter(status=ResultStatus.NEW).count() == 2


def test_a_pause_is_per_backend() -> None:
    make_row("emails")
    services.pause_queue(backend_name="anyqueue", queue_name="emails")
    assert claimed(queue_names=None) == ["emails"]


def test_claiming_costs_no_extra_query_for_paused_queues() -> None:
    make_row("emails")
    pause("emails")
    with CaptureQueriesContext(connection) as queries:
        assert claimed(queue_names=None) == []
    # SQLite: the read-only probe finds nothing (no write lock taken); PostgreSQL:
    # the claim statement, which reads the paused queues itself.
    assert len(queries) == 1


def test_portable_claim_skips_paused_queues() -> None:
    for queue in ["default", "emails"]:
        make_row(queue)
    pause("emails")
    rows = claims._claim_tasks_portable(
        connection.alias,
        backend_name="default",
        queue_names=None,
        worker_id=WORKER_ID,
        limit=10,
    )
    assert [row.queue_name for row in rows] == ["default"]
    assert DBTaskResult.objects.get(queue_name="emails").status == ResultStatus.NEW


# --- queue states ------------------------------------------------------------------


def test_queue_states_count_each_known_queue() -> None:
    now = timezone.now()
    make_row("emails", enqueued_at=now)  # auto_now_add: overwritten below
    DBTaskResult.objects.update(enqueued_at=now - timedelta(minutes=10))
    make_row("emails", run_after=now - timedelta(minutes=3))
    make_row("emails", run_after=now + timedelta(hours=1))
    make_row("emails", status=ResultStatus.RUNNING, started_at=now)
    make_row("emails", status=ResultStatus.COMPLETE, finished_at=now)
    make_row("legacy", backend="anyqueue")
    services.pause_queue(backend_name="default", queue_name="reports", by="alice")

    with CaptureQueriesContext(connection) as queries:
        states = services.queue_states(now=now)
    assert len(queries) == 3
    by_name = {(s.backend_name, s.name): s for s in states}
    # Configured queues, queues with rows, and (for "anyqueue", which allows any
    # name) every queue name of the table; "legacy" is not allowed by "default".
    assert sorted(by_name) == [
        ("anyqueue", "default"),
        ("anyqueue", "emails"),
        ("anyqueue", "legacy"),
        ("default", "default"),
        ("default", "emails"),
        ("default", "reports"),
    ]
    emails = by_name["default", "emails"]
    assert (emails.waiting, emails.deferred, emails.running) == (2, 1, 1)
    assert not (emails.waiting_capped or emails.deferred_capped or emails.running_capped)
    # The oldest ready task waits since it was enqueued, 10 minutes ago.
    assert emails.latency is not None
    assert timedelta(minutes=9, seconds=59) < emails.latency < timedelta(minutes=10, seconds=1)
    assert not emails.paused and emails.allowed
    reports = by_name["default", "reports"]
    assert reports.paused and reports.changed_by == "alice"
    assert (reports.waiting, reports.deferred, reports.running, reports.latency) == (0, 0, 0, None)
    legacy = by_name["anyqueue", "legacy"]
    assert legacy.waiting == 1


def test_queue_states_latency_counts_from_run_after_once_due() -> None:
    now = timezone.now()
    make_row("emails", run_after=now - timedelta(seconds=30))
    (state,) = [s for s in services.queue_states(backend_name="default", now=now) if s.waiting]
    assert state.latency is not None
    assert timedelta(seconds=29) < state.latency < timedelta(seconds=31)


def test_queue_states_cap_each_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queues, "COUNT_CAP", 2)
    for _ in range(3):
        make_row("emails")
    make_row("emails", run_after=timezone.now() + timedelta(hours=1))
    for queue in ["emails", "reports", "reports"]:
        make_row(queue, status=ResultStatus.RUNNING, started_at=timezone.now())
    states = {s.name: s for s in services.queue_states(backend_name="default")}
    emails, reports = states["emails"], states["reports"]
    assert (emails.waiting, emails.waiting_capped) == (2, True)
    assert (emails.deferred, emails.deferred_capped) == (1, False)
    # Running rows are read for all queues at once: 3 rows passed the cap of 2,
    # so every queue's running count is a lower bound.
    assert emails.running + reports.running == 3
    assert emails.running_capped and reports.running_capped and states["default"].running_capped


def test_queue_states_of_an_unknown_backend_is_refused() -> None:
    with pytest.raises(services.UnknownQueue, match="'nope' is not a database backend"):
        services.queue_states(backend_name="nope")


# --- the command ---------------------------------------------------------------------


def call(*args: str) -> str:
    out = StringIO()
    call_command("db_task_queues", *args, stdout=out)
    return out.getvalue()


def test_command_pauses_resumes_and_lists() -> None:
    make_row("emails")
    assert call("--pause", "emails") == "Paused queue 'emails' of backend 'default'\n"
    assert call("--pause", "emails").endswith("(it already was)\n")
    row = DBQueue.objects.get(name="emails")
    assert row.paused and "db_task_queues" in row.changed_by

    output = call("--backend", "default")
    assert "emails (default): paused (by " in output
    assert "waiting: 1  deferred: 0  running: 0" in output
    assert "reports (default): running" in output

    assert call("--resume", "emails") == "Resumed queue 'emails' of backend 'default'\n"
    assert services.paused_queues("default") == frozenset()


def test_command_refuses_unknown_queue_and_backend() -> None:
    with pytest.raises(CommandError, match="its queues .*'default', 'emails', 'reports'"):
        call("--pause", "nope")
    with pytest.raises(CommandError, match="database backends: 'anyqueue', 'default'"):
        call("--backend", "immediate", "--resume", "default")
    with pytest.raises(CommandError, match="'nope' is not a database backend"):
        call("--backend", "nope")


# --- real workers ------------------------------------------------------------------

INTERVAL = 1.0
# A process start, a claim and the task's run, on a loaded machine.
SLACK = 2.0


@pytest.mark.slow
@override_settings(TASKS=WORKER_TASKS)
def test_worker_skips_paused_queue_and_resumes_within_an_interval(
    workers: Workers, runs_file: str
) -> None:
    services.pause_queue(backend_name="default", queue_name="a")
    paused = record_run.using(queue_name="a").enqueue(runs_file, "a1")
    record_run.using(queue_name="b").enqueue(runs_file, "b1")

    worker = workers.start("--queue-name", "a,b", "--interval", str(INTERVAL))
    wait_until(lambda: runs(runs_file)["b1"], what="the task of the running queue")
    # Polls keep coming (more tasks of b run meanwhile); a's task waits.
    for i in range(3):
        record_run.using(queue_name="b").enqueue(runs_file, f"b-more{i}")
        time.sleep(INTERVAL)
    wait_until(lambda: all(runs(runs_file)[f"b-more{i}"] for i in range(3)), what="b's tasks")
    assert runs(runs_file)["a1"] == 0
    assert DBTaskResult.objects.get(pk=paused.id).status == ResultStatus.NEW

    resumed_at = time.monotonic()
    services.resume_queue(backend_name="default", queue_name="a")
    wait_until(lambda: runs(runs_file)["a1"], timeout=30, what="the resumed queue's task")
    assert time.monotonic() - resumed_at < INTERVAL + SLACK, worker.output()


@pytest.mark.slow
@override_settings(TASKS=WORKER_TASKS)
def test_pause_stops_a_running_worker_and_survives_a_restart(
    workers: Workers, runs_file: str
) -> None:
    worker = workers.start("--queue-name", "*", "--interval", str(INTERVAL))
    record_run.using(queue_name="b").enqueue(runs_file, "before")
    wait_until(lambda: runs(runs_file)["before"], what="a task before the pause")

    services.pause_queue(backend_name="default", queue_name="b")
    # Held from the pause's commit on: each claim reads the paused queues itself.
    record_run.using(queue_name="b").enqueue(runs_file, "paused")
    record_run.using(queue_name="c").enqueue(runs_file, "c1")
    wait_until(lambda: runs(runs_file)["c1"], what="another queue's task")
    time.sleep(2 * INTERVAL)
    assert runs(runs_file)["paused"] == 0

    worker.send_signal()
    assert worker.wait() == 0
    restarted = workers.start("--queue-name", "*", "--interval", str(INTERVAL))
    record_run.using(queue_name="c").enqueue(runs_file, "c2")
    wait_until(lambda: runs(runs_file)["c2"], what="the restarted worker's first task")
    time.sleep(2 * INTERVAL)
    assert runs(runs_file)["paused"] == 0, restarted.output()

    services.resume_queue(backend_name="default", queue_name="b")
    wait_until(lambda: runs(runs_file)["paused"], timeout=INTERVAL + SLACK, what="resumed task")
