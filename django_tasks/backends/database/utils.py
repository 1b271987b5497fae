"""Database helpers: exclusive transactions on SQLite, UUID normalisation, field values."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import django
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper


def connection_requires_manual_exclusive_transaction(connection: BaseDatabaseWrapper) -> bool:
    """Return whether an exclusive transaction needs a manual BEGIN EXCLUSIVE."""
    if connection.vendor != "sqlite":
        return False
    if django.VERSION < (5, 1):
        return True
    return connection.transaction_mode != "EXCLUSIVE"  # type: ignore[attr-defined,no-any-return]


@contextmanager
def exclusive_transaction(using: str | None = None) -> Generator[Any, None, None]:
    """Hold an exclusive write transaction (atomic outside SQLite)."""
    connection = transaction.get_connection(using)

    if connection_requires_manual_exclusive_transaction(connection):
        if django.VERSION >= (5, 1):
            raise RuntimeError("Transactions must be EXCLUSIVE")

        with connection.cursor() as c:
            c.execute("BEGIN EXCLUSIVE")
            try:
                yield
            except BaseException:
                # Upstream commits here; keeping half the work of a failed block is worse.
                c.execute("ROLLBACK")
                raise
            else:
                c.execute("COMMIT")
    else:
        with transaction.atomic(using=using):
            yield


def normalize_uuid(val: str | UUID) -> str:
    """Return a UUID as a dashed lowercase string."""
    if isinstance(val, str):
        val = UUID(val)
    return str(val)


def db_value(name: str, value: Any, connection: BaseDatabaseWrapper) -> Any:
    """Adapt ``value`` for DBTaskResult's field ``name`` as a save would (JSON None is NULL).

    The common types are adapted directly: Django's field methods cost more than
    the UPDATE itself on SQLite.
    """
    from django_tasks.task import ResultStatus

    from .models import DBTaskResult

    if value is None:
        return None
    if name in _JSON_FIELDS:
        return connection.ops.adapt_json_value(value, None)
    if isinstance(value, ResultStatus):
        return value.value
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, UUID) and name in _UUID_FIELDS:
        return value if connection.features.has_native_uuid_field else value.hex
    field: Any = DBTaskResult._meta.get_field(name)
    return field.get_db_prep_save(value, connection)


_JSON_FIELDS = frozenset({"return_value", "exception_data", "args_kwargs", "attempts"})
_UUID_FIELDS = frozenset({"id", "worker_id"})


__all__ = [
    "connection_requires_manual_exclusive_transaction",
    "db_value",
    "exclusive_transaction",
    "normalize_uuid",
]
