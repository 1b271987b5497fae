"""Run the demo: migrate, create an admin login, seed tasks, start db_worker and the server.

python -m example                 # http://127.0.0.1:8000/
python -m example --port 8001 --no-trickle
python -m example --seed-only     # prepare the database and exit
DEMO_PASSWORD=secret python -m example   # the same password at every start

A shell on the demo project (from the repository's root):
DJANGO_SETTINGS_MODULE=example.settings python -m django shell
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import django

ROOT = Path(__file__).resolve().parent.parent


# New passwords at every start, unless DEMO_PASSWORD sets them.
PASSWORD_HINT = "  (new passwords at every start: set DEMO_PASSWORD to keep one)\n"
SHELL_COMMAND = "DJANGO_SETTINGS_MODULE=example.settings python -m django shell"

# Django 6 has its own django.tasks: the demo then defines tasks both ways.
DJANGO_TASKS_API = django.VERSION >= (6, 0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m example", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=2, help="db_worker threads (default 2)")
    parser.add_argument("--no-worker", action="store_true", help="do not start db_worker")
    parser.add_argument("--no-trickle", action="store_true", help="do not enqueue new tasks")
    parser.add_argument("--reset", action="store_true", help="start from an empty database")
    parser.add_argument("--seed-only", action="store_true", help="prepare the database, then exit")
    return parser.parse_args(argv)


def setup(reset: bool) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    from django.conf import settings

    data_dir = Path(settings.DATA_DIR)  # type: ignore[misc]
    if reset and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)


def create_users() -> dict[str, str]:
    """An admin (superuser) and a read-only viewer; return their passwords."""
    from django.contrib.auth.models import Permission, User

    passwords = {}
    for username, superuser in (("admin", True), ("viewer", False)):
        password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(9)
        user, _ = User.objects.get_or_create(username=username)
        user.is_staff = True
        user.is_superuser = superuser
        user.set_password(password)
        user.save()
        if not superuser:
            user.user_permissions.add(
                Permission.objects.get(
                    content_type__app_label="django_tasks_database", codename="view_dbtaskresult"
                )
            )
        passwords[username] = password
    return passwords


def seed() -> int:
    """Enqueue a mix of tasks for the worker, plus old finished results to prune."""
    from django.utils import timezone

    from example import tasks

    now = timezone.now()
    results: list[Any] = []
    for i in range(12):
        results.append(tasks.send_welcome_email.enqueue(1000 + i, f"user{1000 + i}@example.com"))
    results.append(tasks.send_newsletter.enqueue(41, ["a@example.com", "b@example.com"]))
    results.append(tasks.send_newsletter.enqueue(42, ["ok@example.com", "gone@mail.invalid"]))
    for name in ("monthly-sales", "churn", "inventory"):
        results.append(tasks.generate_report.enqueue(name, random.randint(1_000, 90_000)))
    results.append(tasks.parse_invoice.enqueue('{"number": "INV-1", "lines": [{"amount": 12.5}]}'))
    results.append(tasks.parse_invoice.enqueue('{"number": "INV-2", "lines": [{"amount": 3}'))
    results.append(tasks.parse_invoice.enqueue('{"number": "INV-3"}'))
    results.append(tasks.charge_card.enqueue(501, "19.99"))
    results.append(tasks.charge_card.enqueue(502, "twelve euros"))
    for name in ("cat.jpg", "logo.png", "banner.webp"):
        results.append(tasks.resize_image.enqueue(f"uploads/{name}", 640))
    for minutes in (1, 2, 3, 5):
        later = tasks.clear_expired_sessions.using(run_after=now + timedelta(minutes=minutes))
        results.append(later.enqueue())
    results.append(
        tasks.generate_report.using(run_after=now + timedelta(minutes=2)).enqueue("nightly", 500)
    )
    if DJANGO_TASKS_API:
        # Django 6: tasks written with django.tasks, on the same backend and worker.
        from example import django_tasks6

        results.extend(django_tasks6.seed())
    _seed_old_results(now)
    return len(results)


def _seed_old_results(now: Any) -> None:
    """Finished results from weeks ago, so the prune form has something to delete."""
    from django_tasks.backends.database.models import DBTaskResult
    from django_tasks.utils import exception_to_dict
    from example import tasks

    try:
        tasks.charge_card.call(400, "n/a")
    except Exception as e:
        failure = exception_to_dict(e)
    rows = []
    for i in range(30):
        finished = now - timedelta(days=15 + i, minutes=random.randint(0, 600))
        failed = i % 6 == 0
        theirs = DJANGO_TASKS_API and i % 6 == 3  # a few from django.tasks on Django 6
        rows.append(
            DBTaskResult(
                task_path="example.tasks.charge_card"
                if failed
                else "example.django_tasks6.send_digest"
                if theirs
                else "example.tasks.send_welcome_email",
                api="django.tasks" if theirs else "django_tasks",
                queue_name="default" if failed else "emails",
                backend_name="default",
                args_kwargs={
                    "args": [i, "n/a"] if failed else [i, f"old{i}@example.com"],
                    "kwargs": {},
                },
                status="FAILED" if failed else "COMPLETE",
                started_at=finished - timedelta(seconds=2),
                finished_at=finished,
                return_value=None if failed else {"sent_to": f"old{i}@example.com"},
                exception_data=failure if failed else None,
            )
        )
    DBTaskResult.objects.bulk_create(rows)
    # enqueued_at is auto_now_add: backdate it afterwards.
    for row in rows:
        DBTaskResult.objects.filter(pk=row.pk).update(
            enqueued_at=row.finished_at - timedelta(seconds=7)  # type: ignore[operator]
        )


def trickle(stop: threading.Event) -> None:
    """Enqueue a task every few seconds, so the dashboard keeps changing."""
    from django.db import close_old_connections

    from example import tasks

    n = 0
    while not stop.wait(random.uniform(3, 8)):
        n += 1
        choice = random.random()
        try:
            if choice < 0.6:
                tasks.send_welcome_email.enqueue(5000 + n, f"new{n}@example.com")
            elif choice < 0.75:
                tasks.charge_card.enqueue(9000 + n, random.choice(["5.00", "12.40", "oops"]))
            elif choice < 0.85:
                tasks.resize_image.enqueue(f"uploads/new-{n}.jpg", 320)
            elif choice < 0.95:
                tasks.parse_invoice.enqueue(json.dumps({"number": f"INV-{n}", "lines": []}))
            else:
                tasks.generate_report.enqueue(f"adhoc-{n}", n * 10)
            if DJANGO_TASKS_API and random.random() < 0.4:
                from example import django_tasks6

                django_tasks6.trickle(n)
        except Exception as e:  # keep the demo running (e.g. database locked for a moment)
            print(f"trickle: {e}", file=sys.stderr)
        finally:
            close_old_connections()


def stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    """Stop the worker and the server, and wait until each has exited.

    The first SIGTERM lets a running task finish; a second one, 10 s later, makes
    the worker record it FAILED and exit; a child still there 10 s after that is
    killed.  Every child is waited for, so none outlives the demo.
    """
    for _attempt in range(2):
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    setup(args.reset)
    passwords = create_users()
    from django_tasks.backends.database.models import DBTaskResult

    if not DBTaskResult.objects.exists():
        print(f"Seeded {seed()} tasks (and 30 old results to prune).")
    if args.seed_only:
        print(f"Logins: admin / {passwords['admin']}   viewer / {passwords['viewer']}")
        print(PASSWORD_HINT if not os.environ.get("DEMO_PASSWORD") else "", end="")
        return 0

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    children: list[subprocess.Popen[bytes]] = []
    if not args.no_worker:
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "django",
                    "db_worker",
                    "--queue-name",
                    "*",
                    "--threads",
                    str(args.threads),
                    "--interval",
                    "0.5",
                ],
                env=env,
                cwd=ROOT,
            )
        )
    children.append(
        subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", "--noreload", f"{args.host}:{args.port}"],
            env=env,
            cwd=ROOT,
        )
    )

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    stop = threading.Event()
    if not args.no_trickle:
        threading.Thread(target=trickle, args=(stop,), daemon=True).start()

    from django.conf import settings

    log_file = Path(settings.DATA_DIR) / "tasks.log"  # type: ignore[misc]
    url = f"http://{args.host}:{args.port}/"
    print(
        "\n"
        f"  Dashboard: {url}  (the Django admin; open 'Tasks dashboard')\n"
        f"  Log in as: admin / {passwords['admin']}   (read-only: viewer / {passwords['viewer']})\n"
        + (PASSWORD_HINT if not os.environ.get("DEMO_PASSWORD") else "")
        + f"  A shell: {SHELL_COMMAND}\n"
        f"  A db_worker runs every queue{' (disabled)' if args.no_worker else ''}; "
        "new tasks arrive every few seconds. Ctrl-C stops everything.\n"
        f"  Task logs: {log_file}\n"
        + (
            "  Tasks written both ways: example/tasks.py (django_tasks) and"
            " example/django_tasks6.py (Django's django.tasks).\n"
            if DJANGO_TASKS_API
            else ""
        ),
        flush=True,
    )
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        stop_children(children)
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
