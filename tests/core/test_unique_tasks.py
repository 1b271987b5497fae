"""Unique tasks: an enqueue whose task and key a waiting or running result holds returns it.

Rows are enqueued through the API and run the way the worker runs them
(``services.claim_tasks`` then ``services.run_task``); the concurrency tests
enqueue from several OS processes at once.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import django
import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_save
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_tasks import ResultStatus, task, tasks
from django_tasks.backends.database import services
from django_tasks.backends.database.backend import DatabaseBackend
from django_tasks.backends.database.models import DBTaskResult, DBWorker
from django_tasks.exceptions import InvalidTaskError
from django_tasks.signals import task_enqueued
from tests import unique_tasks
from tests.worker_helpers import ROOT, fail_with, runs, wait_until, worker_env
from tests.worker_settings import WORKER_TASKS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_backend")]

WORKER_ID = uuid.uuid4()


def tasks_with(**options: Any) -> dict[str, Any]:
    return {**WORKER_TASKS, "default": {**WORKER_TASKS["default"], "OPTIONS": options}}


def claim_next() -> DBTaskResult:
    (row,) = services.claim_tasks(backend_name="default", queue_names=None, worker_id=WORKER_ID)
    return row


def run_next() -> ResultStatus | None:
    """Claim one ready task and run it as the worker does; return the status saved."""
    return services.run_task(claim_next(), worker_id=WORKER_ID)


def live_rows(task_path: str = "tests.unique_tasks.report") -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path=task_path, status__in=["NEW", "RUNNING"]))


class Enqueued:
    """Collect the results ``task_enqueued`` carries."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, sender: Any, task_result: Any, **kwargs: Any) -> None:
        self.ids.append(task_result.id)

    def __enter__(self) -> Enqueued:
        task_enqueued.connect(self)
        return self

    def __exit__(self, *exc: object) -> None:
        task_enqueued.disconnect(self)


class Rollback(Exception):
    pass


# --- one live result per task and key ---------------------------------------------------


def test_a_second_enqueue_while_waiting_returns_the_first(runs_file: str) -> None:
    with Enqueued() as enqueued:
        first = unique_tasks.report.enqueue(runs_file, "first")
        second = unique_tasks.report.enqueue(runs_file, "second")

    assert second.id == first.id
    assert second.status == ResultStatus.NEW
    assert second.args == [runs_file, "first"]  # the stored result, not the new arguments
    assert DBTaskResult.objects.count() == 1
    assert DBTaskResult.objects.get().unique_key == "nightly"
    assert enqueued.ids == [first.id]  # no signal for the enqueue that stored nothing

    assert run_next() == ResultStatus.COMPLETE
    assert runs(runs_file) == {"first": 1}


def test_a_second_enqueue_while_running_returns_the_running_result(runs_file: str) -> None:
    first = unique_tasks.report.enqueue(runs_file, "first")
    row = claim_next()

    second = unique_tasks.report.enqueue(runs_file, "second")

    assert second.id == first.id
    assert second.status == ResultStatus.RUNNING
    assert DBTaskResult.objects.count() == 1
    assert services.run_task(row, worker_id=WORKER_ID) == ResultStatus.COMPLETE
    finished = unique_tasks.report.get_result(second.id)
    assert (finished.status, finished.return_value) == (ResultStatus.COMPLETE, "first")


@pytest.mark.parametrize("task_name", ["report", "fails"])
def test_once_the_result_finished_an_enqueue_stores_a_new_one(
    runs_file: str, task_name: str
) -> None:
    keyed = getattr(unique_tasks, task_name)
    first = keyed.enqueue(runs_file, "first")
    finished = run_next()
    assert finished == (ResultStatus.COMPLETE if task_name == "report" else ResultStatus.FAILED)

    with Enqueued() as enqueued:
        second = keyed.enqueue(runs_file, "second")
        third = keyed.enqueue(runs_file, "third")

    assert second.id != first.id
    assert third.id == second.id
    assert second.status == ResultStatus.NEW
    assert enqueued.ids == [second.id]
    assert DBTaskResult.objects.count() == 2


def test_different_keys_and_different_tasks_do_not_collide(runs_file: str) -> None:
    nightly = unique_tasks.report.enqueue(runs_file, "nightly")
    weekly = unique_tasks.report.using(unique_key="weekly").enqueue(runs_file, "weekly")
    other_task = unique_tasks.other_report.enqueue(runs_file, "other")  # same key "nightly"
    unkeyed = [unique_tasks.plain.enqueue(runs_file, "plain") for _ in range(2)]

    assert len({nightly.id, weekly.id, other_task.id, *(r.id for r in unkeyed)}) == 5
    assert unique_tasks.report.using(unique_key="weekly").enqueue(runs_file, "x").id == weekly.id
    assert unique_tasks.other_report.enqueue(runs_file, "x").id == other_task.id
    assert DBTaskResult.objects.count() == 5


def test_the_existing_result_keeps_its_own_priority_and_queue(runs_file: str) -> None:
    first = unique_tasks.report.using(priority=7, queue_name="reports").enqueue(runs_file, "a")

    second = unique_tasks.report.enqueue(runs_file, "b")

    assert second.id == first.id
    assert (second.task.priority, second.task.queue_name) == (7, "reports")


def test_the_workers_own_retry_keeps_the_key(runs_file: str) -> None:
    first = unique_tasks.fails_once.enqueue(runs_file, "flaky")
    assert run_next() == ResultStatus.NEW  # failed once, waiting to run again

    again = unique_tasks.fails_once.enqueue(runs_file, "again")

    assert again.id == first.id
    assert again.status == ResultStatus.NEW
    assert run_next() == ResultStatus.COMPLETE
    assert runs(runs_file) == {"flaky": 2}
    assert unique_tasks.fails_once.enqueue(runs_file, "later").id != first.id


def test_a_result_waiting_for_its_run_after_holds_the_key(runs_file: str) -> None:
    later = unique_tasks.report.using(run_after=timedelta(hours=1)).enqueue(runs_file, "later")

    now = unique_tasks.report.enqueue(runs_file, "now")

    assert now.id == later.id
    assert now.task.run_after == later.task.run_after  # the stored result's
    assert DBTaskResult.objects.count() == 1


@pytest.mark.parametrize("policy", ["requeue", "fail"])
def test_a_lost_workers_task_keeps_the_key_when_requeued(runs_file: str, policy: str) -> None:
    first = unique_tasks.report.enqueue(runs_file, "first")
    claim_next()  # by a worker that has no row: lost

    outcome = services.recover_lost_tasks(backend_name="default", policy=policy)

    assert (outcome.requeued, outcome.failed) == ((1, 0) if policy == "requeue" else (0, 1))
    again = unique_tasks.report.enqueue(runs_file, "again")
    assert (again.id == first.id) is (policy == "requeue")
    assert len(live_rows()) == 1


def test_a_holder_that_finishes_between_the_insert_and_the_read_lets_the_enqueue_store(
    runs_file: str,
) -> None:
    holder = unique_tasks.report.enqueue(runs_file, "holder")
    conflicts: list[str] = []

    def finish_the_holder_after_a_conflict(
        execute: Any, sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        result = execute(sql, params, many, context)
        if "ON CONFLICT" in sql and not conflicts:
            conflicts.append(sql)  # the first INSERT found the key held: finish its holder
            DBTaskResult.objects.filter(pk=holder.id).update(status=ResultStatus.COMPLETE)
        return result

    with Enqueued() as enqueued, connection.execute_wrapper(finish_the_holder_after_a_conflict):
        stored = unique_tasks.report.enqueue(runs_file, "stored")

    assert len(conflicts) == 1
    assert stored.id != holder.id
    assert stored.status == ResultStatus.NEW
    assert enqueued.ids == [stored.id]
    assert [str(row.id) for row in live_rows()] == [stored.id]


def test_aenqueue_returns_the_existing_result_too(runs_file: str) -> None:
    first = async_to_sync(unique_tasks.report.aenqueue)(runs_file, "first")
    second = async_to_sync(unique_tasks.report.aenqueue)(runs_file, "second")
    third = unique_tasks.report.enqueue(runs_file, "third")

    assert first.id == second.id == third.id
    assert DBTaskResult.objects.count() == 1


def test_a_keyed_enqueue_that_stores_a_row_is_one_statement(runs_file: str) -> None:
    with CaptureQueriesContext(connection) as queries:
        unique_tasks.report.enqueue(runs_file, "first")
    assert len(queries) == 1
    assert "ON CONFLICT" in queries[0]["sql"]

    with CaptureQueriesContext(connection) as queries:
        unique_tasks.report.enqueue(runs_file, "second")
    assert len(queries) == 2  # the INSERT that stored nothing, then the holder


def test_through_the_orm_when_save_signals_are_listened_to(runs_file: str) -> None:
    saved: list[Any] = []

    def on_save(sender: Any, instance: DBTaskResult, **kwargs: Any) -> None:
        saved.append(instance.pk)

    post_save.connect(on_save, sender=DBTaskResult)
    try:
        with Enqueued() as enqueued:
            first = unique_tasks.report.enqueue(runs_file, "first")
            with transaction.atomic():
                second = unique_tasks.report.enqueue(runs_file, "second")
                assert DBTaskResult.objects.count() == 1  # the transaction goes on
    finally:
        post_save.disconnect(on_save, sender=DBTaskResult)

    assert second.id == first.id
    assert [str(pk) for pk in saved] == [first.id]
    assert enqueued.ids == [first.id]


@pytest.fixture
def forbidden_queue() -> Iterator[str]:
    """A CHECK constraint that makes the database refuse one queue name."""
    table = DBTaskResult._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT test_refused CHECK (queue_name <> 'x')")
    yield "x"
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT test_refused")


@pytest.mark.skipif(
    os.environ.get("TEST_DB") != "postgres", reason="SQLite can't add a CHECK constraint"
)
@pytest.mark.parametrize("through_the_orm", [False, True])
def test_other_integrity_errors_of_a_keyed_enqueue_are_raised(
    runs_file: str, forbidden_queue: str, through_the_orm: bool
) -> None:
    def on_save(sender: Any, **kwargs: Any) -> None:
        pass

    if through_the_orm:
        post_save.connect(on_save, sender=DBTaskResult)
    try:
        with pytest.raises(IntegrityError, match="test_refused"):
            unique_tasks.report.using(queue_name=forbidden_queue).enqueue(runs_file, "x")
    finally:
        post_save.disconnect(on_save, sender=DBTaskResult)
    assert unique_tasks.report.enqueue(runs_file, "ok").id
    assert DBTaskResult.objects.count() == 1


# --- transactions ---------------------------------------------------------------------


def test_in_a_transaction_the_key_is_held_at_once_and_the_transaction_goes_on(
    runs_file: str,
) -> None:
    with transaction.atomic():
        first = unique_tasks.report.enqueue(runs_file, "first")
        second = unique_tasks.report.enqueue(runs_file, "second")
        assert second.id == first.id
        assert unique_tasks.plain.enqueue(runs_file, "after")  # still usable

    assert [row.id for row in live_rows()] == [uuid.UUID(first.id)]
    assert DBTaskResult.objects.count() == 2


def test_a_rollback_removes_the_row_and_frees_the_key(runs_file: str) -> None:
    with pytest.raises(Rollback), transaction.atomic():
        rolled_back = unique_tasks.report.enqueue(runs_file, "rolled back")
        raise Rollback

    assert not DBTaskResult.objects.exists()
    after = unique_tasks.report.enqueue(runs_file, "after")
    assert after.id != rolled_back.id
    assert DBTaskResult.objects.get().pk == uuid.UUID(after.id)


def test_a_task_waiting_for_commit_is_written_at_once_and_signalled_on_commit(
    runs_file: str,
) -> None:
    with Enqueued() as enqueued:
        with transaction.atomic():
            first = unique_tasks.on_commit.enqueue(runs_file, "first")
            assert DBTaskResult.objects.filter(pk=first.id).exists()  # written at once
            assert unique_tasks.on_commit.enqueue(runs_file, "second").id == first.id
            assert enqueued.ids == []
        assert enqueued.ids == [first.id]

        with pytest.raises(Rollback), transaction.atomic():
            unique_tasks.on_commit.using(unique_key="other").enqueue(runs_file, "gone")
            raise Rollback
        assert enqueued.ids == [first.id]

    assert DBTaskResult.objects.get().pk == uuid.UUID(first.id)


@pytest.fixture
def notifications() -> Iterator[Callable[[], list[str]]]:
    """LISTEN on the test's connection; return what reads the notifications since."""
    with connection.cursor() as cursor:
        cursor.execute('LISTEN "django_tasks"')
    raw: Any = connection.connection

    def received() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # delivers what arrived meanwhile
        return [n.payload for n in raw.notifies(timeout=0.2)]

    yield received
    with connection.cursor() as cursor:
        cursor.execute("UNLISTEN *")


@pytest.mark.skipif(
    os.environ.get("TEST_DB") != "postgres", reason="LISTEN/NOTIFY is PostgreSQL only"
)
def test_a_stored_keyed_task_wakes_a_waiting_worker_a_deduplicated_one_does_not(
    runs_file: str, notifications: Callable[[], list[str]]
) -> None:
    DBWorker.objects.create(host="h", pid=1, backend_name="default", waiting=True)
    in_q1 = unique_tasks.report.using(queue_name="q1")
    in_q1.enqueue(runs_file, "stored")
    assert notifications() == ["default\nq1"]
    in_q1.enqueue(runs_file, "deduplicated")
    assert notifications() == []

    with transaction.atomic():
        unique_tasks.report.using(queue_name="q2", unique_key="k2").enqueue(runs_file, "a")
        unique_tasks.plain.using(queue_name="q2").enqueue(runs_file, "b")
        unique_tasks.report.using(queue_name="q2", unique_key="k2").enqueue(runs_file, "c")
        assert notifications() == []  # not before the commit
    assert notifications() == ["default\nq2"]

    later = unique_tasks.report.using(unique_key="later", run_after=timedelta(hours=1))
    later.enqueue(runs_file, "later")
    assert notifications() == []  # not ready yet


def waiting_for_a_lock(sql_fragment: str) -> bool:
    """Whether a session of the test database waits for a lock running such a statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            [f"%{sql_fragment}%"],
        )
        (count,) = cursor.fetchone()
    return bool(count)


@pytest.mark.skipif(os.environ.get("TEST_DB") != "postgres", reason="PostgreSQL's row locks")
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_an_enqueue_waits_for_the_transaction_that_took_the_key(
    runs_file: str, outcome: str
) -> None:
    taken, release = threading.Event(), threading.Event()
    ids: dict[str, str] = {}

    def hold_the_key() -> None:
        try:
            with transaction.atomic():
                ids["holder"] = unique_tasks.report.enqueue(runs_file, "holder").id
                taken.set()
                release.wait(60)
                if outcome == "rollback":
                    raise Rollback
        except Rollback:
            pass
        finally:
            connection.close()

    def enqueue() -> None:
        try:
            ids["waiter"] = unique_tasks.report.enqueue(runs_file, "waiter").id
        finally:
            connection.close()

    holder, waiter = threading.Thread(target=hold_the_key), threading.Thread(target=enqueue)
    holder.start()
    try:
        assert taken.wait(60)
        waiter.start()
        wait_until(
            lambda: waiting_for_a_lock("ON CONFLICT"),
            what="the second enqueue to wait for the first transaction",
        )
        assert "waiter" not in ids
    finally:
        release.set()
        holder.join(60)
        waiter.join(60)

    if outcome == "commit":
        assert ids["waiter"] == ids["holder"]
    else:
        assert ids["waiter"] != ids["holder"]
    assert [str(row.id) for row in live_rows()] == [ids["waiter"]]


# --- keys from the backend's OPTIONS, and bad keys -------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"task_defaults": {"unique_key": "from-defaults"}},
        {"task_overrides": {"tests.unique_tasks.plain": {"unique_key": "from-overrides"}}},
    ],
)
def test_options_give_a_task_its_key(runs_file: str, options: dict[str, Any]) -> None:
    with override_settings(TASKS=tasks_with(**options)):
        first = unique_tasks.plain.enqueue(runs_file, "first")
        second = unique_tasks.plain.enqueue(runs_file, "second")

    assert second.id == first.id
    key = next(iter(options.values()))
    expected = key.get("unique_key") or key["tests.unique_tasks.plain"]["unique_key"]
    assert DBTaskResult.objects.get().unique_key == expected


def test_task_overrides_win_over_the_tasks_own_key(runs_file: str) -> None:
    overrides = {"tests.unique_tasks.report": {"unique_key": "overridden"}}
    with override_settings(TASKS=tasks_with(task_overrides=overrides)):
        first = unique_tasks.report.enqueue(runs_file, "first")
        assert unique_tasks.report.enqueue(runs_file, "second").id == first.id
    assert DBTaskResult.objects.get().unique_key == "overridden"


BAD_KEYS = ["", 42, b"bytes", "x" * 256]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_a_bad_key_on_the_decorator_is_refused_at_definition(bad: Any) -> None:
    with pytest.raises(InvalidTaskError) as raised:
        task(unique_key=bad)(unique_tasks.plain.func)
    message = str(raised.value)
    assert "unique_key of task tests.unique_tasks.plain" in message
    assert "must be a non-empty string of at most 255 characters" in message
    assert repr(bad) in message


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_a_bad_key_given_to_using_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidTaskError) as raised:
        unique_tasks.plain.using(unique_key=bad)
    message = str(raised.value)
    assert "unique_key of task tests.unique_tasks.plain" in message
    assert "must be a non-empty string of at most 255 characters" in message


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_a_bad_key_in_options_is_reported_by_check(bad: Any) -> None:
    overrides = {"tests.unique_tasks.plain": {"unique_key": bad}}
    with override_settings(TASKS=tasks_with(task_defaults={"unique_key": bad})):
        backend = tasks["default"]
        assert isinstance(backend, DatabaseBackend)
        errors = [m for m in backend.check() if m.id == "django_tasks.database.E001"]
    assert [m.level for m in errors] == [checks.ERROR]
    assert "unique_key of OPTIONS['task_defaults'] of backend 'default'" in errors[0].msg
    assert repr(bad) in errors[0].msg

    with override_settings(TASKS=tasks_with(task_overrides=overrides)):
        errors = [m for m in tasks["default"].check() if m.id == "django_tasks.database.E001"]
    assert len(errors) == 1
    assert "OPTIONS['task_overrides']['tests.unique_tasks.plain']" in errors[0].msg


# --- manual retry ---------------------------------------------------------------------


def failed_result(runs_file: str, token: str) -> Any:
    result = unique_tasks.fails.enqueue(runs_file, token)
    assert run_next() == ResultStatus.FAILED
    return result


def test_retry_refuses_a_failure_whose_key_a_live_result_holds(runs_file: str) -> None:
    failed = failed_result(runs_file, "failed")
    live = unique_tasks.fails.enqueue(runs_file, "live")

    assert services.retry_preview(results=[failed.id]) == services.RetryOutcome(
        retried=0, refused=1
    )
    assert services.retry(results=[failed.id]) == services.RetryOutcome(retried=0, refused=1)
    with pytest.raises(services.RetryRefused) as raised:
        services.retry_one(failed.id)
    assert str(raised.value) == (
        f"Task result {failed.id} cannot be retried: task result {live.id} of "
        "tests.unique_tasks.fails holds its unique key 'doomed' while it is NEW; "
        "retry it once that one has finished"
    )
    assert DBTaskResult.objects.get(pk=failed.id).status == ResultStatus.FAILED

    assert run_next() == ResultStatus.FAILED  # the live one finishes: the key is free
    assert services.retry_one(failed.id).status == ResultStatus.NEW
    assert unique_tasks.fails.enqueue(runs_file, "dup").id == failed.id


def test_retrying_failures_sharing_a_key_retries_the_oldest_only(runs_file: str) -> None:
    older = failed_result(runs_file, "older")
    newer = failed_result(runs_file, "newer")
    unkeyed = fail_with.enqueue(runs_file, "unkeyed")
    assert run_next() == ResultStatus.FAILED
    selection = DBTaskResult.objects.filter(status=ResultStatus.FAILED)

    assert services.retry_preview(results=selection) == services.RetryOutcome(retried=2, refused=1)
    assert services.retry_preview(results=selection, limit=2) == services.RetryOutcome(
        retried=1, refused=1
    )  # the two oldest: the keyed pair
    assert services.retry_preview(
        results=[newer.id, older.id, unkeyed.id], limit=1
    ) == services.RetryOutcome(retried=1, refused=0)
    assert services.retry(results=selection) == services.RetryOutcome(retried=2, refused=1)
    statuses = dict(DBTaskResult.objects.values_list("pk", "status"))
    assert statuses[uuid.UUID(older.id)] == ResultStatus.NEW
    assert statuses[uuid.UUID(newer.id)] == ResultStatus.FAILED
    assert statuses[uuid.UUID(unkeyed.id)] == ResultStatus.NEW


@pytest.mark.parametrize("batch_size", [1, 500])
def test_retrying_failures_sharing_a_key_by_id_retries_one(runs_file: str, batch_size: int) -> None:
    failures = [failed_result(runs_file, "older").id, failed_result(runs_file, "newer").id]

    outcome = services.retry(results=failures[::-1], batch_size=batch_size)

    assert outcome == services.RetryOutcome(retried=1, refused=1)
    statuses = [DBTaskResult.objects.get(pk=pk).status for pk in failures]
    if batch_size > 1:  # in one batch, the oldest enqueued wins
        assert statuses == [ResultStatus.NEW, ResultStatus.FAILED]
    assert sorted(statuses) == [ResultStatus.FAILED, ResultStatus.NEW]
    retried, refused = failures if statuses[0] == ResultStatus.NEW else failures[::-1]
    with pytest.raises(services.RetryRefused, match=f"task result {retried} of"):
        services.retry_one(refused)


# --- the database decides: enqueues from several processes at once ---------------------

ENQUEUER = (
    "import sys, django; django.setup(); from tests.unique_tasks import enqueue_many; "
    "enqueue_many(sys.argv[1], int(sys.argv[2]), atomic=sys.argv[3] == 'atomic')"
)
PROCESSES = 4
ENQUEUES = 25


@pytest.mark.parametrize("mode", ["autocommit", "atomic"])
def test_concurrent_enqueues_from_several_processes_store_one_row(
    tmp_path: Path, mode: str
) -> None:
    go_file = tmp_path / "go"
    env = worker_env(WORKER_TASKS)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", ENQUEUER, str(go_file), str(ENQUEUES), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(PROCESSES)
    ]
    try:
        go_file.touch()  # they start together, each already connected
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    ids = [line for stdout, _ in outputs for line in stdout.split()]
    assert len(ids) == PROCESSES * ENQUEUES
    assert len(set(ids)) == 1
    assert [str(row.id) for row in DBTaskResult.objects.all()] == ids[:1]


def test_the_index_refuses_a_second_live_row_written_any_other_way(runs_file: str) -> None:
    first = unique_tasks.report.enqueue(runs_file, "first")
    row = DBTaskResult.objects.get(pk=first.id)
    row.pk = uuid.uuid4()
    with pytest.raises(IntegrityError, match="dtdb_unique_live_key|UNIQUE constraint"):
        row.save(force_insert=True)


# --- Django 6's django.tasks ----------------------------------------------------------


@pytest.fixture
def api(worker_backend: None) -> ModuleType:
    """tests.django_api_tasks, imported while our DatabaseBackend is the default backend."""
    return importlib.import_module("tests.django_api_tasks")


@pytest.mark.skipif(
    django.VERSION < (6, 1), reason="Django 6.1 passes @task's further keywords to task_class"
)
def test_django_tasks_decorator_takes_a_unique_key(api: ModuleType) -> None:
    import django.tasks

    from django_tasks.django_task_class import DjangoTaskWithOnCommit

    keyed = django.tasks.task(unique_key="django-key")(api.add.func)
    assert isinstance(keyed, DjangoTaskWithOnCommit)
    assert keyed.unique_key == "django-key"

    first = keyed.enqueue(1, 2)
    second = keyed.enqueue(3, 4)

    assert type(second) is django.tasks.TaskResult
    assert second.id == first.id
    assert second.args == [1, 2]
    assert second.status == django.tasks.TaskResultStatus.READY
    assert DBTaskResult.objects.get().unique_key == "django-key"
    elsewhere = keyed.using(priority=9, queue_name="other").enqueue(5, 6)
    assert type(elsewhere) is django.tasks.TaskResult
    assert elsewhere.id == first.id
    assert (elsewhere.task.priority, elsewhere.task.queue_name) == (keyed.priority, "default")

    with pytest.raises(InvalidTaskError, match="must be a non-empty string"):
        django.tasks.task(unique_key="")(api.add.func)


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks is Django 6.0+")
def test_options_give_a_django_tasks_task_its_key(api: ModuleType) -> None:
    import django.tasks

    overrides = {"tests.django_api_tasks.add": {"unique_key": "from-overrides"}}
    with override_settings(TASKS=tasks_with(task_overrides=overrides)):
        first = api.add.enqueue(1, 2)
        second = async_to_sync(api.add.aenqueue)(3, 4)

    assert type(second) is django.tasks.TaskResult
    assert second.id == first.id
    assert DBTaskResult.objects.get().unique_key == "from-overrides"
