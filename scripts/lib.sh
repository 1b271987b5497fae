# Shared definitions for the scripts in scripts/ (sourced, not run).
# shellcheck shell=bash

# The venv matrix: NAME -> "PYTHON_CMD|DJANGO_SPEC|EXTRAS".
# PYTHON_CMD may start with environment assignments (run through `env`).
# Interpreters are pinned by minor version only: pyenv (>= 2.3.12; 2.6 here) resolves
# PYENV_VERSION=3.12 to the newest installed 3.12.x (no -dev/rc/free-threaded builds),
# and without pyenv the variable is ignored and python3.12 is taken from PATH.
# Each DJANGO_SPEC is one minor series, so pip installs its newest patch release.
VENV_NAMES=(py311-dj52 py311-dj42 py312-dj60 py313-dj61)
declare -A VENV_MATRIX=(
    [py311-dj52]="python3|Django>=5.2,<5.3|postgres,admin,dev"
    [py311-dj42]="python3|Django>=4.2,<5.0|postgres,admin,dev"
    [py312-dj60]="PYENV_VERSION=3.12 python3.12|Django>=6.0,<6.1|postgres,admin,dev"
    [py313-dj61]="PYENV_VERSION=3.13 python3.13|Django>=6.1,<6.2|postgres,admin,dev"
)

# Where the chromium binary lives (Debian package `chromium`).
chromium_path() {
    command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

# Install Debian's chromium when it is missing.  Returns non-zero on failure.
ensure_chromium() {
    if [[ -n "$(chromium_path)" ]]; then
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        echo "chromium is not installed and we are not root: apt-get install chromium" >&2
        return 1
    fi
    echo "installing chromium (apt-get)..." >&2
    local try
    for try in 1 2; do
        if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                chromium fonts-liberation >/dev/null; then
            [[ -n "$(chromium_path)" ]] && return 0
        fi
        echo "apt-get install chromium failed (try $try)" >&2
        sleep 5
    done
    return 1
}
