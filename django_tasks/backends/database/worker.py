"""The db_worker loop: claim ready tasks in batches, run them on threads, heartbeat.

One worker process has:

- executors (``--threads``), each with its own database connection kept open
  across tasks: claim a batch, run it, repeat; wait for a wake-up when idle.  With
  one thread the executor is the main thread, so a second signal can interrupt
  the task itself, as upstream does;
- a supervisor thread: heartbeats, recovery of lost workers' tasks, and (on
  PostgreSQL) ``LISTEN`` for enqueue notifications, which wake idle executors;
- signal handlers: the first SIGINT/SIGTERM stops claiming and lets running tasks
  finish; the second aborts them, recording each FAILED.

``--processes N`` forks N such processes and supervises them.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import random
import select
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, uuid4

from django.db import InterfaceError, OperationalError, connections, router

from django_tasks.task import ResultStatus

from . import services
from .inserts import NOTIFY_CHANNEL

if TYPE_CHECKING:
    from .models import DBTaskResult

logger = logging.getLogger("django_tasks.backends.database.db_worker")

T = TypeVar("T")

DEFAULT_CLAIM_SIZE = 32
"""The most tasks one executor claims at once."""

BATCH_SECONDS = 0.1
"""Claim about this much work at once, judged by how long recent tasks took."""

MAX_BACKOFF = 5.0
"""Longest wait between reconnection attempts, in seconds."""

ABORT_GRACE = 3.0
"""After a second signal, how long aborted threads get to record their own failure."""


# SQLite reports these as OperationalError too, but no reconnection will fix them.
_FATAL_ERRORS = ("no such table", "no such column", "has no column")

# The signals a multi-process parent forwards: stop gracefully / abort now.
_STOP_SIGNAL = getattr(signal, "SIGUSR1", None)
_ABORT_SIGNAL = getattr(signal, "SIGUSR2", None)


class _AbortTask(SystemExit):
    """Raised inside a task thread by the second signal; recorded as SystemExit(1)."""


class Worker:
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
    def using(self) -> str:
        from .models import DBTaskResult

        return router.db_for_write(DBTaskResult)

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

    def db_call(
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
                self.close_connection()
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

    def close_connection(self) -> None:
        """Drop this thread's connection; the next query opens a new one."""
        connection = connections[self.using]
        try:
            connection.close()
        except Exception:
            connection.connection = None

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


class _Wakeup:
    """A wake-up flag a thread can wait on with a timeout, set from any thread or a signal.

    A socket pair rather than a threading.Event, because setting an Event from a
    signal handler can deadlock the thread the handler interrupted.
    """

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        return self._r.fileno()

    def set(self) -> None:
        try:
            self._w.send(b"\0")
        except OSError:  # buffer full: already set
            pass

    def clear(self) -> None:
        try:
            while self._r.recv(4096):
                pass
        except OSError:
            pass

    def wait(self, timeout: float | None, *others: Any) -> list[Any]:
        """Wait until set (or one of ``others`` is readable) or ``timeout``; clear it."""
        timeout = None if timeout is None else max(timeout, 0)
        readable, _, _ = select.select([self, *others], [], [], timeout)
        if self in readable:
            self.clear()
        return readable

    def close(self) -> None:
        self._r.close()
        self._w.close()


class _Executor:
    """Claim and run tasks, one at a time, on one thread and one connection."""

    def __init__(self, worker: Worker, index: int) -> None:
        self.worker = worker
        self.index = index
        self.wake = _Wakeup()
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

    def run(self) -> None:
        worker = self.worker
        self.thread_id = threading.get_ident()
        on_main = threading.current_thread() is threading.main_thread()
        try:
            # Extra threads start when the first one finds them work (wake_executors),
            # so a worker that stays idle never runs them or opens their connections.
            self.wake.clear()
            while worker.running:
                if not worker.may_start_tasks():
                    self.wake.wait(0.1)
                    continue
                try:
                    claimed = self.claim()
                except (OperationalError, InterfaceError):
                    break  # stopping while the database is down
                if claimed:
                    self.run_pending()
                    continue
                if worker.batch:
                    break
                if worker.set_waiting(True):
                    # A task committed while we said so may have missed us: look again.
                    continue
                self.wake.wait(worker.idle_timeout(self))
        except _AbortTask:
            pass  # the second signal arrived between tasks
        finally:
            worker.stop_polling(self)
            worker.wake_executors(but=self)  # idle threads must not wait for us forever
            self.release_pending()
            if not on_main:
                connections.close_all()

    def claim(self) -> int:
        worker = self.worker
        limit = 1
        if self.avg_seconds is not None:
            limit = int(BATCH_SECONDS / max(self.avg_seconds, 1e-6))
        limit = max(1, min(worker.claim_size, limit))

        def claim() -> int:
            with worker._claim_lock:
                if self.needs_reconcile:
                    worker.reconcile_claims()
                    self.needs_reconcile = False
                rows = services.claim_tasks(
                    backend_name=worker.backend_name,
                    queue_names=worker.queue_filter,
                    worker_id=worker.worker_id,
                    limit=limit,
                )
                self.pending.extend(rows)
                self.generation = worker.generation
            # Work arrived (the poller wakes the others), or more may be waiting.
            if rows and not worker.stop_polling(self) and len(rows) == limit:
                worker.wake_executors(but=self)
            if len(rows) == limit:
                worker.set_waiting(False)  # busy: enqueues needn't notify us
            return len(rows)

        return worker.db_call(
            claim,
            what="claiming tasks",
            give_up=lambda: not worker.running,
            wait=self.wake.wait,
            on_error=self.claim_failed,
        )

    def claim_failed(self) -> None:
        # The claim may have committed before the connection broke.
        self.needs_reconcile = True

    def run_pending(self) -> None:
        worker = self.worker
        while (
            self.pending
            and worker.running
            and worker.may_start_tasks()
            and self.generation == worker.generation  # else others recovered our claims
        ):
            self.current = self.pending.popleft()
            self._recorded = False
            began = time.perf_counter()
            try:
                status = services.run_task(
                    self.current,
                    worker_id=worker.worker_id,
                    call_guard=self.call_guard,
                    db_retry=self.save_outcome,
                    tasks=self.tasks,
                )
            finally:
                self._recorded = True
                self.current = None
            worker.count(status)
            elapsed = time.perf_counter() - began
            self.avg_seconds = (
                elapsed if self.avg_seconds is None else 0.7 * self.avg_seconds + 0.3 * elapsed
            )
            self.check_connection()
        self.release_pending()

    @contextmanager
    def call_guard(self) -> Iterator[None]:
        self.in_task = True
        try:
            yield
        except _AbortTask as e:
            raise SystemExit(1) from e
        finally:
            self.in_task = False

    def save_outcome(self, write: Callable[[], bool]) -> bool:
        worker = self.worker
        return worker.db_call(
            write,
            what="saving a task's outcome",
            give_up=lambda: worker.force,
            wait=self.wake.wait,
        )

    def check_connection(self) -> None:
        """Keep the connection across tasks; drop it only if a task broke it."""
        connection = connections[self.worker.using]
        if connection.connection is None:
            return
        if connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                self.worker.close_connection()
        elif not connection.autocommit and not connection.in_atomic_block:
            # A task left a manual transaction open: don't claim inside it.
            connection.rollback()
            connection.set_autocommit(True)

    def release_pending(self) -> None:
        if not self.pending:
            return
        pks = [row.pk for row in self.pending]
        self.pending.clear()
        worker = self.worker
        try:
            worker.db_call(
                lambda: services.release_tasks(worker_id=worker.worker_id, ids=pks),
                what="releasing claimed tasks",
                give_up=lambda: worker.force,
                wait=self.wake.wait,
            )
        except (OperationalError, InterfaceError):
            logger.error("Could not release %s claimed task(s)", len(pks))

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
        try:
            raise SystemExit(1)
        except SystemExit as e:
            try:
                if services.fail_task(row, e, worker_id=self.worker.worker_id):
                    self.worker.count(ResultStatus.FAILED)
                    _send_finished(row)
            except Exception:
                logger.exception("Task id=%s could not be recorded as aborted", row.pk)


def _send_finished(row: DBTaskResult) -> None:
    from django_tasks.signals import task_finished

    try:
        task = row.task
    except Exception:
        return
    task_finished.send(
        sender=type(task.get_backend()), task_result=services._task_result(row, task)
    )


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


class _ProcessSupervisor:
    """``--processes N``: run N worker processes, forward signals, replace crashed ones."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.running = True
        self.forced = False
        self.wake = _Wakeup()
        methods = multiprocessing.get_all_start_methods()
        self.context: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.children: dict[int, Any] = {}

    def run(self) -> None:
        worker = self.worker
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGINT", "SIGTERM", "SIGQUIT"):
                if hasattr(signal, name):
                    signum = getattr(signal, name)
                    previous[signum] = signal.signal(signum, self.on_signal)
        try:
            logger.info(
                "Starting %s worker processes for queues=%s",
                worker.processes,
                ",".join(worker.queue_names),
            )
            # Children must not share the parent's connections.
            connections.close_all()
            for slot in range(worker.processes):
                self.spawn(slot)
            self.supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def spawn(self, slot: int) -> None:
        worker = self.worker
        options = {
            "queue_names": worker.queue_names,
            "interval": worker.interval,
            "batch": worker.batch,
            "backend_name": worker.backend_name,
            "startup_delay": worker.startup_delay,
            "threads": worker.threads,
            "heartbeat_timeout": worker.heartbeat_timeout,
            "claim_size": worker.claim_size,
        }
        process = self.context.Process(
            target=_run_child, args=(options, os.getpid()), name=f"db_worker-{slot}"
        )
        process.start()
        self.children[slot] = (process, time.monotonic())

    def supervise(self) -> None:
        worker = self.worker
        failures: dict[int, int] = {}
        while self.children:
            for slot, (process, started) in list(self.children.items()):
                if process.is_alive():
                    continue
                process.join()
                del self.children[slot]
                code = process.exitcode
                if not self.running or worker.batch:
                    continue
                failures[slot] = failures.get(slot, 0) + 1 if time.monotonic() - started < 10 else 1
                delay = min(0.5 * 2 ** (failures[slot] - 1), 30.0)
                logger.error(
                    "Worker process pid=%s exited unexpectedly (exit code %s); restarting it in %.1fs",
                    process.pid,
                    code,
                    delay,
                )
                self.wake.wait(delay)
                if self.running:
                    self.spawn(slot)
            sentinels = [process.sentinel for process, _ in self.children.values()]
            self.wake.wait(1.0, *sentinels)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.strsignal(signum) or str(signum)
        if self.running:
            logger.warning(
                "Received %s - shutting down gracefully... (press Ctrl+C again to force)", name
            )
            self.running = False
            forward = _STOP_SIGNAL or signal.SIGTERM
        elif not self.forced:
            logger.warning("Received %s - terminating current task.", name)
            self.forced = True
            forward = _ABORT_SIGNAL or signal.SIGTERM
        else:
            return
        for process, _ in self.children.values():
            if process.pid is not None:
                try:
                    os.kill(process.pid, forward)
                except OSError:
                    pass
        self.wake.set()


def _run_child(options: dict[str, Any], parent_pid: int) -> None:
    """Entry point of a ``--processes`` child."""
    import django
    from django.apps import apps

    if not apps.ready:  # spawned rather than forked
        django.setup()
    Worker(**options, parent_pid=parent_pid).start()
