"""Enqueue from a plain pytest test (no django_db mark) with on-commit enabled."""

from __future__ import annotations

from django.db import connection
from django.test import override_settings

from django_tasks import ResultStatus, default_task_backend, tasks
from django_tasks.backends.base import connection_in_transaction, in_transaction
from tests import tasks as test_tasks


def test_no_transaction_is_seen_without_django_db_mark() -> None:
    # Answered from the connection's own state: nothing touches the blocked database.
    assert in_transaction() is False
    assert connection_in_transaction(connection) is False


@override_settings(
    TASKS={"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
)
def test_enqueue_runs_at_once_when_pytest_django_blocks_the_database() -> None:
    assert default_task_backend.enqueue_on_commit is True
    result = test_tasks.calculate_meaning_of_life.enqueue()
    assert result.status == ResultStatus.COMPLETE
    assert result.return_value == 42


@override_settings(
    TASKS={
        "default": {
            "BACKEND": "django_tasks.backends.dummy.DummyBackend",
            "ENQUEUE_ON_COMMIT": True,
        }
    }
)
def test_dummy_stores_at_once_when_pytest_django_blocks_the_database() -> None:
    # No transaction can be open without database access: nothing waits for a commit.
    assert tasks["default"]._get_enqueue_on_commit_for_task(test_tasks.noop_task) is False
    result = test_tasks.enqueue_on_commit_task.enqueue()
    assert result.enqueued_at is not None
    assert [r.id for r in tasks["default"].results] == [result.id]
