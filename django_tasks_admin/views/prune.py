"""The prune form: a dry-run preview, then the deletion, as ``prune_db_task_results`` does."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.models import DELETION
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy, ngettext
from django.views.generic import TemplateView

from django_tasks.backends.database import services
from django_tasks_admin.forms import PruneForm

from .base import DashboardMixin


class PruneView(DashboardMixin, TemplateView):
    """The prune form: a dry-run preview (GET), then the deletion (POST)."""

    permission = "prune"
    template_name = "django_tasks_admin/prune.html"
    tab = "prune"
    title = gettext_lazy("Prune task results")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if "preview" not in request.GET:
            return self.render_to_response(self.get_context_data(form=PruneForm()))
        form = PruneForm(data=request.GET)
        preview = None
        if form.is_valid():
            preview = services.prune(**form.prune_kwargs(), dry_run=True)
        return self.render_to_response(
            self.get_context_data(form=form, preview=preview),
        )

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PruneForm(data=request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        deleted = services.prune(**form.prune_kwargs(), dry_run=False)
        self.admin.log_bulk(
            request,
            action_flag=DELETION,
            count=deleted,
            message=f"Pruned {deleted} task results: {form.describe()}",
        )
        messages.success(
            request,
            ngettext("Deleted %(count)d task result.", "Deleted %(count)d task results.", deleted)
            % {"count": deleted},
        )
        return HttpResponseRedirect(self.url("prune"))
