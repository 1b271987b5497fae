"""Operations on task rows, shared by db_worker, prune_db_task_results and the dashboard.

Commands and views stay thin: they parse input, call one function here, and
report the count or outcome it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from .models import DBTaskResult, DBTaskResultQuerySet


class RetryRefused(Exception):
    """A result cannot be retried (it is not FAILED)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryOutcome:
    """What retry() did: how many rows went back to NEW, and which were refused."""

    retried: int
    refused: int


# --- retry and prune (owned by the database-backend engineer) -------------------


def retry(*, results: DBTaskResultQuerySet | Iterable[str | UUID]) -> RetryOutcome:
    """Put FAILED results back to NEW, keeping their ids and their failure history."""
    raise NotImplementedError


def retry_one(result_id: str | UUID) -> DBTaskResult:
    """Retry one result; raise RetryRefused with a clear message if it is not FAILED."""
    raise NotImplementedError


def prune(
    *,
    backend_name: str,
    queue_names: Sequence[str] | None,
    min_age_days: int = 14,
    failed_min_age_days: int | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
) -> int:
    """Delete (or with dry_run count) finished results older than the given ages."""
    raise NotImplementedError


# --- claiming, running and recovery (owned by the worker engineer) ----------------
