"""The supervisor thread: heartbeats, recovery of lost workers' tasks, LISTEN.

On PostgreSQL with psycopg 3 it LISTENs for enqueue notifications and wakes
idle executors; a child of ``--processes`` also watches for its parent's exit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from django.db import InterfaceError, OperationalError, connections

from django_tasks.backends.database import services
from django_tasks.backends.database.inserts import NOTIFY_CHANNEL

from .wakeup import _Wakeup

if TYPE_CHECKING:
    from .process import Worker

logger = logging.getLogger("django_tasks.backends.database.db_worker")


class _Supervisor(threading.Thread):
    """Heartbeats, recovery of lost workers' tasks, and PostgreSQL wake-ups."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(name="db_worker-supervisor", daemon=True)
        self.worker = worker
        self.wake = _Wakeup()
        self._stopping = False
        self._listening: Any = None  # the raw connection we LISTEN on
        self._healthy_since: float | None = time.monotonic()
        self._failures = 0
        self.listen = worker.listens

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()
        self.join(timeout=10)

    def run(self) -> None:
        worker = self.worker
        next_beat = time.monotonic() + worker.heartbeat_interval
        try:
            while not self._stopping:
                self._check_parent()
                others = self._listen() if self.listen else []
                readable = self.wake.wait(max(next_beat - time.monotonic(), 0), *others)
                if others and readable and self._notified():
                    worker.wake_executors()
                if time.monotonic() >= next_beat and not self._stopping:
                    ok = self.beat()
                    next_beat = time.monotonic() + (
                        worker.heartbeat_interval if ok else min(worker.heartbeat_interval, 1.0)
                    )
        except Exception:
            logger.exception("Worker supervisor thread crashed; stopping the worker")
            worker.request_stop()
        finally:
            connections.close_all()
            self.wake.close()

    def _check_parent(self) -> None:
        parent = self.worker.parent_pid
        if parent is not None and os.getppid() != parent and self.worker.running:
            logger.warning("Parent process %s exited - shutting down gracefully...", parent)
            self.worker.request_stop()

    def _listen(self) -> list[Any]:
        """Make sure we LISTEN on the current connection; return it to wait on (or [])."""
        connection = connections[self.worker.using]
        try:
            connection.ensure_connection()
            raw = connection.connection
            if raw is not self._listening:
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {connection.ops.quote_name(NOTIFY_CHANNEL)}")
                self._listening = raw
                # Anything enqueued while we were not listening would go unnoticed.
                self.worker.wake_poller()
        except (OperationalError, InterfaceError):
            self._listening = None
            self.worker.close_connection()
            return []
        return [raw]

    def _notified(self) -> bool:
        """Drain pending notifications; return whether one concerns our queues."""
        raw = self._listening
        worker = self.worker
        wanted = False
        try:
            for notify in raw.notifies(timeout=0):
                backend, _, queue = notify.payload.partition("\n")
                if backend == worker.backend_name and (
                    worker.process_all_queues or queue in worker.queue_names
                ):
                    wanted = True
        except Exception:  # the connection broke; _listen() reconnects
            self._listening = None
            self.worker.close_connection()
        return wanted

    def beat(self) -> bool:
        """Heartbeat, then recover lost workers' tasks; False if the database failed us."""
        worker = self.worker
        try:
            alive = services.heartbeat(
                worker_id=worker.worker_id,
                tasks_done=worker.tasks_done,
                tasks_failed=worker.tasks_failed,
                waiting=worker._waiting,
            )
            if not alive:
                worker.generation += 1
                logger.warning(
                    "Worker id=%s was considered lost (no heartbeat for %gs): registering again",
                    worker.worker_id,
                    worker.heartbeat_timeout,
                )
                services.register_worker(
                    worker_id=worker.worker_id,
                    backend_name=worker.backend_name,
                    queue_names=worker.queue_filter,
                    threads=worker.threads,
                    waiting=worker._waiting,
                )
            worker._last_heartbeat = time.monotonic()
            if self._failures:
                logger.warning("Heartbeat restored after %s failure(s)", self._failures)
                self._failures = 0
            if self._healthy_since is None:
                self._healthy_since = time.monotonic()
            # Only judge others once we have been connected for a whole timeout:
            # after an outage everyone deserves a chance to heartbeat again.
            if time.monotonic() - self._healthy_since >= worker.heartbeat_timeout:
                self.recover()
            return True
        except (OperationalError, InterfaceError) as e:
            if "is locked" in str(e):
                return False  # SQLite busy: try again shortly, nothing to report
            self._failures += 1
            self._healthy_since = None
            if self._failures == 1 or self._failures % 10 == 0:
                logger.warning("Heartbeat failed (attempt %s): %s", self._failures, e)
            self._listening = None
            worker.close_connection()
            return False

    def recover(self) -> None:
        worker = self.worker
        try:
            outcome = services.recover_lost_tasks(
                backend_name=worker.backend_name,
                heartbeat_timeout=worker.heartbeat_timeout,
                policy=worker.lost_task_policy,
            )
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            logger.exception("Recovering lost workers' tasks failed")
            return
        if outcome.workers_removed:
            logger.info("Removed %s lost worker(s)", outcome.workers_removed)


def _psycopg3_available() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True
