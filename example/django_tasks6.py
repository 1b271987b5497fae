"""Demo tasks written with Django 6's own ``django.tasks`` (imported only on Django >= 6).

They run on the same DatabaseBackend, in the same ``db_worker``, and show in the same
dashboard as the ``django_tasks`` ones in ``example.tasks``: the project's ``TASKS``
setting serves both APIs.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any
from urllib.parse import urlsplit

from django.tasks import TaskContext, task

# Type checkers may have no stubs for django.tasks (it is new in Django 6).
# mypy: disallow-untyped-decorators=False


@task(queue_name="reports", takes_context=True)
def rebuild_search_index(context: TaskContext[Any, Any], section: str) -> dict[str, Any]:
    """A task that takes its context: the result's id and the attempt number."""
    time.sleep(random.uniform(0.5, 3))
    return {"section": section, "attempt": context.attempt, "result_id": context.task_result.id}


@task(queue_name="emails", priority=5)
async def send_digest(user_id: int, email: str) -> dict[str, Any]:
    """An ``async def`` task: the worker runs it in an event loop."""
    await asyncio.sleep(random.uniform(0.2, 1.0))
    return {"user_id": user_id, "sent_to": email, "template": "digest"}


@task()
def import_feed(url: str) -> int:
    """Fails for unreachable hosts: a FAILED django.tasks result with a real traceback."""
    if (urlsplit(url).hostname or "").endswith(".invalid"):
        raise ConnectionError(f"feed {url} could not be fetched: host not found")
    time.sleep(random.uniform(0.1, 0.5))
    return random.randint(1, 40)


def seed() -> list[Any]:
    """Enqueue a few of each, as ``python -m example`` seeds the ``django_tasks`` ones."""
    results: list[Any] = []
    for section in ("products", "articles", "help"):
        results.append(rebuild_search_index.enqueue(section))
    for i in range(4):
        results.append(send_digest.enqueue(2000 + i, f"reader{2000 + i}@example.com"))
    results.append(import_feed.enqueue("https://news.example.com/feed.xml"))
    results.append(import_feed.enqueue("https://gone.example.invalid/feed.xml"))
    return results


def trickle(n: int) -> None:
    """Enqueue one task, as the demo's trickle does now and then."""
    if random.random() < 0.5:
        send_digest.enqueue(7000 + n, f"reader{7000 + n}@example.com")
    else:
        rebuild_search_index.enqueue(random.choice(["products", "articles", "help"]))
