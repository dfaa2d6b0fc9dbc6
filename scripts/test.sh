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
cargo test --workspace --no-fail-fast "$@"

section "all checks passed"
