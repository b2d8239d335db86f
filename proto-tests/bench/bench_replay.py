"""Replay benchmark: ticklake from CSV vs confluent-kafka (librdkafka) sending ready-made JSON lines, and vs Kafka's
Java producer (`ProducerPerformance --payload-file` with the same lines, when TICKLAKE_KAFKA_LIBS names the jars:
unkeyed, payloads drawn from the file; its own records/s, which leaves out the JVM's start).

Both write the same 1,000,000 index rows to a fresh topic with the same partition count, zstd compression,
5 ms linger and the idempotent producer (acks=all, producer id and sequence numbers), against the same broker,
in the same run, alternating, best of N rounds each. ticklake's time includes reading and parsing the CSV; the
peer's rows are JSON lines already in memory (its loading is not timed).
Both topics are checked to hold every row before a number is printed. Run through `just bench-replay`.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import sample_indices

ROWS = 1_000_000
PARTITIONS = 3


def csv_to_json_lines(path):
    """The same rows as ticklake sends them (snake_case names, typed values), encoded ahead of time."""
    import csv
    lines = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            doc = {
                "symbol": r["Index"], "trade_date": r["Date"], "open": float(r["Open"]), "high": float(r["High"]),
                "low": float(r["Low"]), "close": float(r["Close"]), "adj_close": float(r["Adj Close"]),
                "volume": int(float(r["Volume"])), "close_usd": float(r["CloseUSD"]),
            }
            lines.append((r["Index"].encode(), json.dumps(doc, separators=(",", ":")).encode()))
    return lines


def create_topic(brokers, topic):
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)


def topic_rows(binary, brokers, topic):
    """Records on the topic, from `ticklake topic describe`: its high watermarks come from fetch responses.
    (librdkafka's get_watermark_offsets uses ListOffsets(Latest), which Tansu 0.6 answers a batch short.)"""
    out = subprocess.run([binary, "topic", "describe", topic], check=True, capture_output=True, text=True,
                         env=dict(os.environ, KAFKA_BROKERS=brokers)).stdout
    return sum(int(line.split("\t")[3]) for line in out.splitlines()[2:])


def run_ticklake(binary, brokers, csv_path, topic):
    create_topic(brokers, topic)
    env = dict(os.environ, KAFKA_BROKERS=brokers, RUST_LOG="warn")
    t0 = time.perf_counter()
    subprocess.run([binary, "replay", csv_path, "--topic", topic, "--progress", "never", "--compression", "zstd",
                    "--linger", "5ms", "--idempotence", "on"], check=True, env=env)
    return time.perf_counter() - t0


def run_peer(brokers, lines, topic):
    create_topic(brokers, topic)
    p = Producer({
        "bootstrap.servers": brokers, "compression.type": "zstd", "linger.ms": 5, "batch.size": 512 * 1024,
        "queue.buffering.max.messages": 1_000_000, "partitioner": "murmur2_random", "acks": "all",
        "enable.idempotence": True,
    })
    t0 = time.perf_counter()
    produce = p.produce
    for i, (key, value) in enumerate(lines):
        while True:
            try:
                produce(topic, value=value, key=key)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10_000 == 0:
            p.poll(0)
    remaining = p.flush(120)
    elapsed = time.perf_counter() - t0
    if remaining:
        raise SystemExit(f"peer: {remaining} messages not delivered")
    return elapsed


def run_java(brokers, lines, topic, tmp, rows):
    """Kafka's ProducerPerformance with the same JSON lines, zstd, 5 ms linger, 512 KiB batches, acks=all,
    idempotence; the records/s it reports."""
    create_topic(brokers, topic)
    payload = os.path.join(tmp, "payload.txt")
    if not os.path.exists(payload):
        with open(payload, "wb") as f:
            f.write(b"\n".join(v for _, v in lines))
    libs = os.environ["TICKLAKE_KAFKA_LIBS"]
    out = subprocess.run(
        ["java", "-Xmx1g", "-cp", f"{libs}/*", "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
         "--num-records", str(rows), "--payload-file", payload, "--throughput", "-1", "--producer-props",
         f"bootstrap.servers={brokers}", "compression.type=zstd", "linger.ms=5", f"batch.size={512 * 1024}",
         "acks=all", "enable.idempotence=true"], check=True, capture_output=True, text=True).stdout
    last = [l for l in out.splitlines() if "records sent" in l][-1]
    return rows / float(last.split(",")[1].split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    brokers = os.environ["KAFKA_BROKERS"]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "indices.csv")
        sample_indices(args.bin, csv_path, args.rows)
        lines = csv_to_json_lines(csv_path)
        results = {"ticklake (CSV -> Kafka)": [], "confluent-kafka (JSON lines in memory -> Kafka)": []}
        if os.environ.get("TICKLAKE_KAFKA_LIBS"):
            results["Kafka's Java producer (ProducerPerformance, same lines)"] = []
        tag = random.randrange(1 << 32)
        for rnd in range(args.rounds):
            for name in (list(results) if rnd % 2 == 0 else list(reversed(list(results)))):
                short = {"ticklake": "tl", "confluent-kafka": "ck"}.get(name.split()[0], "java")
                topic = f"bench-replay-{tag:08x}-{rnd}-{short}"
                if name.startswith("ticklake"):
                    secs = run_ticklake(args.bin, brokers, csv_path, topic)
                elif name.startswith("Kafka"):
                    secs = run_java(brokers, lines, topic, tmp, args.rows)
                else:
                    secs = run_peer(brokers, lines, topic)
                got = topic_rows(args.bin, brokers, topic)
                if got != args.rows:
                    raise SystemExit(f"{name}: topic {topic} holds {got} rows, expected {args.rows}")
                results[name].append(secs)
                print(f"  round {rnd + 1}: {name}: {args.rows / secs:,.0f} rows/s ({secs:.2f} s)", file=sys.stderr)
    best = {name: args.rows / min(times) for name, times in results.items()}
    tl = best["ticklake (CSV -> Kafka)"]
    print(f"\nreplay benchmark: {args.rows:,} index rows, {PARTITIONS} partitions, zstd, best of {args.rounds}")
    print(f"{'producer':<56} {'rows/s':>12} {'ticklake /':>11}")
    for name, rate in best.items():
        print(f"{name:<56} {rate:>12,.0f} {tl / rate:>10.2f}x")


if __name__ == "__main__":
    main()
