"""Operations dashboard for the django_tasks database backend, inside the Django admin."""

from __future__ import annotations
