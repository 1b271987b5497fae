#!/usr/bin/env bash
# `make demo`: the example project on SQLite, live: migrate, create logins (printed),
# seed tasks, then run a db_worker beside the web server on http://127.0.0.1:8000/.
# Works on a fresh clone: the py313-dj61 venv (Django 6.1, so the demo has tasks of both
# APIs) is created first (scripts/venv.sh); DEMO_VENV=py311-dj52 runs it on Django 5.2.
#
#   scripts/demo.sh                      # arguments go to `python -m example`
#   scripts/demo.sh --port 8001 --reset  # another port, empty database
#   DEMO_DB=postgres scripts/demo.sh     # on the private PostgreSQL (scripts/pg.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$("$ROOT/scripts/venv.sh" "${DEMO_VENV:-py313-dj61}")"

if [[ "${DEMO_DB:-sqlite}" == postgres ]]; then
    "$ROOT/scripts/pg.sh" start
    eval "$("$ROOT/scripts/pg.sh" env)"
    export DEMO_DB=postgres
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$VENV/bin/python" -m example "$@"
