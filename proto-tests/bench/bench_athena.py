"""Athena scan benchmark: bytes Athena would read for three reference queries, ticklake's lake vs one JSON object
per message, computed from the Parquet footers the way Athena reads Parquet: every matching file's footer, then only
the column chunks of row groups whose min/max statistics can match the predicate, in partitions the query selects.

Q1: one symbol, one year, `close`.  Q2: all symbols, full history, `close`.  Q3: one day, all columns.
The JSON layout is read whole for every query (one object per record, no pruning). Run through `just bench-athena`.
"""

import argparse
import datetime
import os
import subprocess
import tempfile

import pyarrow.parquet as pq

from common import replay_into, sample_indices

DAY0 = datetime.date(1970, 1, 1)


def scan(lake, want_cols, year=None, symbol=None, day=None):
    """Bytes read and files opened for a query over the lake (hive partitions year=YYYY)."""
    total, files = 0, 0
    for dirpath, _, names in os.walk(lake):
        if "_ticklake" in dirpath:
            continue
        part = os.path.basename(dirpath)
        if year is not None and part != f"year={year}":
            continue
        for n in names:
            if not n.endswith(".parquet"):
                continue
            path = os.path.join(dirpath, n)
            f = pq.ParquetFile(path)
            md = f.metadata
            files += 1
            total += md.serialized_size + 8  # footer + length + magic
            names_ = [md.schema.column(i).name for i in range(md.num_columns)]
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                stats = {names_[i]: rg.column(i).statistics for i in range(md.num_columns)}
                def can_match(col, value):
                    s = stats.get(col)
                    return s is None or not s.has_min_max or (s.min <= value <= s.max)
                if symbol is not None and not can_match("symbol", symbol):
                    continue
                if day is not None and not can_match("trade_date", day):
                    continue
                for i in range(md.num_columns):
                    if want_cols is None or names_[i] in want_cols:
                        total += rg.column(i).total_compressed_size
    return total, files


def run(binary, rows, csv, tmp, partitions, env):
    topic = f"bench-athena-{os.getpid()}-{partitions}"
    replay_into(binary, csv, topic, partitions, env)
    # The one-JSON-object-per-message layout: every record's value, as the usual consumer writes it.
    out = subprocess.run([binary, "consume", "--topic", topic, "--exit-at-end"], check=True, env=env,
                         capture_output=True).stdout
    json_bytes = len(out) - out.count(b"\n")
    json_objects = out.count(b"\n")
    assert json_objects == rows, f"consumed {json_objects} records"
    lake = os.path.join(tmp, f"lake-{partitions}")
    subprocess.run([binary, "sink", "--topic", topic, "--to", lake, "--exit-at-end"], check=True, env=env,
                   stderr=subprocess.DEVNULL)
    files = sum(len([n for n in ns if n.endswith(".parquet")]) for d, _, ns in os.walk(lake) if "_ticklake" not in d)
    q = {
        "Q1 one symbol, one year, close": scan(lake, {"close"}, year=2000, symbol="HSI"),
        "Q2 all symbols, all years, close": scan(lake, {"close"}),
        "Q3 one day, all columns": scan(lake, None, year=2000, day=datetime.date(2000, 6, 15)),
    }
    print(f"\ntopic with {partitions} partition(s):")
    print(f"{'query':<36} {'JSON bytes':>14} {'lake bytes':>12} {'ratio':>9}")
    for name, (b, _) in q.items():
        print(f"{name:<36} {json_bytes:>14,} {b:>12,} {json_bytes / b:>8.0f}x")
    print(f"objects: JSON {json_objects:,} vs lake {files:,} Parquet files ({json_objects / files:,.0f}x fewer)")
    print(f"Q2 per row: {q['Q2 all symbols, all years, close'][0] / rows:.2f} bytes (a DOUBLE is 8 before compression)")
    if partitions == 1:
        live(binary, topic, tmp, env, q, files)


def live(binary, topic, tmp, env, batch, batch_files):
    """The live-feed lake: the same records in cuts of 300 rows (a row a second with --max-age 300s), before and
    after `lake compact`, next to the batch load's figures."""
    lake = os.path.join(tmp, "lake-live")
    subprocess.run([binary, "sink", "--topic", topic, "--to", lake, "--exit-at-end", "--max-rows", "300"], check=True,
                   env=env, stderr=subprocess.DEVNULL)
    def measure():
        n = sum(len([x for x in ns if x.endswith(".parquet")]) for d, _, ns in os.walk(lake) if "_ticklake" not in d)
        return n, {
            "Q1 one symbol, one year, close": scan(lake, {"close"}, year=2000, symbol="HSI"),
            "Q2 all symbols, all years, close": scan(lake, {"close"}),
            "Q3 one day, all columns": scan(lake, None, year=2000, day=datetime.date(2000, 6, 15)),
        }
    files_before, before = measure()
    subprocess.run([binary, "lake", "compact", "--topic", topic, "--to", lake], check=True, env=env,
                   stderr=subprocess.DEVNULL)
    files_after, after = measure()
    print("\nlive feed (cuts of 300 rows), before and after `lake compact`, against the batch load:")
    print(f"{'query':<36} {'small cuts':>14} {'compacted':>12} {'batch':>12} {'compacted/batch':>16}")
    for name in batch:
        b, a, base = before[name][0], after[name][0], batch[name][0]
        print(f"{name:<36} {b:>14,} {a:>12,} {base:>12,} {a / base:>15.2f}x")
    for name in batch:
        print(f"  files opened by {name}: small cuts {before[name][1]:,}, compacted {after[name][1]:,}, "
              f"batch {batch[name][1]:,}")
    print(f"objects: small cuts {files_before:,}, compacted {files_after:,}, batch {batch_files:,}")
    # What the lake commands read of it (ranged GETs of footers and offset columns), next to its size.
    for cmd in (["lake", "verify"], ["lake", "stats"]):
        out = subprocess.run([binary, *cmd, "--topic", topic, "--to", lake], check=True, env=env,
                             capture_output=True, text=True).stdout
        line = next((l for l in out.splitlines() if l.startswith("read ")), "?")
        print(f"`{' '.join(cmd)}` on the compacted lake: {line}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    a = ap.parse_args()
    env = dict(os.environ, RUST_LOG="warn")
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "indices.csv")
        sample_indices(a.bin, csv, a.rows)
        print(f"\nathena scan benchmark: {a.rows:,} daily index rows, 70 symbols, 1965-2025; default sink layout")
        print("(year(trade_date) partitions, rows sorted by date then symbol, 4,096-row groups, ZSTD)")
        for partitions in (1, 3):
            run(a.bin, a.rows, csv, tmp, partitions, env)


if __name__ == "__main__":
    main()
