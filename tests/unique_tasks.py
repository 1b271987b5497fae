"""Tasks for the unique-task tests (tests.core.test_unique_tasks), and what their
enqueuing processes run (``enqueue_many``)."""

from __future__ import annotations

import os
import time

from django.db import connection, transaction

from django_tasks import task
from tests.worker_helpers import _append


@task(unique_key="nightly")
def report(path: str, token: str) -> str:
    """Append ``token`` to ``path``; unique under the key "nightly"."""
    _append(path, token)
    return token


@task(unique_key="nightly")
def other_report(path: str, token: str) -> str:
    """Another task with the same key: keys are per task."""
    _append(path, token)
    return token


@task()
def plain(path: str, token: str) -> str:
    """No key of its own: ``.using()`` or the backend's OPTIONS give it one."""
    _append(path, token)
    return token


@task(unique_key="flaky", max_attempts=2, backoff=0)
def fails_once(path: str, token: str) -> str:
    """Fail the first run, complete the second (the worker's own retry)."""
    _append(path, token)
    with open(path) as runs:
        if runs.read().split().count(token) == 1:
            raise ValueError(f"{token} fails the first time")
    return token


@task(unique_key="doomed")
def fails(path: str, token: str) -> None:
    _append(path, token)
    raise ValueError(f"{token} failed")


@task(unique_key="on-commit", enqueue_on_commit=True)
def on_commit(path: str, token: str) -> str:
    _append(path, token)
    return token


def enqueue_many(go_file: str, count: int, *, atomic: bool) -> None:
    """Connect, wait until ``go_file`` exists, enqueue ``report`` ``count`` times
    (each in its own transaction with ``atomic``); print the result ids, one a line.

    Run in a process of its own, Django set up (see ``ENQUEUER`` in the tests).
    """
    connection.ensure_connection()
    while not os.path.exists(go_file):
        time.sleep(0.001)
    ids = []
    for i in range(count):
        token = f"{os.getpid()}-{i}"
        if atomic:
            with transaction.atomic():
                ids.append(report.enqueue(go_file, token).id)
        else:
            ids.append(report.enqueue(go_file, token).id)
    print("\n".join(ids), flush=True)
