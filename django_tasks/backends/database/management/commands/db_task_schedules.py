"""``db_task_schedules``: list recurring tasks; disable, enable or run one now."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_tasks.backends.database.services import scheduling
from django_tasks.task import DEFAULT_TASK_BACKEND_ALIAS

from ._options import valid_backend_name


def _time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


class Command(BaseCommand):
    help = "List the recurring tasks (OPTIONS['schedules']) of database backends; manage one"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--backend",
            default=None,
            type=valid_backend_name,
            dest="backend",
            help="Only this backend's schedules (with an action: the backend, "
            f"default {DEFAULT_TASK_BACKEND_ALIAS!r})",
        )
        actions = parser.add_mutually_exclusive_group()
        actions.add_argument("--disable", metavar="NAME", help="Disable the schedule NAME")
        actions.add_argument("--enable", metavar="NAME", help="Enable the schedule NAME")
        actions.add_argument(
            "--run-now", metavar="NAME", dest="run_now", help="Enqueue one run of NAME now"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backend = options["backend"]
        try:
            if options["disable"] or options["enable"]:
                name = options["disable"] or options["enable"]
                enabled = bool(options["enable"])
                changed = scheduling.set_enabled(
                    backend_name=backend or DEFAULT_TASK_BACKEND_ALIAS, name=name, enabled=enabled
                )
                verb = "Enabled" if enabled else "Disabled"
                already = "" if changed else " (it already was)"
                self.stdout.write(f"{verb} schedule {name!r}{already}")
                return
            if options["run_now"]:
                name = options["run_now"]
                run = scheduling.run_now(
                    backend_name=backend or DEFAULT_TASK_BACKEND_ALIAS, name=name
                )
                self.stdout.write(f"Enqueued a run of schedule {name!r}: result {run.result_id}")
                return
        except scheduling.UnknownSchedule as e:
            raise CommandError(str(e)) from e
        self.list(backend)

    def list(self, backend: str | None) -> None:
        states = scheduling.schedule_states(backend_name=backend)
        if not states:
            self.stdout.write("No schedules: add them to TASKS[...]['OPTIONS']['schedules'].")
            return
        for state in states:
            schedule, run = state.schedule, state.last_run
            self.stdout.write(
                self.style.MIGRATE_HEADING(f"{state.name}")
                + f" ({state.backend_name}): {'enabled' if state.enabled else 'disabled'}"
            )
            self.stdout.write(f"  task:      {schedule.task_path}")
            self.stdout.write(f"  cron:      {schedule.cron}  ({schedule.describe()})")
            next_run = _time(state.next_run)
            if state.waiting_tick is not None:
                next_run = f"as soon as a worker runs (tick {_time(state.waiting_tick)} is due)"
            self.stdout.write(f"  next run:  {next_run}")
            if run is None:
                self.stdout.write("  last run:  never")
            else:
                status = state.last_status or "result pruned"
                kind = " (run now)" if run.manual else ""
                self.stdout.write(
                    f"  last run:  {_time(run.enqueued_at)}{kind}: {status} (result {run.result_id})"
                )
