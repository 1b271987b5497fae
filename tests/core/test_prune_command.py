from __future__ import annotations

import logging
import subprocess
import sys
from contextlib import redirect_stderr
from datetime import timedelta
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import SimpleTestCase, TestCase, override_settings
from django.utils import timezone

from django_tasks import ResultStatus
from django_tasks.backends.database.management.commands import prune_db_task_results
from django_tasks.backends.database.management.commands._options import (
    non_negative_float,
    non_negative_int,
    valid_backend_name,
)
from django_tasks.backends.database.management.commands.prune_db_task_results import (
    Command,
    logger,
)
from django_tasks.backends.database.models import DBTaskResult
from tests.worker_helpers import ROOT, worker_env

DB_TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": ["default", "queue-1"],
    },
    "other": {"BACKEND": "django_tasks.backends.database.DatabaseBackend", "QUEUES": []},
    "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
}


def make_finished(status: str, age_days: float, **kwargs: Any) -> DBTaskResult:
    values: dict[str, Any] = {
        "args_kwargs": {"args": [], "kwargs": {}},
        "task_path": "tests.tasks.noop_task",
        "backend_name": "default",
        "status": status,
        "finished_at": timezone.now() - timedelta(days=age_days),
        **kwargs,
    }
    return DBTaskResult.objects.create(**values)


class StripHandlersMixin:
    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        logger.handlers = []

    def tearDown(self) -> None:
        logger.handlers = []
        super().tearDown()  # type: ignore[misc]


def run_prune(*args: str, **kwargs: Any) -> str:
    stdout = StringIO()
    call_command("prune_db_task_results", *args, stdout=stdout, **kwargs)
    return stdout.getvalue()


@override_settings(TASKS=DB_TASKS)
class PruneCommandTestCase(StripHandlersMixin, TestCase):
    def test_logger_name(self) -> None:
        assert logger.name == "django_tasks.backends.database.prune_db_task_results"
        assert prune_db_task_results.logger is logger

    def test_deletes_old_finished_results(self) -> None:
        make_finished(ResultStatus.COMPLETE, 15)
        make_finished(ResultStatus.FAILED, 15)
        young = make_finished(ResultStatus.COMPLETE, 13)
        new = make_finished(ResultStatus.NEW, 100)
        running = make_finished(ResultStatus.RUNNING, 100)

        assert run_prune() == "Deleted 2 task result(s)\n"
        assert set(DBTaskResult.objects.all()) == {young, new, running}

    def test_dry_run(self) -> None:
        make_finished(ResultStatus.COMPLETE, 15)
        make_finished(ResultStatus.FAILED, 15)

        assert run_prune("--dry-run") == "Would delete 2 task result(s)\n"
        assert DBTaskResult.objects.count() == 2
        assert run_prune(dry_run=True) == "Would delete 2 task result(s)\n"

    def test_min_age_days(self) -> None:
        make_finished(ResultStatus.COMPLETE, 3)
        make_finished(ResultStatus.FAILED, 3)
        assert run_prune("--min-age-days", "4") == "Deleted 0 task result(s)\n"
        assert run_prune("--min-age-days", "2") == "Deleted 2 task result(s)\n"

    def test_min_age_days_zero_deletes_all_finished(self) -> None:
        make_finished(ResultStatus.COMPLETE, 0)
        assert run_prune(min_age_days=0) == "Deleted 1 task result(s)\n"

    def test_failed_min_age_days(self) -> None:
        make_finished(ResultStatus.COMPLETE, 3)
        failed = make_finished(ResultStatus.FAILED, 3)
        make_finished(ResultStatus.FAILED, 8)

        assert run_prune("--min-age-days=1", "--failed-min-age-days=5") == (
            "Deleted 2 task result(s)\n"
        )
        assert list(DBTaskResult.objects.all()) == [failed]

    def test_failed_min_age_days_zero_is_min_age_days(self) -> None:
        make_finished(ResultStatus.FAILED, 3)
        assert run_prune("--failed-min-age-days=0") == "Deleted 0 task result(s)\n"

    def test_queue_names(self) -> None:
        make_finished(ResultStatus.COMPLETE, 30)
        make_finished(ResultStatus.COMPLETE, 30, queue_name="queue-1")
        make_finished(ResultStatus.COMPLETE, 30, queue_name="queue-2")

        assert run_prune("--queue-name", "queue-1,queue-2") == "Deleted 2 task result(s)\n"
        make_finished(ResultStatus.COMPLETE, 30, queue_name="queue-1")
        assert run_prune("--queue-name", "*") == "Deleted 2 task result(s)\n"
        assert not DBTaskResult.objects.exists()

    def test_default_queue_only_by_default(self) -> None:
        make_finished(ResultStatus.COMPLETE, 30, queue_name="queue-1")
        assert run_prune() == "Deleted 0 task result(s)\n"

    def test_backend(self) -> None:
        make_finished(ResultStatus.COMPLETE, 30)
        other = make_finished(ResultStatus.COMPLETE, 30, backend_name="other")

        assert run_prune("--backend", "default") == "Deleted 1 task result(s)\n"
        assert list(DBTaskResult.objects.all()) == [other]
        assert run_prune(backend="other") == "Deleted 1 task result(s)\n"

    def test_calls_the_prune_service(self) -> None:
        with mock.patch.object(prune_db_task_results, "prune", return_value=7) as prune:
            output = run_prune("--queue-name=a,b", "--min-age-days=3", "--failed-min-age-days=9")

        assert output == "Deleted 7 task result(s)\n"
        prune.assert_called_once_with(
            backend_name="default",
            queue_names=["a", "b"],
            min_age_days=3,
            failed_min_age_days=9,
            dry_run=False,
        )

    def test_default_options(self) -> None:
        with mock.patch.object(prune_db_task_results, "prune", return_value=0) as prune:
            run_prune()
        prune.assert_called_once_with(
            backend_name="default",
            queue_names=["default"],
            min_age_days=14,
            failed_min_age_days=None,
            dry_run=False,
        )

    def test_verbosity_0_is_silent(self) -> None:
        make_finished(ResultStatus.COMPLETE, 30)
        assert run_prune(verbosity=0) == ""
        assert logger.level == logging.WARNING
        assert not DBTaskResult.objects.exists()

    def test_verbosity_1_is_info(self) -> None:
        run_prune(verbosity=1)
        assert logger.level == logging.INFO

    def test_verbosity_2_adds_debug(self) -> None:
        output = run_prune(verbosity=2)
        assert logger.level == logging.DEBUG
        assert output.splitlines() == [
            "Pruning backend=default queues=default min_age_days=14 failed_min_age_days=14",
            "Deleted 0 task result(s)",
        ]

    def test_adds_a_stdout_handler_only_when_none(self) -> None:
        run_prune()
        assert len(logger.handlers) == 1
        assert isinstance(logger.handlers[0], logging.StreamHandler)

        # A second run writes to its own stdout, through one handler.
        assert run_prune() == "Deleted 0 task result(s)\n"
        assert len(logger.handlers) == 1

    def test_keeps_a_configured_handler(self) -> None:
        handler = logging.NullHandler()
        logger.addHandler(handler)
        assert run_prune() == ""
        assert logger.handlers == [handler]

    def test_call_command_keywords_are_validated(self) -> None:
        with self.assertRaisesMessage(CommandError, "The connection 'nope' doesn't exist."):
            run_prune(backend="nope")
        with self.assertRaisesMessage(
            CommandError, "Backend 'immediate' is not a database backend"
        ):
            run_prune(backend="immediate")
        with self.assertRaisesMessage(CommandError, "Must be greater than zero"):
            run_prune(min_age_days=-1)


@override_settings(TASKS=DB_TASKS)
class PruneCommandOptionErrorsTestCase(StripHandlersMixin, SimpleTestCase):
    def assert_option_error(self, argv: list[str], message: str) -> None:
        stderr = StringIO()
        with redirect_stderr(stderr), self.assertRaises(SystemExit) as cm:
            Command().run_from_argv(["manage.py", "prune_db_task_results", *argv])
        assert cm.exception.code == 2
        assert message in stderr.getvalue()

    def test_negative_min_age_days(self) -> None:
        self.assert_option_error(
            ["--min-age-days", "-1"], "argument --min-age-days: Must be greater than zero"
        )

    def test_negative_failed_min_age_days(self) -> None:
        self.assert_option_error(
            ["--failed-min-age-days=-3"],
            "argument --failed-min-age-days: Must be greater than zero",
        )

    def test_non_integer_min_age_days(self) -> None:
        self.assert_option_error(["--min-age-days", "1.5"], "argument --min-age-days: invalid")

    def test_unknown_backend(self) -> None:
        self.assert_option_error(
            ["--backend", "nope"], "argument --backend: The connection 'nope' doesn't exist."
        )

    def test_not_a_database_backend(self) -> None:
        self.assert_option_error(
            ["--backend", "immediate"],
            "argument --backend: Backend 'immediate' is not a database backend",
        )

    def test_call_command_option_errors(self) -> None:
        with self.assertRaisesMessage(
            CommandError, "Error: argument --min-age-days: Must be greater than zero"
        ):
            call_command("prune_db_task_results", "--min-age-days=-1")
        with self.assertRaisesMessage(
            CommandError, "Error: argument --backend: The connection 'nope' doesn't exist."
        ):
            call_command("prune_db_task_results", "--backend=nope")

    @override_settings(TASKS={"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}})
    def test_default_backend_must_be_a_database_backend(self) -> None:
        with self.assertRaisesMessage(CommandError, "Backend 'default' is not a database backend"):
            call_command("prune_db_task_results")


@override_settings(TASKS=DB_TASKS)
class OptionConvertersTestCase(SimpleTestCase):
    """The converters db_worker shares."""

    def test_valid_backend_name(self) -> None:
        assert valid_backend_name("other") == "other"
        with self.assertRaisesMessage(Exception, "The connection 'x' doesn't exist."):
            valid_backend_name("x")

    def test_non_negative_int(self) -> None:
        assert non_negative_int("0") == 0
        assert non_negative_int("12") == 12
        with self.assertRaisesMessage(Exception, "Must be greater than zero"):
            non_negative_int("-1")
        with self.assertRaises(ValueError):
            non_negative_int("one")

    def test_non_negative_float(self) -> None:
        assert non_negative_float("0") == 0.0
        assert non_negative_float("0.5") == 0.5
        for bad in ("inf", "nan", "-inf"):
            with self.assertRaisesMessage(Exception, "Must be a finite floating point value"):
                non_negative_float(bad)
        with self.assertRaisesMessage(Exception, "Must be greater than zero"):
            non_negative_float("-0.1")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_backend")
def test_manage_py_stdout_is_exactly_the_count_line() -> None:
    """What a script reading `manage.py prune_db_task_results` gets: one line, no detail."""
    make_finished(ResultStatus.COMPLETE, 30)
    make_finished(ResultStatus.FAILED, 30, queue_name="other")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", "prune_db_task_results", *args],
            capture_output=True,
            text=True,
            env=worker_env(),
            cwd=ROOT,
            timeout=120,
        )

    dry = run("--queue-name", "*", "--dry-run")
    assert (dry.returncode, dry.stdout, dry.stderr) == (0, "Would delete 2 task result(s)\n", "")
    detailed = run("--queue-name", "*", "--dry-run", "-v", "2")
    assert detailed.stdout.splitlines()[-1] == "Would delete 2 task result(s)"
    assert detailed.stdout.startswith("Pruning backend=default queues=* ")
    done = run("--queue-name", "*")
    assert (done.returncode, done.stdout, done.stderr) == (0, "Deleted 2 task result(s)\n", "")
    assert not DBTaskResult.objects.exists()
