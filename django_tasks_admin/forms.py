"""The prune form: ``prune_db_task_results``'s options, checked like the command checks them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from django_tasks.task import DEFAULT_TASK_BACKEND_ALIAS

from .filters import database_backend_choices


class PruneForm(forms.Form):
    """The options of ``prune_db_task_results``, with its defaults except the queue (all)."""

    backend = forms.ChoiceField(
        label=_("Backend"), choices=database_backend_choices, initial=DEFAULT_TASK_BACKEND_ALIAS
    )
    queue_name = forms.CharField(
        label=_("Queues"),
        # Every queue: a first dry run counts what the table holds (issue 14).
        initial="*",
        help_text=_("Queue names separated by commas; * for every queue."),
    )
    min_age_days = forms.IntegerField(
        label=_("Minimum age (days)"),
        min_value=0,
        initial=14,
        help_text=_("COMPLETE results finished at least this many days ago are deleted."),
    )
    failed_min_age_days = forms.IntegerField(
        label=_("Minimum age of failures (days)"),
        min_value=0,
        required=False,
        help_text=_("FAILED results finished at least this many days ago (empty: as above)."),
    )

    def clean_queue_name(self) -> str:
        names = [n.strip() for n in self.cleaned_data["queue_name"].split(",") if n.strip()]
        if not names:
            raise forms.ValidationError(_("Name at least one queue, or *."))
        return ",".join(names)

    def prune_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``services.prune()``."""
        data = self.cleaned_data
        return {
            "backend_name": data["backend"],
            "queue_names": None if data["queue_name"] == "*" else data["queue_name"].split(","),
            "min_age_days": data["min_age_days"],
            "failed_min_age_days": data["failed_min_age_days"],
        }

    def describe(self) -> str:
        data = self.cleaned_data
        failed = data["failed_min_age_days"]
        return (
            f"backend={data['backend']} queues={data['queue_name']} "
            f"min_age_days={data['min_age_days']} "
            f"failed_min_age_days={failed if failed is not None else data['min_age_days']}"
        )
