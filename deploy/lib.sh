# shellcheck shell=bash
# Shared helpers for deploy/setup.sh, test.sh and demo.sh. Source it; it does
# not change shell options and produces no output when sourced.

# Defaults the services, the demo and the e2e tests connect with.
SALESYNC_DEFAULT_DATABASE_URL='postgres://postgres@127.0.0.1:5432/salesync'
SALESYNC_DEFAULT_AMQP_URL='amqp://guest:guest@127.0.0.1:5672/%2f'

log() { printf '==> %s\n' "$*"; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() {
    printf '==> ERROR: %s\n' "$*" >&2
    exit 1
}

# Put cargo on PATH if it is only installed in ~/.cargo/bin (rustup's default,
# which non-login shells often lack). Returns non-zero if cargo is not found.
salesync_cargo_path() {
    if ! command -v cargo >/dev/null 2>&1; then
        local bin="${CARGO_HOME:-$HOME/.cargo}/bin"
        if [ -x "$bin/cargo" ]; then
            PATH="$bin:$PATH"
            export PATH
        fi
    fi
    command -v cargo >/dev/null 2>&1
}

# Export DATABASE_URL / AMQP_URL with the local defaults, unless already set.
salesync_default_env() {
    export DATABASE_URL="${DATABASE_URL:-$SALESYNC_DEFAULT_DATABASE_URL}"
    export AMQP_URL="${AMQP_URL:-$SALESYNC_DEFAULT_AMQP_URL}"
}
