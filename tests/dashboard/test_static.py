"""collectstatic with manifest storage (as WhiteNoise serves it), and pages using it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from .utils import DashboardTestCase, url

MANIFEST_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}


@pytest.fixture
def static_root(tmp_path: Path) -> Iterator[Path]:
    with override_settings(STATIC_ROOT=str(tmp_path), STORAGES=MANIFEST_STORAGES):
        yield tmp_path


def test_collectstatic_with_manifest_storage(static_root: Path) -> None:
    call_command("collectstatic", interactive=False, verbosity=0)
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    for name in (
        "django_tasks_admin/css/dashboard.css",
        "django_tasks_admin/js/dashboard.js",
    ):
        assert name in manifest
        assert (static_root / manifest[name]).exists()
    assert any(name.startswith("django_htmx/htmx") for name in manifest)


class HashedAssetsTests(DashboardTestCase):
    def test_pages_reference_hashed_assets(self):
        import tempfile

        with (
            tempfile.TemporaryDirectory() as root,
            override_settings(STATIC_ROOT=root, STORAGES=MANIFEST_STORAGES),
        ):
            call_command("collectstatic", interactive=False, verbosity=0)
            content = self.client.get(url("overview")).content.decode()
        assert "/static/django_tasks_admin/css/dashboard." in content
        assert "dashboard.css" not in content  # only the hashed name
        assert "/static/django_htmx/htmx" in content
