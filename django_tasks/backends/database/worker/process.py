"""One worker process: ``Worker`` starts its parts, handles signals and shuts down."""

from __future__ import annotations

import logging
import random
import signal
import threading
from types import FrameType
from typing import Any

from django.db import InterfaceError, OperationalError

from django_tasks.backends.database import services

from .db_calls import DatabaseCalls
from .heartbeat import HeartbeatThread
from .options import WorkerOptions
from .process_pool import ABORT_SIGNAL, STOP_SIGNAL, ProcessPool
from .scheduler import SchedulerThread
from .state import WorkerState
from .threads import ExecutorThreads

logger = logging.getLogger("django_tasks.backends.database.db_worker")


class Worker:
    """Run tasks of one database backend until stopped (or, in batch mode, until idle).

    Build it from the command line's keywords (``queue_names``, ``interval``,
    ``batch``, ``backend_name``, ``startup_delay``, ``threads``, ``processes``,
    ``heartbeat_timeout``, ``claim_size``: see ``WorkerOptions.from_command_line``)
    or from ``WorkerOptions`` already built.
    """

    def __init__(
        self,
        options: WorkerOptions | None = None,
        *,
        parent_pid: int | None = None,
        **command_line: Any,
    ) -> None:
        if options is None:
            options = WorkerOptions.from_command_line(**command_line)
        elif command_line:
            raise TypeError("Pass either WorkerOptions or the command line's keywords")
        self.options = options
        self.parent_pid = parent_pid  # of a --processes child: stop if the parent exits
        self.db = DatabaseCalls()
        self.state = WorkerState(
            heartbeat_timeout=options.heartbeat_timeout,
            listens=not options.batch and self.db.can_listen,
        )
        self._executors: ExecutorThreads | None = None  # while started
        self._previous_handlers: dict[int, Any] = {}

    def start(self) -> None:
        """Run until stopped by a signal (or, in batch mode, until no task is ready)."""
        options, state = self.options, self.state
        if options.processes > 1:
            worker_path = f"{type(self).__module__}.{type(self).__qualname__}"
            ProcessPool(options, worker_path=worker_path).run()
            return

        self._executors = executors = ExecutorThreads(options=options, state=state, db=self.db)
        heartbeat: HeartbeatThread | None = None
        scheduler: SchedulerThread | None = None  # with schedules, unless --batch
        self._install_signal_handlers()
        try:
            logger.info("Starting worker for queues=%s", ",".join(options.queue_names))
            if options.startup_delay and options.interval:
                # A random pause spreads the first claims of workers started together.
                executors.wake.wait(random.random())
            if not state.running or not self._register(executors):
                return
            heartbeat = HeartbeatThread(
                options=options,
                state=state,
                db=self.db,
                executors=executors,
                parent_pid=self.parent_pid,
            )
            heartbeat.start()
            scheduler = SchedulerThread.start_for(options=options, state=state, db=self.db)
            executors.run()
        finally:
            if scheduler is not None:
                scheduler.stop()
            self._shutdown(executors, heartbeat)
            self._restore_signal_handlers()
            executors.close()
            self._executors = None

    def _register(self, executors: ExecutorThreads) -> bool:
        options, state = self.options, self.state
        try:
            self.db.call(
                lambda: services.register_worker(
                    worker_id=state.worker_id,
                    backend_name=options.backend_name,
                    queue_names=options.queue_filter,
                    threads=options.threads,
                ),
                what="registering the worker",
                give_up=lambda: not state.running,
                wait=executors.wake.wait,
            )
        except (OperationalError, InterfaceError):
            if state.running:
                raise
            return False  # stopped while the database was unreachable
        state.heartbeat_sent()
        return True

    def _shutdown(self, executors: ExecutorThreads, heartbeat: HeartbeatThread | None) -> None:
        if heartbeat is not None:
            heartbeat.stop()
        executors.release_pending()
        if heartbeat is None:
            return  # never registered
        state = self.state
        try:
            released = self.db.call(
                lambda: services.unregister_worker(worker_id=state.worker_id),
                what="unregistering the worker",
                give_up=lambda: state.force,
                wait=executors.wake.wait,
            )
        except (OperationalError, InterfaceError):
            logger.error(
                "Could not unregister worker id=%s: the database is unreachable", state.worker_id
            )
            return
        if released:
            logger.info("Released %s claimed task(s) that had not started", released)

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
        executors = self._executors
        if executors is None:
            return  # not started, or done
        name = signal.strsignal(signum) or str(signum)
        if signum == STOP_SIGNAL and not self.state.running:
            return  # the parent forwarding a stop we already received
        if signum == STOP_SIGNAL or (signum != ABORT_SIGNAL and self.state.running):
            logger.warning(
                "Received %s - shutting down gracefully... (press Ctrl+C again to force)", name
            )
            executors.stop()
            return
        if self.state.force:
            return
        logger.warning("Received %s - terminating current task.", name)
        executors.stop(force=True)
        if executors.main_in_task():
            # Like upstream: the task on the main thread is interrupted, and records
            # the failure (the other threads' tasks are aborted once it returns).
            raise SystemExit(1)
