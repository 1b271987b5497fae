#!/usr/bin/env bash
# The whole check: what `make test` and CI run.
#
#   scripts/test.sh            # prepare + static checks + every pytest run
#   scripts/test.sh lint       # static checks only (ruff, mypy, django check, migrations)
#   scripts/test.sh pytest     # pytest runs only
#
# Environment:
#   TEST_ENVS="py311-dj52"           which pytest runs: a venv name (all of its runs) or
#                                    VENV:DB (e.g. py311-dj52:postgres), space/comma separated.
#                                    Default: py311-dj52:sqlite py311-dj52:postgres
#                                             py311-dj42:sqlite py312-dj60:sqlite
#                                             py313-dj61:sqlite py313-dj61:postgres
#   BROWSER_RUNS="py313-dj61:sqlite" without TEST_ENVS (the default matrix), the browser
#                                    tests (marker `browser`, real Chromium, ~25 s a run)
#                                    run in these runs only: the others get
#                                    -m "not browser" (a -m in PYTEST_ARGS overrides it).
#                                    "all": every run.  An explicit TEST_ENVS runs them in
#                                    every selected run.
#   SLOW_RUNS="py311-dj52:sqlite ..." without TEST_ENVS, the `slow` tests (real worker
#                                    fleets, reliability, time limits, schedules, the demo) run
#                                    in these runs only: py311-dj52 on both databases and
#                                    py313-dj61:postgres (its SQLite run has the browser tests).
#                                    The other runs check the API and the rest of the suite; the
#                                    engine the slow tests exercise is the same code.  Keeps CI
#                                    under 30 minutes.  "all": every run.
#   PYTEST_ARGS="-x -k worker"       extra pytest arguments (word-split)
#   PYTEST_TIMEOUT=1200              seconds before one pytest run is interrupted (SIGINT,
#                                    so pytest prints where it hung), then killed 30 s later
#   FAULTHANDLER_TIMEOUT=300         a test running longer dumps all threads' tracebacks
#   SKIP_LINT=1                      skip the static checks in the default mode
#   COVERAGE=0                       don't measure coverage (default 1: every pytest run, and
#                                    the db_worker subprocesses its tests start, is measured
#                                    with branch coverage; the runs are combined and the
#                                    "coverage" step fails below [tool.coverage.report]
#                                    fail_under -- enforced only without PYTEST_ARGS)
#   TEST_SUMMARY_FILE=path           also write the final counts line there (.ci/run)
#
# Every step runs even when an earlier one failed.  The last line printed is
# `N passed, M failed[, K skipped]` summed over the pytest runs; the exit status is
# non-zero when any step failed (a pytest run with no tests collected counts as failed).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

MODE="${1:-all}"
case "$MODE" in
all | lint | pytest) ;;
*)
    echo "usage: $0 [all|lint|pytest]" >&2
    exit 2
    ;;
esac
DO_LINT=1
DO_PYTEST=1
[[ "$MODE" == pytest || "${SKIP_LINT:-0}" == 1 ]] && DO_LINT=0
[[ "$MODE" == lint ]] && DO_PYTEST=0

DEFAULT_RUNS=(py311-dj52:sqlite py311-dj52:postgres py311-dj42:sqlite py312-dj60:sqlite
    py313-dj61:sqlite py313-dj61:postgres)
# The default matrix runs the browser tests once, on the newest Django and Python.
if [[ -z "${TEST_ENVS:-}" ]]; then
    BROWSER_RUNS="${BROWSER_RUNS:-py313-dj61:sqlite}"
    SLOW_RUNS="${SLOW_RUNS:-py311-dj52:sqlite py311-dj52:postgres py313-dj61:postgres}"
else
    BROWSER_RUNS="${BROWSER_RUNS:-all}"
    SLOW_RUNS="${SLOW_RUNS:-all}"
fi
PYTEST_TIMEOUT="${PYTEST_TIMEOUT:-1200}"
FAULTHANDLER_TIMEOUT="${FAULTHANDLER_TIMEOUT:-300}"
LINT_VENV=py311-dj52
WORK="$(mktemp -d /tmp/django-tasks-test.XXXXXX)"
COVERAGE="${COVERAGE:-1}"
COV_DIR="$WORK/coverage"
COV_VENV="" # the venv whose coverage combines and reports (the first measured run's)
T0=$SECONDS

# --- bookkeeping -------------------------------------------------------------
STEP_LINES=()
FAILED_STEPS=()
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0

record() { # name status seconds [detail]
    STEP_LINES+=("$(printf '%-28s %-6s %5ss  %s' "$1" "$2" "$3" "${4:-}")")
    [[ "$2" == ok ]] || FAILED_STEPS+=("$1")
}

banner() { printf '\n===== %s =====\n' "$*"; }

# step NAME CMD...: run a command, record ok/FAIL and its duration.
step() {
    local name="$1" t=$SECONDS rc
    shift
    banner "$name"
    "$@"
    rc=$?
    if [[ $rc == 0 ]]; then
        record "$name" ok $((SECONDS - t))
    else
        echo "----- $name FAILED (exit $rc)"
        record "$name" FAIL $((SECONDS - t)) "exit $rc"
    fi
    return 0
}

PG_STARTED=0   # PostgreSQL is up for this run
PG_STOP=0      # ... and this run started it, so stops it at exit
CUR_PID=""
TAIL_PID=""
cleanup() {
    if [[ -n "$TAIL_PID" ]]; then
        kill "$TAIL_PID" 2>/dev/null || true
        TAIL_PID=""
    fi
    if [[ -n "$CUR_PID" ]]; then
        kill -TERM -- "-$CUR_PID" 2>/dev/null || true
        CUR_PID=""
    fi
    if [[ $PG_STOP == 1 ]]; then
        "$ROOT/scripts/pg.sh" stop >/dev/null 2>&1 || true
        PG_STARTED=0
        PG_STOP=0
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# --- which pytest runs --------------------------------------------------------
RUNS=()
if [[ $DO_PYTEST == 1 ]]; then
    if [[ -z "${TEST_ENVS:-}" ]]; then
        RUNS=("${DEFAULT_RUNS[@]}")
    else
        for item in ${TEST_ENVS//,/ }; do
            if [[ "$item" == *:* ]]; then
                venv="${item%%:*}" db="${item#*:}"
                if [[ -z "${VENV_MATRIX[$venv]:-}" || ! "$db" =~ ^(sqlite|postgres)$ ]]; then
                    echo "TEST_ENVS: bad entry '$item' (venvs: ${VENV_NAMES[*]}; dbs: sqlite postgres)" >&2
                    exit 2
                fi
                RUNS+=("$item")
            else
                found=0
                for r in "${DEFAULT_RUNS[@]}"; do
                    if [[ "${r%%:*}" == "$item" ]]; then
                        RUNS+=("$r")
                        found=1
                    fi
                done
                if [[ $found == 0 ]]; then
                    echo "TEST_ENVS: unknown venv '$item' (known: ${VENV_NAMES[*]})" >&2
                    exit 2
                fi
            fi
        done
    fi
fi

NEED_VENVS=()
add_venv() {
    local v
    for v in "${NEED_VENVS[@]}"; do [[ "$v" == "$1" ]] && return; done
    NEED_VENVS+=("$1")
}
[[ $DO_LINT == 1 ]] && add_venv "$LINT_VENV"
NEED_PG=0
for r in "${RUNS[@]}"; do
    add_venv "${r%%:*}"
    [[ "${r#*:}" == postgres ]] && NEED_PG=1
done

# --- prepare: venvs and chromium in parallel, then PostgreSQL ------------------
prepare() {
    local pids=() names=() i rc=0 v
    for v in "${NEED_VENVS[@]}"; do
        "$ROOT/scripts/venv.sh" "$v" >"$WORK/venv-$v.out" 2>&1 &
        pids+=($!)
        names+=("venv $v")
    done
    if [[ ${#RUNS[@]} -gt 0 ]]; then
        ensure_chromium >"$WORK/chromium.out" 2>&1 &
        pids+=($!)
        names+=("chromium")
    fi
    if [[ $NEED_PG == 1 ]]; then
        local t=$SECONDS
        # A server already running (another run's, or the developer's) is left running.
        "$ROOT/scripts/pg.sh" status >/dev/null 2>&1 || PG_STOP=1
        if DJANGO_TASKS_PG_FAST=1 "$ROOT/scripts/pg.sh" start; then
            PG_STARTED=1
            echo "postgres: started in $((SECONDS - t))s"
        else
            echo "postgres: start FAILED"
            rc=1
        fi
    fi
    for i in "${!pids[@]}"; do
        if wait "${pids[$i]}"; then
            echo "${names[$i]}: ok"
        else
            echo "${names[$i]}: FAILED"
            rc=1
        fi
    done
    for v in "${NEED_VENVS[@]}"; do
        grep -v '^/' "$WORK/venv-$v.out"
    done
    [[ -f "$WORK/chromium.out" ]] && cat "$WORK/chromium.out"
    return $rc
}
step prepare prepare

if [[ $PG_STARTED == 1 ]]; then
    eval "$("$ROOT/scripts/pg.sh" env)"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
DJANGO_TASKS_CHROMIUM="$(chromium_path)"
export DJANGO_TASKS_CHROMIUM

venv_ready() { [[ -f "$ROOT/.venvs/$1/.stamp" ]]; }

# --- static checks -------------------------------------------------------------
run_mypy() {
    local targets=() d
    for d in django_tasks django_tasks_admin tests; do
        if [[ -n "$(find "$d" -name '*.py' -print -quit 2>/dev/null)" ]]; then
            targets+=("$d")
        else
            echo "mypy: skipping $d (no .py files)"
        fi
    done
    "$V/bin/mypy" "${targets[@]}"
}

if [[ $DO_LINT == 1 ]]; then
    V="$ROOT/.venvs/$LINT_VENV"
    if venv_ready "$LINT_VENV"; then
        step "ruff check" "$V/bin/ruff" check --output-format=concise .
        step "ruff format --check" "$V/bin/ruff" format --check .
        step "mypy" run_mypy
        step "django check" env TEST_DB=sqlite "$V/bin/python" -m django check --settings=tests.settings
        step "makemigrations --check" env TEST_DB=sqlite "$V/bin/python" -m django makemigrations \
            --check --dry-run --settings=tests.settings
    else
        record "static checks" FAIL 0 "venv $LINT_VENV missing"
    fi
fi

# --- pytest runs ---------------------------------------------------------------
count() { # count WORD LINE -> the number before WORD in LINE, or 0
    local n
    n="$(grep -oE "[0-9]+ $1" <<<"$2" | head -n1 | grep -oE '^[0-9]+')"
    echo "${n:-0}"
}

run_pytest() { # venv db
    local venv="$1" db="$2" name="pytest $1/$2" t=$SECONDS rc log line p f e s xf xp note=""
    local V="$ROOT/.venvs/$venv"
    banner "$name"
    if ! venv_ready "$venv"; then
        record "$name" FAIL 0 "venv missing"
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    if [[ "$db" == postgres && $PG_STARTED != 1 ]]; then
        record "$name" FAIL 0 "postgres not running"
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    log="$WORK/pytest-$venv-$db.log"
    local sqlite_dir="$WORK/sqlite-$venv-$db"
    mkdir -p "$sqlite_dir"
    # Coverage data (parallel files, subprocesses' too) goes to $COV_DIR, combined at the end.
    local runner=("$V/bin/python" -m pytest)
    local marker=() # before PYTEST_ARGS, so that a -m there wins (pytest keeps the last -m)
    local deselect=()
    if [[ "$BROWSER_RUNS" != all && " ${BROWSER_RUNS//,/ } " != *" $venv:$db "* ]]; then
        deselect+=("not browser")
        echo "(browser tests deselected here; they run in: $BROWSER_RUNS)"
    fi
    if [[ "$SLOW_RUNS" != all && " ${SLOW_RUNS//,/ } " != *" $venv:$db "* ]]; then
        deselect+=("not slow")
        echo "(slow tests deselected here; they run in: $SLOW_RUNS)"
    fi
    if [[ ${#deselect[@]} -gt 0 ]]; then
        local expression="${deselect[0]}"
        [[ ${#deselect[@]} -gt 1 ]] && expression="${deselect[0]} and ${deselect[1]}"
        marker=(-m "$expression")
    fi
    if [[ $COVERAGE == 1 ]]; then
        if "$V/bin/python" -c 'import coverage' 2>/dev/null; then
            runner=("$V/bin/python" -m coverage run -m pytest)
            mkdir -p "$COV_DIR"
            [[ -z "$COV_VENV" ]] && COV_VENV="$venv"
        else
            echo "coverage: not installed in $venv; this run is not measured"
        fi
    fi
    # shellcheck disable=SC2086
    TEST_DB="$db" DJANGO_TASKS_SQLITE_DIR="$sqlite_dir" DJANGO_TASKS_TEST_VENV="$venv" \
        COVERAGE_FILE="$COV_DIR/.coverage" \
        timeout -s INT -k 30 "$PYTEST_TIMEOUT" "${runner[@]}" \
        -o faulthandler_timeout="$FAULTHANDLER_TIMEOUT" "${marker[@]}" ${PYTEST_ARGS:-} \
        </dev/null >"$log" 2>&1 &
    local pid=$!
    CUR_PID=$pid
    # Stream the output; leftover subprocesses can't block us (no pipe).  Both run in
    # the background so that `wait` (unlike a foreground command) lets traps run.
    tail -n +1 -f --pid="$pid" "$log" &
    TAIL_PID=$!
    wait "$pid"
    rc=$?
    wait "$TAIL_PID"
    TAIL_PID=""
    # `timeout` leads its own process group: end whatever the tests left behind.
    kill -TERM -- "-$pid" 2>/dev/null || true
    CUR_PID=""
    [[ -s "$log" && -n "$(tail -c1 "$log")" ]] && echo

    line="$(sed -e 's/\x1b\[[0-9;]*m//g' "$log" |
        grep -E '([0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)|no tests ran).* in [0-9.]+s' |
        tail -n1)"
    p=$(count passed "$line")
    f=$(count failed "$line")
    e=$(count 'errors?' "$line")
    s=$(count skipped "$line")
    xf=$(count xfailed "$line")
    xp=$(count xpassed "$line")
    p=$((p + xp))
    f=$((f + e))
    s=$((s + xf))
    case $rc in
    0) ;;
    5) note="no tests collected" ;;
    124 | 137) note="killed after ${PYTEST_TIMEOUT}s" ;;
    *) note="exit $rc" ;;
    esac
    if [[ $rc != 0 && $f == 0 ]]; then
        f=1 # a failed run never reports "0 failed"
        note+=" (counted as 1 failed)"
    fi
    TOTAL_PASSED=$((TOTAL_PASSED + p))
    TOTAL_FAILED=$((TOTAL_FAILED + f))
    TOTAL_SKIPPED=$((TOTAL_SKIPPED + s))
    local summary="$p passed, $f failed"
    [[ $s != 0 ]] && summary+=", $s skipped"
    echo "----- $name: $summary${note:+ [$note]}"
    if [[ $rc == 0 ]]; then
        record "$name" ok $((SECONDS - t)) "$summary"
    else
        record "$name" FAIL $((SECONDS - t)) "$summary [$note]"
    fi
}

for r in "${RUNS[@]}"; do
    run_pytest "${r%%:*}" "${r#*:}"
done

# --- coverage ------------------------------------------------------------------
# Branch coverage of django_tasks and django_tasks_admin over every run above (config:
# [tool.coverage.*] in pyproject.toml).  The floor is enforced for whole-suite runs only:
# a PYTEST_ARGS subset reports without failing.
coverage_report() {
    local py="$ROOT/.venvs/$COV_VENV/bin/python" floor=()
    [[ -n "${PYTEST_ARGS:-}" ]] && floor=(--fail-under=0)
    "$py" -m coverage combine --quiet --data-file="$COV_DIR/.coverage" "$COV_DIR" || return 1
    "$py" -m coverage report --data-file="$COV_DIR/.coverage" "${floor[@]}"
}
if [[ -n "$COV_VENV" ]]; then
    step coverage coverage_report
fi

# --- summary -------------------------------------------------------------------
cleanup
banner "summary"
printf '%s\n' "${STEP_LINES[@]}"
echo "total time: $((SECONDS - T0))s"
if [[ ${#FAILED_STEPS[@]} -gt 0 ]]; then
    echo "FAILED steps: $(printf '%s; ' "${FAILED_STEPS[@]}")"
    rc=1
else
    echo "all steps passed"
    rc=0
fi
if [[ ${#RUNS[@]} -gt 0 ]]; then
    final="$TOTAL_PASSED passed, $TOTAL_FAILED failed"
    [[ $TOTAL_SKIPPED != 0 ]] && final+=", $TOTAL_SKIPPED skipped"
    echo "$final"
    [[ -n "${TEST_SUMMARY_FILE:-}" ]] && echo "$final" >"$TEST_SUMMARY_FILE"
fi
exit $rc
