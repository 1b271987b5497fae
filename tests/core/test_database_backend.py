from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models.signals import post_save
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from django_tasks import ResultStatus, default_task_backend, tasks
from django_tasks.backends.database import DatabaseBackend
from django_tasks.backends.database.backend import TaskResult as DBBackendTaskResult
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.exceptions import ResultDoesNotExist
from django_tasks.signals import task_enqueued
from tests import tasks as test_tasks
from tests.db_utils import DB_TASKS


class SignalRecorder:
    """Collect task_enqueued sends, noting whether the row existed at the time."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, task_result: Any, **kwargs: Any) -> None:
        self.calls.append(
            {
                "sender": sender,
                "task_result": task_result,
                "row_exists": DBTaskResult.objects.filter(id=task_result.id).exists(),
            }
        )

    def __enter__(self) -> SignalRecorder:
        task_enqueued.connect(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        task_enqueued.disconnect(self)


@override_settings(TASKS=DB_TASKS)
class DatabaseBackendTestCase(TestCase):
    def test_backend_capabilities(self) -> None:
        backend = tasks["default"]
        assert isinstance(backend, DatabaseBackend)
        assert backend.supports_defer
        assert backend.supports_async_task
        assert backend.supports_get_result
        assert default_task_backend.alias == "default"

    def test_enqueue_stores_a_new_row(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.echo.enqueue(1, (2, 3), key={"a": (4,)})

        row = DBTaskResult.objects.get()
        assert isinstance(result, DBBackendTaskResult)
        assert result.id == str(row.id)
        assert row.status == ResultStatus.NEW
        assert row.args_kwargs == {"args": [1, [2, 3]], "kwargs": {"key": {"a": [4]}}}
        assert row.task_path == "tests.tasks.echo"
        assert row.backend_name == "default"
        assert row.queue_name == "default"
        assert row.priority == 0
        assert row.run_after is None
        assert row.started_at is None
        assert row.finished_at is None
        assert row.enqueued_at is not None
        assert result.args == [1, [2, 3]]
        assert result.kwargs == {"key": {"a": [4]}}
        assert result.backend == "default"
        assert result.status == ResultStatus.NEW

    def test_enqueue_stores_priority_queue_and_run_after(self) -> None:
        run_after = timezone.now() + timedelta(hours=1)
        with self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.noop_task.using(
                priority=-7, queue_name="queue-1", run_after=run_after
            ).enqueue()

        row = DBTaskResult.objects.get(id=result.id)
        assert (row.priority, row.queue_name, row.run_after) == (-7, "queue-1", run_after)
        assert result.task.priority == -7
        assert result.task.queue_name == "queue-1"
        assert result.task.run_after == run_after

    def test_enqueue_with_on_commit_waits_for_the_commit(self) -> None:
        with SignalRecorder() as recorder:
            with self.captureOnCommitCallbacks() as callbacks:
                result = test_tasks.enqueue_on_commit_task.enqueue()
                assert result.enqueued_at is None
                assert not DBTaskResult.objects.exists()
                assert recorder.calls == []

            assert len(callbacks) == 1
            callbacks[0]()

        assert DBTaskResult.objects.filter(id=result.id).exists()
        assert result.enqueued_at is None  # the returned result is a snapshot
        result.refresh()
        assert result.enqueued_at is not None
        assert [call["row_exists"] for call in recorder.calls] == [True]

    def test_enqueue_without_on_commit_stores_at_once(self) -> None:
        with SignalRecorder() as recorder, self.captureOnCommitCallbacks() as callbacks:
            result = test_tasks.never_enqueue_on_commit_task.enqueue()
            assert DBTaskResult.objects.filter(id=result.id).exists()
            assert result.enqueued_at is not None

        assert callbacks == []
        assert len(recorder.calls) == 1

    @override_settings(TASKS={"default": {**DB_TASKS["default"], "ENQUEUE_ON_COMMIT": False}})
    def test_backend_enqueue_on_commit_setting(self) -> None:
        with self.captureOnCommitCallbacks() as callbacks:
            test_tasks.noop_task.enqueue()
        assert callbacks == []
        assert DBTaskResult.objects.count() == 1

    def test_task_enqueued_is_sent_after_the_row_exists(self) -> None:
        with SignalRecorder() as recorder, self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.noop_task.enqueue()

        assert len(recorder.calls) == 1
        call = recorder.calls[0]
        assert call["sender"] is DatabaseBackend
        assert call["row_exists"]
        assert call["task_result"].id == result.id

    def test_enqueue_rejects_non_json_arguments(self) -> None:
        with SignalRecorder() as recorder, self.captureOnCommitCallbacks(execute=True):
            with self.assertRaises(TypeError):
                test_tasks.noop_task.enqueue(timezone.now())
            with self.assertRaises(TypeError):
                test_tasks.noop_task.enqueue(value=object())

        assert not DBTaskResult.objects.exists()
        assert recorder.calls == []

    def test_get_result_costs_one_query(self) -> None:
        result = test_tasks.never_enqueue_on_commit_task.enqueue()

        with self.assertNumQueries(1):
            fetched = default_task_backend.get_result(result.id)

        assert fetched == result
        assert fetched is not result
        assert isinstance(fetched, DBBackendTaskResult)
        assert fetched.db_result == DBTaskResult.objects.get(id=result.id)

    def test_aget_result_costs_one_query(self) -> None:
        result = test_tasks.never_enqueue_on_commit_task.enqueue()

        with self.assertNumQueries(1):
            fetched = async_to_sync(default_task_backend.aget_result)(result.id)

        assert fetched == result

    def test_deferred_result_equals_get_result_after_refresh(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.calculate_meaning_of_life.enqueue()

        assert result.enqueued_at is None
        result.refresh()
        assert default_task_backend.get_result(result.id) == result

    def test_get_result_accepts_a_uuid(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.noop_task.enqueue()
        assert default_task_backend.get_result(uuid.UUID(result.id)).id == result.id  # type: ignore[arg-type]

    def test_get_result_of_missing_result(self) -> None:
        missing = str(uuid.uuid4())
        with self.assertRaises(ResultDoesNotExist) as cm:
            default_task_backend.get_result(missing)
        assert cm.exception.args == (missing,)

    def test_get_result_of_malformed_id(self) -> None:
        for bad in ("123", "not-a-uuid", ""):
            with self.subTest(bad=bad), self.assertRaises(ResultDoesNotExist):
                default_task_backend.get_result(bad)

    def test_task_get_result(self) -> None:
        result = test_tasks.never_enqueue_on_commit_task.enqueue()

        assert test_tasks.never_enqueue_on_commit_task.get_result(result.id) == result
        with self.assertRaises(ResultDoesNotExist):
            test_tasks.noop_task.get_result(result.id)

    def test_refresh_reads_the_row(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.calculate_meaning_of_life.enqueue()

        row = DBTaskResult.objects.get(id=result.id)
        row.claim()
        row.set_complete(42)

        result.refresh()
        assert result.status == ResultStatus.COMPLETE
        assert result.return_value == 42
        assert result.started_at is not None
        assert result.finished_at is not None

    def test_refresh_of_a_deleted_result(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.noop_task.enqueue()
        DBTaskResult.objects.all().delete()
        with self.assertRaises(ResultDoesNotExist):
            result.refresh()

    def test_failed_result_exposes_the_exception(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.failing_task_value_error.enqueue()
        row = DBTaskResult.objects.get(id=result.id)
        try:
            raise ValueError("This task failed due to ValueError")
        except ValueError as e:
            row.set_failed(e)

        fetched = default_task_backend.get_result(result.id)
        assert fetched.status == ResultStatus.FAILED
        assert isinstance(fetched.exception, ValueError)
        assert fetched.exception.args == ("This task failed due to ValueError",)
        assert fetched.traceback is not None
        assert fetched.traceback.endswith("ValueError: This task failed due to ValueError\n")
        with self.assertRaisesMessage(ValueError, "Task failed"):
            fetched.return_value  # noqa: B018

    def test_enqueue_async_task(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            result = test_tasks.noop_task_async.enqueue()
        assert DBTaskResult.objects.get(id=result.id).task_path == "tests.tasks.noop_task_async"

    async def test_aenqueue_and_aget_result(self) -> None:
        result = await test_tasks.never_enqueue_on_commit_task.aenqueue()

        fetched = await default_task_backend.aget_result(result.id)
        assert fetched == result
        assert await test_tasks.never_enqueue_on_commit_task.aget_result(result.id) == result

    async def test_aget_result_of_missing_or_malformed_id(self) -> None:
        for bad in ("123", str(uuid.uuid4())):
            with self.assertRaises(ResultDoesNotExist):
                await default_task_backend.aget_result(bad)

    async def test_arefresh(self) -> None:
        result = await test_tasks.never_enqueue_on_commit_task.aenqueue()
        await DBTaskResult.objects.filter(id=result.id).aupdate(status=ResultStatus.RUNNING)
        await result.arefresh()
        assert result.status == ResultStatus.RUNNING


@override_settings(TASKS=DB_TASKS)
class DatabaseBackendOutsideTransactionTestCase(TransactionTestCase):
    """Enqueue outside atomic(): on-commit work runs at once."""

    def test_enqueue_is_a_single_insert(self) -> None:
        with self.assertNumQueries(1) as ctx:
            result = test_tasks.noop_task.enqueue()

        # One INSERT (on PostgreSQL inside a statement that also wakes idle workers).
        assert "INSERT INTO" in ctx.captured_queries[0]["sql"]
        assert result.enqueued_at is not None
        assert DBTaskResult.objects.filter(id=result.id).exists()

    @override_settings(TASKS={"default": {**DB_TASKS["default"], "ENQUEUE_ON_COMMIT": False}})
    def test_enqueue_inside_atomic_without_on_commit_belongs_to_the_transaction(self) -> None:
        # The row is written at once, and lives or dies with the caller's transaction.
        with self.assertRaises(RuntimeError), transaction.atomic():
            first = test_tasks.noop_task.enqueue()
            second = test_tasks.echo.enqueue("x")
            assert DBTaskResult.objects.filter(id__in=[first.id, second.id]).count() == 2
            raise RuntimeError
        assert not DBTaskResult.objects.exists()

        with transaction.atomic():
            kept = test_tasks.noop_task.enqueue()
            with self.assertRaises(RuntimeError), transaction.atomic():
                test_tasks.noop_task.enqueue()  # in a savepoint that rolls back
                raise RuntimeError
        assert list(DBTaskResult.objects.values_list("id", flat=True)) == [uuid.UUID(kept.id)]

    def test_enqueue_then_get_result_are_equal(self) -> None:
        result = test_tasks.echo.using(priority=3).enqueue("a", b=1)
        assert default_task_backend.get_result(result.id) == result

    def test_enqueue_in_a_rolled_back_transaction_stores_nothing(self) -> None:
        with SignalRecorder() as recorder:
            try:
                with transaction.atomic():
                    test_tasks.noop_task.enqueue()
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass

        assert not DBTaskResult.objects.exists()
        assert recorder.calls == []

    def test_enqueue_in_a_committed_transaction(self) -> None:
        with SignalRecorder() as recorder:
            with transaction.atomic():
                result = test_tasks.noop_task.enqueue()
                assert recorder.calls == []
            assert [call["row_exists"] for call in recorder.calls] == [True]
        assert result.enqueued_at is None
        result.refresh()
        assert result.enqueued_at is not None


@override_settings(TASKS=DB_TASKS)
class DatabaseBackendInsertPathTestCase(TransactionTestCase):
    """Enqueue skips the ORM's save() unless someone listens to the model's signals."""

    def test_post_save_listeners_still_see_the_insert(self) -> None:
        seen: list[tuple[Any, bool]] = []

        def receiver(sender: Any, instance: DBTaskResult, created: bool, **kwargs: Any) -> None:
            seen.append((instance.pk, created))

        post_save.connect(receiver, sender=DBTaskResult)
        try:
            result = test_tasks.noop_task.enqueue()
        finally:
            post_save.disconnect(receiver, sender=DBTaskResult)

        assert seen == [(uuid.UUID(result.id), True)]
        assert DBTaskResult.objects.get(id=result.id).status == ResultStatus.NEW

    def test_repeated_enqueues_store_each_row_with_its_own_values(self) -> None:
        first = test_tasks.echo.using(priority=7, queue_name="queue-1").enqueue("x", n=[1, 2])
        second = test_tasks.noop_task.enqueue()

        row = DBTaskResult.objects.get(id=first.id)
        assert (row.priority, row.queue_name, row.task_path) == (7, "queue-1", "tests.tasks.echo")
        assert row.args_kwargs == {"args": ["x"], "kwargs": {"n": [1, 2]}}
        assert row.enqueued_at == first.enqueued_at
        assert DBTaskResult.objects.get(id=second.id).task_path == "tests.tasks.noop_task"
        assert default_task_backend.get_result(first.id) == first


@override_settings(TASKS=DB_TASKS)
class RollingDeployTestCase(TestCase):
    """Migration 0006's `api` column has a database default (Django 5.0+)."""

    def test_an_insert_of_the_previous_release_still_works(self) -> None:
        import django
        from django.db import connection

        if django.VERSION < (5, 0):
            self.skipTest("db_default needs Django 5.0")  # Django 4.2 has no database defaults
        # The previous release's INSERT names every column but `api`.
        fields = [
            f for f in DBTaskResult._meta.concrete_fields if f.name not in ("api", "run_after")
        ]
        row = DBTaskResult.new_row(
            enqueued_at=timezone.now(),
            args_kwargs={"args": [], "kwargs": {}},
            priority=0,
            task_path=test_tasks.noop_task.module_path,
            queue_name="default",
            run_after=None,
            backend_name="default",
        )
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        params = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {connection.ops.quote_name(DBTaskResult._meta.db_table)}"
                f" ({columns}) VALUES ({placeholders})",
                params,
            )
        stored = DBTaskResult.objects.get(pk=row.pk)
        assert stored.api == "django_tasks"
        assert stored.task_result.status == ResultStatus.NEW
