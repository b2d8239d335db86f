"""Sink benchmark: ticklake sink vs an rskafka drain that decodes nothing vs a Python peer, same topic, same run.

1. 1,000,000 index rows (70 symbols, 1965-2025) replayed into a 3-partition topic.
2. drain: `ticklake consume --exit-at-end --count` (fetches everything, decodes nothing: the physical limit).
3. ticklake sink --exit-at-end into a fresh bucket on the S3 server (default layout: year(trade_date), rows sorted
   by date then symbol, 4,096-row groups, ZSTD); then `lake verify`.
4. Python peer: confluent-kafka (assign(), librdkafka) + json + pyarrow, writing the same year partitions, sorted,
   ZSTD, 4,096-row groups, with boto3 into another bucket.
5. Peak RSS of the sink with 1,000 hive partitions open (1,000 symbols, --partition-by symbol).
6. The same sink into a local folder: the sink without the S3 server's share of the two cores.
7. The same sink with --format iceberg: a Glue table (moto as Glue) on the same S3 server (MinIO), and a sqlite-catalog
   table in a local folder; each verified with `lake verify --table`. Records/s and peak RSS next to the hive sink's.
8. With --connect-libs: Apache Iceberg's Kafka Connect sink (standalone worker, one task per partition, commits every
   second) into the REST catalog on MinIO, and ticklake's Iceberg sink into the same catalog beside it.
Every run also reports CPU-seconds: the process's own, and the broker's and S3 server's while it ran (they share
the machine's two cores, so a run can go no faster than all of that CPU divided by two).
Run through `just bench-sink`.
"""

import argparse
import collections
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition

import connect_peer
from common import replay_into, sample_indices

PARTITIONS = 3


# The broker and the S3 server whose CPU is counted: Apache Kafka and MinIO (servers.sh start-reference).
BROKER, S3_SERVER = "kafka", "minio"


def server_cpu():
    """CPU-seconds used so far by the broker and the S3 server (pidfiles of proto-tests/scripts/servers.sh)."""
    import glob
    state = os.environ.get("TICKLAKE_SERVERS_STATE", ".servers")
    out = {}
    for name in (BROKER, S3_SERVER):
        try:
            pid = open(glob.glob(f"{state}/*.{name}.pid")[0]).read().strip()
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            out[name] = float("nan")
    return out


def timed(cmd, env):
    """Runs cmd; returns (seconds, peak RSS in MiB, stdout, CPU-seconds of cmd, of the broker, of the S3 server).

    The peak RSS is the one the sink reports itself (VmHWM of its own address space). A child's ru_maxrss from
    wait4 is not usable here: Linux carries the parent's high-water mark over the fork into the child's rusage, so
    once this script holds the Python peer's data (about 800 MiB), every later child "peaks" at 800 MiB.
    """
    s0 = server_cpu()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    s1 = server_cpu()
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({status}):\n{err.decode()[-2000:]}")
    peak = [l.rsplit("peak RSS ", 1)[1].split()[0] for l in err.decode().splitlines() if "peak RSS " in l]
    rss = float(peak[-1]) if peak else usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime
    return secs, rss, out.decode(), cpu, s1[BROKER] - s0[BROKER], s1[S3_SERVER] - s0[S3_SERVER]


def python_peer(brokers, topic, total, s3, bucket):
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"peer-{random.randrange(1 << 30)}",
                  "enable.auto.commit": False, "fetch.max.bytes": 8 << 20})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    cols = collections.defaultdict(list)
    n = 0
    while n < total:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error():
                continue
            d = json.loads(m.value())
            for k in ("symbol", "trade_date", "open", "high", "low", "close", "adj_close", "volume", "close_usd"):
                cols[k].append(d.get(k))
            cols["kafka_partition"].append(m.partition())
            cols["kafka_offset"].append(m.offset())
            cols["kafka_timestamp"].append(m.timestamp()[1])
            n += 1
    c.close()
    import datetime
    dates = [datetime.date.fromisoformat(x) for x in cols["trade_date"]]
    schema = pa.schema([("symbol", pa.string()), ("trade_date", pa.date32()), ("open", pa.float64()),
                        ("high", pa.float64()), ("low", pa.float64()), ("close", pa.float64()),
                        ("adj_close", pa.float64()), ("volume", pa.int64()), ("close_usd", pa.float64()),
                        ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64()),
                        ("kafka_timestamp", pa.timestamp("ms", tz="UTC"))])
    cols["trade_date"] = dates
    table = pa.table({k: cols[k] for k in schema.names}, schema=schema)
    years = pa.array([d.year for d in dates])
    files = 0
    for year in sorted(set(years.to_pylist())):
        part = table.filter(pc.equal(years, year)).sort_by([("trade_date", "ascending"), ("symbol", "ascending")])
        buf = io.BytesIO()
        pq.write_table(part, buf, compression="zstd", row_group_size=4096)
        s3.put_object(Bucket=bucket, Key=f"peer/year={year}/part-0.parquet", Body=buf.getvalue())
        files += 1
    return files


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--connect-libs", help="Kafka Connect + Iceberg sink jars (servers.sh install-connect)")
    a = ap.parse_args()
    env = dict(os.environ, RUST_LOG="warn")
    brokers = env["KAFKA_BROKERS"]
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    tag = f"{random.randrange(1 << 32):08x}"
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "indices.csv")
        sample_indices(a.bin, csv, a.rows)
        topic = f"bench-sink-{tag}"
        replay_into(a.bin, csv, topic, PARTITIONS, env)

        drain_s, _, out, drain_cpu, drain_broker, _ = timed([a.bin, "consume", "--topic", topic, "--exit-at-end", "--count"], env)
        assert int(out.strip()) == a.rows, f"drain read {out.strip()} records"

        bucket = f"bench-sink-{tag}"
        s3.create_bucket(Bucket=bucket)
        sink_s, sink_rss, _, sink_cpu, sink_broker, sink_s3 = timed(
            [a.bin, "sink", "--topic", topic, "--to", f"s3://{bucket}/lake", "--exit-at-end"], env)
        verify = subprocess.run([a.bin, "lake", "verify", "--topic", topic, "--to", f"s3://{bucket}/lake"], env=env,
                                capture_output=True, text=True)
        if verify.returncode != 0:
            raise SystemExit(verify.stdout + verify.stderr)
        sink_files = sum(1 for o in s3.list_objects_v2(Bucket=bucket, Prefix="lake/")["Contents"]
                         if o["Key"].endswith(".parquet"))

        # The same records into an Iceberg table: Glue catalog (moto) + the same S3 server, then sqlite + local folder.
        ice_s, ice_rss, _, ice_cpu, ice_broker, ice_s3 = timed(
            [a.bin, "sink", "--topic", topic, "--to", f"s3://{bucket}/warehouse", "--exit-at-end", "--format", "iceberg",
             "--catalog", "glue", "--table", f"bench.ice_{tag}"], env)
        verify = subprocess.run([a.bin, "lake", "verify", "--topic", topic, "--to", f"s3://{bucket}/warehouse",
                                 "--table", f"bench.ice_{tag}", "--catalog", "glue"], env=env, capture_output=True,
                                text=True)
        if verify.returncode != 0:
            raise SystemExit(verify.stdout + verify.stderr)
        ice_files = sum(1 for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="warehouse/")
                        for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))

        # ticklake and Iceberg's Kafka Connect sink into the same REST catalog (warehouse on MinIO).
        rest = None
        if a.connect_libs:
            rest_s, rest_rss, _, rest_cpu, rest_broker, rest_s3 = timed(
                [a.bin, "sink", "--topic", topic, "--to", env["TICKLAKE_ICEBERG_REST_WAREHOUSE"], "--exit-at-end",
                 "--format", "iceberg", "--catalog", f"rest:{env['TICKLAKE_ICEBERG_REST']}",
                 "--table", f"bench.rest_{tag}"], env)
            kc_s0 = server_cpu()
            workdir = os.path.join(tmp, "connect")
            os.makedirs(workdir)
            kc_s, kc_rss, kc_cpu, kc_snaps, kc_files = connect_peer.run(a.bin, a.connect_libs, env, topic, PARTITIONS,
                                                                        a.rows, workdir, tag)
            kc_s1 = server_cpu()
            rest = (rest_s, rest_rss, rest_cpu, rest_broker, rest_s3, kc_s, kc_rss, kc_cpu, kc_snaps, kc_files,
                    kc_s1[BROKER] - kc_s0[BROKER], kc_s1[S3_SERVER] - kc_s0[S3_SERVER])

        peer_bucket = f"bench-peer-{tag}"
        s3.create_bucket(Bucket=peer_bucket)
        s0, c0, t0 = server_cpu(), time.process_time(), time.perf_counter()
        peer_files = python_peer(brokers, topic, a.rows, s3, peer_bucket)
        peer_s, peer_cpu, s1 = time.perf_counter() - t0, time.process_time() - c0, server_cpu()
        peer_broker, peer_s3 = s1[BROKER] - s0[BROKER], s1[S3_SERVER] - s0[S3_SERVER]

        local = os.path.join(tmp, "lake")
        local_s, _, _, local_cpu, local_broker, _ = timed(
            [a.bin, "sink", "--topic", topic, "--to", local, "--exit-at-end"], env)
        local_files = sum(f.endswith(".parquet") for _, _, fs in os.walk(local) for f in fs)
        ice_local = os.path.join(tmp, "iceberg")
        ice_local_s, ice_local_rss, _, ice_local_cpu, ice_local_broker, _ = timed(
            [a.bin, "sink", "--topic", topic, "--to", ice_local, "--exit-at-end", "--format", "iceberg",
             "--catalog", f"sqlite:{ice_local}/catalog.db", "--table", "bench.indices"], env)
        ice_local_files = sum(f.endswith(".parquet") for _, _, fs in os.walk(ice_local) for f in fs)

        # Peak RSS with 1,000 hive partitions open.
        csv2 = os.path.join(tmp, "wide.csv")
        sample_indices(a.bin, csv2, a.rows, symbols=1000, start="2020-01-01")
        topic2 = f"bench-wide-{tag}"
        replay_into(a.bin, csv2, topic2, PARTITIONS, env)
        wide_s, wide_rss, *_ = timed([a.bin, "sink", "--topic", topic2, "--to", f"s3://{bucket}/wide", "--exit-at-end",
                                     "--partition-by", "symbol"], env)
        wide_parts = len({o["Key"].split("/")[1] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="wide/symbol=") for o in page.get("Contents", [])})

    rate = lambda s: a.rows / s
    print(f"\nsink benchmark: {a.rows:,} index records, {PARTITIONS} partitions, S3 server on loopback")
    print(f"{'consumer':<58} {'records/s':>10} {'files':>6} {'CPU-s':>6} {'broker':>7} {'S3':>6}")
    row = lambda name, secs, files, cpu, broker, s3cpu: print(
        f"{name:<58} {rate(secs):>10,.0f} {files:>6} {cpu:>6.2f} {broker:>7.2f} {s3cpu:>6.2f}")
    row("rskafka drain, decodes nothing (ticklake consume --count)", drain_s, "-", drain_cpu, drain_broker, 0)
    row("ticklake sink (year partitions, sorted, ZSTD, verified)", sink_s, sink_files, sink_cpu, sink_broker, sink_s3)
    row("Python peer (confluent-kafka + json + pyarrow + boto3)", peer_s, peer_files, peer_cpu, peer_broker, peer_s3)
    row("ticklake sink into a local folder (no S3 server)", local_s, local_files, local_cpu, local_broker, 0)
    row("ticklake sink --format iceberg, Glue + S3 (verified)", ice_s, ice_files, ice_cpu, ice_broker, ice_s3)
    row("ticklake sink --format iceberg, sqlite + local folder", ice_local_s, ice_local_files, ice_local_cpu,
        ice_local_broker, 0)
    if rest:
        rest_s, rest_rss, rest_cpu, rest_broker, rest_s3, kc_s, kc_rss, kc_cpu, kc_snaps, kc_files, kc_b, kc_3 = rest
        row("ticklake sink --format iceberg, REST catalog + S3", rest_s, "-", rest_cpu, rest_broker, rest_s3)
        row("Iceberg's Kafka Connect sink 1.9.2, REST catalog + S3", kc_s, kc_files, kc_cpu, kc_b, kc_3)
        print(f"iceberg sink / Kafka Connect's Iceberg sink, records/s: {kc_s / rest_s:.2f}x   peak RSS: "
              f"{rest_rss:.0f} vs {kc_rss:.0f} MiB   Kafka Connect: {kc_snaps} snapshots, {kc_files} data files "
              f"per {a.rows:,} records")
    print(f"iceberg / hive sink, records/s: {sink_s / ice_s:.2f}x to S3, {local_s / ice_local_s:.2f}x local   "
          f"peak RSS: {ice_rss:.0f} vs {sink_rss:.0f} MiB ({ice_rss / sink_rss:.2f}x) to S3, "
          f"{ice_local_rss:.0f} MiB local")
    print(f"ratio sink / drain: {drain_s / sink_s:.2f}x   sink / Python peer: {peer_s / sink_s:.1f}x   "
          f"local-folder sink / drain: {drain_s / local_s:.2f}x")
    total = sink_cpu + sink_broker + sink_s3
    print(f"CPU budget: 0.8x the drain on 2 cores allows {2 * drain_s / 0.8:.2f} CPU-s for sink + broker + S3 "
          f"server; they used {total:.2f} ({total / 2:.2f} s of wall at best, vs {sink_s:.2f} s taken)")
    print(f"peak RSS: {sink_rss:.0f} MiB (year partitions); {wide_rss:.0f} MiB with {wide_parts} hive partitions "
          f"open ({rate(wide_s):,.0f} records/s)")


if __name__ == "__main__":
    main()
