#!/usr/bin/env bash
# `make demo`: run the example project (example/, written separately) in the
# py311-dj52 venv.  Arguments are passed to `python -m example`.
#   DEMO_DB=postgres scripts/demo.sh   # also start the private PostgreSQL (scripts/pg.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$("$ROOT/scripts/venv.sh" py311-dj52)"

if [[ ! -f "$ROOT/example/__init__.py" && ! -f "$ROOT/example/__main__.py" ]]; then
    echo "demo.sh: there is no example/ package yet: nothing to run" >&2
    exit 1
fi

if [[ "${DEMO_DB:-sqlite}" == postgres ]]; then
    "$ROOT/scripts/pg.sh" start
    eval "$("$ROOT/scripts/pg.sh" env)"
    export TEST_DB=postgres
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
DJANGO_TASKS_CHROMIUM="$(command -v chromium 2>/dev/null || true)"
export DJANGO_TASKS_CHROMIUM
exec "$VENV/bin/python" -m example "$@"
