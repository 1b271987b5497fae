"""The dashboard's ModelAdmin: it replaces the plain read-only DBTaskResult admin.

Its URLs are the dashboard's pages and actions, each wrapped in
``admin_site.admin_view`` (login, staff, never_cache).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.options import get_content_type_for_model
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

# Import the plain admin first, so that its registration exists to be replaced
# whatever the order of INSTALLED_APPS.
from django_tasks.backends.database import admin as _database_admin  # noqa: F401
from django_tasks.backends.database import services
from django_tasks.backends.database.admin import ReadOnlyAdminMixin
from django_tasks.backends.database.models import DBTaskResult

from . import views
from .models import CANCEL_PERMISSION, PRUNE_PERMISSION, RETRY_PERMISSION, TaskDashboard
from .views.charts import ChartsView
from .views.metrics import metrics_view
from .views.queues import QueueActionView, QueuesView
from .views.schedules import ScheduleActionView, SchedulesView
from .views.workers import WorkersView

if TYPE_CHECKING:
    from django_tasks.backends.database.models import DBTaskResultQuerySet


class TaskResultAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Task results in the admin: overview, list, detail, retry, cancel and prune."""

    actions = ["retry_selected", "cancel_selected"]

    def has_retry_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm(RETRY_PERMISSION))

    def has_prune_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm(PRUNE_PERMISSION))

    def has_cancel_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm(CANCEL_PERMISSION))

    def has_module_permission(self, request: HttpRequest) -> bool:
        # The admin index lists the dashboard's own entry (TaskDashboardAdmin), which
        # opens the overview, instead of this model's changelist (the results list).
        return False

    @admin.action(description=_("Cancel the selected waiting results"), permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[DBTaskResult]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        username = request.user.get_username()
        cancelled = services.cancel(ids, reason=f"cancelled by {username} from the dashboard")
        self.log_bulk(
            request,
            action_flag=CHANGE,
            count=cancelled,
            message=f"Cancelled {cancelled} selected task results",
        )
        if cancelled:
            self.message_user(
                request,
                ngettext("Cancelled %(count)d result.", "Cancelled %(count)d results.", cancelled)
                % {"count": cancelled},
                messages.SUCCESS,
            )
        if refused := len(ids) - cancelled:
            self.message_user(
                request,
                ngettext(
                    "%(count)d selected result was not cancelled: only waiting (NEW) results "
                    "can be; a running task is not interrupted.",
                    "%(count)d selected results were not cancelled: only waiting (NEW) results "
                    "can be; a running task is not interrupted.",
                    refused,
                )
                % {"count": refused},
                messages.WARNING,
            )

    @admin.action(description=_("Retry the selected failed results"), permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[DBTaskResult]) -> None:
        outcome = services.retry(results=cast("DBTaskResultQuerySet", queryset))
        self.log_bulk(
            request,
            action_flag=CHANGE,
            count=outcome.retried,
            message=f"Retried {outcome.retried} selected task results",
        )
        if outcome.retried:
            self.message_user(
                request,
                ngettext("Retried %(count)d result.", "Retried %(count)d results.", outcome.retried)
                % {"count": outcome.retried},
                messages.SUCCESS,
            )
        if outcome.refused:
            self.message_user(
                request,
                ngettext(
                    "%(count)d selected result was not retried: only FAILED results can be.",
                    "%(count)d selected results were not retried: only FAILED results can be.",
                    outcome.refused,
                )
                % {"count": outcome.refused},
                messages.WARNING,
            )

    def log_bulk(self, request: HttpRequest, *, action_flag: int, count: int, message: str) -> None:
        """Record an action on many rows as one LogEntry."""
        LogEntry.objects.create(
            user_id=cast(int, request.user.pk),
            content_type_id=get_content_type_for_model(self.model).pk,
            object_id=None,
            object_repr=f"{count} task results"[:200],
            action_flag=action_flag,
            change_message=message,
        )

    # URLs

    def dashboard_url_name(self, name: str) -> str:
        opts = self.model._meta
        return f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}"

    def dashboard_url(self, name: str, *args: Any) -> str:
        return reverse(self.dashboard_url_name(name), args=args)

    def dashboard_urls(self) -> dict[str, str]:
        return {
            name: self.dashboard_url(name)
            for name in (
                "overview",
                "changelist",
                "actions",
                "retry_matching",
                "cancel_matching",
                "prune",
                "schedules",
                "schedule_action",
                "workers",
                "queues",
                "queue_action",
                "charts",
                "metrics",
            )
        }

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta

        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        def name(suffix: str) -> str:
            return f"{opts.app_label}_{opts.model_name}_{suffix}"

        def view(cls: Any) -> Callable[..., HttpResponse]:
            return wrap(cls.as_view(model_admin=self))

        return [
            path("", view(views.ResultListView), name=name("changelist")),
            path("overview/", view(views.OverviewView), name=name("overview")),
            path("actions/", view(views.RunActionView), name=name("actions")),
            path("retry-matching/", view(views.RetryMatchingView), name=name("retry_matching")),
            path("cancel-matching/", view(views.CancelMatchingView), name=name("cancel_matching")),
            path("prune/", view(views.PruneView), name=name("prune")),
            path("schedules/", view(SchedulesView), name=name("schedules")),
            path("schedules/action/", view(ScheduleActionView), name=name("schedule_action")),
            path("workers/", view(WorkersView), name=name("workers")),
            path("queues/", view(QueuesView), name=name("queues")),
            path("queues/action/", view(QueueActionView), name=name("queue_action")),
            path("charts/", view(ChartsView), name=name("charts")),
            # Not behind admin_view: Prometheus may present a token instead of a login.
            path("metrics/", metrics_view(self), name=name("metrics")),
            path(
                "bulk-retries/<uuid:job_id>/",
                view(views.BulkRetryView),
                name=name("bulk_retry"),
            ),
            path(
                "bulk-cancels/<uuid:job_id>/",
                view(views.BulkCancelView),
                name=name("bulk_cancel"),
            ),
            path("<uuid:result_id>/", view(views.ResultDetailView), name=name("change")),
            path("<uuid:result_id>/retry/", view(views.RetryOneView), name=name("retry")),
            path("<uuid:result_id>/cancel/", view(views.CancelOneView), name=name("cancel")),
            # Admin links such as "Recent actions" point at .../<id>/change/.
            path("<uuid:result_id>/change/", wrap(self._redirect_to_detail)),
        ]

    def _redirect_to_detail(self, request: HttpRequest, result_id: Any) -> HttpResponse:
        return HttpResponseRedirect(self.dashboard_url("change", result_id))


class TaskDashboardAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The admin index's entry for the dashboard: it opens the overview.

    The index links each model to its changelist, which for task results is the
    results list; this entry (of the permissions' proxy model) stands in for it.
    """

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.admin_site._registry[DBTaskResult].has_view_permission(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        return [
            path(
                "",
                self.admin_site.admin_view(self._redirect_to_overview),
                name=f"{opts.app_label}_{opts.model_name}_changelist",
            )
        ]

    def _redirect_to_overview(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        dashboard = cast(TaskResultAdmin, self.admin_site._registry[DBTaskResult])
        return HttpResponseRedirect(dashboard.dashboard_url("overview"))


if admin.site.is_registered(DBTaskResult):
    admin.site.unregister(DBTaskResult)
admin.site.register(DBTaskResult, TaskResultAdmin)
admin.site.register(TaskDashboard, TaskDashboardAdmin)
