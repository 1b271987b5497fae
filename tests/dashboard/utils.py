"""Shared set-up for the dashboard tests: settings, users, rows."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Permission, User
from django.test import TestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks.utils import exception_to_dict
from tests.db_utils import make_row as make_row  # shared with the core tests

DB_TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": [],
        "ENQUEUE_ON_COMMIT": False,
    },
    "other": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": [],
        "ENQUEUE_ON_COMMIT": False,
    },
    "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": []},
}

XSS = "<script>alert('xss')</script>"
PREFIX = "admin:django_tasks_database_dbtaskresult_"


def search(pattern: str, text: str, flags: int = 0) -> re.Match[str]:
    """re.search that fails the test when nothing matches."""
    match = re.search(pattern, text, flags)
    assert match is not None, f"no match for {pattern!r}"
    return match


def url(name: str, *args: Any, query: str = "") -> str:
    return reverse(PREFIX + name, args=args) + (f"?{query}" if query else "")


def exception_data(message: str = "boom") -> dict[str, Any]:
    """A real serialised exception, with a chained cause and a traceback."""

    def inner() -> None:
        try:
            {"present": 1}["missing"]
        except KeyError as e:
            raise ValueError(message) from e

    try:
        inner()
    except ValueError as e:
        return dict(exception_to_dict(e))
    raise AssertionError("unreachable")


def make_failed(message: str = "boom", **kwargs: Any) -> DBTaskResult:
    now = timezone.now()
    values: dict[str, Any] = {
        "status": ResultStatus.FAILED,
        "task_path": "tests.tasks.failing_task_value_error",
        "started_at": now - timedelta(seconds=2),
        "finished_at": now,
        "exception_data": exception_data(message),
        **kwargs,
    }
    return make_row(**values)


def make_complete(value: Any = 42, **kwargs: Any) -> DBTaskResult:
    now = timezone.now()
    values: dict[str, Any] = {
        "status": ResultStatus.COMPLETE,
        "task_path": "tests.tasks.calculate_meaning_of_life",
        "started_at": now - timedelta(seconds=1),
        "finished_at": now,
        "return_value": value,
        **kwargs,
    }
    return make_row(**values)


def claim(result_id: Any, worker_id: uuid.UUID) -> DBTaskResult:
    """Claim the row of ``result_id`` for ``worker_id`` as a db_worker does (it must be due)."""
    claimed = services.claim_tasks(
        backend_name="default", queue_names=None, worker_id=worker_id, limit=100
    )
    mine = [row for row in claimed if str(row.pk) == str(result_id)]
    assert mine, f"result {result_id} was not due to run"
    # Put back any other row claimed on the way, untouched.
    others = [row.pk for row in claimed if str(row.pk) != str(result_id)]
    if others:
        services.release_tasks(worker_id=worker_id, ids=others)
    return mine[0]


def run_attempt(result_id: Any, worker_id: uuid.UUID | None = None) -> DBTaskResult:
    """Run one attempt of a due row as the worker does (claim, then services.run_task)."""
    worker_id = worker_id or uuid.uuid4()
    services.run_task(claim(result_id, worker_id), worker_id=worker_id)
    return DBTaskResult.objects.get(pk=result_id)


def staff(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, password="password", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


VIEW = "django_tasks_database.view_dbtaskresult"
RETRY = "django_tasks_admin.retry_taskresult"
PRUNE = "django_tasks_admin.prune_taskresult"
CANCEL = "django_tasks_admin.cancel_taskresult"


@override_settings(TASKS=DB_TASKS)
class DashboardTestCase(TestCase):
    """A superuser logged in, and users with fewer permissions at hand."""

    superuser: User
    viewer: User
    retrier: User
    pruner: User
    nobody: User

    @classmethod
    def setUpTestData(cls) -> None:
        cls.superuser = User.objects.create_superuser("admin", "admin@example.com", "password")
        cls.viewer = staff("viewer", VIEW)
        cls.retrier = staff("retrier", VIEW, RETRY)
        cls.pruner = staff("pruner", VIEW, PRUNE)
        cls.nobody = staff("nobody")

    def setUp(self) -> None:
        self.client.force_login(self.superuser)

    def htmx(self, path: str, target: str, **extra: Any) -> Any:
        return self.client.get(path, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=target, **extra)
