"""A worker's database: its alias, and calls retried through outages.

Connection errors close the connection and retry with backoff; SQLite's
"database is locked" is retried quietly; schema errors propagate at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connections, router

logger = logging.getLogger("django_tasks.backends.database.db_worker")

T = TypeVar("T")

MAX_BACKOFF = 5.0
"""Longest wait between reconnection attempts, in seconds."""


# SQLite reports these as OperationalError too, but no reconnection will fix them.
_FATAL_ERRORS = ("no such table", "no such column", "has no column")


class DatabaseCalls:
    """A worker's database, and calls that reconnect with backoff through outages.

    Each thread has its own connection to it (Django's connections are per thread).
    """

    @cached_property
    def using(self) -> str:
        """The alias of the database holding the task rows."""
        # Imported here: this module loads before Django's apps in a spawned child.
        from django_tasks.backends.database.models import DBTaskResult

        return router.db_for_write(DBTaskResult)

    @cached_property
    def can_listen(self) -> bool:
        """Whether it delivers enqueue notifications (PostgreSQL with psycopg 3)."""
        if connections[self.using].vendor != "postgresql":
            return False
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return False
        return True

    def call(
        self,
        func: Callable[[], T],
        *,
        what: str,
        give_up: Callable[[], bool],
        wait: Callable[[float], Any],
        on_error: Callable[[], None] | None = None,
    ) -> T:
        """Call ``func``; on connection errors reconnect with backoff and call it again.

        SQLite "database is locked" errors are retried quietly.  Other database
        errors propagate.  Re-raises the last error once ``give_up()`` is true.
        """
        failures = 0
        delay = 0.1
        while True:
            try:
                result = func()
            except (OperationalError, InterfaceError) as e:
                if any(text in str(e) for text in _FATAL_ERRORS):
                    raise  # a schema problem, not an outage: retrying won't help
                if "is locked" in str(e):
                    if give_up():
                        raise
                    wait(random.uniform(0.005, 0.05))
                    continue
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    logger.warning(
                        "Database error while %s (attempt %s): %s - reconnecting in %.1fs",
                        what,
                        failures,
                        str(e).strip() or type(e).__name__,
                        delay,
                    )
                self.close()
                if on_error is not None:
                    on_error()
                if give_up():
                    raise
                wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            if failures:
                logger.warning("Database connection restored while %s", what)
            return result

    def close(self) -> None:
        """Drop this thread's connection; the next query opens a new one."""
        connection = connections[self.using]
        try:
            connection.close()
        except Exception:
            connection.connection = None
