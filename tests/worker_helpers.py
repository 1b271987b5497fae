"""Helpers for tests that run real ``db_worker`` subprocesses, and the tasks they run.

Tasks here record each execution by appending a line to a file (``O_APPEND``
writes of one short line are atomic), so tests count runs independently of the
rows' statuses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.db import connection

from django_tasks import task

ROOT = Path(__file__).resolve().parent.parent

# --- tasks ---------------------------------------------------------------------


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@task()
def record_run(path: str, token: str, seconds: float = 0.0) -> str:
    """Append ``token`` to ``path`` (one line per execution), then sleep ``seconds``."""
    _append(path, token)
    if seconds:
        time.sleep(seconds)
    return token


@task()
def started_then_sleep(path: str, seconds: float) -> float:
    """Append "started" to ``path``, sleep, then append "finished"."""
    _append(path, "started")
    time.sleep(seconds)
    _append(path, "finished")
    return seconds


@task()
def fail_with(path: str, token: str) -> None:
    _append(path, token)
    raise ValueError(f"failed {token}")


NOT_A_TASK = "a string, not a task"


def runs(path: str | Path) -> Counter[str]:
    """How many times each token was recorded in ``path``."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return Counter()
    return Counter(text.split())


def run_order(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text().split()
    except FileNotFoundError:
        return []


# --- waiting -------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


# --- worker subprocesses -------------------------------------------------------


def worker_env(tasks: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """Environment for a subprocess using the current test database."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.worker_settings"
    env["DJANGO_TASKS_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("DJANGO_TASKS_WORKER_TASKS", None)
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT dumps every thread's stack (see wait())
    if tasks is not None:
        env["DJANGO_TASKS_WORKER_TASKS"] = json.dumps(tasks)
    env.update(extra)
    return env


class WorkerProcess:
    """A ``python -m django db_worker`` subprocess with its output in a file."""

    def __init__(
        self,
        *args: str,
        startup_delay: bool = False,
        tasks: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.output_file = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="db_worker-", suffix=".log", delete=False
        )
        command = [sys.executable, "-m", "django", "db_worker", *args]
        if not startup_delay:
            command.append("--no-startup-delay")
        self.process = subprocess.Popen(
            command,
            stdout=self.output_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**worker_env(tasks), **(env or {})},
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def wait(self, timeout: float = 120.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Where is it stuck?  faulthandler writes each thread's stack to the output.
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.kill()
            raise AssertionError(
                f"db_worker did not exit within {timeout}s; output:\n{self.output()}"
            ) from None

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return Path(self.output_file.name).read_text(errors="replace")

    def close(self) -> None:
        self.kill()
        self.output_file.close()
        Path(self.output_file.name).unlink(missing_ok=True)


class Workers:
    """Start workers and make sure none outlives the test (use as a fixture)."""

    def __init__(self) -> None:
        self.started: list[WorkerProcess] = []

    def start(self, *args: str, **kwargs: Any) -> WorkerProcess:
        worker = WorkerProcess(*args, **kwargs)
        self.started.append(worker)
        return worker

    def wait_all(
        self, workers: Iterable[WorkerProcess] | None = None, timeout: float = 180.0
    ) -> list[int]:
        return [w.wait(timeout) for w in (self.started if workers is None else workers)]

    def outputs(self) -> str:
        return "\n".join(f"--- pid {w.pid}\n{w.output()}" for w in self.started)

    def close(self) -> None:
        for worker in self.started:
            if worker.running():
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for worker in self.started:
            try:
                worker.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            worker.close()
