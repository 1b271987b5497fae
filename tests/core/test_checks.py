"""System checks registered by the django_tasks app."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.core import checks
from django.core.checks import CheckMessage
from django.core.checks.registry import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db.utils import ConnectionHandler
from django.test import SimpleTestCase, override_settings

from django_tasks import default_task_backend, tasks
from django_tasks.backends.dummy import DummyBackend
from django_tasks.checks import check_tasks

MSG = "`ENQUEUE_ON_COMMIT` cannot be used when no databases are configured"
HINT = "Set `ENQUEUE_ON_COMMIT` to False"
EXPECTED = CheckMessage(checks.ERROR, MSG, hint=HINT)


class NoCheckBackend(DummyBackend):
    def check(self, **kwargs: Any) -> Iterable[CheckMessage]:
        raise NotImplementedError


class LazyNoCheckBackend(DummyBackend):
    def check(self, **kwargs: Any) -> Iterable[CheckMessage]:
        yield from ()
        raise NotImplementedError


def no_databases() -> Any:
    return mock.patch("django_tasks.backends.base.connections", ConnectionHandler({}))


@contextmanager
def databases_setting(value: dict[str, Any]) -> Iterator[None]:
    with warnings.catch_warnings():
        # "Overriding setting DATABASES can lead to unexpected behavior."
        warnings.simplefilter("ignore", UserWarning)
        with override_settings(DATABASES=value):
            yield


def task_messages(messages: Iterable[CheckMessage]) -> list[CheckMessage]:
    return [m for m in messages if "ENQUEUE_ON_COMMIT" in m.msg]


class CheckRegistrationTests(SimpleTestCase):
    # Django 6's model checks ask the database about JSONField support.
    databases = {"default"}

    def test_registered(self) -> None:
        checks_run: list[Any] = registry.get_checks()
        assert check_tasks in checks_run

    def test_no_messages_for_test_settings(self) -> None:
        assert list(check_tasks()) == []
        assert list(default_task_backend.check()) == []
        assert task_messages(checks.run_checks()) == []

    def test_check_command_passes(self) -> None:
        call_command("check", stdout=StringIO(), stderr=StringIO())


@override_settings(
    TASKS={
        "default": {
            "BACKEND": "django_tasks.backends.dummy.DummyBackend",
            "ENQUEUE_ON_COMMIT": True,
        }
    }
)
class EnqueueOnCommitCheckTests(SimpleTestCase):
    databases = {"default"}

    def test_no_databases(self) -> None:
        with no_databases():
            errors = list(default_task_backend.check())
        assert errors == [EXPECTED]
        assert errors[0].level == checks.ERROR
        assert errors[0].msg == MSG
        assert errors[0].hint == HINT
        assert errors[0].id is None
        assert errors[0].is_serious()

    def test_no_databases_via_run_checks(self) -> None:
        with no_databases():
            assert list(check_tasks()) == [EXPECTED]
            assert task_messages(checks.run_checks()) == [EXPECTED]

    def test_no_databases_via_check_command(self) -> None:
        with no_databases(), pytest.raises(SystemCheckError) as excinfo:
            call_command("check", stdout=StringIO(), stderr=StringIO())
        assert MSG in str(excinfo.value)
        assert HINT in str(excinfo.value)

    def test_empty_databases_setting(self) -> None:
        with databases_setting({}):
            assert list(default_task_backend.check()) == [EXPECTED]

    def test_dummy_database_only(self) -> None:
        with databases_setting({"default": {"ENGINE": "django.db.backends.dummy"}}):
            assert list(default_task_backend.check()) == [EXPECTED]

    def test_with_databases(self) -> None:
        assert list(default_task_backend.check()) == []

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": "django_tasks.backends.dummy.DummyBackend",
                "ENQUEUE_ON_COMMIT": False,
            }
        }
    )
    def test_no_databases_without_enqueue_on_commit(self) -> None:
        with no_databases():
            assert list(default_task_backend.check()) == []
            assert list(check_tasks()) == []

    @override_settings(
        TASKS={
            "default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
            "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
            "off": {
                "BACKEND": "django_tasks.backends.dummy.DummyBackend",
                "ENQUEUE_ON_COMMIT": False,
            },
        }
    )
    def test_every_backend_is_checked(self) -> None:
        with no_databases():
            assert list(check_tasks()) == [EXPECTED, EXPECTED]
            assert list(tasks["immediate"].check()) == [EXPECTED]
            assert list(tasks["off"].check()) == []

    @override_settings(
        TASKS={
            "default": {"BACKEND": "tests.core.test_checks.NoCheckBackend"},
            "lazy": {"BACKEND": "tests.core.test_checks.LazyNoCheckBackend"},
            "dummy": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
        }
    )
    def test_not_implemented_check_is_skipped(self) -> None:
        with no_databases():
            assert list(check_tasks()) == [EXPECTED]
            assert task_messages(checks.run_checks()) == [EXPECTED]
