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

# Trap first, so a half-started set of services is cleaned up too.
trap 'scripts/services.sh stop' EXIT

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
    exit "$test_status"
fi
rm -f "$test_log"

section "all checks passed"
