"""Apache Iceberg's Kafka Connect sink as the Iceberg sink's peer: a standalone Connect worker (Kafka Connect from
the broker's release) running IcebergSinkConnector into the REST catalog, warehouse on MinIO, as a user of the
connector would set it up (one task per partition, schemaless JSON values, a table it creates itself).

It runs until the table's snapshots hold every record (checked at each commit the connector logs); records/s is
counted from the worker's start, JVM start-up included, as ticklake's time includes its own start. Used by
bench_sink.py."""

import os
import socket
import subprocess
import threading
import time

from pyiceberg.catalog import load_catalog


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_and_peak(pid):
    """CPU-seconds and peak RSS (MiB, VmHWM) of a running process."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM:"))
    return cpu, int(hwm.split()[1]) / 1024


def run(binary, libs, env, topic, partitions, rows, workdir, tag, commit_ms=1_000, timeout_s=900):
    """Returns (seconds, peak RSS MiB, CPU-s, snapshots, data files) for `rows` records of `topic`."""
    brokers, rest = env["KAFKA_BROKERS"], env["TICKLAKE_ICEBERG_REST"]
    s3, key, secret = env["AWS_ENDPOINT_URL"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    control = f"control-iceberg-{tag}"
    # The broker creates no topics on its own (auto.create.topics.enable=false): the connector's control topic first.
    subprocess.run([binary, "topic", "create", control, "--partitions", "1"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    table = f"bench.kc_{tag}"
    worker = os.path.join(workdir, "worker.properties")
    with open(worker, "w") as f:
        f.write(f"""bootstrap.servers={brokers}
listeners=http://127.0.0.1:{free_port()}
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=false
offset.storage.file.filename={workdir}/connect.offsets
offset.flush.interval.ms=10000
consumer.max.poll.records=10000
consumer.fetch.max.bytes=8388608
""")
    connector = os.path.join(workdir, "iceberg.properties")
    with open(connector, "w") as f:
        f.write(f"""name=iceberg-{tag}
connector.class=org.apache.iceberg.connect.IcebergSinkConnector
tasks.max={partitions}
topics={topic}
iceberg.tables={table}
iceberg.tables.auto-create-enabled=true
iceberg.control.topic={control}
iceberg.control.commit.interval-ms={commit_ms}
iceberg.catalog.type=rest
iceberg.catalog.uri={rest}
iceberg.catalog.io-impl=org.apache.iceberg.aws.s3.S3FileIO
iceberg.catalog.s3.endpoint={s3}
iceberg.catalog.s3.path-style-access=true
iceberg.catalog.s3.access-key-id={key}
iceberg.catalog.s3.secret-access-key={secret}
iceberg.catalog.client.region=us-east-1
""")
    catalog = load_catalog("bench", type="rest", uri=rest, **{
        "s3.endpoint": s3, "s3.access-key-id": key, "s3.secret-access-key": secret, "s3.region": "us-east-1"})
    try:
        catalog.create_namespace("bench")
    except Exception:  # noqa: BLE001 (exists already: an earlier peer run or ticklake's own bench table)
        pass
    log = open(os.path.join(workdir, "connect.log"), "w")
    t0 = time.perf_counter()
    p = subprocess.Popen(["java", "-Xmx1G", "-cp", os.path.join(libs, "*"),
                          f"-Dlog4j2.configurationFile={os.path.abspath('proto-tests/kafka-connect/log4j2.properties')}",
                          "org.apache.kafka.connect.cli.ConnectStandalone", worker, connector],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    # A hang becomes a failure: the watchdog ends the worker, which ends its output.
    watchdog = threading.Timer(timeout_s, p.kill)
    watchdog.start()
    peak = cpu = 0.0
    try:
        total, secs = 0, None
        # The event: the connector logs each commit to the table; only then can the table hold more records.
        for line in p.stdout:
            log.write(line)
            if "Commit complete to table" not in line:
                continue
            cpu, peak = proc_cpu_and_peak(p.pid)
            snap = catalog.load_table(table).current_snapshot()
            total = int(snap.summary["total-records"]) if snap else 0
            if total >= rows:
                secs = time.perf_counter() - t0
                break
        if secs is None:
            log.flush()
            raise SystemExit(f"the Kafka Connect worker ended ({p.poll()}) with {total} of {rows} records in the "
                             f"table (timeout {timeout_s} s); see {log.name}:\n" + open(log.name).read()[-3000:])
        t = catalog.load_table(table)
        snaps = len(t.metadata.snapshots)
        files = int(t.current_snapshot().summary["total-data-files"])
        assert total == rows, f"the connector's table holds {total} records, {rows} sent"
        return secs, peak, cpu, snaps, files
    finally:
        watchdog.cancel()
        p.terminate()
        p.wait(timeout=60)
        log.close()
