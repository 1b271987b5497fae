"""Enqueue's INSERT on PostgreSQL, sent through libpq: errors, prepared statements, fallbacks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from django.db import DataError, IntegrityError, OperationalError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test import override_settings

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.writes import sender as writes
from tests import tasks as test_tasks

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.environ.get("TEST_DB") != "postgres", reason="psycopg 3 only"),
]

ANY_QUEUE_TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": [],
        "ENQUEUE_ON_COMMIT": False,
    }
}


@pytest.fixture(autouse=True)
def any_queue() -> Iterator[None]:
    with override_settings(TASKS=ANY_QUEUE_TASKS):
        yield


@pytest.fixture
def forbidden_queue() -> Iterator[str]:
    """A CHECK constraint that makes the database refuse one queue name."""
    table = DBTaskResult._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT test_refused CHECK (queue_name <> 'x')")
    yield "x"
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT test_refused")


def test_the_databases_error_is_djangos_and_the_connection_goes_on(forbidden_queue: str) -> None:
    for _ in range(2):  # the second time as a prepared statement
        with pytest.raises(IntegrityError, match="test_refused"):
            test_tasks.noop_task.using(queue_name=forbidden_queue).enqueue()
        assert test_tasks.noop_task.enqueue().id

    with pytest.raises(IntegrityError), transaction.atomic():
        test_tasks.noop_task.enqueue()
        test_tasks.noop_task.using(queue_name=forbidden_queue).enqueue()

    assert DBTaskResult.objects.count() == 2  # the two outside the failed transaction
    assert not DBTaskResult.objects.filter(queue_name=forbidden_queue).exists()


def test_a_statement_the_server_forgot_is_sent_again_unprepared() -> None:
    # What a transaction-pooling PgBouncer does: the next enqueue lands on a server
    # connection that never saw our PREPARE.
    test_tasks.noop_task.enqueue()
    raw = connection.connection
    assert writes._prepared.get(raw)  # the INSERT was prepared
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    result = test_tasks.noop_task.enqueue()

    assert DBTaskResult.objects.filter(id=result.id).exists()
    assert writes._prepared[raw] is None  # named statements are not used here any more
    test_tasks.noop_task.enqueue()
    assert DBTaskResult.objects.count() == 3


def test_a_nul_character_is_refused_not_cut_short() -> None:
    # libpq would end the text at the NUL; psycopg raises, and nothing is stored.
    with pytest.raises(DataError, match="NUL"):
        test_tasks.noop_task.using(queue_name="a\0b").enqueue()
    assert not DBTaskResult.objects.exists()


def test_watched_queries_go_through_djangos_cursor() -> None:
    with override_settings(DEBUG=True):
        connection.queries_log.clear()
        result = test_tasks.echo.enqueue("hi")
        assert any("INSERT INTO" in query["sql"] for query in connection.queries)
    assert DBTaskResult.objects.get(id=result.id).args_kwargs == {"args": ["hi"], "kwargs": {}}


def test_send_write_returns_the_row_count() -> None:
    row = DBTaskResult.objects.create(
        args_kwargs={}, task_path="tests.tasks.noop_task", backend_name="default"
    )
    table = DBTaskResult._meta.db_table
    outcome = writes.send(
        connection, f"UPDATE {table} SET priority = %s WHERE id = %s", [5, row.id]
    )
    assert outcome() == 1
    row.refresh_from_db()
    assert row.priority == 5


def test_execute_write_sends_json_and_counts_only_matching_rows() -> None:
    row = DBTaskResult.objects.create(
        args_kwargs={}, task_path="tests.tasks.noop_task", backend_name="default"
    )
    table = DBTaskResult._meta.db_table
    sql = f"UPDATE {table} SET return_value = %s WHERE id = %s AND status = %s"
    value = {"text": 'quote " and \\ and ü', "n": [1, 2.5, None]}
    for _ in range(3):  # the later ones as a prepared statement
        json_param = connection.ops.adapt_json_value(value, None)
        assert writes.execute(connection, sql, [json_param, row.id, "NEW"]) == 1
        assert writes.execute(connection, sql, [json_param, row.id, "FAILED"]) == 0
    row.refresh_from_db()
    assert row.return_value == value


def backend_pid() -> int:
    """The server process of the current connection."""
    return int(connection.connection.info.backend_pid)


def test_a_connection_the_server_dropped_raises_djangos_error_then_reconnects() -> None:
    test_tasks.noop_task.enqueue()
    pid = backend_pid()
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])

    with pytest.raises(OperationalError):  # Django's, not psycopg's
        test_tasks.noop_task.enqueue()

    assert connection.connection is None  # dropped: the reply could not be read
    result = test_tasks.noop_task.enqueue()  # on a new connection
    assert backend_pid() != pid
    assert DBTaskResult.objects.filter(id=result.id).exists()


def test_a_closed_connection_is_opened_first() -> None:
    connection.close()
    table = DBTaskResult._meta.db_table
    assert writes.execute(connection, f"DELETE FROM {table} WHERE priority = %s", [1]) == 0
    assert connection.connection is not None


def test_nothing_is_sent_in_a_transaction_marked_for_rollback() -> None:
    with transaction.atomic():
        transaction.set_rollback(True)
        with pytest.raises(TransactionManagementError):
            test_tasks.noop_task.enqueue()
    assert not DBTaskResult.objects.exists()
