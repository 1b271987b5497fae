"""Drive ``services.scheduling.enqueue_due`` over many fake minutes, as a worker would.

Run by tests.core.test_schedules in several OS processes at once:
``python -m tests.schedule_driver START_ISO MINUTES GO_FILE`` (worker_env() settings).
Each process waits for GO_FILE to exist, so all start together.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path


def main(start: str, minutes: str, go_file: str) -> None:
    import django

    django.setup()
    from django.db import OperationalError

    from django_tasks.backends.database.services import scheduling

    base = datetime.fromisoformat(start)
    while not Path(go_file).exists():
        time.sleep(0.01)
    rng = random.Random(os.getpid())
    for minute in range(1, int(minutes) + 1):
        # A few seconds past the tick, differing per process, as real clocks do.
        now = base + timedelta(minutes=minute, seconds=rng.uniform(0, 3))
        while True:
            try:
                scheduling.enqueue_due(backend_name="default", now=now)
                break
            except OperationalError as e:  # SQLite busy beyond its timeout: try again
                if "is locked" not in str(e):
                    raise


if __name__ == "__main__":
    main(*sys.argv[1:])
