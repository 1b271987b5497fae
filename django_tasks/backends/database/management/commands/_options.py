"""Argparse type converters shared by db_worker and prune_db_task_results.

Option errors come from these converters, so argparse reports them as
``argument --backend: <message>`` (stderr, exit status 2).
"""

from __future__ import annotations

import math
from argparse import ArgumentTypeError

from django_tasks import tasks
from django_tasks.exceptions import InvalidTaskBackendError


def valid_backend_name(val: str) -> str:
    """Return ``val`` if it names a configured DatabaseBackend."""
    from django_tasks.backends.database.backend import DatabaseBackend

    try:
        backend = tasks[val]
    except InvalidTaskBackendError as e:
        raise ArgumentTypeError(e.args[0]) from e
    if not isinstance(backend, DatabaseBackend):
        raise ArgumentTypeError(f"Backend '{val}' is not a database backend")
    return val


def non_negative_int(val: str) -> int:
    """Parse a whole number of zero or more."""
    num = int(val)
    if num < 0:
        raise ArgumentTypeError("Must be greater than zero")
    return num


def non_negative_float(val: str) -> float:
    """Parse a finite number of zero or more."""
    num = float(val)
    if not math.isfinite(num):
        raise ArgumentTypeError("Must be a finite floating point value")
    if num < 0:
        raise ArgumentTypeError("Must be greater than zero")
    return num
