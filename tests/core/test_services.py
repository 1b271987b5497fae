from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks import ResultStatus, default_task_backend
from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.services import (
    RetryOutcome,
    RetryRefused,
    prune,
    retry,
    retry_one,
    retry_preview,
    retrying,
)
from django_tasks.exceptions import ResultDoesNotExist
from tests import tasks as test_tasks
from tests.db_utils import make_row

DB_TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": ["default", "queue-1"],
    },
    "other": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": [],
    },
}


def make_failed_row(message: str = "boom", **kwargs: Any) -> DBTaskResult:
    """A row that really ran and failed, as the worker leaves it.

    Claimed and failed through the same code the worker runs: the claim
    statement (``claim()`` is its one-row form) and ``services.fail_task``.
    """
    row = make_row(**kwargs)
    worker_id = uuid.uuid4()
    row.claim(worker_id)
    try:
        raise ValueError(message)
    except ValueError as e:
        assert services.fail_task(row, e, worker_id=worker_id)
    row.refresh_from_db()
    return row


def sql_statements(ctx: CaptureQueriesContext, verb: str) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(verb)]


@override_settings(TASKS=DB_TASKS)
class RetryTestCase(TestCase):
    def test_retry_puts_the_row_back_to_new_with_the_same_id(self) -> None:
        row = make_failed_row()

        outcome = retry(results=DBTaskResult.objects.filter(pk=row.pk))

        assert outcome == RetryOutcome(retried=1, refused=0)
        retried = DBTaskResult.objects.get()
        assert retried.pk == row.pk
        assert retried.status == ResultStatus.NEW
        assert retried.started_at is None
        assert retried.finished_at is None
        assert retried.exception_data is None
        assert retried.return_value is None
        assert retried.worker_id is None
        assert retried.enqueued_at >= row.enqueued_at
        assert retried in DBTaskResult.objects.ready()

    def test_retry_keeps_the_failure_in_attempts(self) -> None:
        row = make_failed_row("first failure")

        retry(results=[row.pk])

        retried = DBTaskResult.objects.get()
        assert len(retried.attempts) == 1
        attempt = retried.attempts[0]
        assert set(attempt) == {
            "exception_class_path",
            "message",
            "traceback",
            "enqueued_at",
            "started_at",
            "finished_at",
            "worker_id",
        }
        assert attempt["exception_class_path"] == "builtins.ValueError"
        assert attempt["message"] == "first failure"
        assert attempt["traceback"].endswith("ValueError: first failure\n")
        assert attempt["worker_id"] == str(row.worker_id)
        for name in ("enqueued_at", "started_at", "finished_at"):
            assert datetime.fromisoformat(attempt[name]) == getattr(row, name)

    def test_history_grows_with_each_retry(self) -> None:
        row = make_failed_row("one")
        retry(results=[row.pk])
        row.refresh_from_db()
        row.claim()
        try:
            raise KeyError("two")
        except KeyError as e:
            row.set_failed(e)
        retry(results=[str(row.pk)])

        row.refresh_from_db()
        assert [a["exception_class_path"] for a in row.attempts] == [
            "builtins.ValueError",
            "builtins.KeyError",
        ]
        assert [a["message"] for a in row.attempts] == ["one", "two"]
        assert row.attempts[1]["worker_id"] is None  # claimed without a worker id

    def test_failure_without_exception_data(self) -> None:
        row = make_row(status=ResultStatus.FAILED, finished_at=timezone.now())

        assert retry(results=[row.pk]).retried == 1

        row.refresh_from_db()
        assert row.attempts[0]["exception_class_path"] is None
        assert row.attempts[0]["message"] is None
        assert row.attempts[0]["started_at"] is None

    def test_retry_refuses_results_that_are_not_failed(self) -> None:
        failed = make_failed_row()
        others = [
            make_row(status=status)
            for status in (ResultStatus.NEW, ResultStatus.RUNNING, ResultStatus.COMPLETE)
        ]

        outcome = retry(results=DBTaskResult.objects.all())

        assert outcome == RetryOutcome(retried=1, refused=3)
        failed.refresh_from_db()
        assert failed.status == ResultStatus.NEW
        for row in others:
            before = row.status
            row.refresh_from_db()
            assert row.status == before
            assert row.attempts == []

    def test_retry_ids_counts_missing_and_malformed_as_refused(self) -> None:
        failed = make_failed_row()

        outcome = retry(results=[str(failed.pk), str(uuid.uuid4()), "123", failed.pk])

        # The duplicate id counts once.
        assert outcome == RetryOutcome(retried=1, refused=2)

    def test_retry_in_batches_one_update_each(self) -> None:
        rows = [make_failed_row() for _ in range(5)]

        with CaptureQueriesContext(connection) as ctx:
            outcome = retry(results=DBTaskResult.objects.failed(), batch_size=2)

        assert outcome == RetryOutcome(retried=5, refused=0)
        assert len(sql_statements(ctx, "UPDATE")) == 3
        assert DBTaskResult.objects.filter(status=ResultStatus.NEW).count() == len(rows)

    def test_retry_update_is_conditional_on_failed(self) -> None:
        row = make_failed_row()
        real_attempt_record = retrying._attempt_record

        def change_meanwhile(values: Any) -> Any:
            # Another process finishes with the row between our read and our UPDATE.
            DBTaskResult.objects.filter(pk=row.pk).update(status=ResultStatus.COMPLETE)
            return real_attempt_record(values)

        with mock.patch.object(retrying, "_attempt_record", change_meanwhile):
            outcome = retry(results=[row.pk])

        assert outcome == RetryOutcome(retried=0, refused=1)
        row.refresh_from_db()
        assert row.status == ResultStatus.COMPLETE
        assert row.attempts == []

    def test_retry_limit_takes_the_oldest_first(self) -> None:
        rows = [make_failed_row() for _ in range(4)]
        now = timezone.now()
        for age, row in enumerate(rows):
            DBTaskResult.objects.filter(pk=row.pk).update(enqueued_at=now - timedelta(hours=age))

        outcome = retry(results=DBTaskResult.objects.failed(), limit=2)

        assert outcome == RetryOutcome(retried=2, refused=0)
        assert set(DBTaskResult.objects.filter(status=ResultStatus.NEW)) == {rows[3], rows[2]}

    def test_retry_limit_with_ids(self) -> None:
        rows = [make_failed_row() for _ in range(3)]
        assert retry(results=[r.pk for r in rows], limit=1) == RetryOutcome(retried=1, refused=0)
        assert DBTaskResult.objects.failed().count() == 2

    def test_retry_sliced_queryset(self) -> None:
        for _ in range(3):
            make_failed_row()
        outcome = retry(results=DBTaskResult.objects.order_by("pk")[:2])
        assert outcome == RetryOutcome(retried=2, refused=0)

    def test_retry_preview_changes_nothing(self) -> None:
        make_failed_row()
        make_failed_row()
        make_row()

        assert retry_preview(results=DBTaskResult.objects.all()) == RetryOutcome(
            retried=2, refused=1
        )
        assert (
            retry_preview(results=DBTaskResult.objects.all(), limit=1).retried
            + (retry_preview(results=DBTaskResult.objects.all(), limit=1).refused)
            == 1
        )
        ids = [str(pk) for pk in DBTaskResult.objects.values_list("pk", flat=True)]
        assert retry_preview(results=[*ids, "bad"]) == RetryOutcome(retried=2, refused=2)
        assert DBTaskResult.objects.failed().count() == 2

    def test_retry_one(self) -> None:
        row = make_failed_row()

        retried = retry_one(str(row.pk))

        assert retried.pk == row.pk
        assert retried.status == ResultStatus.NEW
        assert len(retried.attempts) == 1

    def test_retry_one_refuses_other_statuses(self) -> None:
        for status in (ResultStatus.NEW, ResultStatus.RUNNING, ResultStatus.COMPLETE):
            row = make_row(status=status)
            with self.subTest(status=status), self.assertRaises(RetryRefused) as cm:
                retry_one(row.pk)
            message = str(cm.exception)
            assert str(row.pk) in message
            assert status in message
            row.refresh_from_db()
            assert row.status == status

    def test_retry_one_of_missing_or_malformed_result(self) -> None:
        for bad in (str(uuid.uuid4()), "123"):
            with self.subTest(bad=bad), self.assertRaises(ResultDoesNotExist):
                retry_one(bad)

    def test_get_result_sees_the_new_outcome(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.calculate_meaning_of_life.enqueue()
        row = DBTaskResult.objects.get(pk=result.id)
        row.claim()
        row.set_failed(ValueError("flaky"))
        assert default_task_backend.get_result(result.id).status == ResultStatus.FAILED

        retry_one(result.id)

        fetched = default_task_backend.get_result(result.id)
        assert fetched.status == ResultStatus.NEW
        assert fetched.exception is None
        assert fetched.finished_at is None
        row = DBTaskResult.objects.get(pk=result.id)
        row.claim()
        row.set_complete(42)
        fetched = default_task_backend.get_result(result.id)
        assert fetched.status == ResultStatus.COMPLETE
        assert fetched.return_value == 42
        result.refresh()
        assert result.status == ResultStatus.COMPLETE


@override_settings(TASKS=DB_TASKS)
class PruneTestCase(TestCase):
    def make_finished(self, status: str, age_days: float, **kwargs: Any) -> DBTaskResult:
        return make_row(
            status=status, finished_at=timezone.now() - timedelta(days=age_days), **kwargs
        )

    def test_prune_keeps_new_and_running_results(self) -> None:
        kept = [
            self.make_finished(ResultStatus.NEW, 100),
            self.make_finished(ResultStatus.RUNNING, 100),
            make_row(status=ResultStatus.NEW),
            make_row(status=ResultStatus.RUNNING),
        ]
        self.make_finished(ResultStatus.COMPLETE, 100)
        self.make_finished(ResultStatus.FAILED, 100)

        assert prune(backend_name="default", queue_names=None, min_age_days=0) == 2
        assert set(DBTaskResult.objects.all()) == set(kept)

    def test_prune_respects_ages_per_status(self) -> None:
        old_complete = self.make_finished(ResultStatus.COMPLETE, 15)
        young_complete = self.make_finished(ResultStatus.COMPLETE, 13)
        old_failed = self.make_finished(ResultStatus.FAILED, 15)
        young_failed = self.make_finished(ResultStatus.FAILED, 6)

        assert prune(backend_name="default", queue_names=None, dry_run=True) == 2
        assert (
            prune(backend_name="default", queue_names=None, failed_min_age_days=5, dry_run=True)
            == 3
        )
        assert prune(backend_name="default", queue_names=None, failed_min_age_days=7) == 2
        assert set(DBTaskResult.objects.all()) == {young_complete, young_failed}
        assert not DBTaskResult.objects.filter(pk__in=[old_complete.pk, old_failed.pk]).exists()

    def test_failed_min_age_days_zero_means_min_age_days(self) -> None:
        self.make_finished(ResultStatus.FAILED, 1)
        assert prune(backend_name="default", queue_names=None, failed_min_age_days=0) == 0
        assert prune(backend_name="default", queue_names=None, failed_min_age_days=None) == 0
        assert prune(backend_name="default", queue_names=None, min_age_days=0) == 1

    def test_prune_only_touches_the_backend_and_queues(self) -> None:
        default_queue = self.make_finished(ResultStatus.COMPLETE, 30)
        queue_1 = self.make_finished(ResultStatus.COMPLETE, 30, queue_name="queue-1")
        other_backend = self.make_finished(ResultStatus.COMPLETE, 30, backend_name="other")

        assert prune(backend_name="default", queue_names=["queue-1", "nope"]) == 1
        assert set(DBTaskResult.objects.all()) == {default_queue, other_backend}
        assert queue_1.pk not in DBTaskResult.objects.values_list("pk", flat=True)
        assert prune(backend_name="default", queue_names=None) == 1
        assert list(DBTaskResult.objects.all()) == [other_backend]
        assert prune(backend_name="other", queue_names=["default"]) == 1
        assert not DBTaskResult.objects.exists()

    def test_dry_run_counts_in_one_query_and_deletes_nothing(self) -> None:
        for _ in range(3):
            self.make_finished(ResultStatus.COMPLETE, 30)
        self.make_finished(ResultStatus.FAILED, 30)

        with self.assertNumQueries(1) as ctx:
            count = prune(backend_name="default", queue_names=["default"], dry_run=True)

        assert count == 4
        assert "COUNT" in ctx.captured_queries[0]["sql"].upper()
        assert DBTaskResult.objects.count() == 4

    def test_prune_deletes_in_batches(self) -> None:
        for _ in range(7):
            self.make_finished(ResultStatus.COMPLETE, 30)
        for _ in range(3):
            self.make_finished(ResultStatus.FAILED, 30)
        kept = self.make_finished(ResultStatus.COMPLETE, 1)

        with CaptureQueriesContext(connection) as ctx:
            deleted = prune(backend_name="default", queue_names=None, batch_size=2)

        assert deleted == 10
        # COMPLETE: 2+2+2+1, FAILED: 2+1.
        assert len(sql_statements(ctx, "DELETE")) == 6
        for sql in sql_statements(ctx, "DELETE"):
            # The DELETE repeats the selection, so a row changed meanwhile survives.
            assert "status" in sql
            assert "finished_at" in sql
        assert list(DBTaskResult.objects.all()) == [kept]

    def test_prune_batches_with_equal_finished_at(self) -> None:
        finished_at = timezone.now() - timedelta(days=20)
        for _ in range(5):
            make_row(status=ResultStatus.COMPLETE, finished_at=finished_at)

        assert prune(backend_name="default", queue_names=None, batch_size=2) == 5
        assert not DBTaskResult.objects.exists()

    def test_prune_with_nothing_to_delete(self) -> None:
        with self.assertNumQueries(2):  # one empty selection per status
            assert prune(backend_name="default", queue_names=None) == 0

    def test_prune_rejects_bad_arguments(self) -> None:
        with self.assertRaises(ValueError):
            prune(backend_name="default", queue_names=None, min_age_days=-1)
        with self.assertRaises(ValueError):
            prune(backend_name="default", queue_names=None, failed_min_age_days=-1)
        with self.assertRaises(ValueError):
            prune(backend_name="default", queue_names=None, batch_size=0)
