"""A DatabaseBackend's ``OPTIONS``, parsed and validated once, when the backend is built.

Bad values never make the backend fail to load (``manage.py check`` must be able
to run and report them); they are replaced by the defaults and listed in
``problems``.  ``db_worker`` refuses to start while any are listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django_tasks import tasks

DEFAULT_HEARTBEAT_TIMEOUT = 20.0
"""Seconds without a heartbeat after which a worker counts as lost."""

LOST_TASK_POLICIES = ("fail", "requeue")
"""``OPTIONS["lost_tasks"]``: fail lost tasks (default) or put them back to NEW."""

KNOWN_OPTIONS = ("heartbeat_timeout", "lost_tasks")
"""The ``OPTIONS`` keys a DatabaseBackend reads."""


class InvalidOptions(ValueError):
    """A DatabaseBackend's ``OPTIONS`` hold a value it cannot use."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseOptions:
    """The ``OPTIONS`` of one DatabaseBackend, with defaults for what is missing or invalid."""

    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    lost_tasks: str = "fail"
    # (key, message) for each invalid value, whose default is used instead.
    problems: tuple[tuple[str, str], ...] = ()
    unknown_keys: tuple[str, ...] = ()

    @classmethod
    def parse(cls, options: Mapping[str, Any], *, backend_name: str) -> DatabaseOptions:
        """Read ``options``; never raise, list what is wrong in ``problems``."""
        problems: list[tuple[str, str]] = []
        values: dict[str, Any] = {}

        def invalid(key: str, allowed: str) -> None:
            message = f"OPTIONS[{key!r}] of backend {backend_name!r} must be {allowed}"
            problems.append((key, f"{message}, not {options[key]!r}"))

        timeout = options.get("heartbeat_timeout", DEFAULT_HEARTBEAT_TIMEOUT)
        if (
            isinstance(timeout, (int, float))
            and not isinstance(timeout, bool)
            and math.isfinite(timeout)
            and timeout > 0
        ):
            values["heartbeat_timeout"] = float(timeout)
        else:
            invalid("heartbeat_timeout", "a number of seconds greater than zero")

        policy = options.get("lost_tasks", "fail")
        if isinstance(policy, str) and policy in LOST_TASK_POLICIES:
            values["lost_tasks"] = policy
        else:
            invalid("lost_tasks", f"one of {', '.join(LOST_TASK_POLICIES)}")

        unknown = tuple(sorted(str(key) for key in options if key not in KNOWN_OPTIONS))
        return cls(**values, problems=tuple(problems), unknown_keys=unknown)

    @property
    def errors(self) -> list[str]:
        """The message of each invalid value."""
        return [message for _, message in self.problems]

    def require_valid(self, *keys: str) -> None:
        """Raise InvalidOptions naming each invalid value (of ``keys``, or of any key)."""
        errors = [message for key, message in self.problems if not keys or key in keys]
        if errors:
            raise InvalidOptions("; ".join(errors))


def options_for(backend_name: str) -> DatabaseOptions:
    """Return the parsed ``OPTIONS`` of the configured backend ``backend_name``."""
    backend = tasks[backend_name]
    parsed = getattr(backend, "db_options", None)  # a DatabaseBackend's, parsed once
    if isinstance(parsed, DatabaseOptions):
        return parsed
    return DatabaseOptions.parse(backend.options, backend_name=backend_name)
