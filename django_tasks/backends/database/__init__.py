from __future__ import annotations

from .backend import DatabaseBackend

__all__ = ["DatabaseBackend"]
