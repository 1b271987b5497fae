"""``db_task_queues``: list the queues of database backends; pause or resume one."""

from __future__ import annotations

import getpass
from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_tasks.backends.database.services import queues
from django_tasks.task import DEFAULT_TASK_BACKEND_ALIAS


def _count(n: int, capped: bool) -> str:
    return f"more than {n:,}" if capped else str(n)


def _age(age: timedelta | None) -> str:
    if age is None:
        return "-"
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Command(BaseCommand):
    help = (
        "List the queues of database backends (paused or not, waiting, deferred, running); "
        "pause or resume one"
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--backend",
            default=None,
            dest="backend",
            help="Only this backend's queues (with --pause/--resume: the backend, "
            f"default {DEFAULT_TASK_BACKEND_ALIAS!r})",
        )
        actions = parser.add_mutually_exclusive_group()
        actions.add_argument(
            "--pause", metavar="NAME", help="Pause the queue NAME: workers stop claiming from it"
        )
        actions.add_argument(
            "--resume", metavar="NAME", help="Resume the queue NAME: workers claim from it again"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backend = options["backend"]
        name = options["pause"] or options["resume"]
        try:
            if name is not None:
                backend = backend or DEFAULT_TASK_BACKEND_ALIAS
                change = queues.pause_queue if options["pause"] else queues.resume_queue
                changed = change(backend_name=backend, queue_name=name, by=_who())
                verb = "Paused" if options["pause"] else "Resumed"
                already = "" if changed else " (it already was)"
                self.stdout.write(f"{verb} queue {name!r} of backend {backend!r}{already}")
                return
            states = queues.queue_states(backend_name=backend)
        except queues.UnknownQueue as e:
            raise CommandError(str(e)) from e
        if not states:
            self.stdout.write("No database backends: add one to the TASKS setting.")
            return
        for state in states:
            flag = self.style.WARNING("paused") if state.paused else "running"
            if state.paused and state.changed_at is not None:
                when = timezone.localtime(state.changed_at).strftime("%Y-%m-%d %H:%M:%S %Z")
                flag += f" (by {state.changed_by or '-'}, {when})"
            self.stdout.write(
                self.style.MIGRATE_HEADING(state.name) + f" ({state.backend_name}): {flag}"
            )
            self.stdout.write(
                f"  waiting: {_count(state.waiting, state.waiting_capped)}"
                f"  deferred: {_count(state.deferred, state.deferred_capped)}"
                f"  running: {_count(state.running, state.running_capped)}"
                f"  oldest waiting: {_age(state.latency)}"
            )


def _who() -> str:
    try:
        return f"{getpass.getuser()} (db_task_queues)"
    except Exception:  # no user name in this environment
        return "db_task_queues"
