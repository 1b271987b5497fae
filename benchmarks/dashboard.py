"""Seed a big results table and time every dashboard page and fragment on it.

    eval "$(scripts/pg.sh env)"
    TEST_DB=postgres .venvs/py311-dj52/bin/python benchmarks/dashboard.py --rows 1000000

Uses the database tests/settings.py selects (TEST_DB=postgres: the PG* variables;
otherwise a SQLite file in /tmp) under the name --database (created on PostgreSQL
if missing, then migrated).  The table is seeded once (tests/dashboard/seed.py:
COPY on PostgreSQL) and reused while it holds --rows rows; --reseed empties and
fills it again.  Every page is requested --repeat times through the Django test
client as a superuser; the table shows the median server time, the query count,
and the slowest query, whose plan (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY
PLAN on SQLite) is printed below the table.  A benchmark, not a test: the numbers
depend on the machine and its load (printed with them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", default="django_tasks_dashboard_bench")
    parser.add_argument("--repeat", type=int, default=5, help="requests per page (median shown)")
    parser.add_argument("--reseed", action="store_true", help="empty and seed the table again")
    parser.add_argument("--only", default="", help="only pages whose name contains this")
    parser.add_argument("--plans", action="store_true", help="print every page's slowest plan")
    return parser.parse_args()


def configure(database: str) -> None:
    import django
    from django.conf import settings

    if os.environ.get("TEST_DB") == "postgres":
        create_pg_database(database)
        settings.DATABASES["default"]["NAME"] = database
    else:
        settings.DATABASES["default"]["NAME"] = str(Path("/tmp") / f"{database}.sqlite3")
    settings.TASKS = {
        "default": {
            "BACKEND": "django_tasks.backends.database.DatabaseBackend",
            "QUEUES": [],
            "ENQUEUE_ON_COMMIT": False,
        }
    }
    django.setup()


def create_pg_database(name: str) -> None:
    import psycopg

    params: dict[str, Any] = {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", "postgres"),
        "dbname": "postgres",
        "autocommit": True,
    }
    if os.environ.get("PGPASSWORD"):
        params["password"] = os.environ["PGPASSWORD"]
    with psycopg.connect(**params) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def prepare(rows: int, *, reseed: bool) -> None:
    """Migrate, and seed the table unless it already holds ``rows`` rows."""
    from django.core.management import call_command
    from django.db import connection

    from django_tasks.backends.database.models import DBTaskResult
    from tests.dashboard.seed import seed_results

    call_command("migrate", verbosity=0)
    table = DBTaskResult._meta.db_table
    have = DBTaskResult.objects.count()
    if have == rows and not reseed:
        print(f"Reusing the {have} rows of {table} ({connection.vendor}).")
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")
    seed_results(rows)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(f"Seeded {rows} rows in {time.perf_counter() - started:.1f}s on {connection.vendor}.")


def roll_up() -> None:
    """Count the seeded day's finished tasks per minute, as running workers would have."""
    from django_tasks.backends.database.models import DBQueue, DBQueueMinute, DBRollup
    from django_tasks.backends.database.services import rollup

    started = time.perf_counter()
    # A fresh start each run, so the roll-up's cost is measured on the rows as they are.
    for model in (DBQueueMinute, DBRollup, DBQueue):
        model.objects.filter(backend_name="default").delete()
    calls = minutes = 0
    while counted := rollup.roll_up(backend_name="default"):
        calls += 1
        minutes += counted
    seconds = time.perf_counter() - started
    print(
        f"Rolled up {minutes} minutes in {calls} calls, {seconds:.2f}s"
        f" ({1000 * seconds / max(calls, 1):.1f} ms per call of up to {rollup.MAX_MINUTES})."
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    name: str
    path: str
    headers: dict[str, str] | None = None
    method: str = "get"


@dataclass(slots=True, kw_only=True)
class Timing:
    page: Page
    median_ms: float
    queries: int
    status: int
    slowest_sql: str
    slowest_ms: float


def list_url(**params: str) -> str:
    from django.urls import reverse

    base = reverse("admin:django_tasks_database_dbtaskresult_changelist")
    return f"{base}?{urlencode(params)}" if params else base


def deep_cursor(sort: str, depth: int, filters: dict[str, str] | None = None) -> str:
    """The ``after`` cursor of the row ``depth`` rows down the list in this sort."""
    from django_tasks.backends.database.models import DBTaskResult
    from django_tasks_admin.filters import ResultFilterSet
    from django_tasks_admin.list_state import parse_sort
    from django_tasks_admin.pagination import KeysetPaginator

    parsed = parse_sort(sort)
    assert parsed is not None, sort
    rows = ResultFilterSet(data=filters or {}, queryset=DBTaskResult.objects.all()).qs
    paginator = KeysetPaginator(rows, 50, sort=parsed)
    # One OFFSET query, outside the timing: the row whose cursor page 1,000 follows.
    if parsed.key.nullable:
        rows = rows.filter(**{f"{parsed.key.field}__isnull": False})
    # A small table has no page 1,000: half-way down it then.
    depth = min(depth, max(1, rows.count() // 2))
    row = rows.order_by(*paginator.ordering())[depth - 1 : depth].get()
    return paginator.encode(row)


def pages() -> list[Page]:
    """Every page and htmx fragment of the dashboard, with filters the seeded data has."""
    from django.urls import reverse
    from django.utils import timezone

    from django_tasks.backends.database.models import DBTaskResult
    from django_tasks_admin.list_state import SORT_KEYS
    from django_tasks_admin.triage import failure_groups
    from tests.dashboard.seed import COMMON_EXC_TYPE, NEEDLE, RARE_EXC_TYPE, TASK_PATHS

    prefix = "admin:django_tasks_database_dbtaskresult_"
    now = timezone.now()
    day_ago = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    week_ago = (now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    six_days_ago = (now - timedelta(days=6)).strftime("%Y-%m-%dT%H:%M")
    failed = DBTaskResult.objects.filter(status="FAILED").order_by("-finished_at").first()
    assert failed is not None
    rows_target = {"HX-Request": "true", "HX-Target": "dt-rows"}
    htmx = {"HX-Request": "true"}

    # The failure groups the overview shows, and the biggest one's list and retry preview.
    groups = failure_groups(sort="count").groups
    assert groups, "the seeded table has no failures in the last 24 hours"
    result: list[Page] = [
        Page(name="overview", path=reverse(prefix + "overview")),
        Page(
            name="overview (groups by count)", path=reverse(prefix + "overview") + "?groups=count"
        ),
        Page(
            name="overview (htmx region)",
            path=reverse(prefix + "overview"),
            headers={"HX-Request": "true"},
        ),
        Page(
            name="overview groups poll (changed)",
            path=reverse(prefix + "overview") + "?tfp=stale",
            headers={"HX-Request": "true", "HX-Target": "dt-triage"},
        ),
        Page(
            name="overview groups poll (idle: 204)",
            path=reverse(prefix + "overview") + f"?tfp={failure_groups().fingerprint}",
            headers={"HX-Request": "true", "HX-Target": "dt-triage"},
        ),
        Page(name="results <biggest failure group>", path=f"{list_url()}?{groups[0].query}"),
        Page(name="results <smallest failure group>", path=f"{list_url()}?{groups[-1].query}"),
        Page(
            name="retry this group (preview, biggest)",
            path=f"{reverse(prefix + 'retry_matching')}?{groups[0].query}",
        ),
        Page(name="results", path=list_url()),
        Page(name="results (htmx rows)", path=list_url(), headers=rows_target),
    ]
    filters: dict[str, dict[str, str]] = {
        "status=FAILED": {"status": "FAILED"},
        "status=RUNNING": {"status": "RUNNING"},
        "status=NEW": {"status": "NEW"},
        "status=COMPLETE": {"status": "COMPLETE"},
        "queue=emails": {"queue": "emails"},
        "queue=emails,billing": {"queue": "emails,billing"},
        "task=<one path>": {"task": TASK_PATHS[3]},
        "task=<matches nothing>": {"task": "no.such.task"},
        "backend=default": {"backend": "default"},
        "api=django.tasks": {"api": "django.tasks"},
        "cancelled=yes": {"cancelled": "yes"},
        "cancelled=no": {"cancelled": "no"},
        "retrying=yes": {"retrying": "yes"},
        "priority 5..100": {"priority_min": "5", "priority_max": "100"},
        # No index of its own and no match: the list reads the whole enqueued_at index.
        "priority <matches nothing>": {"priority_min": "1000"},
        "enqueued last day": {"enqueued_after": day_ago},
        "enqueued a week ago": {"enqueued_after": week_ago, "enqueued_before": six_days_ago},
        "finished last day": {"finished_after": day_ago},
        "id=<one>": {"id": str(failed.pk)},
        "FAILED+queue+task": {"status": "FAILED", "queue": "emails", "task": TASK_PATHS[3]},
        "search <order id>": {"q": NEEDLE},
        "search <order id> in task": {"q": NEEDLE, "task": TASK_PATHS[3]},
        "search <nothing>": {"q": "no-such-order"},
        "search <task path>": {"q": TASK_PATHS[5]},
        # The exception filter: a class in a third of the failures, one in a thousand, none.
        "exception=<common>": {"exception": COMMON_EXC_TYPE},
        "exception=<rare>": {"exception": RARE_EXC_TYPE},
        "exception=<matches nothing>": {"exception": "no.such.Error"},
        "exception=<rare>+task": {"exception": RARE_EXC_TYPE, "task": TASK_PATHS[3]},
        "task_path=<one path>": {"task_path": TASK_PATHS[3]},
    }
    for name, params in filters.items():
        result.append(Page(name=f"results {name}", path=list_url(**params)))
    for column in SORT_KEYS:
        for sort in (f"-{column}", column):
            result.append(Page(name=f"results sort={sort}", path=list_url(sort=sort)))
            result.append(
                Page(
                    name=f"results sort={sort} page 1000",
                    path=list_url(sort=sort, after=deep_cursor(sort, 50 * 999)),
                )
            )
        result.append(
            Page(
                name=f"results FAILED sort=-{column}",
                path=list_url(status="FAILED", sort=f"-{column}"),
            )
        )
    result.append(
        Page(
            name="results FAILED page 1000",
            path=list_url(
                status="FAILED", after=deep_cursor("-enqueued", 50 * 999, {"status": "FAILED"})
            ),
        )
    )
    result += [
        Page(name="detail (FAILED)", path=reverse(prefix + "change", args=[failed.pk])),
        Page(
            name="detail (htmx body)",
            path=reverse(prefix + "change", args=[failed.pk]),
            headers={"HX-Request": "true"},
        ),
        Page(name="retry all matching: all", path=reverse(prefix + "retry_matching")),
        Page(
            name="retry all matching: FAILED",
            path=reverse(prefix + "retry_matching") + "?status=FAILED",
        ),
        Page(
            name="retry all matching: queue",
            path=reverse(prefix + "retry_matching") + "?queue=emails",
        ),
        Page(name="cancel all matching: all", path=reverse(prefix + "cancel_matching")),
        Page(
            name="cancel all matching: NEW",
            path=reverse(prefix + "cancel_matching") + "?status=NEW",
        ),
        Page(name="queues", path=reverse(prefix + "queues")),
        Page(name="queues (htmx region)", path=reverse(prefix + "queues"), headers=htmx),
        Page(name="charts", path=reverse(prefix + "charts")),
        Page(name="charts: one queue", path=reverse(prefix + "charts") + "?queue=emails"),
        Page(name="charts (htmx region)", path=reverse(prefix + "charts"), headers=htmx),
        Page(name="metrics (Prometheus)", path=reverse(prefix + "metrics")),
        Page(name="prune form", path=reverse(prefix + "prune")),
        Page(
            name="prune dry run (14 d, *)",
            path=reverse(prefix + "prune")
            + "?"
            + urlencode(
                {"preview": "1", "backend": "default", "queue_name": "*", "min_age_days": "14"}
            ),
        ),
        Page(
            name="prune dry run (29 d, default)",
            path=reverse(prefix + "prune")
            + "?"
            + urlencode(
                {
                    "preview": "1",
                    "backend": "default",
                    "queue_name": "default",
                    "min_age_days": "29",
                }
            ),
        ),
    ]
    return result


def time_page(client: Any, page: Page, repeat: int) -> Timing:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_tasks.backends.database.models import DBTaskResult

    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (page.headers or {}).items()}
    request: Callable[..., Any] = getattr(client, page.method)
    request(page.path, **headers)  # warm: caches, prepared plans, pages in memory
    times = []
    queries: list[dict[str, str]] = []
    status = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = request(page.path, **headers)
            times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
        queries = captured.captured_queries
    # The slowest query of the results table (the session and user lookups are not news).
    table = DBTaskResult._meta.db_table
    ours = [q for q in queries if table in q["sql"]] or queries
    slowest = max(ours, key=lambda q: float(q["time"]), default={"sql": "", "time": "0"})
    return Timing(
        page=page,
        median_ms=statistics.median(times),
        queries=len(queries),
        status=status,
        slowest_sql=slowest["sql"],
        slowest_ms=float(slowest["time"]) * 1000,
    )


def explain(sql: str) -> str:
    from django.db import connection

    if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
        return "(not a SELECT)"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())


def plan_summary(plan: str) -> str:
    """The plan's node names, in order: enough to see a Seq Scan in the table."""
    nodes = []
    for line in plan.splitlines():
        text = line.strip().removeprefix("->").strip()
        if not text or text.startswith(("Planning", "Execution", "Buffers", "Sort Key")):
            continue
        if any(text.startswith(p) for p in ("Filter", "Index Cond", "Rows Removed", "Heap")):
            continue
        node = text.split("  (")[0]
        if node not in nodes:
            nodes.append(node)
    return "; ".join(nodes)[:110]


def main() -> None:
    args = parse_args()
    configure(args.database)

    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    prepare(args.rows, reseed=args.reseed)
    roll_up()
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    client = Client()
    client.force_login(user)

    timings = []
    for page in pages():
        if args.only and args.only not in page.name:
            continue
        timing = time_page(client, page, args.repeat)
        timings.append(timing)
        print(
            f"  {timing.median_ms:8.1f} ms  {timing.queries:3d} q  {timing.page.name}",
            file=sys.stderr,
        )

    load = os.getloadavg()
    print(
        f"\n{args.rows} rows, {connection.vendor}, median of {args.repeat} requests per page,"
        f" load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)\n"
    )
    print(f"| {'page':<42} | {'ms':>7} | {'q':>3} | {'slowest q ms':>12} | its plan |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 5}|{'-' * 14}|---|")
    plans = []
    for t in timings:
        plan = explain(t.slowest_sql) if t.slowest_sql else ""
        plans.append((t, plan))
        flag = "" if t.status in (200, 204) else f" [HTTP {t.status}]"
        print(
            f"| {t.page.name + flag:<42} | {t.median_ms:7.1f} | {t.queries:3d} |"
            f" {t.slowest_ms:12.1f} | {plan_summary(plan)} |"
        )
    over = [t for t in timings if t.median_ms > 100]
    print(f"\nPages over 100 ms: {len(over)} of {len(timings)}")
    for t, plan in plans:
        if args.plans or t.median_ms > 100:
            print(f"\n=== {t.page.name}: {t.median_ms:.1f} ms, {t.queries} queries")
            print(t.slowest_sql[:2000])
            print("---")
            print(plan)


if __name__ == "__main__":
    main()
