"""Time limits: a watchdog thread that ends runs past their row's ``time_limit``.

At the deadline it records the attempt as failed with ``TimeLimitExceeded``
(retried if attempts remain), then interrupts the task: an asynchronous
exception on an executor thread, SIGALRM on the main thread.  Python code stops
at once; a call blocked in C (``time.sleep`` on a thread, ``os.system``...)
returns when it returns.  If the task has not come back ``STUCK_GRACE`` seconds
later, its slot is freed: a new executor thread takes it, or, in a
``--processes`` child, the process stops claiming and exits to be replaced.

Whichever of the task's thread and the watchdog takes a run first records its
outcome; the other writes nothing.  The thread starts with the first run that
has a time limit, so workers without time limits never run it.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import os
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import TYPE_CHECKING, Any

from django.db import InterfaceError, OperationalError, connections

from django_tasks.backends.database import services
from django_tasks.backends.database.results import task_result_for
from django_tasks.django_api import signals_for
from django_tasks.lifecycle import TimeLimitExceeded
from django_tasks.task import ResultStatus

from .process_pool import RECYCLE_EXIT_CODE
from .wakeup import Wakeup

if TYPE_CHECKING:
    from django_tasks.backends.database.models import DBTaskResult

    from .executor import Executor
    from .threads import ExecutorThreads

logger = logging.getLogger("django_tasks.backends.database.db_worker")

STUCK_GRACE = 1.0
"""Seconds an interrupted task gets to come back before its slot is freed."""

# Who recorded a run's outcome.
TASK = "task"
WATCHDOG = "watchdog"
ABORT = "abort"

_EXPIRE = 0
_STUCK = 1

_ALARM = getattr(signal, "SIGALRM", None) if hasattr(signal, "pthread_kill") else None


class TimeLimitInterrupt(TimeLimitExceeded):  # noqa: N818 - a TimeLimitExceeded
    """Raised inside a task past its time limit, to stop it; the watchdog records the failure."""


def time_limit_exceeded(row: DBTaskResult) -> TimeLimitExceeded:
    """The exception a run of ``row`` past its time limit fails with."""
    return TimeLimitExceeded(
        f"Task {row.task_path} exceeded its time limit of {row.time_limit:g} s"
    )


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in a thread at its next bytecode (None: cancel a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), None if exc is None else ctypes.py_object(exc)
    )


class TimedRun:
    """One run of a task with a time limit, shared by its executor thread and the watchdog.

    The executor creates it before the run and tells it when the task's call
    begins and ends; the watchdog takes it at the deadline if the task is still
    in its call.  ``take()`` decides who records the outcome.
    """

    def __init__(self, executor: Executor, row: DBTaskResult, limit: float) -> None:
        self.executor = executor
        self.row = row
        self.limit = limit
        self.thread_id = threading.get_ident()
        self.on_main = executor.on_main
        self.lock = threading.Lock()
        self.deadline = 0.0
        # Written under the lock; the SIGALRM handler reads them without it (a
        # handler taking a lock its own thread holds would deadlock).
        self.in_call = False
        self.owner: str | None = None
        self.interrupted = False
        self.done = False
        self.replaced = False

    def enter_call(self) -> None:
        """The task's call begins: start the clock."""
        self.deadline = time.monotonic() + self.limit
        with self.lock:
            self.in_call = True
        self.executor.group.watchdog.watch(self)

    def leave_call(self) -> None:
        """The task's call ended (returned, raised or was interrupted)."""
        with self.lock:
            self.in_call = False
            self._cancel_interrupt()

    def take(self, owner: str) -> bool:
        """Claim the right to record this run's outcome; True if ``owner`` has it."""
        with self.lock:
            if self.owner is None:
                self.owner = owner
            return self.owner == owner

    def finish(self) -> bool:
        """The executor is done with this run; True if another executor took its place."""
        with self.lock:
            self.in_call = False
            self.done = True
            self._cancel_interrupt()
            return self.replaced

    def _cancel_interrupt(self) -> None:
        # An interrupt not yet delivered must not fire in the executor's own code.
        if self.interrupted and not self.on_main:
            _set_async_exc(self.thread_id, None)

    def expire(self) -> bool:
        """From the watchdog at the deadline: take the run and interrupt the task.

        False if the task left its call in time (its thread records the outcome).
        """
        with self.lock:
            if not self.in_call or self.owner is not None:
                return False
            self.owner = WATCHDOG
            self.interrupted = True
            if not (self.on_main and self.executor.group.watchdog.alarm_ready()):
                # Under the lock, so the thread can't leave its call in between.
                _set_async_exc(self.thread_id, TimeLimitInterrupt)
                return True
        signal.pthread_kill(threading.main_thread().ident or 0, _ALARM or 0)
        return True

    def stack(self) -> str:
        """Where the task's thread is, for the failure's traceback."""
        frame = sys._current_frames().get(self.thread_id)
        return "".join(traceback.format_stack(frame, limit=20)) if frame else ""


class Watchdog:
    """Watch the runs that have a time limit, on a thread started by the first one."""

    def __init__(self, group: ExecutorThreads) -> None:
        self.group = group
        self.state = group.state
        self.wake = Wakeup()
        self.alarm_installed = False
        self._previous_alarm: Any = None
        self._lock = threading.Lock()
        self._heap: list[tuple[float, int, int, TimedRun]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- from the executors ------------------------------------------------------

    def install_alarm(self) -> None:
        """From the main thread: let SIGALRM interrupt the main thread's timed-out task."""
        if self.alarm_installed or _ALARM is None:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_alarm = signal.signal(_ALARM, self._on_alarm)
        self.alarm_installed = True

    def alarm_ready(self) -> bool:
        """Whether SIGALRM still reaches our handler (a task may have replaced it)."""
        return self.alarm_installed and signal.getsignal(_ALARM or 0) == self._on_alarm

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        executor = self.group.main_executor
        run = executor.timed
        # Plain reads: only a run the watchdog interrupted, still in its call.
        if run is not None and run.interrupted and run.in_call:
            raise TimeLimitInterrupt(str(time_limit_exceeded(run.row)))

    def watch(self, run: TimedRun) -> None:
        """Check ``run`` at its deadline."""
        self._push(run.deadline, _EXPIRE, run)

    def _push(self, when: float, kind: int, run: TimedRun) -> None:
        with self._lock:
            first = not self._heap or when < self._heap[0][0]
            if self._heap and len(self._heap) % 256 == 0:
                # Runs that ended in time linger until their deadline: drop them.
                self._heap = [entry for entry in self._heap if not entry[3].done]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (when, next(self._seq), kind, run))
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(
                    target=self._run, name="db_worker-watchdog", daemon=True
                )
                self._thread.start()
                return
        if first:
            self.wake.set()

    def stop(self) -> None:
        """Stop the thread (if it started) and restore SIGALRM's handler."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self.wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        if self.alarm_installed and threading.current_thread() is threading.main_thread():
            signal.signal(_ALARM or 0, self._previous_alarm)
            self.alarm_installed = False
        if thread is None or not thread.is_alive():
            self.wake.close()

    # --- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    due = self._heap and self._heap[0][0] <= now
                    if due:
                        _, _, kind, run = heapq.heappop(self._heap)
                    else:
                        timeout = self._heap[0][0] - now if self._heap else None
                if not due:
                    self.wake.wait(timeout)
                    continue
                if run.done:
                    continue
                if kind == _EXPIRE:
                    self.expire(run)
                else:
                    self.free_slot(run)
        except Exception:
            logger.exception("Worker watchdog thread crashed; stopping the worker")
            self.group.stop()
        finally:
            connections.close_all()

    def expire(self, run: TimedRun) -> None:
        """Record ``run`` as failed by its time limit, interrupt it, check on it later."""
        stack = run.stack()
        if not run.expire():
            return
        self._push(time.monotonic() + STUCK_GRACE, _STUCK, run)
        row, executor, state = run.row, run.executor, self.state
        try:
            _, _, settings = executor.tasks.resolve(row)
        except Exception:
            settings = None  # the task can't be resolved any more: no retry
        exc = time_limit_exceeded(row)
        if stack:
            exc.add_note(f"The task was stopped here:\n{stack.rstrip()}")
        try:
            raise exc
        except TimeLimitExceeded:
            # From inside the except block, so task_finished receivers can log it.
            try:
                status = executor.db.call(
                    lambda: services.fail_task(
                        row, exc, worker_id=state.worker_id, settings=settings
                    ),
                    what="recording a time limit",
                    give_up=lambda: state.force,
                    wait=self.wake.wait,
                )
            except Exception:
                logger.exception("Task id=%s could not be recorded as timed out", row.pk)
                return
            if status is None:
                return  # no longer ours (recovered as lost meanwhile)
            logger.warning(
                "Task id=%s path=%s state=%s: exceeded its time limit of %g s",
                row.pk,
                row.task_path,
                status,
                run.limit,
            )
            if status == ResultStatus.FAILED:
                state.count(ResultStatus.FAILED)
                send_finished(row)

    def free_slot(self, run: TimedRun) -> None:
        """``run`` ignored its interrupt: let another thread, or process, take its slot."""
        group = self.group
        if not self.state.in_pool:
            if group.replace(run):
                logger.warning(
                    "Task id=%s is still running %g s after its time limit (blocked in a "
                    "call Python cannot interrupt): a new thread takes its slot; its "
                    "outcome will be ignored",
                    run.row.pk,
                    STUCK_GRACE,
                )
            return
        pending = group.retire(run)
        if pending is None:
            return  # it came back meanwhile
        logger.warning(
            "Task id=%s is still running %g s after its time limit (blocked in a call "
            "Python cannot interrupt): this worker process stops claiming, lets its "
            "other tasks finish and exits, to be replaced",
            run.row.pk,
            STUCK_GRACE,
        )
        state = self.state
        state.recycling = True
        state.release(pending, db=group.db, wait=self.wake.wait)
        group.stop()
        if not run.on_main:
            return  # the main thread shuts down as usual; its run_child exits
        # The main thread is the stuck one: once the others are done, leave without it.
        while not run.done and any(
            e.thread is not None and e.thread.is_alive() for e in group.executors
        ):
            self.wake.wait(0.1)
        if run.done:
            return  # it came back after all, and shuts down as usual
        try:
            services.unregister_worker(worker_id=state.worker_id)
        except (OperationalError, InterfaceError):
            logger.error("Could not unregister worker id=%s", state.worker_id)
        logging.shutdown()
        os._exit(RECYCLE_EXIT_CODE)


def send_finished(row: DBTaskResult) -> None:
    """Send ``task_finished`` for a row recorded FAILED outside its run."""
    try:
        task = row.task
    except Exception:
        return
    signals_for(row.api).finished.send(
        sender=type(task.get_backend()), task_result=task_result_for(row, task)
    )
