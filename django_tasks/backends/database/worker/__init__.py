"""The db_worker loop: claim ready tasks in batches, run them on threads, heartbeat.

One worker process (``process.Worker``) has:

- its options (``options.WorkerOptions``), built once from the command line;
- the state its threads share (``state.WorkerState``): flags, counters, claim lock;
- executors (``executor.Executor``, ``--threads``, grouped in
  ``threads.ExecutorThreads``), each with its own database connection kept open
  across tasks: claim a batch, run it, repeat; wait for a wake-up when idle.  With
  one thread the executor is the main thread, so a second signal can interrupt
  the task itself, as upstream does;
- a heartbeat thread (``heartbeat.HeartbeatThread``): heartbeats, recovery of lost
  workers' tasks, and (on PostgreSQL) ``LISTEN`` for enqueue notifications, which
  wake idle executors;
- signal handlers: the first SIGINT/SIGTERM stops claiming and lets running tasks
  finish; the second aborts them, recording each FAILED.
- a watchdog thread (``watchdog.Watchdog``), started by the first run whose row has
  a time limit: it fails runs past their limit with ``TimeLimitExceeded``, interrupts
  them, and frees the slot of one stuck in C (a new executor thread, or a
  ``--processes`` child exits to be replaced).

``--processes N`` runs N such processes under a ``process_pool.ProcessPool``.

The modules that import the models load on first use of their names here: a
spawned ``--processes`` child imports ``process_pool`` before Django is set up.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from django_tasks.backends.database.writes import NOTIFY_CHANNEL

from .db_calls import MAX_BACKOFF
from .options import DEFAULT_CLAIM_SIZE, WorkerOptions

if TYPE_CHECKING:
    from .executor import BATCH_SECONDS
    from .process import Worker
    from .threads import ABORT_GRACE

__all__ = [
    "ABORT_GRACE",
    "BATCH_SECONDS",
    "DEFAULT_CLAIM_SIZE",
    "MAX_BACKOFF",
    "NOTIFY_CHANNEL",
    "Worker",
    "WorkerOptions",
]

_LOADED_ON_USE = {"ABORT_GRACE": ".threads", "BATCH_SECONDS": ".executor", "Worker": ".process"}


def __getattr__(name: str) -> Any:
    if name in _LOADED_ON_USE:
        return getattr(import_module(_LOADED_ON_USE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
