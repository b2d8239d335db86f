"""Reads a ticklake lake back without ticklake: boto3 (or the file system) and pyarrow.

Prints one JSON line per row: {"file", "hive": {key: unescaped value}, "row": {column: value}} (dates as
YYYY-MM-DD, timestamps as epoch ms), then one line {"objects": [...], "types": {file: {column: [physical,
logical, compression]}}}. The proto-tests compare this with the source data.
"""

import argparse
import datetime
import io
import json
import os
import sys
import urllib.parse

import pyarrow.parquet as pq


def objects_s3(endpoint, bucket, prefix):
    import boto3
    s3 = boto3.client("s3", endpoint_url=endpoint)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    strip = len(prefix.rstrip("/")) + 1 if prefix else 0
    return [(k[strip:], (lambda k=k: s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys]


def objects_local(root):
    out = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            full = os.path.join(dirpath, f)
            out.append((os.path.relpath(full, root), (lambda full=full: open(full, "rb").read())))
    return out


def jsonable(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            raise SystemExit("timestamp without time zone: expected TIMESTAMP(MILLIS, UTC)")
        return int(v.timestamp() * 1000)
    if isinstance(v, datetime.date):
        return v.isoformat()
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint")
    ap.add_argument("--bucket")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--local")
    a = ap.parse_args()
    objs = objects_local(a.local) if a.local else objects_s3(a.endpoint, a.bucket, a.prefix)
    types = {}
    for key, read in sorted(objs):
        if key.startswith("_ticklake/") or not key.endswith(".parquet"):
            continue
        data = read()
        pf = pq.ParquetFile(io.BytesIO(data))
        rg = pf.metadata.row_group(0) if pf.metadata.num_row_groups else None
        types[key] = {}
        for i in range(pf.metadata.num_columns):
            col = pf.schema.column(i)
            comp = rg.column(i).compression if rg else None
            types[key][col.name] = [col.physical_type, str(col.logical_type), comp]
        hive = {}
        for seg in key.split("/")[:-1]:
            k, _, v = seg.partition("=")
            hive[k] = urllib.parse.unquote(v)
        table = pf.read(use_threads=False)
        for row in table.to_pylist():
            print(json.dumps({"file": key, "hive": hive, "row": {k: jsonable(v) for k, v in row.items()}}))
    print(json.dumps({"objects": sorted(k for k, _ in objs), "types": types}))


if __name__ == "__main__":
    main()
    # Skip interpreter teardown: pyarrow 26 can abort there ("terminate called without an active exception", seen
    # once in CI while the max-age test polled the lake), after all the output was written.
    sys.stdout.flush()
    os._exit(0)
