"""The heartbeat thread: heartbeats, recovery of lost workers' tasks, roll-up, LISTEN.

On PostgreSQL with psycopg 3 it LISTENs for enqueue notifications and wakes
idle executors; a child of ``--processes`` also watches for its parent's exit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils import timezone

from django_tasks.backends.database import services
from django_tasks.backends.database.services import rollup
from django_tasks.backends.database.writes import NOTIFY_CHANNEL

from .db_calls import DatabaseCalls
from .options import WorkerOptions
from .state import WorkerState
from .threads import ExecutorThreads
from .wakeup import Wakeup

logger = logging.getLogger("django_tasks.backends.database.db_worker")


class HeartbeatThread(threading.Thread):
    """Heartbeats, recovery of lost workers' tasks, and PostgreSQL wake-ups."""

    def __init__(
        self,
        *,
        options: WorkerOptions,
        state: WorkerState,
        db: DatabaseCalls,
        executors: ExecutorThreads,
        parent_pid: int | None = None,
    ) -> None:
        super().__init__(name="db_worker-heartbeat", daemon=True)
        self.options = options
        self.state = state
        self.db = db
        self.executors = executors
        self.parent_pid = parent_pid  # a --processes child stops when its parent exits
        self.wake = Wakeup()
        self._stopping = False
        self._listening: Any = None  # the raw connection we LISTEN on
        self._healthy_since: float | None = time.monotonic()
        self._failures = 0
        self._rolled_up_to: Any = None  # the last minute the roll-up had counted

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()
        self.join(timeout=10)

    def run(self) -> None:
        interval = self.options.heartbeat_interval
        next_beat = time.monotonic() + interval
        try:
            while not self._stopping:
                self._check_parent()
                others = self._listen() if self.state.listens else []
                readable = self.wake.wait(max(next_beat - time.monotonic(), 0), *others)
                if others and readable and self._notified():
                    self.executors.wake_all()
                if time.monotonic() >= next_beat and not self._stopping:
                    ok = self.beat()
                    next_beat = time.monotonic() + (interval if ok else min(interval, 1.0))
        except Exception:
            logger.exception("Worker supervisor thread crashed; stopping the worker")
            self.executors.stop()
        finally:
            connections.close_all()
            self.wake.close()

    def _check_parent(self) -> None:
        parent = self.parent_pid
        if parent is not None and os.getppid() != parent and self.state.running:
            logger.warning("Parent process %s exited - shutting down gracefully...", parent)
            self.executors.stop()

    def _listen(self) -> list[Any]:
        """Make sure we LISTEN on the current connection; return it to wait on (or [])."""
        connection = connections[self.db.using]
        try:
            connection.ensure_connection()
            raw = connection.connection
            if raw is not self._listening:
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {connection.ops.quote_name(NOTIFY_CHANNEL)}")
                self._listening = raw
                # Anything enqueued while we were not listening would go unnoticed.
                self.executors.wake_poller()
        except (OperationalError, InterfaceError):
            self._listening = None
            self.db.close()
            return []
        return [raw]

    def _notified(self) -> bool:
        """Drain pending notifications; return whether one concerns our queues."""
        raw = self._listening
        wanted = False
        try:
            for notify in raw.notifies(timeout=0):
                backend, _, queue = notify.payload.partition("\n")
                if self.options.wants(backend, queue):
                    wanted = True
        except Exception:  # the connection broke; _listen() reconnects
            self._listening = None
            self.db.close()
        return wanted

    def beat(self) -> bool:
        """Heartbeat, then recover lost workers' tasks; False if the database failed us."""
        options, state = self.options, self.state
        try:
            alive = services.heartbeat(
                worker_id=state.worker_id,
                tasks_done=state.tasks_done,
                tasks_failed=state.tasks_failed,
                waiting=state.waiting,
            )
            if not alive:
                state.considered_lost()
                logger.warning(
                    "Worker id=%s was considered lost (no heartbeat for %gs): registering again",
                    state.worker_id,
                    options.heartbeat_timeout,
                )
                services.register_worker(
                    worker_id=state.worker_id,
                    backend_name=options.backend_name,
                    queue_names=options.queue_filter,
                    threads=options.threads,
                    waiting=state.waiting,
                )
            state.heartbeat_sent()
            if self._failures:
                logger.warning("Heartbeat restored after %s failure(s)", self._failures)
                self._failures = 0
            if self._healthy_since is None:
                self._healthy_since = time.monotonic()
            # Only judge others once we have been connected for a whole timeout:
            # after an outage everyone deserves a chance to heartbeat again.
            if time.monotonic() - self._healthy_since >= options.heartbeat_timeout:
                self.recover()
            self.roll_up()
            return True
        except (OperationalError, InterfaceError) as e:
            if "is locked" in str(e):
                return False  # SQLite busy: try again shortly, nothing to report
            self._failures += 1
            self._healthy_since = None
            if self._failures == 1 or self._failures % 10 == 0:
                logger.warning("Heartbeat failed (attempt %s): %s", self._failures, e)
            self._listening = None
            self.db.close()
            return False

    def recover(self) -> None:
        try:
            outcome = services.recover_lost_tasks(
                backend_name=self.options.backend_name,
                heartbeat_timeout=self.options.heartbeat_timeout,
                policy=self.options.lost_tasks,
            )
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            logger.exception("Recovering lost workers' tasks failed")
            return
        if outcome.workers_removed:
            logger.info("Removed %s lost worker(s)", outcome.workers_removed)

    def roll_up(self) -> None:
        """Count the minutes that closed since the last roll-up (some worker does it once)."""
        due = rollup.floor_minute(timezone.now() - rollup.GRACE)
        if self._rolled_up_to is not None and self._rolled_up_to >= due:
            return  # checked this minute already: no query until the next one
        try:
            # A few minutes per call; catching up (a first start rolls up a day) takes
            # several calls, within a short budget so the heartbeat is not held up.
            deadline = time.monotonic() + 0.5
            while (counted := rollup.roll_up(backend_name=self.options.backend_name)) and (
                time.monotonic() < deadline
            ):
                pass
            if not counted:
                self._rolled_up_to = due  # counted already, by us or another worker
        except DatabaseError as e:
            # Charts lag until the next heartbeat; the heartbeat itself went through.
            logger.debug("Roll-up failed, retrying at the next heartbeat: %s", e)
        except Exception:
            logger.exception("Rolling up finished tasks failed")
