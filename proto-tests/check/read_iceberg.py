"""Reads an Iceberg table that ticklake wrote, with pyiceberg (the independent reader), and prints one JSON object:
rows (every row, columns as JSON values, dates and timestamps ISO), schema, partition spec, sort order, snapshots
(id, parent, operation, summary), properties and the data files of the current snapshot.

  read_iceberg.py --catalog sqlite:PATH --warehouse file:///... --table db.name
  read_iceberg.py --catalog glue --warehouse s3://bucket/wh --table db.name   (AWS_ENDPOINT_URL, AWS_* from the env)

With --append-from JSON (a list of row objects), --rewrite or --add-column NAME:TYPE it writes instead of reading, as
another writer of the same table (standing in for Athena OPTIMIZE or a second tool), then prints what it did.
"""
import argparse, datetime, json, os, sys

from pyiceberg.catalog.sql import SqlCatalog


def catalog(args):
    s3 = {}
    if os.environ.get("AWS_ENDPOINT_URL"):
        s3 = {
            "s3.endpoint": os.environ["AWS_ENDPOINT_URL"],
            "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
            "s3.region": os.environ.get("AWS_REGION", "us-east-1"),
            "s3.path-style-access": "true",
        }
    if args.catalog.startswith("sqlite:"):
        return SqlCatalog("ticklake", uri="sqlite:///" + args.catalog[len("sqlite:"):], warehouse=args.warehouse, **s3)
    if args.catalog.startswith("rest:"):
        from pyiceberg.catalog.rest import RestCatalog
        return RestCatalog("rest", uri=args.catalog[len("rest:"):], warehouse=args.warehouse, **s3)
    if args.catalog == "glue":
        from pyiceberg.catalog.glue import GlueCatalog
        return GlueCatalog(
            "glue",
            **{
                "glue.endpoint": os.environ.get("AWS_ENDPOINT_URL_GLUE", os.environ["AWS_ENDPOINT_URL"]),
                "glue.region": os.environ.get("AWS_REGION", "us-east-1"),
                "glue.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
                "glue.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
                "warehouse": args.warehouse,
                **s3,
            },
        )
    sys.exit(f"unknown catalog {args.catalog}")


def plain(v):
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--append-from")
    ap.add_argument("--rewrite", action="store_true")
    ap.add_argument("--no-rows", action="store_true")
    args = ap.parse_args()
    cat = catalog(args)
    table = cat.load_table(args.table)
    if args.append_from:
        import pyarrow as pa
        rows = json.load(open(args.append_from))
        schema = table.schema().as_arrow()
        for f in schema:
            if pa.types.is_timestamp(f.type):
                for r in rows:
                    if isinstance(r.get(f.name), str):
                        r[f.name] = datetime.datetime.fromisoformat(r[f.name])
            if pa.types.is_date(f.type):
                for r in rows:
                    if isinstance(r.get(f.name), str):
                        r[f.name] = datetime.date.fromisoformat(r[f.name])
        table.append(pa.Table.from_pylist(rows, schema=schema), snapshot_properties={"writer": "pyiceberg"})
        print(json.dumps({"appended": len(rows)}))
        return
    if args.rewrite:
        # What a compaction does: read everything, replace the table's files with new ones holding the same rows.
        # A sink committing meanwhile makes pyiceberg refuse its own commit (new files match what it would delete):
        # like Athena's OPTIMIZE, it reloads and tries again.
        from pyiceberg.exceptions import CommitFailedException, ValidationException
        for attempt in range(50):
            table = cat.load_table(args.table)
            data = table.scan().to_arrow()
            try:
                table.overwrite(data, snapshot_properties={"writer": "pyiceberg-rewrite"})
                print(json.dumps({"rewrote": data.num_rows, "attempts": attempt + 1}))
                return
            except (CommitFailedException, ValidationException) as e:
                print(f"rewrite attempt {attempt + 1}: {e}", file=sys.stderr)
        sys.exit("rewrite: 50 attempts conflicted")
    out = {
        "schema": [[f.name, str(f.field_type), f.required] for f in table.schema().fields],
        "partition_spec": [
            [p.name, str(p.transform), table.schema().find_column_name(p.source_id)] for p in table.spec().fields
        ],
        "sort_order": [
            [table.schema().find_column_name(f.source_id), str(f.direction), str(f.null_order)]
            for f in table.sort_order().fields
        ],
        "snapshots": [
            {
                "id": s.snapshot_id,
                "parent": s.parent_snapshot_id,
                "operation": str(s.summary.operation) if s.summary else None,
                "summary": dict(s.summary.additional_properties) if s.summary else {},
            }
            for s in table.snapshots()
        ],
        "current": table.current_snapshot().snapshot_id if table.current_snapshot() else None,
        "properties": dict(table.properties),
        "location": table.location(),
        "files": [t.file.file_path for t in table.scan().plan_files()],
    }
    if not args.no_rows:
        out["rows"] = [{k: plain(v) for k, v in r.items()} for r in table.scan().to_arrow().to_pylist()]
    print(json.dumps(out))


main()
