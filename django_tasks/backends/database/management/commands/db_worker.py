"""``db_worker``: run tasks of a DatabaseBackend until stopped."""

from __future__ import annotations

import logging
import math
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_tasks.backends.database.options import InvalidOptions, options_for
from django_tasks.backends.database.worker import DEFAULT_CLAIM_SIZE, Worker

from ._options import non_negative_float, valid_backend_name

logger = logging.getLogger("django_tasks.backends.database.db_worker")
package_logger = logging.getLogger("django_tasks")

__all__ = ["Command", "Worker"]


def valid_interval(val: str) -> float:
    """Parse ``--interval``: a finite number of seconds, zero or more."""
    return non_negative_float(val)


def positive_int(val: str) -> int:
    """Parse a whole number of one or more."""
    num = int(val)
    if num < 1:
        raise ArgumentTypeError("Must be at least 1")
    return num


def positive_float(val: str) -> float:
    """Parse a finite number of seconds, more than zero."""
    num = float(val)
    if not math.isfinite(num):
        raise ArgumentTypeError("Must be a finite floating point value")
    if num <= 0:
        raise ArgumentTypeError("Must be greater than zero")
    return num


class Command(BaseCommand):
    help = "Run a database background worker"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--queue-name",
            nargs="?",
            default="default",
            type=str,
            help="The queues to process. Separate multiple with a comma. "
            "To process all queues, use '*' (default: %(default)r)",
        )
        parser.add_argument(
            "--interval",
            nargs="?",
            default=1,
            type=valid_interval,
            help="The interval (in seconds) to wait, when there are no tasks in the queue, "
            "before checking for tasks again (default: %(default)r)",
        )
        parser.add_argument(
            "--batch",
            action="store_true",
            help="Process all outstanding tasks, then exit",
        )
        parser.add_argument(
            "--backend",
            nargs="?",
            default="default",
            type=valid_backend_name,
            dest="backend_name",
            help="The backend to operate on (default: %(default)r)",
        )
        parser.add_argument(
            "--no-startup-delay",
            action="store_false",
            dest="startup_delay",
            help="Don't add a small delay at startup.",
        )
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=1,
            help="Run this many tasks at once in each process, on threads "
            "(for I/O-bound tasks; default: %(default)r)",
        )
        parser.add_argument(
            "--processes",
            type=positive_int,
            default=1,
            help="Run this many worker processes (default: %(default)r)",
        )
        parser.add_argument(
            "--heartbeat-timeout",
            type=positive_float,
            default=None,
            help="Seconds without a heartbeat after which a worker counts as lost and its "
            "running tasks are recovered (default: the backend's "
            "OPTIONS['heartbeat_timeout'], else 20)",
        )
        parser.add_argument(
            "--claim-size",
            type=positive_int,
            default=DEFAULT_CLAIM_SIZE,
            help="Claim at most this many tasks at once; fewer when tasks are slow "
            "(default: %(default)r)",
        )

    def configure_logging(self, verbosity: int) -> None:
        level = {0: logging.CRITICAL, 1: logging.WARNING, 2: logging.INFO}.get(
            verbosity, logging.DEBUG
        )
        package_logger.setLevel(level)
        # Django 6's django.tasks logs every task it starts and finishes; the worker
        # logs those itself (on our logger), so its verbosity governs Django's too:
        # below -v 2 no record is even built (two per task, otherwise).
        logging.getLogger("django.tasks").setLevel(level)

        # If no handler is configured, the logs won't show, whatever the level.
        if not package_logger.hasHandlers():
            package_logger.addHandler(logging.StreamHandler(self.stdout))

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        threads: int = 1,
        processes: int = 1,
        heartbeat_timeout: float | None = None,
        claim_size: int = DEFAULT_CLAIM_SIZE,
        **options: Any,
    ) -> None:
        self.configure_logging(verbosity)
        try:
            options_for(backend_name).require_valid()
        except InvalidOptions as e:
            raise CommandError(str(e)) from e

        # Keywords, not WorkerOptions: users' tests patch Worker and read them (SPEC 6).
        worker = Worker(
            queue_names=queue_name.split(","),
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            threads=threads,
            processes=processes,
            heartbeat_timeout=heartbeat_timeout,
            claim_size=claim_size,
        )
        worker.start()

        if batch:
            logger.info("No more tasks to run - exiting gracefully.")
