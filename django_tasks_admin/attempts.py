"""What the dashboard says of a row's attempts: "attempt 2 of 5", the next one, time limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.services import is_cancelled
from django_tasks.lifecycle import TimeLimitExceeded
from django_tasks.task import ResultStatus
from django_tasks.utils import get_module_path

from .formatting import absolute_time, duration_text, relative_time

# The class path a failure past its time limit is stored with.
TIME_LIMIT_EXC_TYPE = get_module_path(TimeLimitExceeded)


def is_time_limit(exc_type: str | None) -> bool:
    """Whether ``exc_type`` (a stored exception's class path) is a time-limit failure."""
    return exc_type == TIME_LIMIT_EXC_TYPE


def time_limit_label(time_limit: float | None = None) -> SafeString:
    """The "time limit" badge of a failure that ran past its limit (with it, if known)."""
    title = _("The task ran longer than its time limit; the worker ended it.")
    if time_limit is not None:
        title = _("The task ran longer than its time limit (%(limit)s); the worker ended it.") % {
            "limit": seconds_text(time_limit)
        }
    return format_html(
        '<span class="dt-label dt-label-time-limit" title="{}">{}</span>', title, _("time limit")
    )


def seconds_text(seconds: float) -> str:
    """A time limit for people: "30 s", "1.5 s", "2 min 0 s"."""
    if seconds < 60:
        return f"{seconds:g} s"
    return duration_text(timedelta(seconds=seconds))


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptLine:
    """The row's current (or last) attempt, as the detail page states it."""

    number: int  # 1-based: earlier attempts + this one
    max_attempts: int
    runs: int  # attempts that started (a never-run row has none)
    state: str  # "not started yet", "running", "waiting to retry", ...
    next_at: datetime | None = None  # when the next attempt may start (waiting to retry)
    now: datetime | None = None

    @property
    def beyond_max(self) -> bool:
        """Run more often than ``max_attempts`` allows: by hand, or after a lost worker."""
        return self.number > self.max_attempts

    @property
    def text(self) -> str:
        """ "attempt 2 of 5", or, past the maximum, "attempt 4 (3 allowed; ...)"."""
        if self.beyond_max:
            return ngettext(
                "attempt %(number)d, beyond its %(max)d allowed attempt "
                "(run again by hand or after a lost worker)",
                "attempt %(number)d, beyond its %(max)d allowed attempts "
                "(run again by hand or after a lost worker)",
                self.max_attempts,
            ) % {"number": self.number, "max": self.max_attempts}
        return _("attempt %(number)d of %(max)d") % {
            "number": self.number,
            "max": self.max_attempts,
        }

    @property
    def runs_text(self) -> str:
        if not self.runs:
            return _("0 runs: not started yet")
        return ngettext("%(count)d run", "%(count)d runs", self.runs) % {"count": self.runs}

    @property
    def next_in(self) -> str:
        """ "in 1 h 59 m" (exact, not "in 1 hour")."""
        return relative_time(self.next_at, self.now) if self.next_at else ""

    @property
    def next_at_text(self) -> str:
        return absolute_time(self.next_at) if self.next_at else ""


def attempt_line(result: DBTaskResult, now: datetime | None = None) -> AttemptLine:
    """State which attempt ``result`` is at, and when the next one starts if it waits to retry."""
    now = now or timezone.now()
    earlier = len(result.attempts or [])
    started = result.started_at is not None
    next_at = None
    if result.status == ResultStatus.NEW:
        if not earlier:
            state = _("not started yet")
        elif result.run_after is not None and result.run_after > now:
            state = _("waiting to retry")
            next_at = result.run_after
        else:
            state = _("due again: waiting for a worker")
    elif result.status == ResultStatus.RUNNING:
        state = _("running")
    elif is_cancelled(result):
        state = _("cancelled before it ran")
    elif result.status == ResultStatus.FAILED and not started:
        state = _("never ran")
    elif result.status == ResultStatus.FAILED:
        left = result.max_attempts - earlier - 1
        state = _("failed: no attempts left") if left <= 0 else _("failed: not retried")
    else:
        state = _("succeeded")
    return AttemptLine(
        number=earlier + 1,
        max_attempts=result.max_attempts,
        runs=earlier + (1 if started else 0),
        state=state,
        next_at=next_at,
        now=now,
    )
