"""What ``db_worker`` was asked to do: its options, resolved once and shared by all parts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django_tasks.backends.database.options import options_for

from .db_calls import MAX_BACKOFF

DEFAULT_CLAIM_SIZE = 32
"""The most tasks one executor claims at once."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """The command line, with the backend's ``OPTIONS`` filled in.

    Built once, by the command (through ``Worker``); ``--processes`` children get
    the same object.
    """

    queue_names: tuple[str, ...]
    interval: float
    batch: bool
    backend_name: str
    startup_delay: bool
    threads: int = 1
    processes: int = 1
    heartbeat_timeout: float
    lost_tasks: str
    claim_size: int = DEFAULT_CLAIM_SIZE
    # The queues to claim from, None for all ("*").
    queue_filter: tuple[str, ...] | None = field(init=False)

    def __post_init__(self) -> None:
        queue_filter = None if "*" in self.queue_names else self.queue_names
        object.__setattr__(self, "queue_filter", queue_filter)

    @classmethod
    def from_command_line(
        cls,
        *,
        queue_names: Sequence[str],
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        threads: int = 1,
        processes: int = 1,
        heartbeat_timeout: float | None = None,
        claim_size: int = DEFAULT_CLAIM_SIZE,
    ) -> WorkerOptions:
        """Return the options of a worker; raise InvalidOptions if the backend's are invalid."""
        backend_options = options_for(backend_name)
        backend_options.require_valid()
        return cls(
            queue_names=tuple(queue_names),
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            threads=max(1, threads),
            processes=max(1, processes),
            heartbeat_timeout=heartbeat_timeout or backend_options.heartbeat_timeout,
            lost_tasks=backend_options.lost_tasks,
            claim_size=max(1, claim_size),
        )

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats: several per timeout."""
        return min(max(self.heartbeat_timeout / 5, 0.1), MAX_BACKOFF)

    def wants(self, backend_name: str, queue_name: str) -> bool:
        """Whether a task of this backend and queue is one we run."""
        return backend_name == self.backend_name and (
            self.queue_filter is None or queue_name in self.queue_filter
        )
