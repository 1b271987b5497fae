"""The prune form: a dry-run preview, then the deletion, as ``prune_db_task_results`` does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import messages
from django.contrib.admin.models import DELETION
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy, ngettext
from django.views.generic import TemplateView

from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBTaskResult, prune_cutoffs
from django_tasks.task import ResultStatus
from django_tasks_admin.forms import PruneForm
from django_tasks_admin.stats import AT_LEAST, EXACT_UP_TO, Tally, capped_count

from .base import DashboardMixin


def prunable_count(
    *,
    backend_name: str,
    queue_names: Sequence[str] | None,
    min_age_days: int,
    failed_min_age_days: int | None,
) -> Tally:
    """What ``services.prune()`` would delete, counted up to EXACT_UP_TO (a dry run).

    Each status is counted along its (status, finished_at) index range, oldest
    first, stopping at the cap: the dry run never reads a big table.
    """
    results = DBTaskResult.objects.filter(backend_name=backend_name)
    if queue_names is not None:
        results = results.filter(queue_name__in=list(queue_names))
    complete_before, failed_before = prune_cutoffs(
        min_age_days=min_age_days, failed_min_age_days=failed_min_age_days
    )
    total = Tally(0)
    for status, before in (
        (ResultStatus.COMPLETE, complete_before),
        (ResultStatus.FAILED, failed_before),
    ):
        rows = results.filter(status=status, finished_at__lte=before)
        total += capped_count(rows, order=("finished_at",))
    return Tally(EXACT_UP_TO, AT_LEAST) if total.value > EXACT_UP_TO else total


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
            preview = prunable_count(**form.prune_kwargs())
        return self.render_to_response(
            self.get_context_data(
                form=form,
                preview=None if preview is None else preview.value,
                preview_capped=preview is not None and not preview.exact,
            ),
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
