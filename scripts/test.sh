#!/usr/bin/env bash
# Full local/CI check: starts the test services (PostgreSQL + pgvector, PocketBase), then runs
# rustfmt, clippy and the whole test suite against them. Services are stopped on exit, pass or fail.
# Extra arguments go to `cargo test`, e.g. scripts/test.sh -p chatstore-core -- --nocapture
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CHATSTORE_PROPTEST_CASES="${CHATSTORE_PROPTEST_CASES:-32}"
# A clean CI build gains nothing from incremental caches: they only cost disk and link time.
if [[ "${CI:-}" == "true" ]]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

section() { printf '\n==> %s\n' "$*" >&2; }

# Free space where the build and the tests write, in GB (the build in target/, the tests'
# scratch folders and private servers under the run's temp folder).
free_gb() { df -Pk "$1" | awk 'NR == 2 { printf "%d", $4 / 1048576 }'; }
# A whole run takes about 12.5 GB at its peak (measured on a fresh clone): the debug build
# 7.1 GB, the test PostgreSQL server 3.5 GB (the newest 300 test databases are kept), Chroma
# 0.6 GB, the scratch folders 0.5 GB. With less free space a run fails deep in the tests with
# "No space left on device"; say so up front.
NEEDED_GB=13

# Every test's scratch folder (SQLite files, uploads, private servers' data folders) goes under
# one temp folder of this run's own, removed when the run ends, so runs on one machine never
# pile up. Private PostgreSQL servers run as `nobody` when root: the folder must be traversable.
run_tmp="$(mktemp -d "${TMPDIR:-/tmp}/chatstore-run.XXXXXX")"
chmod 755 "$run_tmp"

# Trap first, so a half-started set of services is cleaned up too.
trap 'scripts/services.sh stop; rm -rf "$run_tmp"' EXIT

section "free disk: $(free_gb .) GB here, $(free_gb "$run_tmp") GB under $run_tmp"
if (($(free_gb .) < NEEDED_GB || $(free_gb "$run_tmp") < NEEDED_GB)); then
    printf 'warning: a whole run needs about %s GB free; this one may stop with "No space left on device"\n' \
        "$NEEDED_GB" >&2
fi

section "starting test services"
# Assign first: `eval "$(...)"` alone would hide a failed start from `set -e`.
service_env="$(scripts/services.sh start)"
eval "$service_env"
printf '%s\n' "$service_env" | sed -e 's/\(PASSWORD=\).*/\1***/' >&2

section "cargo fmt --all -- --check"
cargo fmt --all -- --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo test --workspace $* (CHATSTORE_PROPTEST_CASES=$CHATSTORE_PROPTEST_CASES)"
export TMPDIR="$run_tmp"
# Every test binary runs even after one fails, so a red run lists every failure at once.
# The output is kept too: a failing test's own output is printed again at the very end, where
# a reader of only the log's tail (a CI page) finds it.
test_log="$(mktemp "${TMPDIR:-/tmp}/chatstore-test.XXXXXX")"
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$test_log"
test_status=${PIPESTATUS[0]}
set -e
if ((test_status != 0)); then
    section "failed tests, their output again (the last 60 lines of each binary, no backtraces)"
    # From a binary's "failures:" to its "test result: FAILED", under its "Running" line.
    awk '
        /^ *Running / { binary = $0 }
        /^failures:$/ && !inside { inside = 1; print binary; n = 0; next }
        inside && /^test result: FAILED/ {
            start = (n > 60) ? n - 60 : 0
            if (start > 0) print "  [" start " earlier lines left out]"
            for (i = start; i < n; i++) print kept[i]
            print; inside = 0; next
        }
        # Backtrace frames say less than the panic above them and would push it out.
        inside && (/^ +[0-9]+: / || /^ +at / || /^stack backtrace:$/) { next }
        inside { kept[n++] = $0 }
    ' "$test_log" >&2
    rm -f "$test_log"
    section "free disk at the end: $(free_gb .) GB here, $(free_gb "$run_tmp") GB under $run_tmp"
    exit "$test_status"
fi
rm -f "$test_log"

section "all checks passed (free disk at the end: $(free_gb .) GB)"
