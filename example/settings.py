"""Settings of the demo project: embedded SQLite, WhiteNoise for static files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import django

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR", BASE_DIR / ".data"))

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DEMO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
TIME_ZONE = os.environ.get("DEMO_TIME_ZONE", "UTC")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks.backends.database",
    "django_htmx",
    "django_tables2",
    "django_filters",
    "django_tasks_admin",
    "example",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "example.urls"
WSGI_APPLICATION = "example.wsgi.application"

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

if os.environ.get("DEMO_DB") == "postgres":
    DATABASES: dict[str, dict[str, Any]] = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "django_tasks_demo"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "demo.sqlite3",
            "OPTIONS": {"timeout": 20},
        }
    }
    if django.VERSION >= (5, 1):
        # The database backend claims tasks in exclusive transactions.
        DATABASES["default"]["OPTIONS"]["transaction_mode"] = "EXCLUSIVE"

TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": ["default", "emails", "reports", "images"],
        "OPTIONS": {
            # Recurring tasks: every db_worker enqueues each tick once (dashboard: Schedules).
            "schedules": {
                "session-cleanup": {
                    "task": "example.tasks.clear_expired_sessions",
                    "cron": "* * * * *",  # every minute, so the demo shows it firing
                },
                "nightly-report": {
                    "task": "example.tasks.generate_report",
                    "cron": "30 2 * * *",
                    "timezone": "Europe/Berlin",
                    "args": ["nightly", 50_000],
                },
            },
        },
    }
}

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    # Task logs (with failure tracebacks) go to a file; the dashboard shows them anyway.
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": DATA_DIR / "tasks.log",
            "formatter": "short",
            "delay": True,
        }
    },
    "loggers": {"django_tasks": {"handlers": ["file"], "level": "INFO"}},
}
