"""A demo project: the dashboard on SQLite with a live db_worker (``python -m example``)."""

from __future__ import annotations
