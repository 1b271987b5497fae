"""``--processes N``: a parent that runs N worker processes and supervises them.

It forwards the first signal as a graceful stop and the second as an abort, and
replaces children that exit unexpectedly.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from types import FrameType
from typing import Any

from django.db import connections

from .options import WorkerOptions
from .wakeup import Wakeup

logger = logging.getLogger("django_tasks.backends.database.db_worker")

# The signals the pool forwards to its children: stop gracefully / abort now.
STOP_SIGNAL = getattr(signal, "SIGUSR1", None)
ABORT_SIGNAL = getattr(signal, "SIGUSR2", None)

RECYCLE_EXIT_CODE = 75
"""A child's exit code when it left to free the slot of a task stuck past its time limit."""


class ProcessPool:
    """``--processes N``: run N worker processes, forward signals, replace crashed ones."""

    def __init__(self, options: WorkerOptions, *, worker_path: str) -> None:
        self.options = options
        # The dotted path of the worker class each child runs, imported in the child
        # once Django is set up (a spawned child can't import the models before).
        self.worker_path = worker_path
        # What each child runs: the same options, as one process rather than a pool.
        self.child_options = replace(options, processes=1)
        self.running = True
        self.forced = False
        self.wake = Wakeup()
        methods = multiprocessing.get_all_start_methods()
        self.context: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.children: dict[int, Any] = {}

    def run(self) -> None:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGINT", "SIGTERM", "SIGQUIT"):
                if hasattr(signal, name):
                    signum = getattr(signal, name)
                    previous[signum] = signal.signal(signum, self.on_signal)
        try:
            logger.info(
                "Starting %s worker processes for queues=%s",
                self.options.processes,
                ",".join(self.options.queue_names),
            )
            # Children must not share the parent's connections.
            connections.close_all()
            for slot in range(self.options.processes):
                self.spawn(slot)
            self.supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def spawn(self, slot: int) -> None:
        process = self.context.Process(
            target=run_child,
            args=(self.worker_path, self.child_options, os.getpid()),
            name=f"db_worker-{slot}",
        )
        process.start()
        self.children[slot] = (process, time.monotonic())

    def supervise(self) -> None:
        failures: dict[int, int] = {}
        while self.children:
            for slot, (process, started) in list(self.children.items()):
                if process.is_alive():
                    continue
                process.join()
                del self.children[slot]
                code = process.exitcode
                if not self.running or self.options.batch:
                    continue
                if code == RECYCLE_EXIT_CODE:
                    # It left to free the slot of a task stuck past its time limit.
                    logger.warning(
                        "Worker process pid=%s exited to free a stuck task's slot; replacing it",
                        process.pid,
                    )
                    failures.pop(slot, None)
                    self.spawn(slot)
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
            forward = STOP_SIGNAL or signal.SIGTERM
        elif not self.forced:
            logger.warning("Received %s - terminating current task.", name)
            self.forced = True
            forward = ABORT_SIGNAL or signal.SIGTERM
        else:
            return
        for process, _ in self.children.values():
            if process.pid is not None:
                try:
                    os.kill(process.pid, forward)
                except OSError:
                    pass
        self.wake.set()


def run_child(worker_path: str, options: WorkerOptions, parent_pid: int) -> None:
    """Run one ``--processes`` child: a worker process with the pool's options."""
    import django
    from django.apps import apps
    from django.utils.module_loading import import_string

    if not apps.ready:  # spawned rather than forked
        django.setup()
    worker = import_string(worker_path)(options, parent_pid=parent_pid)
    worker.state.in_pool = True
    worker.start()
    if worker.state.recycling:
        sys.exit(RECYCLE_EXIT_CODE)
