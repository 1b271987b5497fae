"""What the threads of one worker process share: its identity, flags, counters, claim lock."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from django.db import InterfaceError, OperationalError

from django_tasks.backends.database import services
from django_tasks.task import ResultStatus

if TYPE_CHECKING:
    from django_tasks.backends.database.models import DBTaskResult

    from .db_calls import DatabaseCalls

logger = logging.getLogger("django_tasks.backends.database.db_worker")


class WorkerState:
    """The state the executors and the heartbeat thread of one worker process share.

    Flags are plain attributes, each written by one side and read by the others;
    locks guard only the read-modify-writes.
    """

    def __init__(self, *, heartbeat_timeout: float, listens: bool) -> None:
        self.worker_id: UUID = uuid4()
        self.listens = listens  # whether we LISTEN for enqueue notifications
        self.running = True  # False once asked to stop
        self.force = False  # True once asked to abort running tasks
        self.in_pool = False  # a --processes child (set by process_pool.run_child)
        self.recycling = False  # such a child leaving to free a stuck task's slot
        self.generation = 0  # bumped when we learn others considered us lost
        self.tasks_done = 0
        self.tasks_failed = 0
        # Held from a claim's statement until its rows are recorded (see
        # ExecutorThreads.reconcile_claims).
        self.claim_lock = threading.Lock()
        self._start_within = heartbeat_timeout / 2
        self._last_heartbeat = time.monotonic()
        self._waiting = False  # what our row's ``waiting`` says, as far as we know
        self._count_lock = threading.Lock()
        self._waiting_lock = threading.Lock()

    @property
    def waiting(self) -> bool:
        """Whether our row says we wait for a notification."""
        return self._waiting

    def may_start_tasks(self) -> bool:
        """Whether our heartbeat is recent enough that nobody can think us lost."""
        return time.monotonic() - self._last_heartbeat < self._start_within

    def heartbeat_sent(self) -> None:
        """Record that our row's heartbeat is fresh."""
        self._last_heartbeat = time.monotonic()

    def considered_lost(self) -> None:
        """Others recovered our claims: executors drop the rows they still hold."""
        self.generation += 1

    def count(self, status: ResultStatus | None) -> None:
        """Count a finished task for the heartbeat to report."""
        with self._count_lock:
            if status == ResultStatus.COMPLETE:
                self.tasks_done += 1
            elif status == ResultStatus.FAILED:
                self.tasks_failed += 1

    def set_waiting(self, waiting: bool) -> bool:
        """Tell enqueuers whether we wait for a notification; True if that changed.

        Marked when an executor finds nothing to claim, cleared when a claim comes
        back full (busy workers need no notifications, which cost every enqueue).
        Best effort: a failed write is corrected by the next heartbeat.
        """
        if not self.listens:
            return False
        with self._waiting_lock:
            if self._waiting == waiting:
                return False
            try:
                services.set_worker_waiting(worker_id=self.worker_id, waiting=waiting)
            except (OperationalError, InterfaceError):
                return False
            self._waiting = waiting
            return True

    def release(
        self, rows: list[DBTaskResult], *, db: DatabaseCalls, wait: Callable[[float], Any]
    ) -> None:
        """Put rows we claimed that never started back to NEW (through outages)."""
        if not rows:
            return
        pks = [row.pk for row in rows]
        try:
            db.call(
                lambda: services.release_tasks(worker_id=self.worker_id, ids=pks),
                what="releasing claimed tasks",
                give_up=lambda: self.force,
                wait=wait,
            )
        except (OperationalError, InterfaceError):
            logger.error("Could not release %s claimed task(s)", len(pks))
