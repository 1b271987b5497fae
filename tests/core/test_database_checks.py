from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock, skipUnless

import django
from django.core import checks
from django.db import connections
from django.test import SimpleTestCase, override_settings

from django_tasks import tasks

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
