"""Cancelling many waiting results: every NEW row the list's filters select."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy, ngettext

from django_tasks.backends.database import services
from django_tasks.task import ResultStatus

from .retry import BulkRetryView, MatchingActionView


class CancelMatchingView(MatchingActionView):
    """Preview, then cancel every waiting (NEW) result the list's filters select."""

    action = "cancel"
    permission = "cancel"
    status = ResultStatus.NEW
    title = gettext_lazy("Cancel all matching waiting results")
    log_verb = "Cancelled"

    def preview(self, rows: Any) -> tuple[int, int]:
        return services.cancel_preview(rows)

    def eligible(self, rows: Any) -> Any:
        return rows.filter(status=ResultStatus.NEW)

    def run(self, rows: Any, *, limit: int) -> int:
        return services.cancel(rows, limit=limit, reason=self.reason())

    def reason(self) -> str:
        return f"cancelled by {self.request.user.get_username()} from the dashboard"

    def done_message(self, count: int) -> str:
        return ngettext(
            "Cancelled %(count)d waiting result.", "Cancelled %(count)d waiting results.", count
        ) % {"count": count}


class BulkCancelView(BulkRetryView):
    """Progress of a background bulk cancel."""

    action = "cancel"
    permission = "cancel"
    title = gettext_lazy("Background cancel")
