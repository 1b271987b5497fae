"""Send one write statement without the ORM's per-statement overhead.

- :func:`execute` runs a statement and returns its row count;
- :func:`send` starts it and returns a function that waits for the outcome.
  On psycopg 3 the statement goes out through libpq at once, so the caller's
  own work overlaps with the database executing and committing it.

SQLite statements go to sqlite3 directly.  Both go through Django's cursor when
anyone watches queries (``DEBUG``, ``assertNumQueries``, execute wrappers), and
raise Django's database errors.  A connection must not be used for anything
else between :func:`send` and calling what it returned; Django never shares a
connection between threads.
"""

from __future__ import annotations

import hashlib
import json
import re
import select
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

try:
    import psycopg
    from psycopg import pq
except ImportError:  # pragma: no cover - psycopg2 or another database
    psycopg = None  # type: ignore[assignment]
    pq = None  # type: ignore[assignment]

Pending = Callable[[], int]
"""Wait for a statement sent by :func:`send`; return its row count."""


def _watched(connection: Any) -> bool:
    """Whether someone watches this connection's queries (so Django must run them)."""
    return bool(connection.queries_logged or connection.execute_wrappers)


def execute(connection: Any, sql: str, params: list[Any]) -> int:
    """Run one write statement (``%s`` placeholders); return its row count.

    On psycopg 3 the statement goes through libpq, prepared when outside a
    transaction (Django's cursor costs more CPU than the statement itself here);
    errors are wrapped as Django's, as through a Django cursor.  SQLite
    statements go to sqlite3 directly, for the same reason.
    """
    return send(connection, sql, params, prepare=True)()


def send(connection: Any, sql: str, params: list[Any], *, prepare: bool = False) -> Pending:
    """Start one write statement; return the function that waits for its outcome.

    Call the returned function exactly once, before using the connection again
    (``try``/``finally``): it raises the statement's error, if any, and returns
    the row count of the statement's result.  Where the statement can't be sent
    ahead (not psycopg 3, queries watched, a parameter type we don't encode), it
    runs here.  ``prepare``: on PostgreSQL outside a transaction, run it as a
    named prepared statement (for statements run over and over).
    """
    rowcount: int
    if _watched(connection):
        # Someone watches queries: go through Django's cursor so they see this one.
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rowcount = int(cursor.rowcount)
    elif connection.vendor == "postgresql" and psycopg is not None:
        # What Django's cursor() checks first, at a fraction of its cost on this path,
        # the hottest of enqueue and the worker: errors are wrapped only when raised.
        if connection.connection is None:
            connection.ensure_connection()
        if connection.needs_rollback:
            connection.validate_no_broken_transaction()
        try:
            outcome = _send(connection, sql, params, prepare)
        except psycopg.Error:
            with connection.wrap_database_errors:
                raise
        if outcome is not None:
            return outcome
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params)
            rowcount = int(cursor.rowcount)
    elif connection.vendor == "sqlite":
        connection.ensure_connection()
        connection.validate_no_broken_transaction()
        with connection.wrap_database_errors:
            # Our statements contain no other "%": qmark style for sqlite3 directly.
            rowcount = connection.connection.execute(sql.replace("%s", "?"), params).rowcount
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rowcount = int(cursor.rowcount)
    return lambda: rowcount


# --- psycopg 3 through libpq ----------------------------------------------------------


class _Unsupported(Exception):
    """A parameter we don't encode ourselves: let psycopg adapt it."""


def _encode_uuid(value: UUID) -> bytes:
    return str(value).encode()


def _encode_datetime(value: datetime) -> bytes:
    return value.isoformat().encode()  # with the offset when aware


def _encode_json(value: Any) -> bytes:
    return (value.dumps or json.dumps)(value.obj).encode()  # psycopg's Json/Jsonb


# The text form PostgreSQL parses for each type (the column's type decides); C
# functions where there is one: this runs for every parameter of every write.
# Not bool: its text form isn't an integer's.
_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    str: str.encode,
    int: b"%d".__mod__,
    UUID: _encode_uuid,
    datetime: _encode_datetime,
}
if psycopg is not None:
    from psycopg.types.json import Json, Jsonb

    _ENCODERS[Json] = _ENCODERS[Jsonb] = _encode_json


def _encode_all(params: list[Any]) -> list[bytes | None]:
    """The parameters in PostgreSQL's text format; _Unsupported for other types."""
    try:
        values = [None if value is None else _ENCODERS[type(value)](value) for value in params]
    except KeyError:
        raise _Unsupported from None
    if b"\0" in b"".join(filter(None, values)):
        raise _Unsupported  # libpq would cut the text short; psycopg raises a DataError
    return values


_numbered: dict[str, bytes] = {}


def _numbered_sql(sql: str) -> bytes:
    """``%s`` placeholders as libpq's ``$1, $2, ...`` (and ``%%`` as ``%``)."""
    command = _numbered.get(sql)
    if command is None:
        counter = iter(range(1, sql.count("%s") + 1))
        command = re.sub(
            r"%[s%]", lambda m: f"${next(counter)}" if m.group() == "%s" else "%", sql
        ).encode()
        _numbered[sql] = command
    return command


# Per connection: names of the statements we prepared on it, or None where
# named statements failed (a transaction-pooling PgBouncer): unnamed from then on.
_prepared: WeakKeyDictionary[Any, set[bytes] | None] = WeakKeyDictionary()

_UNSEEN: set[bytes] = set()  # never stored: a connection not seen yet

_INVALID_STATEMENT_NAME = b"26000"  # the statement isn't prepared on this server
_DUPLICATE_STATEMENT = b"42P05"  # prepared already: same name, same SQL


_names: dict[bytes, bytes] = {}


def _statement_name(command: bytes) -> bytes:
    # Named after the SQL, so that one name can only ever mean one statement.
    name = _names.get(command)
    if name is None:
        name = _names[command] = b"django_tasks_" + hashlib.sha1(command).hexdigest()[:24].encode()
    return name


def _send(connection: Any, sql: str, params: list[Any], prepare: bool) -> Pending | None:
    raw = connection.connection
    if not isinstance(raw, psycopg.Connection):
        return None
    pgconn = raw.pgconn
    status = pgconn.transaction_status
    if (
        # In a transaction the server knows of, or in autocommit.  When Django
        # has turned autocommit off, psycopg sends BEGIN with the next statement:
        # let it.  Failed transactions, pipelines, busy connections: psycopg too.
        not (
            status == pq.TransactionStatus.INTRANS
            or (status == pq.TransactionStatus.IDLE and raw.autocommit)
        )
        or pgconn.pipeline_status != pq.PipelineStatus.OFF
        or pgconn.parameter_status(b"client_encoding") != b"UTF8"
    ):
        return None
    try:
        values = _encode_all(params)
    except _Unsupported:
        return None
    command = _numbered_sql(sql)
    # A named statement skips parsing and planning, which cost a short INSERT
    # more than executing it.  Only outside transactions: should the server not
    # know the name (a pooler moved us), the statement is simply sent again.
    name = _prepare(raw, command) if prepare and status == pq.TransactionStatus.IDLE else None
    if name is not None:
        pgconn.send_query_prepared(name, values)
    else:
        pgconn.send_query_params(command, values)
    _flush(pgconn)

    def outcome() -> int:
        try:
            result, error = _receive(connection, raw)
            if (
                error is not None
                and name is not None
                and error.error_field(pq.DiagnosticField.SQLSTATE) == _INVALID_STATEMENT_NAME
            ):
                # Nothing ran.  Named statements don't stick here: stop using them.
                _prepared[raw] = None
                pgconn.send_query_params(command, values)
                _flush(pgconn)
                result, error = _receive(connection, raw)
            if error is not None:
                raise psycopg.errors.error_from_result(error, encoding=raw.info.encoding)
        except psycopg.Error:
            with connection.wrap_database_errors:  # as Django's errors
                raise
        return result

    return outcome


def _prepare(raw: Any, command: bytes) -> bytes | None:
    """The name of ``command`` prepared on ``raw`` (preparing it now), or None."""
    names = _prepared.get(raw, _UNSEEN)
    if names is None:
        return None
    if names is _UNSEEN:
        names = _prepared[raw] = set()
    name = _statement_name(command)
    if name in names:
        return name
    pgconn = raw.pgconn
    pgconn.send_prepare(name, command)
    _flush(pgconn)
    _, error = _receive(None, raw)
    if error is not None and error.error_field(pq.DiagnosticField.SQLSTATE) != _DUPLICATE_STATEMENT:
        _prepared[raw] = None
        return None
    names.add(name)
    return name


def _flush(pgconn: Any) -> None:
    while pgconn.flush():  # a non-blocking connection may not send it all at once
        _wait(pgconn.socket, writable=True)


def _receive(connection: Any, raw: Any) -> tuple[int, Any]:
    """Read the reply to what was sent: (row count, the error result or None)."""
    pgconn = raw.pgconn
    error = None
    rowcount = 0
    try:
        while True:
            pgconn.consume_input()
            if pgconn.is_busy():
                _wait(pgconn.socket)
                continue
            result = pgconn.get_result()
            if result is None:
                break
            if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
                rowcount = int(result.command_tuples or 0)
            elif error is None:
                error = result
    except BaseException:
        # Interrupted half-way (KeyboardInterrupt, a dropped connection): the
        # reply is unread, so nothing else can use this connection.  Drop it and
        # let Django reconnect.
        if connection is not None:
            connection.close()
        else:
            raw.close()
        raise
    while notify := pgconn.notifies():  # as psycopg does: pass them to its handler
        if pgconn.notify_handler:
            pgconn.notify_handler(notify)
    return rowcount, error


def _wait(fileno: int, *, writable: bool = False) -> None:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fileno, select.POLLOUT if writable else select.POLLIN)
        poller.poll()
    else:  # pragma: no cover - Windows
        select.select([] if writable else [fileno], [fileno] if writable else [], [])
