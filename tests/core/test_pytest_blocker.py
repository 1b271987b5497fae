"""Enqueue from a plain pytest test (no django_db mark) with on-commit enabled."""

from __future__ import annotations

from django.test import override_settings

from django_tasks import ResultStatus, default_task_backend
from django_tasks.backends.base import database_access_forbidden
from tests import tasks as test_tasks


def test_database_access_forbidden_without_django_db_mark() -> None:
    assert database_access_forbidden() is True


@override_settings(
    TASKS={"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
)
def test_enqueue_runs_at_once_when_pytest_django_blocks_the_database() -> None:
    assert default_task_backend.enqueue_on_commit is True
    result = test_tasks.calculate_meaning_of_life.enqueue()
    assert result.status == ResultStatus.COMPLETE
    assert result.return_value == 42
