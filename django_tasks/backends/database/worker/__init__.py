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

from django_tasks.backends.database.inserts import NOTIFY_CHANNEL

from .db_calls import MAX_BACKOFF
from .executor import BATCH_SECONDS
from .process import ABORT_GRACE, DEFAULT_CLAIM_SIZE, Worker

__all__ = [
    "ABORT_GRACE",
    "BATCH_SECONDS",
    "DEFAULT_CLAIM_SIZE",
    "MAX_BACKOFF",
    "NOTIFY_CHANNEL",
    "Worker",
]
