"""Benchmark db_worker on SQLite and PostgreSQL and print one table.

    make bench                       # scripts/bench.sh: durable private PostgreSQL + SQLite
    python benchmarks/worker.py [--db sqlite|postgres|both] [--tasks 2000] [--repeat 2]

Measures, per database: its own single-row commit rate (1, 2 and 4 clients), the
enqueue rate (autocommit, in alternation with single-row commits measured
alongside as its bound, and in one transaction), the drain rate of no-op tasks
with 1, 2 and 4 worker processes and of 10 ms sleeping tasks with threads (counted
from the rows: first started_at to last finished_at, so start-up doesn't count),
pickup latency (enqueue -> started_at), worker RSS idle and after a drain, and
tasks run twice or never.  Every rate is also shown as a fraction of what the
commit rate allows (a task costs two writes: its claim, shared by a batch, and
its outcome).  Without PG* variables, PostgreSQL is started with scripts/pg.sh
(durable settings: fsync on).

The "no-op" task appends one line to a file, which is how runs are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- orchestration (no Django here) ----------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2, help="report the best of N runs")
    parser.add_argument("--measure", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        print(json.dumps(measure(args.measure, args.tasks, args.repeat)))
        return

    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = {}
    for db in databases:
        env = dict(os.environ, BENCH_DB=db, PYTHONPATH=str(ROOT))
        if db == "postgres":
            env.update(postgres_env())
        print(f"measuring {db}...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--measure", db, "--tasks", str(args.tasks)]
        command += ["--repeat", str(args.repeat)]
        process = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)
        results[db] = json.loads(process.stdout.strip().splitlines()[-1])
    print_table(results, args.tasks)


def postgres_env() -> dict[str, str]:
    if os.environ.get("PGHOST"):
        return {}
    script = ROOT / "scripts" / "pg.sh"
    env = dict(os.environ, DJANGO_TASKS_PG_FAST="0")
    subprocess.run([str(script), "start"], env=env, check=True)
    output = subprocess.run([str(script), "env"], env=env, capture_output=True, text=True)
    values = {}
    for line in output.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            values[key] = shlex.split(value)[0] if value else ""
    return values


def print_table(results: dict[str, dict[str, Any]], tasks: int) -> None:
    dbs = list(results)
    names = {"sqlite": "SQLite (WAL)", "postgres": "PostgreSQL"}
    first = next(iter(results.values()))
    print()
    print(
        f"db_worker benchmark: {first['cpus']} CPUs, Python {platform.python_version()}, "
        f"Django {first['django']}, {tasks:,} tasks per drain, best of {first['repeat']} runs"
    )
    width = 44
    print(f"{'':{width}}" + "".join(f"{names[db]:>26}" for db in dbs))

    def row(label: str, cells: list[str]) -> None:
        print(f"{label:{width}}" + "".join(f"{cell:>26}" for cell in cells))

    def cell(db: str, value: float | None, bound: float | None = None, unit: str = "/s") -> str:
        # Rows for Django 6's django.tasks are None on older Django.
        if value is None:
            return "-"
        text = f"{value:,.0f}{unit}"
        if bound:
            text += f" ({value / bound:.0%})"
        return text

    for clients in (1, 2, 4):
        row(
            f"DB single-row commits, {clients} client(s)",
            [cell(db, results[db]["commits"][str(clients)]) for db in dbs],
        )
    enqueue = {db: results[db]["enqueue"] for db in dbs}
    row(
        "enqueue, autocommit (% of commits alongside)",
        [cell(db, enqueue[db]["autocommit"], enqueue[db]["commits"]) for db in dbs],
    )
    row(
        "  ... while a worker waits (PostgreSQL: NOTIFY)",
        [cell(db, enqueue[db]["notifying"], enqueue[db]["commits"]) for db in dbs],
    )
    row(
        "  single-row commits alongside, 1 client",
        [cell(db, enqueue[db]["commits"]) for db in dbs],
    )
    row(
        "  ... django.tasks task (% of django_tasks)",
        [cell(db, enqueue[db].get("django_api"), enqueue[db]["autocommit"]) for db in dbs],
    )
    row("enqueue, one transaction", [cell(db, enqueue[db]["transaction"]) for db in dbs])
    for processes in (1, 2, 4):
        row(
            f"drain no-op, {processes} process(es) (% of bound)",
            [
                cell(
                    db,
                    results[db]["drain"][str(processes)],
                    results[db]["commits"][str(processes)] / 2,
                )
                for db in dbs
            ],
        )
    for processes in (1, 4):
        row(
            f"  ... django.tasks, {processes} process(es) (% of django_tasks)",
            [
                cell(
                    db,
                    results[db]["drain_django_api"].get(str(processes)),
                    results[db]["drain"][str(processes)],
                )
                for db in dbs
            ],
        )
    for key in first["sleep"]:
        processes, threads = (int(x) for x in key.split("x"))
        row(
            f"drain 10 ms sleeps, {processes}x{threads} threads (% of ideal)",
            [cell(db, results[db]["sleep"][key], processes * threads * 100) for db in dbs],
        )
    row(
        "pickup latency p50 / p95",
        [
            f"{results[db]['latency']['p50']:.1f} / {results[db]['latency']['p95']:.1f} ms"
            f" (int. {results[db]['latency']['interval']:g}s)"
            for db in dbs
        ],
    )
    row(
        "worker RSS idle, 1 / 8 threads (OS threads)",
        [
            f"{results[db]['rss']['idle_1']:.1f} / {results[db]['rss']['idle_8']:.1f} MB"
            f" ({results[db]['rss']['os_threads_1']:.0f}/{results[db]['rss']['os_threads_8']:.0f} thr.)"
            for db in dbs
        ],
    )
    row(
        "idle worker CPU, polling every 0.1 s",
        [f"{results[db]['rss']['idle_cpu']:.2%} of a core" for db in dbs],
    )
    row(
        f"worker RSS after {tasks:,} tasks (1 thread)",
        [f"{results[db]['rss']['after']:.1f} MB" for db in dbs],
    )
    row(
        "tasks run twice / never run",
        [f"{results[db]['double_runs']} / {results[db]['never_run']}" for db in dbs],
    )


# --- measuring (in a subprocess per database) --------------------------------------


def measure(db: str, tasks: int, repeat: int) -> dict[str, Any]:
    import django

    workdir = Path(tempfile.mkdtemp(prefix="db_worker-bench-"))
    if db == "sqlite":
        os.environ["BENCH_DB_NAME"] = str(workdir / "bench.sqlite3")
    else:
        os.environ["BENCH_DB_NAME"] = "django_tasks_bench"
        create_pg_database("django_tasks_bench")
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    bench = Bench(db, workdir, tasks, repeat)
    return bench.run()


def create_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


class Bench:
    def __init__(self, db: str, workdir: Path, tasks: int, repeat: int) -> None:
        self.db = db
        self.repeat = max(1, repeat)
        self.workdir = workdir
        self.tasks = tasks
        self.double_runs = 0
        self.never_run = 0
        self.runs_file = str(workdir / "runs.txt")

    def run(self) -> dict[str, Any]:
        import django

        def best(measure: Any) -> Any:
            """The best of ``repeat`` runs: the machine may be busy with other work."""
            runs = [measure() for _ in range(self.repeat)]
            if isinstance(runs[0], tuple):
                return tuple(max(values) for values in zip(*runs, strict=True))
            return max(runs)

        result: dict[str, Any] = {
            "cpus": os.cpu_count(),
            "django": django.get_version(),
            "repeat": self.repeat,
        }
        result["commits"] = {str(n): best(lambda n=n: self.commit_rate(n)) for n in (1, 2, 4)}
        result["enqueue"] = self.enqueue_rates()
        result["drain"] = {str(p): best(lambda p=p: self.drain(processes=p)) for p in (1, 2, 4)}
        result["drain_django_api"] = {}
        if django.VERSION >= (6, 0):
            from benchmarks.django_api_tasks import record_run

            result["drain_django_api"] = {
                str(p): best(lambda p=p: self.drain(processes=p, task=record_run)) for p in (1, 4)
            }
        result["sleep"] = {
            f"{p}x{t}": best(lambda p=p, t=t: self.drain(processes=p, threads=t, seconds=0.01))
            for p, t in ((1, 8), (2, 8))
        }
        result["latency"] = self.latency()
        result["rss"] = self.rss()
        result["double_runs"] = self.double_runs
        result["never_run"] = self.never_run
        return result

    # -- helpers

    def reset(self) -> None:
        """Empty the tables, so that every measurement starts from the same state."""
        from django.db import connection

        from django_tasks.backends.database.models import DBTaskResult, DBWorker

        if connection.vendor == "postgresql":
            # Not DELETE: dead rows and bloated indexes would slow the next run.
            tables = ", ".join(
                connection.ops.quote_name(m._meta.db_table) for m in (DBTaskResult, DBWorker)
            )
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {tables}")
        else:
            DBTaskResult.objects.all().delete()
            DBWorker.objects.all().delete()
        Path(self.runs_file).unlink(missing_ok=True)

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            "django",
            "db_worker",
            "--settings=benchmarks.settings",
            "--no-startup-delay",
            *args,
        ]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)

    def wait_registered(self, count: int) -> None:
        from django_tasks.backends.database.models import DBWorker

        deadline = time.monotonic() + 60
        while DBWorker.objects.count() < count:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.05)

    def stop(self, worker: subprocess.Popen[bytes]) -> None:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=120)

    def wait_done(self, count: int, timeout: float = 600, poll: float = 0.2) -> None:
        from django_tasks.backends.database.models import DBTaskResult

        deadline = time.monotonic() + timeout
        while DBTaskResult.objects.finished().count() < count:
            if time.monotonic() > deadline:
                raise RuntimeError("drain did not finish")
            time.sleep(poll)  # rare polls: this process shares the CPUs with the workers

    def check_runs(self, tokens: int) -> None:
        text = Path(self.runs_file).read_text() if Path(self.runs_file).exists() else ""
        ran = Counter(text.split())
        self.double_runs += sum(1 for n in ran.values() if n > 1)
        self.never_run += sum(1 for i in range(tokens) if ran[str(i)] == 0)

    # -- measurements

    def commit_rate(self, clients: int, seconds: float = 2.0) -> float:
        """Single-row UPDATE transactions per second, ``clients`` connections at once."""
        from django.db import connection

        self.counter_table(clients)
        connection.close()
        start_at = str(time.time() + 1.5)  # all clients together, once connected
        name = os.environ["BENCH_DB_NAME"]
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from benchmarks.worker import commit_client; commit_client(sys.argv[1:])",
                    self.db,
                    name,
                    str(i),
                    str(seconds),
                    start_at,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(clients)
        ]
        return sum(float(p.communicate()[0]) for p in processes)

    def counter_table(self, rows: int) -> None:
        """(Re)create the table whose rows the commit-rate clients update."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_counter")
            cursor.execute("CREATE TABLE bench_counter (id integer PRIMARY KEY, n integer)")
            for i in range(rows):
                cursor.execute("INSERT INTO bench_counter VALUES (%s, 0)", [i])

    def enqueue_rates(self, batch: int = 100) -> dict[str, float]:
        """Enqueue rates, autocommit ones beside the commit rate measured alongside.

        A round is: ``batch`` single-row commits (the bare client of commit_rate(),
        in this process), ``batch`` autocommit enqueues, ``batch`` commits again,
        then ``batch`` enqueues while a worker waits (on PostgreSQL each then sends
        NOTIFY; the "worker" is a row alone).  The rounds run ``repeat`` x tasks /
        batch times and each rate pools its batches: so the enqueue rate and its
        bound are measured on the same machine at the same time (a shared VM's
        commit rate drifts by 10 % or more from one minute to the next).  The
        one-transaction rate is the best of ``repeat`` runs.
        """
        import django
        from django.db import transaction

        from django_tasks.backends.database.models import DBWorker
        from tests.tasks import noop_task

        enqueuers: dict[str, Any] = {"autocommit": noop_task, "notifying": noop_task}
        kinds = ["commits", "autocommit", "commits", "notifying"]
        if django.VERSION >= (6, 0):
            from benchmarks.django_api_tasks import noop_task as django_api_noop

            enqueuers["django_api"] = django_api_noop
            kinds += ["autocommit", "django_api"]  # the two APIs side by side
        self.reset()
        self.counter_table(1)
        execute, sql = commit_statement(self.db, os.environ["BENCH_DB_NAME"])
        worker = DBWorker.objects.create(host="bench", pid=0, backend_name="default")
        waiting = DBWorker.objects.filter(pk=worker.pk)
        spent: dict[str, float] = dict.fromkeys(kinds, 0.0)
        runs: Counter[str] = Counter()
        rounds = max(1, self.repeat * self.tasks // batch)
        for _ in range(rounds):
            for kind in kinds:
                if kind != "commits":
                    waiting.update(waiting=kind == "notifying")
                began = time.perf_counter()
                if kind == "commits":
                    for _ in range(batch):
                        execute(sql, (0,))
                else:
                    enqueue = enqueuers[kind].enqueue
                    for _ in range(batch):
                        enqueue()
                spent[kind] += time.perf_counter() - began
                runs[kind] += batch
        rates = {kind: runs[kind] / spent[kind] for kind in runs}

        def in_transaction() -> float:
            self.reset()
            began = time.perf_counter()
            with transaction.atomic():
                for _ in range(self.tasks):
                    noop_task.enqueue()
            return self.tasks / (time.perf_counter() - began)

        rates["transaction"] = max(in_transaction() for _ in range(self.repeat))
        self.reset()
        return rates

    def drain(
        self, *, processes: int, threads: int = 1, seconds: float = 0.0, task: Any = None
    ) -> float:
        """Start idle workers, warm them up, enqueue in one transaction, time the drain.

        The drain is timed from the rows (first started_at to last finished_at).
        ``task``: the task to drain (default: tests' ``record_run``, of django_tasks).
        """
        from django.db import transaction
        from django.db.models import Max, Min

        from django_tasks.backends.database.models import DBTaskResult
        from tests.worker_helpers import record_run

        record_run = task or record_run
        self.reset()
        interval = "0.01" if self.db == "sqlite" else "1"
        worker = self.start_worker(
            "--interval", interval, "--processes", str(processes), "--threads", str(threads)
        )
        self.wait_registered(processes)
        # Warm up: a few tasks per thread start every thread and open its connection
        # (an idle worker runs one), which is start-up, not draining.
        warmup = processes * threads * 3
        with transaction.atomic():
            for i in range(warmup):
                record_run.enqueue(self.runs_file, f"warmup-{i}", seconds)
        self.wait_done(warmup, poll=0.05)
        DBTaskResult.objects.all().delete()
        with transaction.atomic():
            for i in range(self.tasks):
                record_run.enqueue(self.runs_file, str(i), seconds)
        self.wait_done(self.tasks)
        self.stop(worker)
        span = DBTaskResult.objects.aggregate(start=Min("started_at"), end=Max("finished_at"))
        self.check_runs(self.tasks)
        return float(self.tasks / (span["end"] - span["start"]).total_seconds())

    def latency(self, count: int = 200) -> dict[str, float]:
        import random

        from django_tasks.backends.database.models import DBTaskResult
        from tests.worker_helpers import record_run

        self.reset()
        interval = 0.1 if self.db == "sqlite" else 1.0
        worker = self.start_worker("--interval", str(interval))
        self.wait_registered(1)
        time.sleep(0.5)
        rng = random.Random(5)
        for i in range(count):
            record_run.enqueue(self.runs_file, str(i))
            time.sleep(rng.uniform(0.005, 0.025))
        self.wait_done(count)
        self.stop(worker)
        self.check_runs(count)
        latencies = sorted(
            (started - enqueued).total_seconds() * 1000  # type: ignore[operator]
            for started, enqueued in DBTaskResult.objects.values_list("started_at", "enqueued_at")
        )
        return {
            "p50": statistics.median(latencies),
            "p95": latencies[int(len(latencies) * 0.95)],
            "interval": interval,
        }

    def rss(self) -> dict[str, float]:
        import psutil
        from django.db import transaction

        from tests.worker_helpers import record_run

        def rss_of(process: subprocess.Popen[bytes]) -> float:
            return float(psutil.Process(process.pid).memory_info().rss) / 2**20

        self.reset()
        result: dict[str, float] = {}
        for threads in (8, 1):
            worker = self.start_worker("--interval", "0.1", "--threads", str(threads))
            self.wait_registered(1)
            time.sleep(1)
            # The median of 5 samples: RSS moves by a few pages from one second to the next.
            samples = []
            for _ in range(5):
                samples.append(rss_of(worker))
                time.sleep(0.2)
            result[f"idle_{threads}"] = statistics.median(samples)
            result[f"os_threads_{threads}"] = psutil.Process(worker.pid).num_threads()
            if threads == 1:
                # CPU an idle worker burns polling every 0.1 s (and heartbeating).
                cpu = psutil.Process(worker.pid).cpu_times()
                time.sleep(5)
                after = psutil.Process(worker.pid).cpu_times()
                result["idle_cpu"] = (after.user + after.system - cpu.user - cpu.system) / 5
            if threads == 1:
                with transaction.atomic():
                    for i in range(self.tasks):
                        record_run.enqueue(self.runs_file, str(i))
                self.wait_done(self.tasks)
                time.sleep(0.5)
                result["after"] = rss_of(worker)
                self.check_runs(self.tasks)
            self.stop(worker)
            self.reset()
        return result


def commit_statement(db: str, name: str) -> tuple[Callable[..., Any], str]:
    """A bare client's connection: ``(execute, sql)``; ``execute(sql, (row,))`` commits
    one single-row UPDATE of ``bench_counter``, the unit of the commit rates."""
    if db == "sqlite":
        import sqlite3

        conn = sqlite3.connect(name, isolation_level=None, timeout=20)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn.execute, "UPDATE bench_counter SET n = n + 1 WHERE id = ?"
    import psycopg

    pg_conn = psycopg.connect(dbname=name, autocommit=True)
    return pg_conn.execute, "UPDATE bench_counter SET n = n + 1 WHERE id = %s"


def commit_client(argv: list[str]) -> None:
    """One client of commit_rate(): commit for ``seconds`` from ``start_at``; print the rate."""
    db, name, row, seconds, start_at = (
        argv[0],
        argv[1],
        int(argv[2]),
        float(argv[3]),
        float(argv[4]),
    )
    execute, sql = commit_statement(db, name)
    time.sleep(max(start_at - time.time(), 0))
    done = 0
    end = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < end:
        execute(sql, (row,))
        done += 1
    print(done / (time.perf_counter() - began))


if __name__ == "__main__":
    main()
