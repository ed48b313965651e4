#!/usr/bin/env bash
# ./demo.sh - THE demo command: prepare the machine, build release binaries,
# run the demo. Arguments are passed to salesync-demo. Honours DATABASE_URL /
# AMQP_URL if already set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

bash deploy/setup.sh

salesync_cargo_path || die "cargo not found (deploy/setup.sh should have said why)"
salesync_default_env

log "cargo build --release --workspace --bins"
cargo build --release --workspace --bins

demo="${CARGO_TARGET_DIR:-target}/release/salesync-demo"
[ -x "$demo" ] || die "$demo was not built (is there a [[bin]] named salesync-demo in the workspace?)"
log "running $demo $*"
exec "$demo" "$@"
