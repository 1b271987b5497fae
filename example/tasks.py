"""The demo's tasks: quick ones, slow ones, and ones that fail with real tracebacks."""

from __future__ import annotations

import json
import random
import smtplib
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings

from django_tasks import task


class InvoiceError(Exception):
    """An invoice could not be read."""


class PaymentError(Exception):
    """A card could not be charged."""


@task(queue_name="emails")
def send_welcome_email(user_id: int, email: str) -> dict[str, Any]:
    time.sleep(random.uniform(0.2, 1.5))
    return {"user_id": user_id, "sent_to": email, "template": "welcome"}


def _deliver(recipients: list[str]) -> int:
    # Exception arguments must be JSON-serialisable to be stored: str, not bytes.
    refused: dict[str, Any] = {
        r: (550, "5.1.1 mailbox unavailable") for r in recipients if r.endswith(".invalid")
    }
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)
    return len(recipients)


@task(queue_name="emails", priority=-10)
def send_newsletter(issue: int, recipients: list[str]) -> dict[str, Any]:
    time.sleep(random.uniform(0.5, 2))
    return {"issue": issue, "delivered": _deliver(recipients)}


@task(queue_name="reports")
def generate_report(name: str, rows: int) -> dict[str, Any]:
    """A slow task: the dashboard shows it RUNNING for a while."""
    seconds = random.uniform(8, 25)
    time.sleep(seconds)
    return {"report": name, "rows": rows, "seconds": round(seconds, 1)}


def _read_invoice(payload: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(payload)
    except json.JSONDecodeError as e:
        raise InvoiceError(f"invoice payload is not JSON ({len(payload)} bytes)") from e
    return data


@task(priority=10)
def parse_invoice(payload: str) -> dict[str, Any]:
    invoice = _read_invoice(payload)
    total = sum(Decimal(str(line["amount"])) for line in invoice["lines"])
    return {"number": invoice["number"], "total": str(total)}


@task(priority=20)
def charge_card(order_id: int, amount: str) -> dict[str, Any]:
    try:
        cents = int(Decimal(amount) * 100)
    except ArithmeticError as e:
        raise PaymentError(f"order {order_id}: amount {amount!r} is not a number") from e
    time.sleep(random.uniform(0.1, 0.8))
    return {"order_id": order_id, "charged_cents": cents}


def _marker(path: str) -> Path:
    return Path(settings.DATA_DIR) / "markers" / path.replace("/", "_")  # type: ignore[misc]


@task(queue_name="images")
def resize_image(path: str, width: int) -> dict[str, Any]:
    """Fails the first time (the image service is "down"), succeeds when retried."""
    marker = _marker(path)
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        raise ConnectionError(f"image service unavailable while resizing {path}: retry later")
    time.sleep(random.uniform(0.3, 1.0))
    return {"path": path, "width": width, "bytes": random.randint(20_000, 400_000)}


@task()
def clear_expired_sessions() -> int:
    time.sleep(0.3)
    return random.randint(0, 50)
