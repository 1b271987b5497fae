"""Database helpers: exclusive transactions on SQLite, UUID normalisation, signal checks."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import django
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.signals import ModelSignal


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


def listened(model: type[Model], *signals: ModelSignal) -> bool:
    """Whether any of these model signals has a receiver for ``model``.

    ``receivers`` first: ``has_listeners()`` costs more than the rest of an
    enqueue's checks, and most projects connect none.
    """
    return any(signal.receivers and signal.has_listeners(model) for signal in signals)


__all__ = [
    "connection_requires_manual_exclusive_transaction",
    "exclusive_transaction",
    "listened",
    "normalize_uuid",
]
