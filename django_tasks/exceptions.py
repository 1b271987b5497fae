"""Exceptions raised by django_tasks."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist


class InvalidTaskError(Exception):
    """The task has invalid configuration."""


class InvalidTaskBackendError(ImproperlyConfigured):
    """The task backend is missing or misconfigured."""


class ResultDoesNotExist(ObjectDoesNotExist):
    """The requested task result does not exist."""


class TaskEndedOnPurpose(Exception):  # noqa: N818 - what happened, not an error
    """A task was ended on purpose (e.g. cancelled): logged as a warning, not an error."""
