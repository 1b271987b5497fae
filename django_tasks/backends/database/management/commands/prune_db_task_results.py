"""Delete finished task results older than a retention age."""

from __future__ import annotations

import logging
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_tasks.backends.database.services import prune
from django_tasks.task import DEFAULT_QUEUE_NAME, DEFAULT_TASK_BACKEND_ALIAS

from ._options import non_negative_int, valid_backend_name

logger = logging.getLogger("django_tasks.backends.database.prune_db_task_results")

_STDOUT_HANDLER_MARK = "_django_tasks_prune_stdout"


class Command(BaseCommand):
    help = "Delete finished (COMPLETE and FAILED) database task results older than a given age"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--backend",
            default=DEFAULT_TASK_BACKEND_ALIAS,
            type=valid_backend_name,
            dest="backend",
            help="The backend to prune (default: %(default)r)",
        )
        parser.add_argument(
            "--queue-name",
            default=DEFAULT_QUEUE_NAME,
            type=str,
            dest="queue_name",
            help="The queues to prune, separated by commas; '*' for all (default: %(default)r)",
        )
        parser.add_argument(
            "--min-age-days",
            default=14,
            type=non_negative_int,
            dest="min_age_days",
            help="Minimum age in days of a finished result to be deleted (default: %(default)r)",
        )
        parser.add_argument(
            "--failed-min-age-days",
            default=None,
            type=non_negative_int,
            dest="failed_min_age_days",
            help="Minimum age in days of a failed result to be deleted (default: --min-age-days)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            dest="dry_run",
            help="Only count the results that would be deleted",
        )

    def configure_logging(self, verbosity: int) -> None:
        if verbosity == 0:
            logger.setLevel(logging.WARNING)
        elif verbosity == 1:
            logger.setLevel(logging.INFO)
        else:
            logger.setLevel(logging.DEBUG)

        # A handler added by an earlier run in this process writes to that run's stdout.
        for handler in list(logger.handlers):
            if getattr(handler, _STDOUT_HANDLER_MARK, False):
                logger.removeHandler(handler)
        # Check this logger's own handlers, not hasHandlers(): with pytest's (or a
        # project's) root handler the INFO line would otherwise never reach stdout.
        if not logger.handlers:
            handler = logging.StreamHandler(self.stdout)
            setattr(handler, _STDOUT_HANDLER_MARK, True)
            logger.addHandler(handler)

    def handle(
        self,
        *,
        backend: str,
        queue_name: str,
        min_age_days: int,
        failed_min_age_days: int | None,
        dry_run: bool,
        verbosity: int,
        **options: Any,
    ) -> None:
        self.configure_logging(verbosity)

        # call_command() keyword arguments skip the argparse converters.
        try:
            valid_backend_name(backend)
            for age in (min_age_days, failed_min_age_days):
                if age is not None and age < 0:
                    raise ArgumentTypeError("Must be greater than zero")
        except ArgumentTypeError as e:
            raise CommandError(str(e)) from e

        queue_names = None if queue_name == "*" else queue_name.split(",")
        logger.debug(
            "Pruning backend=%s queues=%s min_age_days=%s failed_min_age_days=%s",
            backend,
            queue_name,
            min_age_days,
            failed_min_age_days or min_age_days,
        )

        count = prune(
            backend_name=backend,
            queue_names=queue_names,
            min_age_days=min_age_days,
            failed_min_age_days=failed_min_age_days,
            dry_run=dry_run,
        )

        if dry_run:
            logger.info("Would delete %d task result(s)", count)
        else:
            logger.info("Deleted %d task result(s)", count)
