"""The worker process: options, start and shutdown, its threads, and signals."""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Sequence
from functools import cached_property
from types import FrameType
from typing import Any
from uuid import UUID, uuid4

from django.db import InterfaceError, OperationalError, connections

from django_tasks.backends.database import services
from django_tasks.task import ResultStatus

from .db_calls import MAX_BACKOFF, _DatabaseCalls
from .executor import _Executor
from .processes import _ABORT_SIGNAL, _STOP_SIGNAL, _ProcessSupervisor
from .supervisor import _psycopg3_available, _Supervisor
from .wakeup import _Wakeup

logger = logging.getLogger("django_tasks.backends.database.db_worker")

DEFAULT_CLAIM_SIZE = 32
"""The most tasks one executor claims at once."""

ABORT_GRACE = 3.0
"""After a second signal, how long aborted threads get to record their own failure."""


class Worker(_DatabaseCalls):
    """Run tasks of one database backend until stopped (or, in batch mode, until idle)."""

    def __init__(
        self,
        *,
        queue_names: Sequence[str],
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        threads: int = 1,
        processes: int = 1,
        heartbeat_timeout: float | None = None,
        claim_size: int = DEFAULT_CLAIM_SIZE,
        parent_pid: int | None = None,
    ) -> None:
        self.queue_names = list(queue_names)
        self.process_all_queues = "*" in self.queue_names
        self.interval = interval
        self.batch = batch
        self.backend_name = backend_name
        self.startup_delay = startup_delay
        self.threads = max(1, threads)
        self.processes = max(1, processes)
        self.heartbeat_timeout = heartbeat_timeout or services.heartbeat_timeout_for(backend_name)
        self.lost_task_policy = services.lost_task_policy_for(backend_name)
        self.claim_size = max(1, claim_size)
        self.parent_pid = parent_pid

        self.worker_id: UUID = uuid4()
        self.running = True  # False once asked to stop
        self.force = False  # True once asked to abort running tasks
        self.tasks_done = 0
        self.tasks_failed = 0
        self.generation = 0  # bumped when we learn others considered us lost

        self._executors: list[_Executor] = []
        self._supervisor: _Supervisor | None = None
        self._main_wake = _Wakeup()
        self._claim_lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._poller: _Executor | None = None
        self._count_lock = threading.Lock()
        self._last_heartbeat = time.monotonic()
        self._previous_handlers: dict[int, Any] = {}
        self._waiting = False  # what our row's ``waiting`` says, as far as we know
        self._threaded = False  # executors on threads of their own (--threads > 1)
        self._threads_lock = threading.Lock()
        self._waiting_lock = threading.Lock()

    # --- settings derived from the options -----------------------------------

    @property
    def queue_filter(self) -> list[str] | None:
        """The queues to claim from, None for all."""
        return None if self.process_all_queues else self.queue_names

    @cached_property
    def listens(self) -> bool:
        """Whether we LISTEN for enqueue notifications (PostgreSQL with psycopg 3)."""
        return (
            not self.batch
            and connections[self.using].vendor == "postgresql"
            and _psycopg3_available()
        )

    @property
    def heartbeat_interval(self) -> float:
        return min(max(self.heartbeat_timeout / 5, 0.1), MAX_BACKOFF)

    def may_start_tasks(self) -> bool:
        """Whether our heartbeat is recent enough that nobody can think us lost."""
        return time.monotonic() - self._last_heartbeat < self.heartbeat_timeout / 2

    # --- running -------------------------------------------------------------

    def start(self) -> None:
        """Run until stopped by a signal (or, in batch mode, until no task is ready)."""
        if self.processes > 1:
            _ProcessSupervisor(self).run()
            return

        self._install_signal_handlers()
        try:
            logger.info("Starting worker for queues=%s", ",".join(self.queue_names))
            self._executors = [_Executor(self, index) for index in range(self.threads)]
            if self.startup_delay and self.interval:
                # A random pause spreads the first claims of workers started together.
                self._main_wake.wait(random.random())
            if not self.running or not self._register():
                return
            self._supervisor = _Supervisor(self)
            self._supervisor.start()
            if self.threads == 1:
                self._executors[0].run()
            else:
                self._run_threads()
        finally:
            self._shutdown()
            self._restore_signal_handlers()
            for wakeup in [self._main_wake, *(e.wake for e in self._executors)]:
                wakeup.close()

    def _register(self) -> bool:
        try:
            self.db_call(
                lambda: services.register_worker(
                    worker_id=self.worker_id,
                    backend_name=self.backend_name,
                    queue_names=self.queue_filter,
                    threads=self.threads,
                ),
                what="registering the worker",
                give_up=lambda: not self.running,
                wait=self._main_wake.wait,
            )
        except (OperationalError, InterfaceError):
            if self.running:
                raise
            return False  # stopped while the database was unreachable
        self._last_heartbeat = time.monotonic()
        return True

    def _run_threads(self) -> None:
        # The first executor runs here, on the main thread, as with one thread; the
        # others start when it finds work for them (wake_executors), so a worker
        # that stays idle costs what a single-threaded one does.
        main, *others = self._executors
        main.thread = threading.current_thread()
        self._threaded = True
        try:
            main.run()
        finally:
            self._join_threads(others)

    def _join_threads(self, executors: list[_Executor]) -> None:
        """Wait for the other executors; after the second signal, abort their tasks."""
        aborted_at: float | None = None
        while any(e.thread is not None and e.thread.is_alive() for e in executors):
            if self.force and aborted_at is None:
                aborted_at = time.monotonic()
                for executor in executors:
                    executor.abort_task()
            if aborted_at is not None and time.monotonic() - aborted_at > ABORT_GRACE:
                # Tasks stuck in C calls (sleep, I/O) can't be interrupted: record them.
                for executor in executors:
                    executor.record_abandoned()
                return
            self._main_wake.wait(0.2)

    def _shutdown(self) -> None:
        if self._supervisor is not None:
            self._supervisor.stop()
        for executor in self._executors:
            executor.release_pending()
        if self._supervisor is None:
            return  # never registered
        try:
            released = self.db_call(
                lambda: services.unregister_worker(worker_id=self.worker_id),
                what="unregistering the worker",
                give_up=lambda: self.force,
                wait=self._main_wake.wait,
            )
        except (OperationalError, InterfaceError):
            logger.error(
                "Could not unregister worker id=%s: the database is unreachable", self.worker_id
            )
            return
        if released:
            logger.info("Released %s claimed task(s) that had not started", released)

    def count(self, status: ResultStatus | None) -> None:
        with self._count_lock:
            if status == ResultStatus.COMPLETE:
                self.tasks_done += 1
            elif status == ResultStatus.FAILED:
                self.tasks_failed += 1

    def _start_thread(self, executor: _Executor) -> None:
        with self._threads_lock:
            if executor.thread is None:
                name = f"db_worker-{executor.index}"
                executor.thread = threading.Thread(target=executor.run, name=name, daemon=True)
                executor.thread.start()

    def wake_executors(self, but: _Executor | None = None) -> None:
        """Wake the other executors (starting their threads, while running): work came."""
        for executor in self._executors:
            if executor is not but:
                if self._threaded and executor.thread is None and self.running:
                    self._start_thread(executor)
                executor.wake.set()

    def wake_poller(self) -> None:
        """Wake the executor that polls for work (the first one if none polls)."""
        with self._poll_lock:
            poller = self._poller
        (poller or self._executors[0]).wake.set()

    def idle_timeout(self, executor: _Executor) -> float | None:
        """How long an idle executor waits before polling again (None: until woken).

        One idle executor polls at ``interval``; the others sleep until it (or a
        notification) finds work, so idle threads cost no queries and never open
        a connection.
        """
        with self._poll_lock:
            if self._poller is None or self._poller is executor:
                self._poller = executor
                return self.interval
        return None

    def stop_polling(self, executor: _Executor) -> bool:
        """``executor`` has work (or is leaving): let another idle one poll."""
        with self._poll_lock:
            if self._poller is not executor:
                return False
            self._poller = None
        self.wake_executors(but=executor)
        return True

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

    def request_stop(self) -> None:
        self.running = False
        self.wake_executors()
        self._main_wake.set()

    # --- signals -------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in ("SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
            if hasattr(signal, name):
                signum = getattr(signal, name)
                self._previous_handlers[signum] = signal.signal(signum, self.shutdown)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: stop gracefully the first time, abort running tasks the second."""
        name = signal.strsignal(signum) or str(signum)
        if signum == _STOP_SIGNAL and not self.running:
            return  # the parent forwarding a stop we already received
        if signum == _STOP_SIGNAL or (signum != _ABORT_SIGNAL and self.running):
            logger.warning(
                "Received %s - shutting down gracefully... (press Ctrl+C again to force)", name
            )
            self.request_stop()
            return
        if self.force:
            return
        logger.warning("Received %s - terminating current task.", name)
        self.force = True
        self.request_stop()
        if self._executors and self._executors[0].in_task:
            # Like upstream: the task on the main thread is interrupted, and records
            # the failure (the other threads' tasks are aborted once it returns).
            raise SystemExit(1)

    # --- database calls ------------------------------------------------------

    def reconcile_claims(self) -> None:
        """Release rows claimed by a claim whose reply was lost (the connection broke).

        Call with ``_claim_lock`` held, so no claim is between its statement and
        recording what it claimed.
        """
        known = [e.current.pk for e in self._executors if e.current is not None]
        known += [row.pk for e in self._executors for row in e.pending]
        released = services.release_tasks(worker_id=self.worker_id, exclude=known)
        if released:
            logger.warning("Released %s task(s) claimed before the connection broke", released)
