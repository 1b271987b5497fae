"""An executor: one thread's loop of claiming a batch of tasks and running them.

Each has its own database connection, kept open across tasks, and waits for a
wake-up when idle.  The second signal aborts a running task (_AbortTask).  A run
whose row has a time limit gets a ``TimedRun`` for the watchdog (watchdog.py);
other runs pay one ``is None`` check for it.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.db import InterfaceError, OperationalError, connections

from django_tasks.backends.database import services
from django_tasks.task import ResultStatus

from .db_calls import DatabaseCalls
from .options import WorkerOptions
from .state import WorkerState
from .wakeup import Wakeup
from .watchdog import ABORT, TASK, TimedRun, TimeLimitInterrupt, send_finished

if TYPE_CHECKING:
    from django_tasks.backends.database.models import DBTaskResult

    from .threads import ExecutorThreads

logger = logging.getLogger("django_tasks.backends.database.db_worker")

BATCH_SECONDS = 0.1
"""Claim about this much work at once, judged by how long recent tasks took."""


class _AbortTask(SystemExit):
    """Raised inside a task thread by the second signal; recorded as SystemExit(1)."""


class Executor:
    """Claim and run tasks, one at a time, on one thread and one connection."""

    def __init__(
        self,
        index: int,
        *,
        options: WorkerOptions,
        state: WorkerState,
        db: DatabaseCalls,
        group: ExecutorThreads,
    ) -> None:
        self.index = index
        self.options = options
        self.state = state
        self.db = db
        self.group = group  # the executors of this process
        self.wake = Wakeup()
        self.pending: deque[DBTaskResult] = deque()
        self.current: DBTaskResult | None = None
        self.in_task = False
        self.thread_id: int | None = None
        self.avg_seconds: float | None = None
        self.tasks = services.TaskCache()
        self.needs_reconcile = False
        self.generation = 0
        self._recorded = False
        self.thread: threading.Thread | None = None  # with --threads > 1, once started
        self.on_main = False
        self.timed: TimedRun | None = None  # the current run, if it has a time limit
        self.retired = False  # stuck past a time limit: another executor took our place

    def run(self) -> None:
        state, group = self.state, self.group
        self.thread_id = threading.get_ident()
        self.on_main = on_main = threading.current_thread() is threading.main_thread()
        try:
            # Extra threads start when the first one finds them work (wake_executors),
            # so a worker that stays idle never runs them or opens their connections.
            self.wake.clear()
            while state.running and not self.retired:
                if not state.may_start_tasks():
                    self.wake.wait(0.1)
                    continue
                if self.pending:  # handed over by an executor stuck past a time limit
                    self.run_pending()
                    continue
                try:
                    claimed = self.claim()
                except (OperationalError, InterfaceError):
                    break  # stopping while the database is down
                if claimed:
                    self.run_pending()
                    continue
                if self.options.batch:
                    break
                if state.set_waiting(True):
                    # A task committed while we said so may have missed us: look again.
                    continue
                self.wake.wait(group.idle_timeout(self))
        except _AbortTask:
            pass  # the second signal arrived between tasks
        finally:
            group.stop_polling(self)
            group.wake_all(but=self)  # idle threads must not wait for us forever
            self.release_pending()
            if not on_main:
                connections.close_all()

    def claim(self) -> int:
        options, state, group = self.options, self.state, self.group
        limit = 1
        if self.avg_seconds is not None:
            limit = int(BATCH_SECONDS / max(self.avg_seconds, 1e-6))
        limit = max(1, min(options.claim_size, limit))

        def claim() -> int:
            with state.claim_lock:
                if self.needs_reconcile:
                    group.reconcile_claims()
                    self.needs_reconcile = False
                rows = services.claim_tasks(
                    backend_name=options.backend_name,
                    queue_names=options.queue_filter,
                    worker_id=state.worker_id,
                    limit=limit,
                )
                self.pending.extend(rows)
                self.generation = state.generation
            # Work arrived (the poller wakes the others), or more may be waiting.
            if rows and not group.stop_polling(self) and len(rows) == limit:
                group.wake_all(but=self)
            if len(rows) == limit:
                state.set_waiting(False)  # busy: enqueues needn't notify us
            return len(rows)

        return self.db.call(
            claim,
            what="claiming tasks",
            give_up=lambda: not state.running,
            wait=self.wake.wait,
            on_error=self.claim_failed,
        )

    def claim_failed(self) -> None:
        # The claim may have committed before the connection broke.
        self.needs_reconcile = True

    def run_pending(self) -> None:
        state = self.state
        while (
            self.pending
            and state.running
            and state.may_start_tasks()
            and self.generation == state.generation  # else others recovered our claims
        ):
            self.current = row = self.pending.popleft()
            self._recorded = False
            timed = None if row.time_limit is None else self.timed_run(row, row.time_limit)
            began = time.perf_counter()
            try:
                status = services.run_task(
                    row,
                    worker_id=state.worker_id,
                    call_guard=self.call_guard,
                    db_retry=self.save_outcome,
                    tasks=self.tasks,
                )
            except TimeLimitInterrupt:
                status = None  # delivered late, after the watchdog recorded the run
            finally:
                self._recorded = True
                self.current = None
                replaced = timed is not None and timed.finish()
                self.timed = None
            if replaced and timed is not None:
                # Stuck past the time limit: our slot and claims were handed over.
                logger.warning(
                    "Task id=%s returned %.1f s after its time limit; its outcome was "
                    "ignored and its thread exits",
                    row.pk,
                    time.monotonic() - timed.deadline,
                )
                return
            state.count(status)
            elapsed = time.perf_counter() - began
            self.avg_seconds = (
                elapsed if self.avg_seconds is None else 0.7 * self.avg_seconds + 0.3 * elapsed
            )
            self.check_connection()
        self.release_pending()

    def timed_run(self, row: DBTaskResult, limit: float) -> TimedRun:
        """Make ``row``'s run known to the watchdog (its clock starts with the call)."""
        if self.on_main:
            self.group.watchdog.install_alarm()
        self.timed = timed = TimedRun(self, row, limit)
        return timed

    @contextmanager
    def call_guard(self) -> Iterator[None]:
        timed = self.timed
        self.in_task = True
        try:
            if timed is not None:
                timed.enter_call()
            yield
        except _AbortTask as e:
            raise SystemExit(1) from e
        finally:
            if timed is not None:
                timed.leave_call()
            self.in_task = False

    def save_outcome(self, write: Callable[[], bool]) -> bool:
        timed = self.timed
        if timed is not None and not timed.take(TASK):
            return False  # the watchdog recorded this run: it went past its time limit
        state = self.state
        return self.db.call(
            write,
            what="saving a task's outcome",
            give_up=lambda: state.force,
            wait=self.wake.wait,
        )

    def check_connection(self) -> None:
        """Keep the connection across tasks; drop it only if a task broke it."""
        connection = connections[self.db.using]
        if connection.connection is None:
            return
        if connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                self.db.close()
        elif not connection.autocommit and not connection.in_atomic_block:
            # A task left a manual transaction open: don't claim inside it.
            connection.rollback()
            connection.set_autocommit(True)

    def release_pending(self) -> None:
        rows = list(self.pending)
        self.pending.clear()
        self.state.release(rows, db=self.db, wait=self.wake.wait)

    def abort_task(self) -> None:
        """From the main thread: raise _AbortTask inside this executor's running task."""
        if self.in_task and self.thread_id is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.thread_id), ctypes.py_object(_AbortTask)
            )
        self.wake.set()

    def record_abandoned(self) -> None:
        """From the main thread: record a task that ignored the abort as FAILED."""
        row = self.current
        if row is None or self._recorded:
            return
        timed = self.timed
        if timed is not None and not timed.take(ABORT):
            return  # past its time limit: the watchdog recorded it
        try:
            raise SystemExit(1)
        except SystemExit as e:
            try:
                if services.fail_task(row, e, worker_id=self.state.worker_id):
                    self.state.count(ResultStatus.FAILED)
                    send_finished(row)
            except Exception:
                logger.exception("Task id=%s could not be recorded as aborted", row.pk)
