"""The demo project (``python -m example``) starts, runs its tasks and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import django
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.slow

# On Django 6 the demo also defines tasks with django.tasks (example/django_tasks6.py).
DJANGO_TASKS_API = django.VERSION >= (6, 0)
TABLE = "django_tasks_database_dbtaskresult"


def demo_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEMO_"))}
    env.update(
        DEMO_DATA_DIR=str(data_dir),
        DEMO_PASSWORD="demo-password",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db, timeout=20) as connection:
        return int(connection.execute(sql).fetchone()[0])


def test_seed_only(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "example", "--seed-only"],
        env=demo_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "Logins: admin / demo-password" in done.stdout
    db = tmp_path / "demo.sqlite3"
    assert count(db, "SELECT COUNT(*) FROM django_tasks_database_dbtaskresult") > 40
    assert (tmp_path / "static" / "staticfiles.json").exists()  # collectstatic for WhiteNoise
    theirs = count(db, f"SELECT COUNT(*) FROM {TABLE} WHERE api = 'django.tasks'")
    ours = count(db, f"SELECT COUNT(*) FROM {TABLE} WHERE api = 'django_tasks'")
    assert ours > 40
    if DJANGO_TASKS_API:
        # Enqueued through django.tasks (not only old rows written directly).
        assert (
            count(db, f"SELECT COUNT(*) FROM {TABLE} WHERE api = 'django.tasks' AND status = 'NEW'")
            >= 9
        )
        assert theirs >= 14
    else:
        assert theirs == 0


def test_new_passwords_unless_demo_password_and_a_shell_on_the_demo(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    del env["DEMO_PASSWORD"]
    logins = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "example", "--seed-only"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        assert "set DEMO_PASSWORD to keep one" in done.stdout
        logins.append(re.search(r"Logins: admin / (\S+)", done.stdout)[1])  # type: ignore[index]
    assert logins[0] != logins[1]
    # The shell the README and the demo's banner give, on the demo's database.
    shell = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", SHELL_CODE],
        env={**env, "DJANGO_SETTINGS_MODULE": "example.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    assert int(shell.stdout.split()[-1]) > 40


SHELL_CODE = (
    "from django_tasks.backends.database.models import DBTaskResult; "
    "print(DBTaskResult.objects.count())"
)


def test_demo_serves_the_dashboard_and_runs_tasks(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "example", "--port", str(port), "--no-trickle"],
        env=demo_env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    db = tmp_path / "demo.sqlite3"
    try:
        deadline = time.monotonic() + 120
        login = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/") as response:
                    login = response.read().decode()
                    break
            except OSError:
                assert demo.poll() is None, demo.stdout.read().decode() if demo.stdout else ""
                time.sleep(0.5)
        assert login is not None and "csrfmiddlewaretoken" in login
        # The worker beside the server runs the seeded tasks: real failures appear.
        failed = (
            "SELECT COUNT(*) FROM django_tasks_database_dbtaskresult"
            " WHERE status = 'FAILED' AND enqueued_at > datetime('now', '-1 day')"
        )
        while time.monotonic() < deadline and count(db, failed) < 3:
            time.sleep(0.5)
        assert count(db, failed) >= 3
        if DJANGO_TASKS_API:
            # The same worker runs the django.tasks tasks: each kind finishes as it should.
            done = (
                f"SELECT COUNT(DISTINCT task_path || ':' || status) FROM {TABLE}"
                " WHERE api = 'django.tasks' AND status IN ('COMPLETE', 'FAILED')"
                " AND enqueued_at > datetime('now', '-1 day')"
            )
            while time.monotonic() < deadline and count(db, done) < 4:
                time.sleep(0.5)
            with sqlite3.connect(db, timeout=20) as connection:
                finished = set(
                    connection.execute(
                        f"SELECT task_path, status FROM {TABLE} WHERE api = 'django.tasks'"
                        " AND status IN ('COMPLETE', 'FAILED')"
                        " AND enqueued_at > datetime('now', '-1 day')"
                    )
                )
                context = connection.execute(
                    f"SELECT return_value FROM {TABLE} WHERE status = 'COMPLETE'"
                    " AND task_path = 'example.django_tasks6.rebuild_search_index'"
                ).fetchone()
            assert finished == {
                ("example.django_tasks6.rebuild_search_index", "COMPLETE"),
                ("example.django_tasks6.send_digest", "COMPLETE"),
                ("example.django_tasks6.import_feed", "COMPLETE"),
                ("example.django_tasks6.import_feed", "FAILED"),
            }
            assert '"attempt": 1' in context[0]  # takes_context: TaskContext passed
        # Static files come from WhiteNoise, under their hashed names (DEBUG is off).
        css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login)
        assert css is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{css[1]}") as response:
            assert response.status == 200
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            output = demo.communicate(timeout=60)[0].decode()
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise
    assert demo.returncode == 0, output
    assert "Log in as: admin / demo-password" in output
    assert ("Tasks written both ways" in output) == DJANGO_TASKS_API
    # Every child (worker, server) is gone with the demo.
    with pytest.raises(ProcessLookupError):
        os.killpg(demo.pid, 0)
