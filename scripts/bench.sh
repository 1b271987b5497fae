#!/usr/bin/env bash
# `make bench`: run benchmarks/worker.py in the py313-dj61 venv (BENCH_VENV=NAME picks another) against the private
# PostgreSQL (durable settings: fsync on; a server running in fast mode is restarted).
# Arguments are passed to the benchmark.  The server is stopped afterwards unless it
# was already running (BENCH_KEEP_PG=1 keeps it running regardless).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ ! -f "$ROOT/benchmarks/worker.py" ]]; then
    echo "bench.sh: benchmarks/worker.py does not exist yet" >&2
    exit 1
fi
# Django 6.1: the table then has rows for tasks of both APIs (django.tasks is Django 6).
VENV="$("$ROOT/scripts/venv.sh" "${BENCH_VENV:-py313-dj61}")"

was_running=0
"$ROOT/scripts/pg.sh" status >/dev/null 2>&1 && was_running=1
export DJANGO_TASKS_PG_FAST=0
"$ROOT/scripts/pg.sh" start
if [[ $was_running == 0 && "${BENCH_KEEP_PG:-0}" != 1 ]]; then
    trap '"$ROOT/scripts/pg.sh" stop' EXIT
fi
eval "$("$ROOT/scripts/pg.sh" env)"
export TEST_DB=postgres
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
"$VENV/bin/python" "$ROOT/benchmarks/worker.py" "$@"
