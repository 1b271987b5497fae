"""System checks of the dashboard's settings."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import registry
from django.test import SimpleTestCase, override_settings

from django_tasks_admin.checks import check_htmx_middleware


class HtmxMiddlewareCheckTests(SimpleTestCase):
    def test_the_check_is_registered_and_the_test_settings_pass(self):
        assert check_htmx_middleware in registry.registry.get_checks()
        assert check_htmx_middleware() == []

    def test_missing_htmx_middleware_is_an_error(self):
        middleware = [m for m in settings.MIDDLEWARE if "django_htmx" not in m]
        with override_settings(MIDDLEWARE=middleware):
            errors = check_htmx_middleware()
        assert [e.id for e in errors] == ["django_tasks_admin.E001"]
        assert "django_htmx.middleware.HtmxMiddleware" in errors[0].msg
