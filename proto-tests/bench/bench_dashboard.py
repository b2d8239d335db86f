"""The dashboard under a feed of 5,000 records/s, with a page open in headless Chromium: the page's responsiveness
(round trips of a script call into the page, the longest main-thread task) and the dashboard's CPU and RSS next to
the sink's, both reading the same topic in the same run.

    python bench_dashboard.py --bin target/x86_64-unknown-linux-musl/release/ticklake [--rate 5000] [--seconds 30]

Needs the servers of `.servers/env` (KAFKA_BROKERS), Debian's chromium and TICKLAKE_NODE_MODULES (playwright-core).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from common import sample_indices

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=30)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    work = tempfile.mkdtemp(prefix="bench-dashboard-")
    csv = os.path.join(work, "indices.csv")
    rows = args.rate * args.seconds
    sample_indices(args.bin, csv, rows)
    topic = f"bench-dash-{int(time.time())}"
    env = dict(os.environ, RUST_LOG="info")
    subprocess.run([args.bin, "topic", "create", topic, "--partitions", "6"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    lake = os.path.join(work, "lake")
    sink = subprocess.Popen([args.bin, "sink", "--topic", topic, "--to", lake, "--max-age", "5s",
                             "--stats-every", "1h"], env=env, stderr=subprocess.DEVNULL)
    dash = subprocess.Popen([args.bin, "dashboard", "--topic", topic, "--to", lake, "--listen", "127.0.0.1:0"],
                            env=env, stderr=subprocess.PIPE, text=True)
    addr = None
    for line in dash.stderr:
        if "dashboard on http://" in line:
            addr = line.split("http://")[1].split("/")[0]
            break
    threading.Thread(target=lambda: [None for _ in dash.stderr], daemon=True).start()
    page = subprocess.Popen(["node", os.path.join(here, "..", "check", "dashboard_load.mjs"), f"http://{addr}/",
                             str(args.seconds + 5)], stderr=subprocess.PIPE, text=True)
    for line in page.stderr:
        if line.startswith("OPEN"):
            break
    before = {p.pid: cpu_seconds(p.pid) for p in (sink, dash)}
    started = time.time()
    replay = subprocess.run([args.bin, "replay", csv, "--topic", topic, "--rate", str(args.rate), "--progress",
                             "never", "--log-format", "json"], env=env, capture_output=True, text=True)
    wall = time.time() - started
    used = {p.pid: cpu_seconds(p.pid) - before[p.pid] for p in (sink, dash)}
    rss = {p.pid: peak_rss_mib(p.pid) for p in (sink, dash)}
    result = None
    for line in page.stderr:
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    for p in (dash, sink):
        p.terminate()
        p.wait()
    if replay.returncode != 0 or not result or result.get("error"):
        print(replay.stderr[-2000:], result, file=sys.stderr)
        sys.exit(1)
    print(f"feed: {rows} rows at --rate {args.rate} in {wall:.1f} s ({rows / wall:.0f} records/s)")
    for name, p in (("dashboard", dash), ("sink", sink)):
        print(f"{name:9}: CPU {used[p.pid]:.1f} s ({100 * used[p.pid] / wall:.0f}% of a core), peak RSS {rss[p.pid]:.0f} MiB")
    print(f"dashboard/sink CPU: {used[dash.pid] / max(used[sink.pid], 1e-9):.2f}x")
    print(f"page: {result['samples']} script round trips, p50 {result['p50']:.0f} ms, p99 {result['p99']:.0f} ms, "
          f"max {result['max']:.0f} ms; longest main-thread task {result['longestTask']:.0f} ms; "
          f"{result['records']} records counted on the page, {result['updates']} updates drawn")


if __name__ == "__main__":
    main()
