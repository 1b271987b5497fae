"""The dashboard's models: the permissions holder (renamed, same codenames) and bulk retries."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import TestCase, TransactionTestCase

from django_tasks_admin.models import (
    CANCEL_PERMISSION,
    PRUNE_PERMISSION,
    QUEUES_PERMISSION,
    RETRY_PERMISSION,
    SCHEDULES_PERMISSION,
    TaskDashboard,
)


class TaskDashboardTests(TestCase):
    def test_permissions_keep_their_codenames_on_the_renamed_proxy(self):
        content_type = ContentType.objects.get_for_model(TaskDashboard, for_concrete_model=False)
        assert (content_type.app_label, content_type.model) == (
            "django_tasks_admin",
            "taskdashboard",
        )
        codenames = set(
            Permission.objects.filter(content_type=content_type).values_list("codename", flat=True)
        )
        assert codenames == {
            "retry_taskresult",
            "prune_taskresult",
            "cancel_taskresult",
            "manage_schedules",
            "pause_queues",
        }
        permissions = {RETRY_PERMISSION, PRUNE_PERMISSION, CANCEL_PERMISSION}
        assert permissions | {SCHEDULES_PERMISSION, QUEUES_PERMISSION} == {
            f"django_tasks_admin.{codename}" for codename in codenames
        }


class RenameMigrationTests(TransactionTestCase):
    def test_permissions_granted_before_the_rename_still_apply(self):
        call_command("migrate", "django_tasks_admin", "0001", verbosity=0)
        try:
            before = Permission.objects.get(codename="retry_taskresult")
            assert before.content_type.model == "taskresult"
            user = User.objects.create_user("ops", is_staff=True)
            user.user_permissions.add(before)
        finally:
            call_command("migrate", "django_tasks_admin", verbosity=0)
        after = Permission.objects.get(codename="retry_taskresult")
        assert after.pk == before.pk
        assert after.content_type.model == "taskdashboard"
        assert User.objects.get(pk=user.pk).has_perm(RETRY_PERMISSION)
