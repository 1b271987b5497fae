# mypy: disable-error-code="untyped-decorator"
"""``django.tasks`` tasks for the automatic-retry tests (Django 6+).

Import only where our DatabaseBackend is the default backend (see
tests.django_api_tasks).  ``flaky`` has no settings of its own (Django 6.0's
decorator takes none): ``OPTIONS["task_overrides"]`` gives it attempts.
"""

from __future__ import annotations

import django
from django.tasks import task

from tests.retry_tasks import _run_number


@task()
def flaky(path: str, token: str, failures: int) -> int:
    number = _run_number(path, token)
    if number <= failures:
        raise ValueError(f"{token} failed on run {number}")
    return number


if django.VERSION >= (6, 1):
    # Django 6.1 passes further decorator keywords to the backend's task class.
    @task(max_attempts=3, backoff=0)
    def flaky_with_keywords(path: str, token: str, failures: int) -> int:
        number = _run_number(path, token)
        if number <= failures:
            raise ValueError(f"{token} failed on run {number}")
        return number
