#!/usr/bin/env bash
# Create or refresh the virtualenv .venvs/NAME.
#
#   scripts/venv.sh NAME                          # a name from the matrix below
#   scripts/venv.sh NAME PYTHON DJANGO_SPEC [EXTRAS]
#
# The venv gets `pip install -e '.[EXTRAS]' "DJANGO_SPEC"`.  A stamp file
# (.venvs/NAME/.stamp) records a hash of pyproject.toml, the spec, the extras and
# the interpreter; when it matches, nothing is done (well under a second).
# Set VENV_FORCE=1 to reinstall anyway.  Prints the venv's path on stdout last.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

if [[ $# -lt 1 ]]; then
    echo "usage: $0 NAME [PYTHON DJANGO_SPEC [EXTRAS]]" >&2
    echo "known names: ${!VENV_MATRIX[*]}" >&2
    exit 2
fi
NAME="$1"
if [[ $# -ge 3 ]]; then
    PYTHON_CMD="$2"
    DJANGO_SPEC="$3"
    EXTRAS="${4:-postgres,admin,dev}"
else
    if [[ -z "${VENV_MATRIX[$NAME]:-}" ]]; then
        echo "venv.sh: unknown venv '$NAME' (known: ${!VENV_MATRIX[*]})" >&2
        exit 2
    fi
    IFS='|' read -r PYTHON_CMD DJANGO_SPEC EXTRAS <<<"${VENV_MATRIX[$NAME]}"
fi

VENV="$ROOT/.venvs/$NAME"
mkdir -p "$ROOT/.venvs"

# Resolve the interpreter (PYTHON_CMD may carry env assignments such as
# "PYENV_VERSION=3.12 python3.12").
# shellcheck disable=SC2086
PYTHON_EXE="$(cd / && env $PYTHON_CMD -c 'import sys; print(sys.executable)')" || {
    echo "venv.sh: interpreter '$PYTHON_CMD' not usable" >&2
    exit 1
}
PYTHON_VERSION="$("$PYTHON_EXE" -c 'import sys; print(sys.version.split()[0])')"

STAMP_VALUE="$(
    {
        echo "venv.sh v1"
        echo "$PYTHON_EXE $PYTHON_VERSION"
        echo "$DJANGO_SPEC"
        echo "$EXTRAS"
        cat "$ROOT/pyproject.toml"
    } | sha256sum | cut -d' ' -f1
)"

# One installer per venv at a time.
exec 9>"$ROOT/.venvs/.$NAME.lock"
flock 9

venv_ok() {
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1
}

if [[ "${VENV_FORCE:-0}" != 1 ]] && venv_ok && [[ -f "$VENV/.stamp" ]] &&
    [[ "$(cat "$VENV/.stamp")" == "$STAMP_VALUE" ]]; then
    echo "venv.sh: $NAME up to date ($PYTHON_VERSION, $DJANGO_SPEC)" >&2
    echo "$VENV"
    exit 0
fi

start=$SECONDS
if ! venv_ok || [[ "$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')" != "$PYTHON_VERSION" ]]; then
    echo "venv.sh: creating $NAME with $PYTHON_EXE ($PYTHON_VERSION)" >&2
    rm -rf "$VENV"
    "$PYTHON_EXE" -m venv "$VENV"
fi
rm -f "$VENV/.stamp"

LOG="$VENV/install.log"
echo "venv.sh: installing .[$EXTRAS] \"$DJANGO_SPEC\" into $NAME (log: ${LOG#"$ROOT"/})" >&2
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
if ! (cd "$ROOT" && "$VENV/bin/python" -m pip install -e ".[$EXTRAS]" "$DJANGO_SPEC") >"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    echo "venv.sh: pip install failed for $NAME (full log: $LOG)" >&2
    exit 1
fi
"$VENV/bin/python" -m pip check >>"$LOG" 2>&1 || {
    tail -n 20 "$LOG" >&2
    echo "venv.sh: warning: pip check reports conflicts in $NAME" >&2
}
echo "$STAMP_VALUE" >"$VENV/.stamp"
django_version="$("$VENV/bin/python" -c 'import django; print(django.get_version())')"
echo "venv.sh: $NAME ready: Python $PYTHON_VERSION, Django $django_version ($((SECONDS - start))s)" >&2
echo "$VENV"
