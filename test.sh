#!/usr/bin/env bash
# ./test.sh - THE test command: prepare the machine, build the service
# binaries (the e2e tests spawn them from target/debug), run every test.
# Honours DATABASE_URL / AMQP_URL / RUST_LOG if already set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

bash deploy/setup.sh

salesync_cargo_path || die "cargo not found (deploy/setup.sh should have said why)"
salesync_default_env
export RUST_LOG="${RUST_LOG:-warn}"

log "cargo build --workspace --bins"
cargo build --workspace --bins

log "cargo nextest run --workspace --no-fail-fast"
status=0
cargo nextest run --workspace --no-fail-fast || status=$?
if [ "$status" -eq 0 ]; then
    log "tests: all passed"
else
    log "tests: FAILED (exit $status)"
fi
exit "$status"
