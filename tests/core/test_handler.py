"""The `tasks` backend handler, `default_task_backend`, the TASKS setting and its resets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import global_settings, settings
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings
from django.utils.connection import BaseConnectionHandler, ConnectionProxy

from django_tasks import default_task_backend, tasks
from django_tasks.backends.dummy import DummyBackend
from django_tasks.backends.immediate import ImmediateBackend
from django_tasks.exceptions import InvalidTaskBackendError
from django_tasks.signals import clear_tasks_handlers
from tests import tasks as test_tasks


class RecordingBackend(DummyBackend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.init_args = (args, kwargs)


# What Django >= 6 defines in global_settings (for django.tasks).
DJANGO_GLOBAL_TASKS = getattr(
    global_settings,
    "TASKS",
    {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}},
)


class NotOurBackend:
    """A backend class of another framework (its constructor takes other arguments)."""

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        self.alias = alias


class _DefaultsWithGlobalTasks:
    """Settings defaults as Django 6 has them when the project does not set TASKS."""

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped

    def __getattr__(self, name: str) -> Any:
        if name == "TASKS":
            return DJANGO_GLOBAL_TASKS
        return getattr(self._wrapped, name)

    def is_overridden(self, setting: str) -> bool:
        return setting != "TASKS" and bool(self._wrapped.is_overridden(setting))


def _tasks_changed() -> None:
    # Only our receiver: on Django 6 django.tasks' own one can't read a deleted TASKS
    # (a project there always has one, from Django's global settings).
    clear_tasks_handlers(setting="TASKS")


@contextmanager
def tasks_setting_deleted() -> Iterator[None]:
    """The project has no TASKS (and the defaults have none either)."""
    # Exiting override_settings(TASKS=...) sends setting_changed for TASKS.
    with override_settings(TASKS={}):
        del settings.TASKS
        _tasks_changed()
        yield


@contextmanager
def tasks_setting_left_to_django_default() -> Iterator[None]:
    """The project has no TASKS, but Django's global settings define one (Django 6)."""
    with override_settings(TASKS={}):
        holder = cast(Any, settings)._wrapped
        del holder.__dict__["TASKS"]
        settings.__dict__.pop("TASKS", None)  # LazySettings' cache
        holder.default_settings = _DefaultsWithGlobalTasks(holder.default_settings)
        _tasks_changed()
        yield


class HandlerTests(SimpleTestCase):
    def test_is_a_connection_handler(self) -> None:
        assert isinstance(tasks, BaseConnectionHandler)
        assert tasks.settings_name == "TASKS"
        assert tasks.exception_class is InvalidTaskBackendError

    def test_backend_from_test_settings(self) -> None:
        backend = tasks["default"]
        assert type(backend) is ImmediateBackend
        assert backend.alias == "default"
        assert backend.queues == set()
        assert backend.enqueue_on_commit is True

    def test_instances_are_cached(self) -> None:
        assert tasks["default"] is tasks["default"]

    def test_unknown_alias(self) -> None:
        with pytest.raises(InvalidTaskBackendError) as excinfo:
            tasks["unknown"]
        assert str(excinfo.value) == "The connection 'unknown' doesn't exist."

    @override_settings(TASKS={"default": {"BACKEND": "does.not.exist"}})
    def test_backend_not_importable(self) -> None:
        with pytest.raises(InvalidTaskBackendError) as excinfo:
            tasks["default"]
        assert str(excinfo.value) == (
            "Could not find backend 'does.not.exist': No module named 'does'"
        )
        assert isinstance(excinfo.value, ImproperlyConfigured)

    @override_settings(TASKS={"default": {"BACKEND": "django_tasks.backends.NoSuchBackend"}})
    def test_backend_class_missing(self) -> None:
        with pytest.raises(InvalidTaskBackendError) as excinfo:
            tasks["default"]
        assert str(excinfo.value).startswith(
            "Could not find backend 'django_tasks.backends.NoSuchBackend': "
        )

    @override_settings(TASKS={"default": {"BACKEND": "tests.core.test_handler.NotOurBackend"}})
    def test_backend_of_another_framework_names_ours(self) -> None:
        # As Django 6's own django.tasks backends are to django_tasks tasks.
        with pytest.raises(InvalidTaskBackendError) as excinfo:
            tasks["default"]
        message = str(excinfo.value)
        assert message.startswith(
            "Backend 'tests.core.test_handler.NotOurBackend' of alias 'default' is not a "
            "django_tasks backend"
        )
        assert "'django_tasks.backends.database.DatabaseBackend'" in message

    @override_settings(
        TASKS={
            "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
            "dummy": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
            "other": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
        }
    )
    def test_all(self) -> None:
        backends = tasks.all()
        assert [b.alias for b in backends] == ["default", "dummy", "other"]
        assert [type(b) for b in backends] == [ImmediateBackend, DummyBackend, DummyBackend]
        assert backends[1] is tasks["dummy"]
        assert backends[1] is not backends[2]
        assert tasks.all()[2] is backends[2]

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": "tests.core.test_handler.RecordingBackend",
                "QUEUES": ["a", "b"],
                "ENQUEUE_ON_COMMIT": False,
                "OPTIONS": {"x": 1},
            }
        }
    )
    def test_backend_built_with_copy_of_settings_and_alias(self) -> None:
        backend = tasks["default"]
        args, kwargs = backend.init_args
        assert kwargs == {}
        assert len(args) == 1
        assert args[0] == {
            "BACKEND": "tests.core.test_handler.RecordingBackend",
            "QUEUES": ["a", "b"],
            "ENQUEUE_ON_COMMIT": False,
            "OPTIONS": {"x": 1},
            "ALIAS": "default",
        }
        assert args[0] is not settings.TASKS["default"]
        assert "ALIAS" not in settings.TASKS["default"]
        assert backend.queues == {"a", "b"}
        assert backend.enqueue_on_commit is False

    def test_default_task_backend(self) -> None:
        assert isinstance(default_task_backend, ConnectionProxy)
        assert default_task_backend == tasks["default"]
        assert default_task_backend.alias == "default"
        assert default_task_backend.supports_async_task is True

    @override_settings(TASKS={"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}})
    def test_default_task_backend_follows_settings(self) -> None:
        assert default_task_backend == tasks["default"]
        assert isinstance(tasks["default"], DummyBackend)
        proxy: Any = default_task_backend
        proxy.clear()
        result = test_tasks.noop_task.enqueue()
        assert [r.id for r in proxy.results] == [result.id]


class PerThreadTests(SimpleTestCase):
    def test_other_thread_gets_its_own_instance(self) -> None:
        main = tasks["default"]
        seen: list[Any] = []
        thread = threading.Thread(target=lambda: seen.extend([tasks["default"], tasks["default"]]))
        thread.start()
        thread.join()
        assert seen[0] is not main
        assert seen[0] is seen[1]
        assert type(seen[0]) is ImmediateBackend

    def test_shared_across_sync_to_async_and_async_to_sync(self) -> None:
        main = tasks["default"]

        async def fetch() -> tuple[Any, Any]:
            in_async = tasks["default"]
            in_sync = await sync_to_async(lambda: tasks["default"])()
            return in_async, in_sync

        in_async, in_sync = async_to_sync(fetch)()
        assert in_async is main
        assert in_sync is main


class OverrideSettingsTests(SimpleTestCase):
    def test_override_gives_fresh_backends(self) -> None:
        dummy = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
        with override_settings(TASKS=dummy):
            first = tasks["default"]
            test_tasks.noop_task.enqueue()
            assert len(first.results) == 1
        with override_settings(TASKS=dummy):
            second = tasks["default"]
            assert second is not first
            assert second.results == []
        assert type(tasks["default"]) is ImmediateBackend

    def test_nested_overrides(self) -> None:
        with override_settings(
            TASKS={"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
        ):
            with override_settings(
                TASKS={"other": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
            ):
                assert [b.alias for b in tasks.all()] == ["other"]
                with pytest.raises(InvalidTaskBackendError):
                    tasks["default"]
            assert type(tasks["default"]) is DummyBackend
            assert [b.alias for b in tasks.all()] == ["default"]

    def test_settings_property_reloaded(self) -> None:
        assert tasks.settings == settings.TASKS
        new = {"x": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
        with override_settings(TASKS=new):
            assert tasks.settings == new
        assert tasks.settings == settings.TASKS

    def test_enqueue_on_commit_setting(self) -> None:
        for value, expected in ((True, True), (False, False), (0, False), (1, True)):
            with override_settings(
                TASKS={
                    "default": {
                        "BACKEND": "django_tasks.backends.dummy.DummyBackend",
                        "ENQUEUE_ON_COMMIT": value,
                    }
                }
            ):
                assert tasks["default"].enqueue_on_commit is expected


class DefaultSettingTests(SimpleTestCase):
    def _assert_default_immediate(self) -> None:
        assert list(tasks.settings) == ["default"]
        assert tasks.settings["default"]["BACKEND"] == (
            "django_tasks.backends.immediate.ImmediateBackend"
        )
        backend = tasks["default"]
        assert type(backend) is ImmediateBackend
        assert backend.alias == "default"
        assert backend.queues == {"default"}
        assert backend.enqueue_on_commit is True
        assert tasks.all() == [backend]
        assert test_tasks.calculate_meaning_of_life.enqueue().return_value == 42

    def test_tasks_setting_deleted(self) -> None:
        with tasks_setting_deleted():
            assert not hasattr(settings, "TASKS")
            self._assert_default_immediate()
        assert tasks.settings == settings.TASKS
        assert tasks["default"].queues == set()

    def test_tasks_setting_left_to_django_global_default(self) -> None:
        with tasks_setting_left_to_django_default():
            # The simulation: TASKS reads as Django's own default, not set by the project.
            assert settings.TASKS == DJANGO_GLOBAL_TASKS
            assert not cast(Any, settings).is_overridden("TASKS")
            self._assert_default_immediate()
        assert settings.TASKS["default"]["QUEUES"] == []
        assert tasks["default"].queues == set()

    def test_project_setting_equal_to_django_default_is_used(self) -> None:
        # A project that sets TASKS itself gets exactly what it set.
        with override_settings(
            TASKS={"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
        ):
            assert cast(Any, settings).is_overridden("TASKS")
            assert type(tasks["default"]) is DummyBackend
