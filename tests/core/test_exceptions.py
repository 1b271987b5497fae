from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist
from django.test import SimpleTestCase, override_settings

from django_tasks import tasks
from django_tasks.backends.dummy import DummyBackend
from django_tasks.exceptions import InvalidTaskBackendError, InvalidTaskError, ResultDoesNotExist
from tests import tasks as test_tasks


class ExceptionClassTests(SimpleTestCase):
    def test_invalid_task_error_is_a_plain_exception(self) -> None:
        assert InvalidTaskError.__mro__[1] is Exception
        assert not issubclass(InvalidTaskError, ImproperlyConfigured)
        assert str(InvalidTaskError("nope")) == "nope"

    def test_invalid_task_backend_error_is_improperly_configured(self) -> None:
        assert issubclass(InvalidTaskBackendError, ImproperlyConfigured)
        with pytest.raises(ImproperlyConfigured, match="^bad backend$"):
            raise InvalidTaskBackendError("bad backend")

    def test_result_does_not_exist_is_object_does_not_exist(self) -> None:
        assert issubclass(ResultDoesNotExist, ObjectDoesNotExist)
        assert ResultDoesNotExist("abc").args == ("abc",)

    def test_each_has_a_docstring(self) -> None:
        for exc in (InvalidTaskError, InvalidTaskBackendError, ResultDoesNotExist):
            assert exc.__doc__ and exc.__doc__.strip()


@override_settings(TASKS={"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}})
class RaisedExceptionTests(SimpleTestCase):
    def test_unknown_backend_alias_raises_invalid_task_backend_error(self) -> None:
        with pytest.raises(InvalidTaskBackendError) as excinfo:
            tasks["unknown"]
        assert str(excinfo.value) == "The connection 'unknown' doesn't exist."

    def test_invalid_task_is_caught_as_invalid_task_error(self) -> None:
        with pytest.raises(InvalidTaskError) as excinfo:
            test_tasks.noop_task.using(priority=1000)
        assert str(excinfo.value) == "priority must be a whole number between -100 and 100"

    def test_missing_result_is_caught_as_object_does_not_exist(self) -> None:
        assert isinstance(tasks["default"], DummyBackend)
        with pytest.raises(ObjectDoesNotExist) as excinfo:
            tasks["default"].get_result("missing")
        assert type(excinfo.value) is ResultDoesNotExist
        assert excinfo.value.args == ("missing",)
