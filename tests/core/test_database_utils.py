from __future__ import annotations

import uuid
from typing import Any
from unittest import mock, skipUnless

import django
from django.db import OperationalError, connection, connections, transaction
from django.test import SimpleTestCase, TransactionTestCase

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.utils import (
    connection_requires_manual_exclusive_transaction,
    exclusive_transaction,
    normalize_uuid,
)

IS_SQLITE = connection.vendor == "sqlite"
DJANGO_51 = django.VERSION >= (5, 1)


def fake_connection(vendor: str, transaction_mode: str | None = None) -> Any:
    return mock.Mock(vendor=vendor, transaction_mode=transaction_mode)


def other_sqlite_connection() -> Any:
    """A second connection to the test database that gives up on a lock at once."""
    default = connections["default"]
    settings_dict = {
        **default.settings_dict,
        "OPTIONS": {**default.settings_dict.get("OPTIONS", {}), "timeout": 0},
    }
    return type(default)(settings_dict, alias="other_sqlite")


def insert_row() -> DBTaskResult:
    return DBTaskResult.objects.create(
        args_kwargs={"args": [], "kwargs": {}}, task_path="tests.tasks.noop_task", backend_name="x"
    )


class NormalizeUUIDTestCase(SimpleTestCase):
    def test_normalize_uuid(self) -> None:
        value = uuid.uuid4()
        dashed = str(value)
        for given in (value, dashed, dashed.upper(), value.hex, value.hex.upper()):
            with self.subTest(given=given):
                assert normalize_uuid(given) == dashed

    def test_malformed(self) -> None:
        with self.assertRaises(ValueError):
            normalize_uuid("123")


class ConnectionRequiresManualExclusiveTransactionTestCase(SimpleTestCase):
    def test_not_sqlite(self) -> None:
        for vendor in ("postgresql", "mysql", "oracle"):
            assert not connection_requires_manual_exclusive_transaction(fake_connection(vendor))

    def test_sqlite_before_django_5_1(self) -> None:
        with mock.patch.object(django, "VERSION", (5, 0, 0, "final", 0)):
            for mode in (None, "EXCLUSIVE"):
                assert connection_requires_manual_exclusive_transaction(
                    fake_connection("sqlite", mode)
                )

    def test_sqlite_from_django_5_1(self) -> None:
        with mock.patch.object(django, "VERSION", (5, 1, 0, "final", 0)):
            assert not connection_requires_manual_exclusive_transaction(
                fake_connection("sqlite", "EXCLUSIVE")
            )
            for mode in (None, "DEFERRED", "IMMEDIATE"):
                assert connection_requires_manual_exclusive_transaction(
                    fake_connection("sqlite", mode)
                )

    def test_this_test_database(self) -> None:
        # tests/settings.py uses EXCLUSIVE mode on Django >= 5.1.
        expected = IS_SQLITE and not DJANGO_51
        assert connection_requires_manual_exclusive_transaction(connection) is expected


class ExclusiveTransactionTestCase(TransactionTestCase):
    def test_is_atomic(self) -> None:
        with exclusive_transaction():
            if not (IS_SQLITE and not DJANGO_51):
                assert connections["default"].in_atomic_block
            insert_row()
        assert DBTaskResult.objects.count() == 1

    def test_usable_as_a_decorator(self) -> None:
        @exclusive_transaction()
        def work() -> int:
            insert_row()
            return 5

        assert work() == 5
        assert DBTaskResult.objects.count() == 1

    def test_rolls_back_on_error(self) -> None:
        with self.assertRaisesMessage(RuntimeError, "stop"), exclusive_transaction():
            insert_row()
            raise RuntimeError("stop")
        assert not DBTaskResult.objects.exists()

    def test_using(self) -> None:
        with exclusive_transaction(using="default"):
            insert_row()
        assert DBTaskResult.objects.count() == 1

    @skipUnless(IS_SQLITE, "SQLite locking")
    def test_other_sqlite_connections_are_locked_out(self) -> None:
        other = other_sqlite_connection()
        try:
            with exclusive_transaction():
                insert_row()
                with self.assertRaisesMessage(OperationalError, "is locked"), other.cursor() as c:
                    c.execute("DELETE FROM django_tasks_database_dbtaskresult")
            with other.cursor() as c:
                c.execute("SELECT COUNT(*) FROM django_tasks_database_dbtaskresult")
                assert c.fetchone() == (1,)
        finally:
            other.close()

    @skipUnless(IS_SQLITE and DJANGO_51, "SQLite transaction modes arrived in Django 5.1")
    def test_non_exclusive_sqlite_is_refused(self) -> None:
        with (
            mock.patch.object(connections["default"], "transaction_mode", None),
            self.assertRaisesMessage(RuntimeError, "Transactions must be EXCLUSIVE"),
            exclusive_transaction(),
        ):
            pass  # pragma: no cover

    @skipUnless(IS_SQLITE and not DJANGO_51, "manual BEGIN EXCLUSIVE before Django 5.1")
    def test_manual_exclusive_transaction_before_django_5_1(self) -> None:
        with exclusive_transaction():
            # A raw BEGIN EXCLUSIVE, not atomic().
            assert not connections["default"].in_atomic_block
            assert connections["default"].connection.in_transaction
        assert not connections["default"].connection.in_transaction

    @skipUnless(not IS_SQLITE, "databases other than SQLite")
    def test_other_databases_use_atomic(self) -> None:
        with (
            mock.patch.object(transaction, "atomic", wraps=transaction.atomic) as atomic,
            exclusive_transaction(),
        ):
            pass
        atomic.assert_called_once_with(using=None)
