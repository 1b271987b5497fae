"""Drive ``services.scheduling.enqueue_due`` over many fake minutes, as a worker would.

Run by tests.core.test_schedules in several OS processes at once:
``python -m tests.schedule_driver START_ISO MINUTES BARRIER_DIR PROCESSES`` (with
worker_env() settings).  The processes meet at a barrier (files in BARRIER_DIR)
before each minute, so all of them try to enqueue each tick at the same moment.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path


def barrier(directory: Path, step: int, processes: int) -> None:
    """Wait until ``processes`` processes reached ``step``."""
    (directory / f"{step}.{os.getpid()}").touch()
    while len(list(directory.glob(f"{step}.*"))) < processes:
        time.sleep(0.001)


def until_unlocked(call: Callable[[], object]) -> None:
    """Call ``call`` until SQLite stops answering "database is locked" (beyond its timeout)."""
    from django.db import OperationalError

    while True:
        try:
            call()
            return
        except OperationalError as e:
            if "is locked" not in str(e):
                raise


def main(start: str, minutes: str, barrier_dir: str, processes: str) -> None:
    import django

    django.setup()
    from django_tasks.backends.database.services import scheduling

    base = datetime.fromisoformat(start)
    directory = Path(barrier_dir)
    rng = random.Random(os.getpid())
    for minute in range(1, int(minutes) + 1):
        barrier(directory, minute, int(processes))
        # Up to a second past the tick, differing per process, as real clocks do.
        now = base + timedelta(minutes=minute, seconds=rng.uniform(0, 1))
        until_unlocked(partial(scheduling.enqueue_due, backend_name="default", now=now))


if __name__ == "__main__":
    main(*sys.argv[1:])
