"""A DatabaseBackend's ``OPTIONS``, parsed and validated once, when the backend is built.

Bad values never make the backend fail to load (``manage.py check`` must be able
to run and report them); they are replaced by the defaults and listed in
``problems``.  ``db_worker`` refuses to start while any are listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django_tasks import tasks
from django_tasks.lifecycle import DEFAULTS, TaskSettings, check_settings, task_settings_of
from django_tasks.utils import get_module_path

from .schedules import Schedule, import_problems, parse_schedules

DEFAULT_HEARTBEAT_TIMEOUT = 20.0
"""Seconds without a heartbeat after which a worker counts as lost."""

LOST_TASK_POLICIES = ("fail", "requeue")
"""``OPTIONS["lost_tasks"]``: fail lost tasks (default) or put them back to NEW."""

KNOWN_OPTIONS = ("heartbeat_timeout", "lost_tasks", "task_defaults", "task_overrides", "schedules")
"""The ``OPTIONS`` keys a DatabaseBackend reads."""


class InvalidOptions(ValueError):
    """A DatabaseBackend's ``OPTIONS`` hold a value it cannot use."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseOptions:
    """The ``OPTIONS`` of one DatabaseBackend, with defaults for what is missing or invalid."""

    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    lost_tasks: str = "fail"
    # Lifecycle settings (checked): for every task, and per task path (winning).
    task_defaults: Mapping[str, Any] = field(default_factory=dict)
    task_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Recurring tasks by name (see schedules.py); the invalid ones are left out.
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    backend_name: str = "default"
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

        where = f"OPTIONS['task_defaults'] of backend {backend_name!r}"
        try:
            values["task_defaults"] = _settings_mapping(options.get("task_defaults", {}), where)
        except (TypeError, ValueError) as e:
            problems.append(("task_defaults", str(e)))

        overrides = options.get("task_overrides", {})
        if isinstance(overrides, Mapping) and all(isinstance(k, str) for k in overrides):
            checked: dict[str, Mapping[str, Any]] = {}
            for path, settings in overrides.items():
                where = f"OPTIONS['task_overrides'][{path!r}] of backend {backend_name!r}"
                try:
                    checked[path] = _settings_mapping(settings, where)
                except (TypeError, ValueError) as e:
                    problems.append(("task_overrides", str(e)))
            values["task_overrides"] = checked
        else:
            invalid("task_overrides", "a dict of task paths to dicts of task settings")

        values["schedules"], schedule_problems = parse_schedules(
            options.get("schedules", {}), backend_name=backend_name
        )
        problems.extend(schedule_problems)

        unknown = tuple(sorted(str(key) for key in options if key not in KNOWN_OPTIONS))
        return cls(
            **values, backend_name=backend_name, problems=tuple(problems), unknown_keys=unknown
        )

    def settings_for(self, task: Any) -> TaskSettings:
        """The lifecycle settings ``task`` (of either API) runs with on this backend."""
        settings = DEFAULTS.merged(self.task_defaults).merged(task_settings_of(task))
        if self.task_overrides:
            settings = settings.merged(self.task_overrides.get(get_module_path(task.func), {}))
        return settings

    def row_settings(self, task: Any) -> tuple[int, float | None, str | None]:
        """``(max_attempts, time_limit, unique_key)`` for a row of ``task`` (enqueue's path)."""
        if (
            not self.task_defaults
            and not self.task_overrides
            and getattr(task, "max_attempts", None) is None
            and getattr(task, "time_limit", None) is None
            and getattr(task, "unique_key", None) is None
        ):
            return 1, None, None
        settings = self.settings_for(task)
        return settings.max_attempts, settings.time_limit, settings.unique_key

    @property
    def errors(self) -> list[str]:
        """The message of each invalid value (task paths checked now: the apps are ready)."""
        return [message for _, message in self.all_problems()]

    def all_problems(self, *keys: str) -> list[tuple[str, str]]:
        """``problems`` (of ``keys``, or of any key), and, once the apps are ready, the
        schedules whose task cannot be imported or is not a task."""
        problems = [(key, message) for key, message in self.problems if not keys or key in keys]
        if not keys or "schedules" in keys:
            imports = import_problems(self.schedules, backend_name=self.backend_name)
            problems.extend(("schedules", message) for message in imports)
        return problems

    def require_valid(self, *keys: str) -> None:
        """Raise InvalidOptions naming each invalid value (of ``keys``, or of any key)."""
        errors = [message for _, message in self.all_problems(*keys)]
        if errors:
            raise InvalidOptions("; ".join(errors))


def _settings_mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a dict of task settings, not {value!r}")
    return check_settings(value, where=where)


def options_for(backend_name: str) -> DatabaseOptions:
    """Return the parsed ``OPTIONS`` of the configured backend ``backend_name``."""
    backend = tasks[backend_name]
    parsed = getattr(backend, "db_options", None)  # a DatabaseBackend's, parsed once
    if isinstance(parsed, DatabaseOptions):
        return parsed
    return DatabaseOptions.parse(backend.options, backend_name=backend_name)
