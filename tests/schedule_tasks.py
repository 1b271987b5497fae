"""Tasks run by recurring schedules in the tests (tests.core.test_schedules)."""

from __future__ import annotations

from django_tasks import task
from tests.worker_helpers import _append


@task()
def tick(path: str, token: str = "tick") -> str:
    """Append ``token`` to ``path``: one line per run."""
    _append(path, token)
    return token


@task()
def nightly_report(day: str = "", *, rows: int = 0) -> dict[str, object]:
    """A report a schedule enqueues; it only returns its arguments."""
    return {"day": day, "rows": rows}


@task()
def fail_always() -> None:
    raise RuntimeError("the nightly report broke")


@task(enqueue_on_commit=True)
def waits_for_commit() -> str:
    return "ran"


def not_a_task() -> None:
    """A plain function: a schedule naming it is refused."""


@task(max_attempts=3, time_limit=30)
def with_lifecycle() -> str:
    """A task with its own retry and time-limit settings."""
    return "ok"
