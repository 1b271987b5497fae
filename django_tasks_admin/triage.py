"""Failure triage: recent failures grouped by task and exception class.

The overview reads the newest failures (at most ``GROUP_ROWS`` of the last
``GROUP_HOURS`` hours, a backwards range of the (status, finished_at) index),
never their tracebacks: only the task path, the exception class, the exception's
arguments and the finish time.  Each group is one (task path, exception class)
pair, so the results list selects exactly its rows with the ``task_path``,
``exception`` and ``finished_after`` filters, and "retry this group" is the list's
"retry all matching" of those filters.  Inside a group, the messages are shown
as patterns: their variable parts (UUIDs, quoted strings, hex ids, numbers)
replaced by placeholders, so "order 12 declined" and "order 13 declined" count
as one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db import connections, router
from django.db.models import QuerySet
from django.db.models.fields.json import KT, KeyTransform
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks.utils import exception_message

from .formatting import task_name
from .live import fingerprint

# The failures the groups are made of: those of the last GROUP_HOURS hours, at most
# the GROUP_ROWS newest of them.
GROUP_HOURS = 24
GROUP_ROWS = 2_000
# Message patterns shown per group (the most frequent).
TOP_PATTERNS = 3
# A message is cut to this many characters before its pattern is made.
MESSAGE_CHARS = 500
# The failed results the exception filter's suggestions are read from (the newest).
CLASS_SUGGESTION_ROWS = 1_000

# The variable parts of a message, each with its placeholder; where several could
# start at the same character, the first listed wins.
_PLACEHOLDERS = {
    "uuid": r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
    "str": r"'[^']*'|\"[^\"]*\"",
    # At least 6 hex digits with a digit among them: "7f3c9a1e", "0xdeadbeef", not "facade".
    "hex": r"\b(?:0x[0-9a-fA-F]+|(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{6,})\b",
    # A sign only where it can't be a separator ("limit -1", not "order-12").
    "n": r"(?:(?<!\w)[-+])?\d+(?:\.\d+)?",
}
# One pass over the message for all of them.
_VARIABLE = re.compile("|".join(f"(?P<{name}>{regex})" for name, regex in _PLACEHOLDERS.items()))
_SPACES = re.compile(r"\s+")


def _placeholder(match: re.Match[str]) -> str:
    return f"<{match.lastgroup}>"


def message_pattern(message: str) -> str:
    """``message`` with its variable parts replaced by placeholders ("order <n>: declined")."""
    text = _SPACES.sub(" ", message[:MESSAGE_CHARS]).strip()
    return _VARIABLE.sub(_placeholder, text)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureGroup:
    """The failures of one task with one exception class, within the triage window."""

    task_path: str
    exc_type: str
    count: int
    first_seen: datetime
    last_seen: datetime
    # The most frequent message patterns, with their counts, most frequent first.
    patterns: list[tuple[str, int]]
    # How many distinct patterns the group has (more than ``patterns`` shows).
    pattern_count: int
    # The results list's filters that select exactly this group's rows.
    query: str

    @property
    def exc_name(self) -> str:
        return self.exc_type.rpartition(".")[2]

    @property
    def task_name(self) -> str:
        return task_name(self.task_path)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Triage:
    """Failure groups, and what they cover."""

    groups: list[FailureGroup] = field(default_factory=list)
    # The failures grouped (at most ``limit``), and from when.
    rows: int = 0
    since: datetime | None = None
    hours: int = GROUP_HOURS
    limit: int = GROUP_ROWS
    # True when the window held more than ``limit`` failures: only the newest were read.
    capped: bool = False
    # What triage_fingerprint() answers while the groups stay the same.
    fingerprint: str = ""


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def filter_time(moment: datetime) -> str:
    """``moment`` as the list's time filters read it: local time, to the minute when whole.

    Whole minutes are what the filter form's datetime-local inputs show and send back,
    so the form keeps a group's window when it is submitted again.
    """
    local = timezone.localtime(moment).replace(tzinfo=None)
    return local.strftime("%Y-%m-%dT%H:%M") if local == _minute(local) else local.isoformat()


def group_query(*, task_path: str, exc_type: str, since: datetime) -> str:
    """The results list's query string selecting the failures of one group."""
    query = QueryDict(mutable=True)
    query["status"] = ResultStatus.FAILED.value
    query["task_path"] = task_path
    query["exception"] = exc_type
    query["finished_after"] = filter_time(since)
    return query.urlencode()


def failure_groups(
    *,
    sort: str = "last_seen",
    hours: int = GROUP_HOURS,
    limit: int = GROUP_ROWS,
    now: datetime | None = None,
    using: str | None = None,
) -> Triage:
    """Group the newest failures (at most ``limit`` of the last ``hours``), in one query.

    ``sort``: "last_seen" (most recent first) or "count" (biggest first).  Failures
    whose exception could not be saved have no class and are grouped under "".
    """
    now = now or timezone.now()
    using = using or router.db_for_read(DBTaskResult)
    # From a whole minute: the list's filter form can then show the window's start.
    since = _minute(now - timedelta(hours=hours))
    rows = list(
        DBTaskResult.objects.using(using)
        .filter(status=ResultStatus.FAILED, finished_at__gte=since)
        .order_by("-finished_at")
        .values_list(
            "task_path",
            KT("exception_data__exc_type"),
            KeyTransform("exc_args", "exception_data"),
            "finished_at",
        )[: limit + 1]
    )
    window_fp = _window_fingerprint(since, rows[0][3] if rows else None, len(rows))
    capped = len(rows) > limit
    if capped:
        rows = rows[:limit]
        # The window then starts at the first whole minute after the oldest failure read:
        # every failure since was read, and the groups' links select from there.
        start = _minute(rows[-1][3]) + timedelta(minutes=1)
        kept = [row for row in rows if row[3] >= start]
        if kept:
            rows, since = kept, start
        else:  # one minute held more than ``limit`` failures: from the oldest read
            since = rows[-1][3]
    counts: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], datetime] = {}
    last: dict[tuple[str, str], datetime] = {}
    patterns: dict[tuple[str, str], Counter[str]] = {}
    # Many failures repeat a message word for word: each is made a pattern once.
    pattern_of: dict[str, str] = {}
    for task_path, exc_type, exc_args, finished_at in rows:
        key = (task_path, exc_type or "")
        counts[key] += 1
        # Newest first: the first row seen is the last failure, the last one the first.
        last.setdefault(key, finished_at)
        first[key] = finished_at
        message = exception_message(exc_args) if exc_args is not None else ""
        pattern = pattern_of.get(message)
        if pattern is None:
            pattern = pattern_of[message] = message_pattern(message)
        patterns.setdefault(key, Counter())[pattern] += 1
    groups = [
        FailureGroup(
            task_path=key[0],
            exc_type=key[1],
            count=n,
            first_seen=first[key],
            last_seen=last[key],
            patterns=patterns[key].most_common(TOP_PATTERNS),
            pattern_count=len(patterns[key]),
            query=group_query(task_path=key[0], exc_type=key[1], since=since),
        )
        for key, n in counts.items()
    ]
    if sort == "count":
        groups.sort(key=lambda g: (-g.count, -g.last_seen.timestamp()))
    else:
        groups.sort(key=lambda g: (-g.last_seen.timestamp(), -g.count))
    return Triage(
        groups=groups,
        rows=len(rows),
        since=since,
        hours=hours,
        limit=limit,
        capped=capped,
        fingerprint=window_fp,
    )


def _window_fingerprint(window_start: datetime, newest: Any, count: int) -> str:
    """The groups' fingerprint: the window, its newest failure, how many it holds (capped)."""
    if isinstance(newest, str):  # SQLite's raw text of a UTC time
        parsed = parse_datetime(newest)
        newest = parsed.replace(tzinfo=dt_timezone.utc) if parsed else None
    stamp = newest.timestamp() if isinstance(newest, datetime) else None
    return fingerprint((window_start.timestamp(), stamp, count))


def triage_fingerprint(
    *,
    hours: int = GROUP_HOURS,
    limit: int = GROUP_ROWS,
    now: datetime | None = None,
    using: str | None = None,
) -> str:
    """What changes whenever the groups would, in one statement of two index probes.

    The window's newest failure (a new failure) and its number of failures, counted
    up to ``limit`` + 1 (a retry, a prune, a failure leaving the window), and the
    window's start (a new minute).  ``failure_groups`` gives the same from its rows.
    """
    now = now or timezone.now()
    using = using or router.db_for_read(DBTaskResult)
    window_start = _minute(now - timedelta(hours=hours))
    window = DBTaskResult.objects.using(using).filter(
        status=ResultStatus.FAILED, finished_at__gte=window_start
    )
    newest = window.order_by("-finished_at").values("finished_at")[:1]
    capped = window.order_by("-finished_at").values("pk")[: limit + 1]
    newest_sql, newest_params = newest.query.get_compiler(using=using).as_sql()
    capped_sql, capped_params = capped.query.get_compiler(using=using).as_sql()
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT ({newest_sql}), (SELECT COUNT(*) FROM ({capped_sql}) w)",
            [*newest_params, *capped_params],
        )
        row = cursor.fetchone()
    return _window_fingerprint(window_start, row[0], int(row[1]))


def recent_exception_classes(
    rows: QuerySet[DBTaskResult] | None = None, *, limit: int = CLASS_SUGGESTION_ROWS
) -> list[str]:
    """The exception classes of the newest ``limit`` failed results, sorted (one query)."""
    if rows is None:
        rows = DBTaskResult.objects.all()
    classes = (
        rows.filter(status=ResultStatus.FAILED)
        .order_by("-enqueued_at")
        .values_list(KT("exception_data__exc_type"), flat=True)[:limit]
    )
    return sorted({c for c in classes if c})
