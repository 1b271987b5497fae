"""The executors of one worker process, and the threads they run on.

The first executor runs on the main thread, as with one thread; the others start
when it finds work for them, so a worker that stays idle costs what a
single-threaded one does.  One idle executor polls; the others sleep until woken.
An executor stuck in a task past its time limit is retired: a new one, on a new
thread, takes its place and its claims (see watchdog.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from django_tasks.backends.database import services

from .db_calls import DatabaseCalls
from .executor import Executor
from .options import WorkerOptions
from .state import WorkerState
from .wakeup import Wakeup
from .watchdog import TimedRun, Watchdog

if TYPE_CHECKING:
    from django_tasks.backends.database.models import DBTaskResult

logger = logging.getLogger("django_tasks.backends.database.db_worker")

ABORT_GRACE = 3.0
"""After a second signal, how long aborted threads get to record their own failure."""


class ExecutorThreads:
    """Start, wake, choose the poller among, stop and abort the executors of one process."""

    def __init__(self, *, options: WorkerOptions, state: WorkerState, db: DatabaseCalls) -> None:
        self.options = options
        self.state = state
        self.db = db
        self.wake = Wakeup()  # the main thread's, outside its executor's loop
        self.executors = [
            Executor(index, options=options, state=state, db=db, group=self)
            for index in range(options.threads)
        ]
        self.main_executor = self.executors[0]  # the one on the main thread
        self.watchdog = Watchdog(self)  # time limits
        self._retired: list[Executor] = []
        self._threaded = False  # executors on threads of their own (--threads > 1)
        self._threads_lock = threading.Lock()
        self._poller: Executor | None = None
        self._poll_lock = threading.Lock()

    def run(self) -> None:
        """Run the executors until they stop; the first one on this thread."""
        main = self.main_executor
        self._threaded = len(self.executors) > 1
        if self._threaded:
            main.thread = threading.current_thread()
        try:
            main.run()
        finally:
            # The others, including any that took the place of a stuck one.
            self._join()

    def _join(self) -> None:
        """Wait for the other executors; after the second signal, abort their tasks."""
        aborted_at: float | None = None
        this = threading.current_thread()
        while True:
            executors = [e for e in self.executors if e.thread is not None and e.thread is not this]
            if not any(e.thread is not None and e.thread.is_alive() for e in executors):
                return
            if self.state.force and aborted_at is None:
                aborted_at = time.monotonic()
                for executor in executors:
                    executor.abort_task()
            if aborted_at is not None and time.monotonic() - aborted_at > ABORT_GRACE:
                # Tasks stuck in C calls (sleep, I/O) can't be interrupted: record them.
                for executor in executors:
                    executor.record_abandoned()
                return
            self.wake.wait(0.2)

    def replace(self, run: TimedRun) -> bool:
        """Put a new executor, on a new thread, in the place of ``run``'s stuck one.

        It takes over the stuck one's claimed tasks; the stuck one exits when its
        task returns.  False if the task came back meanwhile.
        """
        stuck = run.executor
        with self.state.claim_lock:  # reconcile_claims sees our claims in one place
            pending = self._retire(run)
            if pending is None:
                return False
            executor = Executor(
                stuck.index, options=self.options, state=self.state, db=stuck.db, group=self
            )
            executor.pending.extend(pending)
            executor.generation = stuck.generation
            executor.avg_seconds = stuck.avg_seconds
            self.executors = [*self.executors, executor]
        with self._threads_lock:
            name = f"db_worker-{executor.index}-{len(self._retired)}"
            executor.thread = threading.Thread(target=executor.run, name=name, daemon=True)
            executor.thread.start()
        return True

    def retire(self, run: TimedRun) -> list[DBTaskResult] | None:
        """Retire ``run``'s stuck executor; return its unstarted claims (None if it came back)."""
        with self.state.claim_lock:
            return self._retire(run)

    def _retire(self, run: TimedRun) -> list[DBTaskResult] | None:
        stuck = run.executor
        with run.lock:
            if run.done:
                return None
            # Under the run's lock: once it returns, the stuck thread sees it was
            # replaced before touching its claims again.
            run.replaced = True
            stuck.retired = True
            pending = list(stuck.pending)
            stuck.pending.clear()
        # A new list: other threads may be iterating over the current one.
        self.executors = [e for e in self.executors if e is not stuck]
        for executor in [e for e in self._retired if e.thread and not e.thread.is_alive()]:
            executor.wake.close()  # came back and exited since
            self._retired.remove(executor)
        self._retired.append(stuck)
        stuck.wake.set()
        return pending

    def _start_thread(self, executor: Executor) -> None:
        with self._threads_lock:
            if executor.thread is None:
                name = f"db_worker-{executor.index}"
                executor.thread = threading.Thread(target=executor.run, name=name, daemon=True)
                executor.thread.start()

    def wake_all(self, but: Executor | None = None) -> None:
        """Wake the other executors (starting their threads, while running): work came."""
        for executor in self.executors:
            if executor is not but:
                if self._threaded and executor.thread is None and self.state.running:
                    self._start_thread(executor)
                executor.wake.set()

    def wake_poller(self) -> None:
        """Wake the executor that polls for work (the first one if none polls)."""
        with self._poll_lock:
            poller = self._poller
        (poller or self.executors[0]).wake.set()

    def idle_timeout(self, executor: Executor) -> float | None:
        """How long an idle executor waits before polling again (None: until woken).

        One idle executor polls at ``interval``; the others sleep until it (or a
        notification) finds work, so idle threads cost no queries and never open
        a connection.
        """
        with self._poll_lock:
            if self._poller is None or self._poller is executor:
                self._poller = executor
                return self.options.interval
        return None

    def stop_polling(self, executor: Executor) -> bool:
        """``executor`` has work (or is leaving): let another idle one poll."""
        with self._poll_lock:
            if self._poller is not executor:
                return False
            self._poller = None
        self.wake_all(but=executor)
        return True

    def stop(self, *, force: bool = False) -> None:
        """Stop claiming; with ``force``, also abort running tasks.  Safe in a signal handler."""
        if force:
            self.state.force = True
        self.state.running = False
        self.wake_all()
        self.wake.set()

    def main_in_task(self) -> bool:
        """Whether the executor on the main thread is inside a task."""
        return self.main_executor.in_task

    def release_pending(self) -> None:
        """Put each executor's claimed but unstarted tasks back to NEW."""
        for executor in self.executors:
            executor.release_pending()

    def reconcile_claims(self) -> None:
        """Release rows claimed by a claim whose reply was lost (the connection broke).

        Call with the state's ``claim_lock`` held, so no claim is between its
        statement and recording what it claimed.
        """
        known = [e.current.pk for e in self.executors if e.current is not None]
        known += [row.pk for e in self.executors for row in e.pending]
        released = services.release_tasks(worker_id=self.state.worker_id, exclude=known)
        if released:
            logger.warning("Released %s task(s) claimed before the connection broke", released)

    def close(self) -> None:
        self.watchdog.stop()
        # A retired executor's thread may still be stuck in its task, using its wake-up.
        gone = [e for e in self._retired if e.thread is None or not e.thread.is_alive()]
        for wakeup in [self.wake, *(e.wake for e in [*self.executors, *gone])]:
            wakeup.close()
