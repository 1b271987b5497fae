from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError, IntegrityError, transaction
from django.test import TestCase, override_settings
from django.utils import timezone

from django_tasks import ResultStatus
from django_tasks.backends.database.backend import TaskResult as DBBackendTaskResult
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import Task
from tests import tasks as test_tasks
from tests.db_utils import DB_TASKS, make_row


@override_settings(TASKS=DB_TASKS)
class DBTaskResultQuerySetTestCase(TestCase):
    def test_default_ordering_is_priority_then_run_after_desc_nulls_last(self) -> None:
        now = timezone.now()
        low = make_row(priority=-5)
        high_null = make_row(priority=10)
        high_early = make_row(priority=10, run_after=now - timedelta(hours=2))
        high_late = make_row(priority=10, run_after=now - timedelta(hours=1))
        mid = make_row(priority=0, run_after=now + timedelta(hours=1))

        assert list(DBTaskResult.objects.all()) == [high_late, high_early, high_null, mid, low]

    def test_ordering_breaks_ties_by_enqueued_at(self) -> None:
        rows = [make_row() for _ in range(3)]
        # Force distinct, reversed-insertion timestamps.
        now = timezone.now()
        for offset, row in enumerate(rows):
            DBTaskResult.objects.filter(pk=row.pk).update(
                enqueued_at=now - timedelta(seconds=offset)
            )
        assert list(DBTaskResult.objects.all()) == rows[::-1]

    def test_ready(self) -> None:
        now = timezone.now()
        plain = make_row()
        past = make_row(run_after=now - timedelta(minutes=1))
        make_row(run_after=now + timedelta(minutes=1))
        for status in (ResultStatus.RUNNING, ResultStatus.COMPLETE, ResultStatus.FAILED):
            make_row(status=status)

        assert set(DBTaskResult.objects.ready()) == {plain, past}

    def test_status_filters(self) -> None:
        rows = {status: make_row(status=status) for status in ResultStatus.values}

        assert list(DBTaskResult.objects.complete()) == [rows["COMPLETE"]]
        assert list(DBTaskResult.objects.failed()) == [rows["FAILED"]]
        assert list(DBTaskResult.objects.running()) == [rows["RUNNING"]]
        assert set(DBTaskResult.objects.finished()) == {rows["COMPLETE"], rows["FAILED"]}

    def test_filters_chain_on_filtered_querysets(self) -> None:
        make_row(status=ResultStatus.COMPLETE, queue_name="queue-1")
        wanted = make_row(status=ResultStatus.COMPLETE)
        make_row(queue_name="default")

        assert list(DBTaskResult.objects.filter(queue_name="default").complete()) == [wanted]
        assert list(DBTaskResult.objects.filter(queue_name="default").finished()) == [wanted]
        assert DBTaskResult.objects.filter(queue_name="queue-1").ready().count() == 0

    def test_get_locked_returns_the_first_row(self) -> None:
        make_row(priority=1)
        top = make_row(priority=50)
        with transaction.atomic():
            assert DBTaskResult.objects.get_locked() == top
            assert DBTaskResult.objects.ready().filter(priority__lt=10).get_locked() != top

    def test_get_locked_without_rows(self) -> None:
        with transaction.atomic():
            assert DBTaskResult.objects.ready().get_locked() is None

    def test_prunable(self) -> None:
        now = timezone.now()
        old = now - timedelta(days=20)
        mid = now - timedelta(days=10)
        old_complete = make_row(status=ResultStatus.COMPLETE, finished_at=old)
        make_row(status=ResultStatus.COMPLETE, finished_at=mid)
        old_failed = make_row(status=ResultStatus.FAILED, finished_at=old)
        mid_failed = make_row(status=ResultStatus.FAILED, finished_at=mid)
        make_row(status=ResultStatus.NEW, finished_at=old)
        make_row(status=ResultStatus.RUNNING, finished_at=old)

        assert set(DBTaskResult.objects.prunable()) == {old_complete, old_failed}
        assert set(DBTaskResult.objects.prunable(failed_min_age_days=5)) == {
            old_complete,
            old_failed,
            mid_failed,
        }
        # Upstream quirk: 0 means "same as min_age_days".
        assert set(DBTaskResult.objects.prunable(failed_min_age_days=0)) == {
            old_complete,
            old_failed,
        }
        assert DBTaskResult.objects.prunable(min_age_days=0).count() == 4
        assert DBTaskResult.objects.prunable(min_age_days=30).count() == 0


@override_settings(TASKS=DB_TASKS)
class DBTaskResultTestCase(TestCase):
    def test_field_defaults_and_verbose_names(self) -> None:
        row = make_row()
        assert row.status == ResultStatus.NEW
        assert row.priority == 0
        assert row.queue_name == "default"
        assert row.return_value is None
        assert row.exception_data is None
        assert row.attempts == []
        assert isinstance(row.id, uuid.UUID)
        opts = DBTaskResult._meta
        assert opts.verbose_name == "Task Result"
        assert opts.verbose_name_plural == "Task Results"
        assert opts.get_field("enqueued_at").verbose_name == "enqueued at"
        assert opts.get_field("args_kwargs").verbose_name == "args kwargs"
        assert opts.get_field("status").max_length == 8
        assert opts.app_label == "django_tasks_database"

    def test_priority_range_constraint(self) -> None:
        for priority in (-100, 100):
            make_row(priority=priority)
        for priority in (-101, 101, 1000):
            with (
                self.subTest(priority=priority),
                self.assertRaises(IntegrityError),
                transaction.atomic(),
            ):
                make_row(priority=priority)

    def test_task(self) -> None:
        run_after = timezone.now() + timedelta(minutes=5)
        row = make_row(
            task_path="tests.tasks.echo", priority=3, queue_name="queue-1", run_after=run_after
        )
        task = row.task
        assert isinstance(task, Task)
        assert task.func is test_tasks.echo.func
        assert (task.priority, task.queue_name, task.run_after, task.backend) == (
            3,
            "queue-1",
            run_after,
            "default",
        )

    def test_task_not_a_task(self) -> None:
        row = make_row(task_path="tests.tasks.time")
        with self.assertRaisesMessage(
            SuspiciousOperation, f"Task {row.id} does not point to a Task (tests.tasks.time)"
        ):
            row.task  # noqa: B018

    def test_task_import_errors_propagate(self) -> None:
        with self.assertRaises(ImportError):
            make_row(task_path="tests.tasks.does_not_exist").task  # noqa: B018
        with self.assertRaises(ImportError):
            make_row(task_path="nowhere_at_all.task").task  # noqa: B018

    def test_task_result(self) -> None:
        row = make_row(
            task_path="tests.tasks.echo",
            args_kwargs={"args": [1, "a"], "kwargs": {"b": [2]}},
            status=ResultStatus.COMPLETE,
            return_value={"x": 1},
            started_at=timezone.now(),
            finished_at=timezone.now(),
        )
        result = row.task_result
        assert isinstance(result, DBBackendTaskResult)
        assert result.db_result is row
        assert result.id == str(row.id)
        assert result.status == ResultStatus.COMPLETE
        assert result.args == [1, "a"]
        assert result.kwargs == {"b": [2]}
        assert result.backend == "default"
        assert (result.enqueued_at, result.started_at, result.finished_at) == (
            row.enqueued_at,
            row.started_at,
            row.finished_at,
        )
        assert result.return_value == {"x": 1}
        assert result._exception_data is None

    def test_claim_is_one_update(self) -> None:
        row = make_row()
        worker_id = uuid.uuid4()
        with self.assertNumQueries(1) as ctx:
            row.claim(worker_id)

        sql = ctx.captured_queries[0]["sql"]
        assert sql.startswith("UPDATE")
        assert "args_kwargs" not in sql
        row.refresh_from_db()
        assert row.status == ResultStatus.RUNNING
        assert row.started_at is not None
        assert row.worker_id == worker_id

    def test_set_complete_is_one_update(self) -> None:
        row = make_row(status=ResultStatus.RUNNING, exception_data={"stale": True})
        with self.assertNumQueries(1) as ctx:
            row.set_complete([1, 2])

        assert ctx.captured_queries[0]["sql"].startswith("UPDATE")
        assert "args_kwargs" not in ctx.captured_queries[0]["sql"]
        row.refresh_from_db()
        assert row.status == ResultStatus.COMPLETE
        assert row.finished_at is not None
        assert row.return_value == [1, 2]
        assert row.exception_data is None

    def test_set_failed_is_one_update(self) -> None:
        row = make_row(status=ResultStatus.RUNNING, return_value=5)
        try:
            raise ValueError("boom")
        except ValueError as e:
            with self.assertNumQueries(1) as ctx:
                row.set_failed(e)

        assert ctx.captured_queries[0]["sql"].startswith("UPDATE")
        row.refresh_from_db()
        assert row.status == ResultStatus.FAILED
        assert row.finished_at is not None
        assert row.return_value is None
        data = row.exception_data
        assert data is not None
        assert data["exc_type"] == "builtins.ValueError"
        assert data["exc_args"] == ["boom"]
        assert data["exc_traceback"].endswith("ValueError: boom\n")
        result = row.task_result
        assert isinstance(result.exception, ValueError)
        assert result.exception.args == ("boom",)

    def test_set_failed_with_unserialisable_exception(self) -> None:
        row = make_row(status=ResultStatus.RUNNING)
        with self.assertLogs("django_tasks.backends.database", logging.ERROR) as logs:
            row.set_failed(ValueError(object()))

        assert logs.records[0].getMessage() == f"Task id={row.id} unable to save exception"
        assert logs.records[0].exc_info is not None
        row.refresh_from_db()
        assert row.status == ResultStatus.FAILED
        assert row.exception_data is None
        assert row.task_result.exception is None
        assert row.task_result.traceback is None

    def test_state_changes_retry_on_errors(self) -> None:
        row = make_row()
        DBTaskResult.objects.filter(pk=row.pk).delete()
        # The row is gone: the UPDATE matches nothing, is retried, then raises.
        with self.assertNumQueries(3), self.assertRaises(DatabaseError):
            row.set_complete(None)

    def test_str(self) -> None:
        row = make_row()
        assert str(row) == f"tests.tasks.noop_task ({row.id})"
