"""The plain read-only DBTaskResult admin (the dashboard app may replace its registration).

Tests mount DBTaskResultAdmin on a private AdminSite, so they hold whichever admin
the global site ends up with.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory, TestCase, override_settings
from django.urls import path, reverse

from django_tasks import ResultStatus
from django_tasks.backends.database.admin import DBTaskResultAdmin
from django_tasks.backends.database.models import DBTaskResult
from tests.db_utils import DB_TASKS, make_row

site = admin.AdminSite(name="admin")
site.register(DBTaskResult, DBTaskResultAdmin)
urlpatterns = [path("admin/", site.urls)]


@override_settings(TASKS=DB_TASKS, ROOT_URLCONF=__name__)
class DBTaskResultAdminTestCase(TestCase):
    user: User

    @classmethod
    def setUpTestData(cls) -> None:
        cls.user = User.objects.create_superuser("admin", "admin@example.com", "password")

    def setUp(self) -> None:
        self.client.force_login(self.user)
        self.model_admin = DBTaskResultAdmin(DBTaskResult, site)
        self.request = RequestFactory().get("/")
        self.request.user = self.user

    def test_registered_on_the_default_site(self) -> None:
        # django_tasks_admin, when installed, swaps in its own subclass-or-replacement.
        assert DBTaskResult in admin.site._registry

    def test_list_configuration(self) -> None:
        assert self.model_admin.list_display == (
            "id",
            "task_name",
            "status",
            "enqueued_at",
            "started_at",
            "finished_at",
            "priority",
            "queue_name",
        )
        assert self.model_admin.list_filter == ("status", "priority", "queue_name")
        assert list(self.model_admin.ordering or []) == ["-enqueued_at"]

    def test_everything_is_read_only(self) -> None:
        row = make_row()
        assert not self.model_admin.has_add_permission(self.request)
        assert not self.model_admin.has_change_permission(self.request, row)
        assert not self.model_admin.has_delete_permission(self.request, row)
        assert self.model_admin.has_view_permission(self.request, row)
        assert set(self.model_admin.get_readonly_fields(self.request, row)) == {
            f.name for f in DBTaskResult._meta.fields
        }

    def test_task_name_column(self) -> None:
        assert self.model_admin.task_name(make_row(task_path="tests.tasks.echo")) == "echo"
        assert self.model_admin.task_name.short_description == "Task"  # type: ignore[attr-defined]

    def test_task_name_of_a_missing_task(self) -> None:
        assert self.model_admin.task_name(make_row(task_path="tests.tasks.gone")) == "gone"

    def test_changelist(self) -> None:
        newest = make_row(task_path="tests.tasks.echo", status=ResultStatus.COMPLETE)
        oldest = make_row(task_path="tests.tasks.calculate_meaning_of_life")
        DBTaskResult.objects.filter(pk=oldest.pk).update(
            enqueued_at=newest.enqueued_at.replace(year=2000)
        )

        response = self.client.get(reverse("admin:django_tasks_database_dbtaskresult_changelist"))

        assert response.status_code == 200
        content = response.content.decode()
        assert "calculate_meaning_of_life" in content
        assert ">Task<" in content
        assert content.index(str(newest.pk)) < content.index(str(oldest.pk))
        assert list(response.context["cl"].result_list) == [newest, oldest]
        assert "addlink" not in content

    def test_changelist_filters(self) -> None:
        make_row(status=ResultStatus.FAILED, queue_name="queue-1")
        make_row()
        url = reverse("admin:django_tasks_database_dbtaskresult_changelist")

        response = self.client.get(url, {"status__exact": "FAILED"})
        assert response.context["cl"].result_count == 1
        response = self.client.get(url, {"queue_name": "queue-1"})
        assert response.context["cl"].result_count == 1

    def test_detail_is_read_only(self) -> None:
        row = make_row()
        url = reverse("admin:django_tasks_database_dbtaskresult_change", args=[row.pk])

        response = self.client.get(url)
        assert response.status_code == 200
        assert b'name="_save"' not in response.content
        response = self.client.post(url, {"status": "COMPLETE"})
        assert response.status_code == 403
        row.refresh_from_db()
        assert row.status == ResultStatus.NEW

    def test_add_and_delete_are_denied(self) -> None:
        row = make_row()
        add = reverse("admin:django_tasks_database_dbtaskresult_add")
        delete = reverse("admin:django_tasks_database_dbtaskresult_delete", args=[row.pk])
        assert self.client.get(add).status_code == 403
        assert self.client.post(delete, {"post": "yes"}).status_code == 403
        assert DBTaskResult.objects.filter(pk=row.pk).exists()
