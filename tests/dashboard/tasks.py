"""Tasks the dashboard's lifecycle tests enqueue and run with services.run_task."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django_tasks import task

# The wait after a failed attempt: the detail page must say "in 1 h 59 m", not "in 1 hour".
LONG_BACKOFF = timedelta(hours=1, minutes=59)


@task(max_attempts=3, backoff=LONG_BACKOFF)
def charge_card(order_id: int, message: str = "payment gateway unavailable") -> None:
    """Always fail; retried (up to 3 attempts) after LONG_BACKOFF."""
    raise ConnectionError(f"order {order_id}: {message}")


@task(max_attempts=3, backoff=0)
def count_failures(counter: str) -> None:
    """Fail with the attempt's number (kept in the ``counter`` file); retried at once."""
    path = Path(counter)
    number = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(number))
    raise ValueError(f"failure #{number}")


@task()
def succeed() -> str:
    return "done"
