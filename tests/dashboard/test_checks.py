"""System checks of the dashboard's settings."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.test import SimpleTestCase, override_settings


class HtmxMiddlewareCheckTests(SimpleTestCase):
    def test_the_test_settings_pass(self):
        assert not [e for e in checks.run_checks() if e.id == "django_tasks_admin.E001"]

    def test_missing_htmx_middleware_is_an_error(self):
        middleware = [m for m in settings.MIDDLEWARE if "django_htmx" not in m]
        with override_settings(MIDDLEWARE=middleware):
            errors = [e for e in checks.run_checks() if e.id == "django_tasks_admin.E001"]
        assert len(errors) == 1
        assert "django_htmx.middleware.HtmxMiddleware" in errors[0].msg
