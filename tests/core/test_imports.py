"""Every public name of SPEC §1 (core rows) is importable and has its documented value."""

from __future__ import annotations

import importlib
import typing
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist
from django.dispatch import Signal

PUBLIC_NAMES = {
    "django_tasks": [
        "task",
        "Task",
        "TaskResult",
        "ResultStatus",
        "tasks",
        "default_task_backend",
        "DEFAULT_QUEUE_NAME",
        "DEFAULT_TASK_BACKEND_ALIAS",
        "BaseTaskBackend",
        "InvalidTaskBackendError",
        "__version__",
    ],
    "django_tasks.task": [
        "MIN_PRIORITY",
        "MAX_PRIORITY",
        "DEFAULT_PRIORITY",
        "TaskResult",
        "Task",
        "task",
        "ResultStatus",
        "DEFAULT_QUEUE_NAME",
        "DEFAULT_TASK_BACKEND_ALIAS",
    ],
    "django_tasks.exceptions": [
        "InvalidTaskError",
        "InvalidTaskBackendError",
        "ResultDoesNotExist",
    ],
    "django_tasks.signals": ["task_enqueued", "task_started", "task_finished"],
    "django_tasks.utils": [
        "is_global_function",
        "is_json_serializable",
        "json_normalize",
        "retry",
        "get_module_path",
        "exception_to_dict",
        "exception_from_dict",
        "SerializedExceptionDict",
    ],
    "django_tasks.backends.base": ["BaseTaskBackend"],
    "django_tasks.backends.dummy": ["DummyBackend"],
    "django_tasks.backends.immediate": ["ImmediateBackend"],
    "django_tasks.apps": [],
    "django_tasks.checks": [],
}


@pytest.mark.parametrize(
    ("module_name", "name"),
    [(module, name) for module, names in PUBLIC_NAMES.items() for name in names],
)
def test_public_name_importable(module_name: str, name: str) -> None:
    module = importlib.import_module(module_name)
    assert hasattr(module, name), f"{module_name}.{name} is missing"


@pytest.mark.parametrize("module_name", list(PUBLIC_NAMES))
def test_module_importable(module_name: str) -> None:
    assert importlib.import_module(module_name).__name__ == module_name


def test_package_reexports_are_the_same_objects() -> None:
    import django_tasks
    from django_tasks import exceptions

    task = importlib.import_module("django_tasks.task")
    assert django_tasks.task is task.task
    assert django_tasks.Task is task.Task
    assert django_tasks.TaskResult is task.TaskResult
    assert django_tasks.ResultStatus is task.ResultStatus
    assert django_tasks.InvalidTaskBackendError is exceptions.InvalidTaskBackendError
    from django_tasks.backends.base import BaseTaskBackend

    assert django_tasks.BaseTaskBackend is BaseTaskBackend


def test_constants() -> None:
    import django_tasks

    task = importlib.import_module("django_tasks.task")
    assert django_tasks.DEFAULT_QUEUE_NAME == "default"
    assert django_tasks.DEFAULT_TASK_BACKEND_ALIAS == "default"
    assert task.DEFAULT_QUEUE_NAME == "default"
    assert task.DEFAULT_TASK_BACKEND_ALIAS == "default"
    assert task.MIN_PRIORITY == -100
    assert task.MAX_PRIORITY == 100
    assert task.DEFAULT_PRIORITY == 0


def test_version_is_a_nonempty_string() -> None:
    import django_tasks

    assert isinstance(django_tasks.__version__, str)
    assert django_tasks.__version__.strip() == django_tasks.__version__
    assert django_tasks.__version__[0].isdigit()


def test_all_lists_the_public_api() -> None:
    import django_tasks

    namespace: dict[str, object] = {}
    exec("from django_tasks import *", namespace)
    for name in PUBLIC_NAMES["django_tasks"]:
        assert name in django_tasks.__all__
        assert name in namespace


def test_exception_hierarchy() -> None:
    from django_tasks.exceptions import (
        InvalidTaskBackendError,
        InvalidTaskError,
        ResultDoesNotExist,
    )

    assert issubclass(InvalidTaskError, Exception)
    assert issubclass(InvalidTaskBackendError, ImproperlyConfigured)
    assert issubclass(ResultDoesNotExist, ObjectDoesNotExist)


def test_signals_are_plain_signals() -> None:
    from django_tasks import signals

    for name in ("task_enqueued", "task_started", "task_finished"):
        assert type(getattr(signals, name)) is Signal


def test_serialized_exception_dict_is_a_typeddict() -> None:
    from django_tasks.utils import SerializedExceptionDict

    assert typing.is_typeddict(SerializedExceptionDict)
    hints = typing.get_type_hints(SerializedExceptionDict)
    assert set(hints) == {"exc_type", "exc_args", "exc_traceback"}
    assert hints["exc_type"] is str
    assert hints["exc_traceback"] is str
    assert (typing.get_origin(hints["exc_args"]) or hints["exc_args"]) is list
    assert SerializedExceptionDict.__required_keys__ == frozenset(hints)


def test_backend_classes() -> None:
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.backends.dummy import DummyBackend
    from django_tasks.backends.immediate import ImmediateBackend

    assert issubclass(DummyBackend, BaseTaskBackend)
    assert issubclass(ImmediateBackend, BaseTaskBackend)
    with pytest.raises(TypeError):
        BaseTaskBackend({"ALIAS": "default"})  # type: ignore[abstract]


def test_app_config() -> None:
    from django_tasks.apps import TasksAppConfig

    config = apps.get_app_config("django_tasks")
    assert isinstance(config, TasksAppConfig)
    assert config.name == "django_tasks"


def test_package_is_typed() -> None:
    import django_tasks

    assert (Path(django_tasks.__file__).parent / "py.typed").is_file()
