#!/usr/bin/env bash
# A private PostgreSQL 15 for tests and benchmarks.
#
#   scripts/pg.sh start     # initdb if needed, start (no-op when already running), create db
#   scripts/pg.sh stop      # fast shutdown (no-op when not running)
#   scripts/pg.sh restart   # fast restart: drops every client connection
#   scripts/pg.sh status    # exit 0 when running
#   scripts/pg.sh env       # print `export ...` lines; use: eval "$(scripts/pg.sh env)"
#   scripts/pg.sh psql ...  # psql connected to the server
#   scripts/pg.sh destroy   # stop and delete the data directory
#
# Settings (environment):
#   DJANGO_TASKS_PGPORT      port on 127.0.0.1            (default 54329)
#   DJANGO_TASKS_PG_DIR      root dir: data/, socket, log (default /tmp/django-tasks-pg-$PORT)
#   DJANGO_TASKS_PG_FAST=1   fsync=off, synchronous_commit=off, full_page_writes=off:
#                            fine for tests, NOT for benchmarks (=0).  Unset: the mode
#                            last used with this data dir (so a bare `start`/`restart`
#                            keeps it).  `start` restarts a server running in the
#                            other mode.
#
# The data dir lives outside the repo because the server runs as the OS user
# `postgres` (when we are root), which may not be able to enter the checkout.
set -euo pipefail

SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
PORT="${DJANGO_TASKS_PGPORT:-54329}"
PG_ROOT="${DJANGO_TASKS_PG_DIR:-/tmp/django-tasks-pg-$PORT}"
PGDATA_DIR="$PG_ROOT/data"
LOGFILE="$PG_ROOT/server.log"
MODEFILE="$PG_ROOT/mode"
# A parallel run sets its own PGDATABASE, so its test database (test_<name>) is its own.
DBNAME="${PGDATABASE:-django_tasks}"
# Mode: explicit setting, else the mode last used with this data dir, else durable.
FAST="${DJANGO_TASKS_PG_FAST:-$(cat "$MODEFILE" 2>/dev/null || echo 0)}"

find_bindir() {
    local d
    for d in "${DJANGO_TASKS_PG_BINDIR:-}" /usr/lib/postgresql/15/bin; do
        if [[ -n "$d" && -x "$d/pg_ctl" ]]; then
            echo "$d"
            return
        fi
    done
    d="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"
    if [[ -x "$d/pg_ctl" ]]; then
        echo "$d"
        return
    fi
    echo "pg.sh: cannot find pg_ctl (set DJANGO_TASKS_PG_BINDIR)" >&2
    exit 1
}
BINDIR="$(find_bindir)"
PG_CTL="$BINDIR/pg_ctl"

if [[ "$(id -u)" == 0 ]]; then
    PG_OS_USER=postgres
    as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
    PG_OS_USER="$(id -un)"
    as_pg() { (cd / && "$@"); }
fi

server_opts() {
    local opts="-p $PORT -k $PG_ROOT -c listen_addresses=127.0.0.1 -c max_connections=250"
    opts+=" -c shared_buffers=256MB -c max_wal_size=2GB -c log_min_messages=warning"
    if [[ "$FAST" == 1 ]]; then
        opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    echo "$opts"
}

is_running() {
    [[ -f "$PGDATA_DIR/PG_VERSION" ]] && as_pg "$PG_CTL" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

psql_cmd() {
    "$BINDIR/psql" -h 127.0.0.1 -p "$PORT" -U postgres -X -v ON_ERROR_STOP=1 "$@"
}

wait_ready() {
    local i
    for i in $(seq 1 100); do
        if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres; then
            return 0
        fi
        sleep 0.1
    done
    echo "pg.sh: server did not become ready; last log lines:" >&2
    tail -n 20 "$LOGFILE" >&2 || true
    return 1
}

do_init() {
    mkdir -p "$PG_ROOT"
    chmod 755 "$PG_ROOT"
    if [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
        return
    fi
    rm -rf "$PGDATA_DIR"
    chown "$PG_OS_USER" "$PG_ROOT"
    echo "pg.sh: initdb $PGDATA_DIR" >&2
    as_pg "$BINDIR/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$PG_ROOT/initdb.log" 2>&1 || {
        cat "$PG_ROOT/initdb.log" >&2
        rm -rf "$PGDATA_DIR"
        exit 1
    }
}

do_start() {
    if is_running; then
        if [[ "$(cat "$MODEFILE" 2>/dev/null || echo 0)" == "$FAST" ]]; then
            wait_ready
            ensure_db
            return
        fi
        echo "pg.sh: running with fast=$(cat "$MODEFILE" 2>/dev/null), want fast=$FAST: restarting" >&2
        do_stop
    fi
    do_init
    chown "$PG_OS_USER" "$PG_ROOT"
    touch "$LOGFILE" && chown "$PG_OS_USER" "$LOGFILE"
    echo "$FAST" >"$MODEFILE"
    if ! as_pg "$PG_CTL" start -D "$PGDATA_DIR" -l "$LOGFILE" -w -t 60 -o "$(server_opts)" >/dev/null; then
        echo "pg.sh: pg_ctl start failed; last log lines:" >&2
        tail -n 30 "$LOGFILE" >&2 || true
        exit 1
    fi
    wait_ready
    ensure_db
    echo "pg.sh: PostgreSQL running on 127.0.0.1:$PORT (fast=$FAST, data $PGDATA_DIR)" >&2
}

ensure_db() {
    if [[ "$(psql_cmd -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'")" != 1 ]]; then
        psql_cmd -d postgres -qc "CREATE DATABASE $DBNAME" >/dev/null
    fi
}

do_stop() {
    if is_running; then
        as_pg "$PG_CTL" stop -D "$PGDATA_DIR" -m fast -w -t 60 >/dev/null
        echo "pg.sh: PostgreSQL on port $PORT stopped" >&2
    fi
}

do_restart() {
    if ! is_running; then
        do_start
        return
    fi
    echo "$FAST" >"$MODEFILE"
    as_pg "$PG_CTL" restart -D "$PGDATA_DIR" -m fast -w -t 60 -l "$LOGFILE" -o "$(server_opts)" >/dev/null
    wait_ready
    echo "pg.sh: PostgreSQL on port $PORT restarted" >&2
}

do_env() {
    cat <<EOF
export PGHOST=127.0.0.1
export PGPORT=$PORT
export PGUSER=postgres
export PGPASSWORD=
export PGDATABASE=$DBNAME
export DJANGO_TASKS_PGPORT=$PORT
export DJANGO_TASKS_PG_DIR=$PG_ROOT
export DJANGO_TASKS_PG_SCRIPT=$SCRIPT
export DJANGO_TASKS_PG_RESTART='$SCRIPT restart'
export DJANGO_TASKS_PG_CTL=$PG_CTL
export DJANGO_TASKS_PGDATA=$PGDATA_DIR
export DJANGO_TASKS_PG_OS_USER=$PG_OS_USER
EOF
}

cmd="${1:-}"
shift || true
case "$cmd" in
start) do_start ;;
stop) do_stop ;;
restart) do_restart ;;
status)
    if is_running; then
        echo "running on 127.0.0.1:$PORT (fast=$(cat "$MODEFILE" 2>/dev/null), data $PGDATA_DIR)"
    else
        echo "not running"
        exit 3
    fi
    ;;
env) do_env ;;
psql) psql_cmd -d "$DBNAME" "$@" ;;
destroy)
    do_stop
    rm -rf "$PG_ROOT"
    ;;
*)
    echo "usage: $0 start|stop|restart|status|env|psql|destroy" >&2
    exit 2
    ;;
esac
