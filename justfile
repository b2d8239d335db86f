# ticklake tasks. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

target_dir := env_var_or_default("CARGO_TARGET_DIR", "target")
musl := "x86_64-unknown-linux-musl"
servers := "proto-tests/scripts/servers.sh"
# The proto-tests that also run against Tansu: delivery, the sink, crashes, compaction, a consumer group.
core_tests := "replay:: sink:: compaction:: group::three_hive"

# List the recipes.
default:
    @just --list

# Debug build.
build:
    cargo build

# Lint, unit tests, proto-tests against a real broker and S3 server (installed/started if needed, then stopped).
test: lint unit proto

# Unit tests (no network).
unit:
    cargo test --lib --bins

# Proto-tests against the reference servers (Apache Kafka, MinIO, moto for Glue), then the core set (replay, sink,
# SIGKILLs, compaction) again against Tansu, a second broker implementation; starts the servers if they are not
# running and stops only what it started.
proto:
    {{servers}} install-reference
    owner="proto-$$"; {{servers}} start-reference "$owner"; trap '{{servers}} stop "$owner"' EXIT; source .servers/env && \
      cargo test --test proto -- --test-threads 2 && \
      echo "proto: the core set against Tansu ($TICKLAKE_TANSU_BROKERS)" && \
      KAFKA_BROKERS="$TICKLAKE_TANSU_BROKERS" TICKLAKE_BROKER=tansu cargo test --test proto -- --test-threads 2 {{core_tests}}

# rustfmt and clippy, warnings are errors.
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# Fuzz each target for a bounded time with libFuzzer and AddressSanitizer; a crash, a leak, an overflow or an
# allocation over 512 MiB fails (the input is saved under proto-tests/fuzz/artifacts/). Only the stable toolchain
# exists here: RUSTC_BOOTSTRAP=1 lets it take the -Zsanitizer flag cargo-fuzz passes. The dev profile (--dev): the
# same sanitizer and coverage, overflow checks and debug assertions on, and a cold build of the dependencies in a
# fraction of the optimised one's 21 minutes; fewer runs per second, which 30 s per target can spare.
fuzz seconds="30":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    for t in csv_row record_json; do \
      RUSTC_BOOTSTRAP=1 cargo fuzz run --dev --fuzz-dir proto-tests/fuzz --target-dir "$HOME/.cache/ticklake/fuzz-target" "$t" -- \
        -max_total_time={{seconds}} -malloc_limit_mb=512 -rss_limit_mb=2048 -max_len=65536; \
    done

# Start the test servers and leave them running (`just servers-down` stops them).
servers-up:
    {{servers}} install
    {{servers}} start up
    @echo "source .servers/env  # to point ticklake at them"

# Stop the servers that servers-up (or demo, or live) started.
servers-down:
    {{servers}} stop up

# Create a bucket on the local S3 test server (`just servers-up` first). A production sink never creates buckets.
bucket name:
    source .servers/env && "$TICKLAKE_PYTHON" -c "import boto3, os; boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL']).create_bucket(Bucket='{{name}}'); print('created s3://{{name}} on', os.environ['AWS_ENDPOINT_URL'])"

# Install the ticklake binary into ~/.cargo/bin (then `ticklake ...` works as the README writes it).
install:
    cargo install --path . --locked

# Regenerate the sample CSVs in data/ (deterministic: same bytes every time).
sample-data:
    cargo run --quiet -- sample indices --rows 4000 --symbols 13 --start 2020-01-01 --seed 42 -o data/indices.csv
    cargo run --quiet -- sample ticks --rows 3000 --symbols 8 --start 2024-03-04 --seed 7 -o data/ticks.csv

# The main job on the embedded defaults: local broker, sample data into a topic, the topic into ./lake (a local
# folder instead of S3), proof that the lake holds every record exactly once, then a query over it.
demo:
    #!/usr/bin/env bash
    set -euo pipefail
    {{servers}} install
    {{servers}} start up
    echo "demo: building the binary (profile demo; cargo's progress follows; several minutes on 2 cores the first time)"
    cargo build --profile demo
    source .servers/env
    bin={{target_dir}}/demo/ticklake
    topic="demo-indices-$(date +%s)"  # a topic of its own: a rerun does not count the last run's rows again
    rm -rf ./lake                     # the demo's own folder: each run starts from an empty lake
    set -x
    $bin replay data/indices.csv --topic "$topic" --partitions 3
    $bin consume --topic "$topic" --limit 2 --meta
    $bin sink --topic "$topic" --to ./lake --exit-at-end
    $bin lake verify --topic "$topic" --to ./lake
    { set +x; } 2>/dev/null
    echo
    echo "Rows per symbol and the last close, as you would ask Athena, here with DuckDB over ./lake:"
    "$TICKLAKE_PYTHON" proto-tests/scripts/query_lake.py ./lake
    echo
    echo "The Athena table for the same data:  $bin athena --to ./lake --table market.indices"
    echo "Stop the local servers:              just servers-down"

# The seed's real-time scenario for a minute: a sampled feed stamped now (5 rows/s), a sink cutting every 10 s,
# `lake stats` showing today's partitions filling, and the dashboard of both (its address is printed).
live seconds="60":
    #!/usr/bin/env bash
    set -euo pipefail
    {{servers}} install
    {{servers}} start up
    cargo build --profile demo
    source .servers/env
    bin={{target_dir}}/demo/ticklake
    topic="live-$(date +%s)"
    lake=./lake-live
    rm -rf "$lake"
    rows=$(( {{seconds}} * 5 ))
    $bin replay data/indices.csv --topic "$topic" --sample --stamp-now --rate 5 --limit "$rows" &
    replay=$!
    # The topic exists once replay has sent its first row.
    until $bin topic describe "$topic" >/dev/null 2>&1; do sleep 0.2; done
    $bin sink --topic "$topic" --to "$lake" --max-age 10s --stats-every 20s &
    sink=$!
    port="${TICKLAKE_DASHBOARD_PORT:-8080}"
    $bin dashboard --topic "$topic" --to "$lake" --listen "127.0.0.1:$port" --quiet &
    dash=$!
    trap 'kill $replay $sink $dash 2>/dev/null || true' EXIT
    echo "live: the dashboard of this feed and its lake is at http://127.0.0.1:$port/ (open it now; it stops with the feed)"
    for i in $(seq 1 $(( {{seconds}} / 20 ))); do
      sleep 20
      echo "--- lake stats after ${i}x20 s:"
      $bin lake stats --topic "$topic" --to "$lake" | head -n 4
    done
    wait $replay
    kill -TERM $sink; wait $sink || true
    echo "--- at the end:"
    $bin lake stats --topic "$topic" --to "$lake"
    $bin lake verify --topic "$topic" --to "$lake"

# Fully static release binary for x86_64 Linux (Amazon Linux 2 and anything else): target/<musl>/release/ticklake.
dist:
    rustup target list --installed | grep -q {{musl}} || rustup target add {{musl}}
    command -v musl-gcc >/dev/null || (apt-get update -qq && apt-get install -y -qq musl-tools)
    CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --target {{musl}}
    # Ship it stripped (111 MB with line tables, about 21 MB without); the debug info stays beside it for profiling
    # (`ticklake.debug`, found by gdb and perf through the debug link).
    # Only a binary cargo just linked has debug info: a rerun with nothing to build keeps the debug file it made.
    cd {{target_dir}}/{{musl}}/release && if readelf -S ticklake | grep -q '\.debug_info'; then \
      objcopy --only-keep-debug ticklake ticklake.debug && \
      objcopy --strip-debug --strip-unneeded --add-gnu-debuglink=ticklake.debug ticklake; fi
    # Both checked: a binary shipped with its debug info, or a debug file of another build (dist-check reads its
    # symbols), would pass unnoticed otherwise (seen once: a build whose strip step did not run).
    cd {{target_dir}}/{{musl}}/release && if readelf -S ticklake | grep -q '\.debug_info'; then \
      echo "dist: ticklake still has its debug info"; exit 1; fi
    cd {{target_dir}}/{{musl}}/release && test "$(readelf -n ticklake | grep 'Build ID')" = "$(readelf -n ticklake.debug | grep 'Build ID')" \
      || { echo "dist: ticklake.debug is another build's (build ids differ)"; exit 1; }
    @ls -l {{target_dir}}/{{musl}}/release/ticklake {{target_dir}}/{{musl}}/release/ticklake.debug

# Check that the dist binary is static and runs with no libc at all (inside an empty chroot).
dist-check: dist
    #!/usr/bin/env bash
    set -euo pipefail
    bin="{{target_dir}}/{{musl}}/release/ticklake"
    command -v file >/dev/null || (apt-get update -qq && apt-get install -y -qq file)
    file "$bin"
    file "$bin" | grep -Eq "static(-pie)? linked" || { echo "not static: $(file "$bin")"; exit 1; }
    root="$(mktemp -d)"; trap 'rm -rf "$root"' EXIT
    cp "$bin" "$root/ticklake"
    chroot "$root" /ticklake --version
    echo "dist-check: static binary runs in an empty chroot"
    # It aborts on a panic (panic = "abort") with ticklake's message and exit code for a bug (12), not SIGABRT.
    code=0; TICKLAKE_PANIC_FOR_TEST=1 chroot "$root" /ticklake --version 2> "$root/panic.err" || code=$?
    grep -q 'internal error (a bug in ticklake' "$root/panic.err" && [ "$code" = 12 ] \
      || { echo "dist-check: a panic exited $code: $(cat "$root/panic.err")"; exit 1; }
    # Its memcpy/memmove are ticklake's (src/memcopy.rs): musl's object defining them (and `__memcpy_fwd`) is not linked.
    syms="$(nm "$bin.debug")"
    grep -q ' T memcpy$' <<<"$syms" || { echo "no memcpy in $bin.debug's symbols"; exit 1; }
    if grep -q ' __memcpy_fwd$' <<<"$syms"; then echo "musl's memcpy is linked in"; exit 1; fi
    # And they copy right: the static binary's output equals the debug build's, for work that is copies and no libm
    # (sample data may differ in a last digit: musl's ln and cos are not glibc's).
    cargo build --quiet
    dbg="$(realpath {{target_dir}})/debug/ticklake"
    "$dbg" sample indices --rows 50000 -o "$root/in.csv"
    for args in "schema infer in.csv" "completions bash" "completions zsh" "completions fish"; do
      chroot "$root" /ticklake $args > "$root/static.out"
      (cd "$root" && "$dbg" $args > debug.out)
      cmp "$root/static.out" "$root/debug.out"
    done
    chroot "$root" /ticklake man --dir /man-static
    "$dbg" man --dir "$root/man-debug"
    diff -r "$root/man-static" "$root/man-debug"
    echo "dist-check: ticklake's memcpy in the static binary; its output matches the debug build's"

# Replay 1,000,000 index rows flat out on Apache Kafka; rows/s next to confluent-kafka (librdkafka) and the Java producer, same run.
bench-replay:
    {{servers}} install-reference
    {{servers}} start-reference bench
    trap '{{servers}} stop bench' EXIT; source .servers/env && cargo build --release --quiet && "$TICKLAKE_PYTHON" proto-tests/bench/bench_replay.py --bin {{target_dir}}/release/ticklake

# The proto-tests against Docker's Redpanda + MinIO when Docker runs, else against the local servers.
e2e:
    #!/usr/bin/env bash
    set -euo pipefail
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
      docker compose up -d --wait
      trap 'docker compose down' EXIT
      export KAFKA_BROKERS=127.0.0.1:9092 AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=minioadmin \
        AWS_SECRET_ACCESS_KEY=minioadmin AWS_REGION=us-east-1 TICKLAKE_PROTO=1
      {{servers}} install
      export TICKLAKE_PYTHON="$PWD/.venv/bin/python"
      cargo test --test proto -- --test-threads 2
    else
      echo "e2e: no Docker engine here; running against the local servers"
      just proto
    fi

# Sink 1,000,000 records: ticklake vs an rskafka drain vs a Python peer (confluent-kafka + pyarrow) vs Iceberg's Kafka Connect sink, same run.
bench-sink:
    {{servers}} install-reference
    {{servers}} start-reference bench
    libs="$({{servers}} install-connect)"; trap '{{servers}} stop bench' EXIT; source .servers/env && cargo build --release --quiet && "$TICKLAKE_PYTHON" proto-tests/bench/bench_sink.py --bin {{target_dir}}/release/ticklake --connect-libs "$libs"

# The dashboard at a feed of 5,000 records/s with a page open in headless Chromium: the page's responsiveness, and
# the dashboard's CPU and RSS next to the sink's in the same run.
bench-dashboard:
    {{servers}} install-reference
    {{servers}} start-reference bench
    trap '{{servers}} stop bench' EXIT; source .servers/env && cargo build --release --quiet && "$TICKLAKE_PYTHON" proto-tests/bench/bench_dashboard.py --bin {{target_dir}}/release/ticklake

# Bytes Athena would scan for three reference queries: the lake vs one JSON object per message (from footers).
bench-athena:
    {{servers}} install
    {{servers}} start
    trap '{{servers}} stop' EXIT; source .servers/env && cargo build --release --quiet && "$TICKLAKE_PYTHON" proto-tests/bench/bench_athena.py --bin {{target_dir}}/release/ticklake
