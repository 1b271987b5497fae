"""Test settings: TEST_DB selects the database (sqlite or postgres)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import django

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks.backends.database",
]

try:  # the dashboard's dependencies are an extra
    import django_filters  # noqa: F401
    import django_htmx  # noqa: F401
    import django_tables2  # noqa: F401
except ImportError:  # pragma: no cover
    HAS_ADMIN_EXTRA = False
else:
    HAS_ADMIN_EXTRA = True
    INSTALLED_APPS += ["django_htmx", "django_tables2", "django_filters", "django_tasks_admin"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
if HAS_ADMIN_EXTRA:
    MIDDLEWARE.append("django_htmx.middleware.HtmxMiddleware")

ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

TEST_DB = os.environ.get("TEST_DB", "sqlite")

if TEST_DB == "postgres":
    DATABASES: dict[str, dict[str, Any]] = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "django_tasks"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
    if os.environ.get("DJANGO_TASKS_TEST_DB_NAME"):
        # A worker subprocess started by a test uses the test database.
        DATABASES["default"]["NAME"] = os.environ["DJANGO_TASKS_TEST_DB_NAME"]
else:
    # A file database: worker subprocesses share it with the test process.
    _db_dir = Path(os.environ.get("DJANGO_TASKS_SQLITE_DIR", tempfile.gettempdir()))
    _default_name = _db_dir / f"django_tasks_tests_{os.getpid()}.sqlite3"
    _name = os.environ.get("DJANGO_TASKS_TEST_DB_NAME") or str(_default_name)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _name,
            "TEST": {"NAME": _name},
            "OPTIONS": {"timeout": 20},
        }
    }
    if django.VERSION >= (5, 1):
        DATABASES["default"]["OPTIONS"]["transaction_mode"] = "EXCLUSIVE"

TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
        "QUEUES": [],
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
}
