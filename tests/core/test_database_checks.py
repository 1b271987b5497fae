from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any
from unittest import mock, skipUnless

import django
import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connections
from django.test import SimpleTestCase, override_settings

from django_tasks import tasks
from django_tasks.backends.database.backend import DatabaseBackend
from django_tasks.backends.database.options import DatabaseOptions

DB_TASKS = {"default": {"BACKEND": "django_tasks.backends.database.DatabaseBackend"}}

IS_SQLITE = connections["default"].vendor == "sqlite"


@contextmanager
def sqlite_transaction_mode(mode: str | None) -> Iterator[None]:
    """Run with the default SQLite connection configured for ``mode``."""
    conn = connections["default"]
    options = {**conn.settings_dict["OPTIONS"], "transaction_mode": mode}
    try:
        with mock.patch.dict(conn.settings_dict, {"OPTIONS": options}):
            yield
    finally:
        # The check calls get_connection_params(), which sets transaction_mode.
        conn.get_connection_params()


@override_settings(TASKS=DB_TASKS)
class DatabaseBackendChecksTestCase(SimpleTestCase):
    # Django 6's model checks read database features; nothing here writes.
    databases = {"default"}

    def test_good_configuration_has_no_messages(self) -> None:
        assert list(tasks["default"].check()) == []

    def test_run_checks_includes_the_backend(self) -> None:
        assert [m for m in checks.run_checks() if "django_tasks" in str(m.msg)] == []
        with mock.patch(
            "django_tasks.backends.database.backend.apps.is_installed", return_value=False
        ):
            messages = [m.msg for m in checks.run_checks() if "django_tasks" in str(m.msg)]
        assert messages == [
            "DatabaseBackend configured as django_tasks backend, but database app not installed"
        ]

    @override_settings(INSTALLED_APPS=[])
    def test_app_not_installed(self) -> None:
        messages = list(tasks["default"].check())

        assert len(messages) == 1
        message = messages[0]
        assert message.level == checks.ERROR
        assert message.msg == (
            "DatabaseBackend configured as django_tasks backend, but database app not installed"
        )
        assert message.hint == "Insert 'django_tasks.backends.database' in INSTALLED_APPS"
        assert message.id is None

    @override_settings(INSTALLED_APPS=["django_tasks"])
    def test_app_not_installed_with_only_the_core_app(self) -> None:
        assert len(list(tasks["default"].check())) == 1

    @skipUnless(IS_SQLITE and django.VERSION >= (5, 1), "SQLite transaction modes")
    def test_sqlite_non_exclusive_transactions(self) -> None:
        for mode in (None, "DEFERRED", "IMMEDIATE"):
            with self.subTest(mode=mode), sqlite_transaction_mode(mode):
                messages = list(tasks["default"].check())
                assert len(messages) == 1
                message = messages[0]
                assert message.level == checks.ERROR
                assert message.msg == "DatabaseBackend is using SQLite non-exclusive transactions"
                assert message.hint == (
                    "Set settings.DATABASES['default']['OPTIONS']['transaction_mode'] "
                    "to 'EXCLUSIVE'"
                )
                assert message.id is None

    @skipUnless(IS_SQLITE and django.VERSION >= (5, 1), "SQLite transaction modes")
    def test_sqlite_exclusive_transactions(self) -> None:
        with sqlite_transaction_mode("EXCLUSIVE"):
            assert list(tasks["default"].check()) == []

    @skipUnless(IS_SQLITE and django.VERSION < (5, 1), "before Django 5.1")
    def test_sqlite_before_django_5_1_is_not_checked(self) -> None:
        assert list(tasks["default"].check()) == []

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": "django_tasks.backends.database.DatabaseBackend",
                "ENQUEUE_ON_COMMIT": True,
            }
        }
    )
    def test_base_checks_run_first(self) -> None:
        with mock.patch("django_tasks.backends.base.has_databases", return_value=False):
            messages = list(tasks["default"].check())
        assert [m.msg for m in messages] == [
            "`ENQUEUE_ON_COMMIT` cannot be used when no databases are configured"
        ]


def tasks_with_options(**options: Any) -> dict[str, Any]:
    return {"default": {**DB_TASKS["default"], "OPTIONS": options}}


class DatabaseBackendOptionsChecksTestCase(SimpleTestCase):
    databases = {"default"}

    def test_options_are_parsed_once_by_the_backend(self) -> None:
        with override_settings(TASKS=tasks_with_options(heartbeat_timeout=7, lost_tasks="requeue")):
            backend = tasks["default"]
            assert isinstance(backend, DatabaseBackend)
            assert backend.db_options == DatabaseOptions(
                heartbeat_timeout=7.0, lost_tasks="requeue"
            )
            assert tasks["default"].db_options is backend.db_options
            assert list(backend.check()) == []

    def test_missing_options_take_the_defaults(self) -> None:
        with override_settings(TASKS=DB_TASKS):
            backend = tasks["default"]
            assert isinstance(backend, DatabaseBackend)
            assert backend.db_options.heartbeat_timeout == 20.0
            assert backend.db_options.lost_tasks == "fail"

    def test_invalid_lost_tasks_is_an_error(self) -> None:
        with override_settings(TASKS=tasks_with_options(lost_tasks="retry")):
            backend = tasks["default"]  # building the backend does not raise
            (message,) = backend.check()
        assert message.level == checks.ERROR
        assert message.msg == (
            "OPTIONS['lost_tasks'] of backend 'default' must be one of fail, requeue, not 'retry'"
        )
        assert message.id == "django_tasks.database.E001"

    def test_invalid_heartbeat_timeouts_are_errors(self) -> None:
        for value in ["20", 0, -1.5, float("nan"), float("inf"), True, None]:
            with (
                self.subTest(value=value),
                override_settings(TASKS=tasks_with_options(heartbeat_timeout=value)),
            ):
                backend = tasks["default"]
                assert isinstance(backend, DatabaseBackend)
                (message,) = backend.check()
                assert message.level == checks.ERROR
                assert message.msg == (
                    "OPTIONS['heartbeat_timeout'] of backend 'default' must be a number of "
                    f"seconds greater than zero, not {value!r}"
                )
                assert backend.db_options.heartbeat_timeout == 20.0  # the default meanwhile

    def test_every_invalid_value_is_reported(self) -> None:
        with override_settings(TASKS=tasks_with_options(heartbeat_timeout=-1, lost_tasks="x")):
            messages = [m.msg for m in tasks["default"].check()]
        assert len(messages) == 2
        assert "OPTIONS['heartbeat_timeout']" in messages[0]
        assert "OPTIONS['lost_tasks']" in messages[1]

    def test_unknown_options_are_a_warning_naming_the_known_ones(self) -> None:
        with override_settings(TASKS=tasks_with_options(heartbeat_timout=5, lost_tasks="fail")):
            (message,) = tasks["default"].check()
        assert message.level == checks.WARNING
        assert message.msg == "Unknown OPTIONS of backend 'default': 'heartbeat_timout'"
        assert message.hint == (
            "The OPTIONS a DatabaseBackend reads: "
            "heartbeat_timeout, lost_tasks, task_defaults, task_overrides, schedules"
        )
        assert message.id == "django_tasks.database.W001"

    def test_manage_py_check_reports_invalid_options(self) -> None:
        with (
            override_settings(TASKS=tasks_with_options(lost_tasks="retry")),
            pytest.raises(SystemCheckError, match=r"OPTIONS\['lost_tasks'\] of backend 'default'"),
        ):
            call_command("check", stdout=StringIO(), stderr=StringIO())
