#!/usr/bin/env bash
# deploy/setup.sh - make this machine able to build and run salesync.
#
# Idempotent; shared by ./test.sh and ./demo.sh. On a machine where everything
# is already in place it does no apt/cargo work and finishes in well under 2 s.
#
#   * Debian packages: rabbitmq-server postgresql postgresql-client libssl-dev
#     pkg-config curl ca-certificates build-essential jq, plus chromium
#     chromium-driver fonts-liberation fonts-dejavu-core (browser tests) and
#     prometheus (dashboard/alert query tests) (apt-get only if missing)
#   * Rust toolchain (must already exist) and cargo-nextest (installed if missing)
#   * PostgreSQL on 127.0.0.1:5432, user postgres without password, db salesync
#   * RabbitMQ on 127.0.0.1:5672 with the management API on :15672 (guest/guest)
#   * .venv-fuzz/: a Python venv with the contract fuzz run's pinned tools
#     (deploy/fuzz-requirements.txt: schemathesis, openapi-spec-validator),
#     created or reinstalled only when missing or the pins changed
#   * .venv-deploy/: the same for the manifest validators
#     (deploy/manifest-requirements.txt: check-jsonschema, kubernetes-validate)
#
# Needs root for installing/starting things (uses sudo when not root).
# Exports nothing; the defaults it prints are what test.sh/demo.sh use.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=deploy/lib.sh
. "$HERE/lib.sh"

PG_HOST=127.0.0.1
PG_PORT=5432
PG_DB=salesync
MQ_HOST=127.0.0.1
MQ_PORT=5672
MQ_MGMT_URL="http://127.0.0.1:15672/api/overview"
PG_WAIT=60
MQ_WAIT=90

PACKAGES=(rabbitmq-server postgresql postgresql-client libssl-dev pkg-config
          curl ca-certificates build-essential jq
          chromium chromium-driver fonts-liberation fonts-dejavu-core prometheus)

STARTED_AT=$SECONDS
LOG_DIR="${TMPDIR:-/tmp}"

# --------------------------------------------------------------------------
# helpers

# Run a command as root (directly, or through sudo). fd 9 (our lock) is closed
# so that daemons started from here do not inherit it.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@" 9<&-
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@" 9<&-
    else
        die "root privileges are needed to run '$*'; re-run deploy/setup.sh as root (sudo is not installed)"
    fi
}

systemd_running() { [ -d /run/systemd/system ]; }

# wait_for SECONDS DESCRIPTION COMMAND... : poll COMMAND once a second.
wait_for() {
    local timeout=$1 what=$2 start=$SECONDS
    shift 2
    "$@" && return 0
    log "waiting up to ${timeout}s for $what ..."
    while (( SECONDS - start < timeout )); do
        sleep 1
        "$@" && return 0
    done
    return 1
}

# Serialise concurrent runs (several people may run ./test.sh at once). The
# lock file is opened read-only so that any user can lock it.
take_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    local lock=/tmp/salesync-setup.lock
    [ -e "$lock" ] || (umask 000 && : >"$lock") 2>/dev/null || true
    [ -r "$lock" ] || return 0
    exec 9<"$lock"
    if ! flock -n 9; then
        log "another deploy/setup.sh is running; waiting for it ..."
        flock -w 600 9 || die "timed out waiting for $lock"
    fi
}

# --------------------------------------------------------------------------
# 1. Debian packages

ensure_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        warn "dpkg-query not found (not Debian?); skipping the package check"
        return 0
    fi
    local p missing=()
    for p in "${PACKAGES[@]}"; do
        [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *" ok installed" ]] \
            || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "packages: all present"
        return 0
    fi
    log "packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
        || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Use-Pty=0 \
        --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
}

# --------------------------------------------------------------------------
# 2. Rust toolchain + cargo-nextest

ensure_rust() {
    salesync_cargo_path || die "Rust toolchain not found (no cargo in PATH or ${CARGO_HOME:-$HOME/.cargo}/bin).
    Install it with rustup (https://rustup.rs), e.g.:
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    then open a new shell (or: . \"\$HOME/.cargo/env\") and re-run."

    local need have
    need="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$REPO/Cargo.toml" 2>/dev/null | head -n1)" || need=""
    have="$(rustc --version 2>/dev/null | awk '{print $2}')" || have=""
    [ -n "$have" ] || die "cargo found but 'rustc --version' failed; check your rustup installation"
    if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "${have%%-*}" | sort -V | head -n1)" != "$need" ]; then
        die "rustc $have is older than the workspace's rust-version $need; run: rustup update stable"
    fi

    if cargo nextest --version >/dev/null 2>&1; then
        log "rust: rustc $have, cargo-nextest present"
    else
        log "rust: rustc $have; installing cargo-nextest (cargo install cargo-nextest --locked)"
        cargo install cargo-nextest --locked || die "cargo install cargo-nextest failed"
        cargo nextest --version >/dev/null 2>&1 \
            || die "cargo-nextest was installed but 'cargo nextest --version' still fails"
    fi
}

# --------------------------------------------------------------------------
# 3. PostgreSQL

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1; }

# psql as user postgres over TCP, never prompting for a password.
pg_psql() {
    PGCONNECT_TIMEOUT=5 psql -X -w -q -v ON_ERROR_STOP=1 \
        -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@" </dev/null
}
pg_can_login() { pg_psql -d postgres -tAc 'select 1' >/dev/null 2>&1; }

# Sets PG_VER / PG_NAME to the cluster configured for $PG_PORT (falls back to
# the newest configured "main" cluster, then to creating one).
pg_cluster() {
    local line ver
    if command -v pg_lsclusters >/dev/null 2>&1; then
        line="$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p {print $1, $2; exit}')"
        if [ -n "$line" ]; then
            read -r PG_VER PG_NAME <<<"$line"
            return 0
        fi
    fi
    ver="$(find /etc/postgresql -mindepth 2 -maxdepth 2 -name main -printf '%P\n' 2>/dev/null \
        | cut -d/ -f1 | sort -V | tail -n1)"
    if [ -z "$ver" ]; then
        ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null \
            | sort -V | tail -n1)"
        [ -n "$ver" ] || die "no PostgreSQL server installed under /usr/lib/postgresql"
        log "postgres: no cluster configured; creating $ver/main on port $PG_PORT"
        as_root pg_createcluster --port "$PG_PORT" "$ver" main </dev/null \
            || die "pg_createcluster $ver main failed"
    fi
    PG_VER=$ver
    PG_NAME=main
}

pg_start() {
    local out="$LOG_DIR/salesync-postgres-start.log"
    pg_cluster
    local ver=$PG_VER name=$PG_NAME
    log "postgres: not accepting connections on $PG_HOST:$PG_PORT; starting cluster $ver/$name"
    if systemd_running; then
        as_root systemctl start "postgresql@$ver-$name" </dev/null >"$out" 2>&1 \
            || { cat "$out" >&2; warn "systemctl start postgresql@$ver-$name failed"; }
    else
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start </dev/null >"$out" 2>&1 \
            || { cat "$out" >&2; warn "pg_ctlcluster $ver $name start failed"; }
    fi
    wait_for "$PG_WAIT" "PostgreSQL on $PG_HOST:$PG_PORT" pg_ready \
        || die "PostgreSQL did not accept connections on $PG_HOST:$PG_PORT within ${PG_WAIT}s.
    Check: pg_lsclusters; tail /var/log/postgresql/postgresql-$ver-$name.log"
    log "postgres: started"
}

# Make "host ... 127.0.0.1/32" and "host ... ::1/128" rules use trust.
pg_trust_localhost() {
    local hba
    pg_cluster
    local ver=$PG_VER name=$PG_NAME
    hba="$(as_root runuser -u postgres -- psql -X -w -A -t -q -p "$PG_PORT" \
        -c 'show hba_file' </dev/null 2>/dev/null)" || hba=""
    [ -n "$hba" ] || hba="/etc/postgresql/$ver/$name/pg_hba.conf"
    as_root test -f "$hba" || die "cannot find pg_hba.conf (tried $hba)"

    log "postgres: user postgres cannot log in over TCP; setting 127.0.0.1/::1 to trust in $hba"
    as_root test -e "$hba.salesync-orig" || as_root cp -p "$hba" "$hba.salesync-orig"
    as_root sed -i -E \
        's@^([[:space:]]*host[a-z]*[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+).*$@\1trust@' \
        "$hba"
    # No such rule at all (hand-edited file): put ours first, first match wins.
    if ! as_root grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        as_root sed -i '1i # added by salesync deploy/setup.sh\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi

    as_root runuser -u postgres -- psql -X -w -q -p "$PG_PORT" -c 'select pg_reload_conf()' \
        </dev/null >/dev/null 2>&1 \
        || as_root pg_ctlcluster "$ver" "$name" reload </dev/null \
        || die "could not reload PostgreSQL after editing $hba"

    if ! wait_for 10 "PostgreSQL to reload pg_hba.conf" pg_can_login; then
        pg_psql -d postgres -c 'select 1' >&2 || true
        die "user postgres still cannot connect to $PG_HOST:$PG_PORT without a password (see the error above; $hba)"
    fi
}

ensure_postgres() {
    if pg_ready; then
        log "postgres: already running on $PG_HOST:$PG_PORT"
    else
        pg_start
    fi

    pg_can_login || pg_trust_localhost

    local exists
    exists="$(pg_psql -d postgres -tAc "select 1 from pg_database where datname = '$PG_DB'")" \
        || die "could not query pg_database"
    if [ "$exists" = 1 ]; then
        log "postgres: database $PG_DB exists"
    else
        log "postgres: creating database $PG_DB"
        pg_psql -d postgres -c "CREATE DATABASE $PG_DB OWNER postgres" \
            || [ "$(pg_psql -d postgres -tAc "select 1 from pg_database where datname = '$PG_DB'")" = 1 ] \
            || die "could not create database $PG_DB"
    fi
}

# --------------------------------------------------------------------------
# 4. RabbitMQ

mq_port_open() { timeout 3 bash -c ": </dev/tcp/$MQ_HOST/$MQ_PORT" >/dev/null 2>&1; }
mq_mgmt_ok() { curl -fsS -o /dev/null --max-time 5 -u guest:guest "$MQ_MGMT_URL" >/dev/null 2>&1; }
mq_ready() { mq_port_open && mq_mgmt_ok; }
mq_node_up() { as_root rabbitmq-diagnostics -q ping </dev/null >/dev/null 2>&1; }

ensure_rabbitmq() {
    if mq_ready; then
        log "rabbitmq: already running (AMQP $MQ_HOST:$MQ_PORT, management API up)"
        return 0
    fi

    local out="$LOG_DIR/salesync-rabbitmq-start.log"
    if mq_node_up; then
        # Running node without the management API: enable the plugin online.
        log "rabbitmq: node running; enabling rabbitmq_management"
        as_root rabbitmq-plugins enable rabbitmq_management </dev/null >"$out" 2>&1 \
            || { cat "$out" >&2; die "rabbitmq-plugins enable rabbitmq_management failed"; }
    else
        log "rabbitmq: not running; enabling rabbitmq_management (offline) and starting the node"
        as_root rabbitmq-plugins enable --offline rabbitmq_management </dev/null >"$out" 2>&1 \
            || { cat "$out" >&2; die "rabbitmq-plugins enable --offline rabbitmq_management failed"; }
        if systemd_running; then
            as_root systemctl start rabbitmq-server </dev/null >>"$out" 2>&1 \
                || { cat "$out" >&2; warn "systemctl start rabbitmq-server failed"; }
        else
            # stdio goes to a file so the detached node never holds our stdout.
            as_root rabbitmq-server -detached </dev/null >>"$out" 2>&1 \
                || { cat "$out" >&2; warn "rabbitmq-server -detached failed"; }
        fi
    fi

    if ! wait_for "$MQ_WAIT" "RabbitMQ (AMQP $MQ_HOST:$MQ_PORT and $MQ_MGMT_URL)" mq_ready; then
        local state=closed
        ! mq_port_open || state=open
        die "RabbitMQ not ready within ${MQ_WAIT}s (AMQP port $MQ_PORT $state; management API $MQ_MGMT_URL not answering for guest/guest).
    Check: rabbitmq-diagnostics status; ls /var/log/rabbitmq/; $out"
    fi
    log "rabbitmq: ready (AMQP $MQ_HOST:$MQ_PORT, management API up)"
}

# --------------------------------------------------------------------------
# 4b. RabbitMQ's own Prometheus endpoint (:15692; deploy/prometheus scrapes it,
#     tests/tests/observability_queries.rs queries it). Enabled on the running
#     node next to rabbitmq_management; enabling an enabled plugin is a no-op.
MQ_PROMETHEUS_URL="http://127.0.0.1:15692/metrics"

ensure_rabbitmq_prometheus() {
    if curl -sf -o /dev/null --max-time 5 "$MQ_PROMETHEUS_URL"; then
        log "rabbitmq: rabbitmq_prometheus already serving $MQ_PROMETHEUS_URL"
        return 0
    fi
    local out="$LOG_DIR/salesync-rabbitmq-prometheus.log"
    log "rabbitmq: enabling rabbitmq_prometheus"
    as_root rabbitmq-plugins enable rabbitmq_prometheus </dev/null >"$out" 2>&1 \
        || { cat "$out" >&2; die "rabbitmq-plugins enable rabbitmq_prometheus failed"; }
    wait_for 30 "RabbitMQ's Prometheus endpoint ($MQ_PROMETHEUS_URL)" \
        curl -sf -o /dev/null --max-time 5 "$MQ_PROMETHEUS_URL" \
        || die "rabbitmq_prometheus enabled but $MQ_PROMETHEUS_URL does not answer; see $out"
}

# --------------------------------------------------------------------------
# 5. The contract fuzz run's Python tools (tests/tests/contract_fuzz.rs)

FUZZ_VENV="$REPO/.venv-fuzz"
FUZZ_REQUIREMENTS="$HERE/fuzz-requirements.txt"
# A copy of the requirements the venv was built from: equal means up to date.
FUZZ_STAMP="$FUZZ_VENV/.salesync-requirements.txt"

fuzz_tools_current() {
    [ -x "$FUZZ_VENV/bin/schemathesis" ] && [ -x "$FUZZ_VENV/bin/openapi-spec-validator" ] \
        && cmp -s "$FUZZ_REQUIREMENTS" "$FUZZ_STAMP"
}

# python3 with a working venv module (Debian splits ensurepip into python3-venv).
python_can_venv() { python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }

ensure_fuzz_tools() {
    if fuzz_tools_current; then
        log "fuzz tools: present in $FUZZ_VENV"
        return 0
    fi
    if ! python_can_venv; then
        log "fuzz tools: python3 cannot make a venv; installing python3 python3-venv"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
            || die "apt-get update failed"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Use-Pty=0 \
            --no-install-recommends python3 python3-venv \
            || die "apt-get install python3 python3-venv failed"
        python_can_venv || die "python3 still cannot create a venv (python3 -m venv)"
    fi
    log "fuzz tools: installing $(grep -v '^#' "$FUZZ_REQUIREMENTS" | xargs) into $FUZZ_VENV"
    # A venv from an older pin list (or a half-made one) is replaced whole, so
    # nothing of the old versions lingers.
    rm -rf "$FUZZ_VENV"
    python3 -m venv "$FUZZ_VENV" 9<&- || die "python3 -m venv $FUZZ_VENV failed"
    "$FUZZ_VENV/bin/pip" install -q --disable-pip-version-check -r "$FUZZ_REQUIREMENTS" 9<&- \
        || die "pip install -r $FUZZ_REQUIREMENTS failed"
    cp "$FUZZ_REQUIREMENTS" "$FUZZ_STAMP"
    fuzz_tools_current || die "fuzz tools installed but not found in $FUZZ_VENV/bin"
}

# --------------------------------------------------------------------------
# 6. The manifest validators (tests/tests/deploy_manifests.rs), like step 5

DEPLOY_VENV="$REPO/.venv-deploy"
DEPLOY_REQUIREMENTS="$HERE/manifest-requirements.txt"
DEPLOY_STAMP="$DEPLOY_VENV/.salesync-requirements.txt"

deploy_tools_current() {
    [ -x "$DEPLOY_VENV/bin/check-jsonschema" ] && [ -x "$DEPLOY_VENV/bin/kubernetes-validate" ] \
        && cmp -s "$DEPLOY_REQUIREMENTS" "$DEPLOY_STAMP"
}

ensure_deploy_tools() {
    if deploy_tools_current; then
        log "manifest validators: present in $DEPLOY_VENV"
        return 0
    fi
    # ensure_fuzz_tools ran first: python3 can make a venv.
    log "manifest validators: installing $(grep -v '^#' "$DEPLOY_REQUIREMENTS" | xargs) into $DEPLOY_VENV"
    rm -rf "$DEPLOY_VENV"
    python3 -m venv "$DEPLOY_VENV" 9<&- || die "python3 -m venv $DEPLOY_VENV failed"
    "$DEPLOY_VENV/bin/pip" install -q --disable-pip-version-check -r "$DEPLOY_REQUIREMENTS" 9<&- \
        || die "pip install -r $DEPLOY_REQUIREMENTS failed"
    cp "$DEPLOY_REQUIREMENTS" "$DEPLOY_STAMP"
    deploy_tools_current || die "manifest validators installed but not found in $DEPLOY_VENV/bin"
}

# --------------------------------------------------------------------------

take_lock
ensure_packages
ensure_rust
ensure_postgres
ensure_rabbitmq
ensure_rabbitmq_prometheus
ensure_fuzz_tools
ensure_deploy_tools

log "setup done in $(( SECONDS - STARTED_AT ))s. Defaults used by ./test.sh and ./demo.sh (override by exporting):"
echo "    DATABASE_URL=$SALESYNC_DEFAULT_DATABASE_URL"
echo "    AMQP_URL=$SALESYNC_DEFAULT_AMQP_URL"
