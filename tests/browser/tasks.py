"""Tasks the browser tests run in a real db_worker."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django_tasks import task


@task()
def flaky(marker: str) -> str:
    """Fail the first time (creating ``marker``), succeed on every later run."""
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once\n")
        raise ConnectionError(f"upstream service unavailable (first attempt, marker {path.name})")
    return "recovered"


@task()
def broken(order_id: int) -> None:
    """Always fail, with a chained exception."""
    try:
        int(f"order-{order_id}")
    except ValueError as e:
        raise RuntimeError(f"cannot process order {order_id}") from e


@task(max_attempts=3, backoff=timedelta(hours=1, minutes=59))
def sync_inventory(warehouse: str) -> None:
    """Always fail; retried (3 attempts in all) 1 h 59 m after each failure."""
    raise TimeoutError(f"warehouse {warehouse} did not answer")
