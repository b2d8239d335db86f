#!/usr/bin/env bash
# An Iceberg live feed's metadata, before and after retention: a sampled feed stamped now (30 rows/s) into 3
# partitions, `sink --format iceberg` (sqlite catalog, local warehouse) with --max-age 1s for SECONDS, then two
# minutes more with `lake expire --older-than 30s` every 30 s while the sink keeps running. Prints cuts, snapshots
# (cuts per commit round), data and metadata sizes, the newest metadata file, and the median commit time, before and
# after.
#   proto-tests/bench/live_iceberg.sh BIN [SECONDS]   (with a broker's environment: source .servers/env)
set -euo pipefail
bin=$1; secs=${2:-700}
d=$(mktemp -d); t=liveice-$(date +%s)
trap 'kill $replay $sink 2>/dev/null || true' EXIT
"$bin" topic create "$t" --partitions 3 >/dev/null
"$bin" replay data/indices.csv --topic "$t" --sample --stamp-now --rate 30 --limit $(( (secs + 130) * 30 )) --progress never 2>"$d/replay.log" &
replay=$!
RUST_LOG=info,ticklake::sink=debug,rskafka=error "$bin" sink --topic "$t" --to "$d/wh" --format iceberg \
  --catalog "sqlite:$d/catalog.db" --table live.t --max-age 1s >"$d/sink.out" 2>"$d/sink.log" &
sink=$!
size() { find "$d/wh" "$@" -printf '%s\n' | awk '{s+=$1; n++} END {printf "%d files, %.2f MB", n, s/1e6}'; }
newest() { ls -t "$d"/wh/live/t/metadata/*.metadata.json | head -1 | xargs stat -c %s | awk '{printf "%.1f KB", $1/1e3}'; }
# The median `took` of the commits on stdin (their log lines), in ms.
median_took() { sed 's/.*took=//' | awk '{v=$1; if (v ~ /ms$/) v+=0; else if (v ~ /µs$/) v=v/1000; else v=v*1000; print v}' | sort -g | awk '{a[NR]=$1} END {printf "%.0f ms", a[int((NR+1)/2)]}'; }
report() {
  local cuts; cuts=$(grep -c 'cut committed' "$d/sink.log")
  local snaps; snaps=$("$bin" lake stats --topic "$t" --to "$d/wh" --table live.t --catalog "sqlite:$d/catalog.db" 2>/dev/null | grep -o '[0-9]* snapshot' | head -1)
  echo "$1: $cuts cuts committed, ${snaps}(s); data $(size -name '*.parquet'); metadata.json $(size -name '*.metadata.json'), newest $(newest); all metadata $(size -path '*/metadata/*')"
}
sleep "$secs"
report "after ${secs} s, no retention"
echo "median commit time of the last 300 cuts: $(grep 'cut committed' "$d/sink.log" | tail -300 | median_took)"
cuts_before=$(grep -c 'cut committed' "$d/sink.log")
# Retention as a timer would run it: `lake expire --older-than 30s` every 30 s, four times, the sink running.
for _ in 1 2 3 4; do
  "$bin" lake expire --to "$d/wh" --table live.t --catalog "sqlite:$d/catalog.db" --older-than 30s
  sleep 30
done
report "with lake expire every 30 s for 2 minutes (the sink kept running)"
echo "median commit time after expire: $(grep 'cut committed' "$d/sink.log" | tail -n +$((cuts_before + 1)) | median_took)"
kill -TERM $sink; wait $sink || true
"$bin" lake verify --topic "$t" --to "$d/wh" --table live.t --catalog "sqlite:$d/catalog.db" | grep -E 'snapshot|exactly once'
