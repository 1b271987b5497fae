"""The scheduler thread: enqueue the due ticks of the backend's recurring tasks.

Every ``db_worker`` (not ``--batch``: it exits once idle) with schedules in its
backend's ``OPTIONS`` runs one.  It sleeps until the next tick of any schedule,
then calls ``services.scheduling.enqueue_due``; the database makes sure each
tick is enqueued once, however many workers wake for it.
"""

from __future__ import annotations

import logging
import random
import threading

from django.db import InterfaceError, OperationalError, connections
from django.utils import timezone

from django_tasks.backends.database.options import options_for
from django_tasks.backends.database.services import scheduling

from .db_calls import MAX_BACKOFF, DatabaseCalls
from .options import WorkerOptions
from .state import WorkerState
from .wakeup import Wakeup

logger = logging.getLogger("django_tasks.backends.database.db_worker")

MAX_SLEEP = 60.0
"""Longest sleep between two passes, whatever the next tick (the wall clock may jump)."""

_AFTER_TICK = 0.01
"""Wake this long after a tick's time: a pass a hair early finds nothing due."""


class SchedulerThread(threading.Thread):
    """Enqueue due schedule ticks, waking at the next tick of any schedule."""

    def __init__(self, *, options: WorkerOptions, state: WorkerState, db: DatabaseCalls) -> None:
        super().__init__(name="db_worker-scheduler", daemon=True)
        self.options = options
        self.state = state
        self.db = db
        self.wake = Wakeup()
        self._stopping = False

    @classmethod
    def start_for(
        cls, *, options: WorkerOptions, state: WorkerState, db: DatabaseCalls
    ) -> SchedulerThread | None:
        """Start a scheduler if the worker should run one (schedules, not ``--batch``)."""
        if options.batch or not options_for(options.backend_name).schedules:
            return None
        thread = cls(options=options, state=state, db=db)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()
        self.join(timeout=10)

    def run(self) -> None:
        failures = 0
        try:
            while not self._stopping and self.state.running:
                try:
                    outcome = scheduling.enqueue_due(backend_name=self.options.backend_name)
                except (OperationalError, InterfaceError) as e:
                    if "is locked" in str(e):
                        delay = random.uniform(0.05, 0.2)  # SQLite busy: try again shortly
                    else:
                        failures += 1
                        if failures == 1 or failures % 10 == 0:
                            logger.warning("Scheduling failed (attempt %s): %s", failures, e)
                        self.db.close()
                        delay = min(0.1 * 2**failures, MAX_BACKOFF)
                except Exception:
                    logger.exception("Scheduling failed")
                    delay = MAX_SLEEP
                else:
                    if failures:
                        logger.warning("Scheduling restored after %s failure(s)", failures)
                        failures = 0
                    delay = MAX_SLEEP
                    if outcome.next_tick is not None:
                        until = (outcome.next_tick - timezone.now()).total_seconds()
                        delay = min(max(until, 0) + _AFTER_TICK, MAX_SLEEP)
                self.wake.wait(delay)
        finally:
            connections.close_all()
            self.wake.close()
