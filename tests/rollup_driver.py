"""Drive ``services.rollup.roll_up`` over many fake minutes, as workers' heartbeats would.

Run by tests.core.test_rollup in several OS processes at once:
``python -m tests.rollup_driver START_ISO MINUTES BARRIER_DIR PROCESSES`` (with
worker_env() settings).  The processes meet at a barrier before each minute, so
all of them try to roll up the same minute at the same moment.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from tests.schedule_driver import barrier, until_unlocked


def main(start: str, minutes: str, barrier_dir: str, processes: str) -> None:
    import django

    django.setup()
    from django_tasks.backends.database.services import rollup

    base = datetime.fromisoformat(start)
    directory = Path(barrier_dir)
    for minute in range(1, int(minutes) + 1):
        barrier(directory, minute, int(processes))
        now = base + timedelta(minutes=minute) + rollup.GRACE
        until_unlocked(partial(rollup.roll_up, backend_name="default", now=now, max_minutes=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
