"""What every dashboard view shares: the admin's context and the permission checks.

Each view is mounted by ``TaskResultAdmin.get_urls()`` inside ``admin_site.admin_view``
(login, staff check, never_cache) and renders the admin's context, so pages get
the sidebar, breadcrumbs, messages and dark mode of the admin they live in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.options import get_content_type_for_model
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic.base import ContextMixin
from django_htmx.middleware import HtmxDetails

from django_tasks_admin import conf
from django_tasks_admin.list_state import ResultListState
from django_tasks_admin.live import HtmxHttpRequest

if TYPE_CHECKING:
    from django_tasks_admin.admin import TaskResultAdmin


class DashboardMixin(ContextMixin):
    """The admin's context, and the permission checks, of every dashboard view."""

    model_admin: TaskResultAdmin | None = None
    title: Any = ""
    tab = ""
    # Besides viewing: "retry", "cancel" or "prune" (checked with has_<permission>_permission).
    permission = ""
    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.admin.has_view_permission(request):
            raise PermissionDenied
        if self.permission and not getattr(self.admin, f"has_{self.permission}_permission")(
            request
        ):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc, no-any-return]

    @property
    def admin(self) -> TaskResultAdmin:
        assert self.model_admin is not None
        return self.model_admin

    @property
    def htmx(self) -> HtmxDetails:
        """django-htmx's view of this request (falsy unless htmx sent it)."""
        return cast(HtmxHttpRequest, self.request).htmx

    def url(self, name: str, *args: Any) -> str:
        return self.admin.dashboard_url(name, *args)

    def read_list_state(self) -> ResultListState:
        """The results list's state from this request's query string."""
        return ResultListState.from_query(
            self.request.GET,
            list_url=self.url("changelist"),
            retry_matching_url=self.url("retry_matching"),
            cancel_matching_url=self.url("cancel_matching"),
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        request = self.request
        context = super().get_context_data(**kwargs)
        context.update(
            self.admin.admin_site.each_context(request),
            opts=self.admin.opts,
            title=self.title,
            urls=self.admin.dashboard_urls(),
            can_retry=self.admin.has_retry_permission(request),
            can_prune=self.admin.has_prune_permission(request),
            can_cancel=self.admin.has_cancel_permission(request),
            poll_seconds=conf.get("POLL_SECONDS"),
            dt_tab=self.tab,
        )
        return context


def safe_next(request: HttpRequest, default: str) -> str:
    """The POSTed ``next`` URL if it is on this site, else ``default``."""
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


class ButtonView(DashboardMixin, View):
    """A page's buttons (POST ``action``, ``backend``, ``name``), behind their own permission.

    Subclasses name their ``actions`` and ``button_permission`` and implement ``act``;
    an unknown action gets a 400 naming the allowed ones.
    """

    http_method_names = ["post"]
    actions: tuple[str, ...] = ()
    button_permission = ""
    name_field = "name"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm(self.button_permission):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action", "")
        if action not in self.actions:
            return HttpResponse(
                f"Unknown action {action!r}: use one of {', '.join(self.actions)}",
                status=400,
                content_type="text/plain",
            )
        backend_name = request.POST.get("backend", "")
        return self.act(action, backend_name, request.POST.get(self.name_field, ""))

    def act(self, action: str, backend_name: str, name: str) -> HttpResponse:
        raise NotImplementedError

    def log_change(self, row: Model, message: str) -> None:
        """Record the change in the admin's history (LogEntry) of ``row``."""
        LogEntry.objects.create(
            user_id=cast(int, self.request.user.pk),
            content_type_id=get_content_type_for_model(row).pk,
            object_id=str(row.pk),
            object_repr=str(row)[:200],
            action_flag=CHANGE,
            change_message=message,
        )
