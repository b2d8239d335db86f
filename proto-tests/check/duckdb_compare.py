"""Runs the same SQL over a ticklake lake (DuckDB read_parquet with hive partitioning, a local stand-in for Athena)
and over the source CSV; prints one JSON line per query with both results and whether they are equal.

Usage: duckdb_compare.py LAKE_DIR CSV TABLE_NAME < queries (separated by ';' lines)
"""

import json
import sys

import duckdb


def main():
    lake, csv, table = sys.argv[1], sys.argv[2], sys.argv[3]
    text = sys.stdin.read()
    queries = [q.strip() for q in text.split(";") if q.strip().upper().lstrip("-\n ").find("SELECT") >= 0]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""CREATE VIEW lake AS SELECT * FROM read_parquet('{lake}/**/*.parquet',
        hive_partitioning = true, hive_types = {{'year': VARCHAR}})""")
    con.execute(f"""CREATE VIEW source AS SELECT "Index" AS symbol, CAST("Date" AS DATE) AS trade_date,
        CAST("Close" AS DOUBLE) AS close, CAST(year(CAST("Date" AS DATE)) AS VARCHAR) AS year
        FROM read_csv('{csv}', header = true, all_varchar = true)""")
    for q in queries:
        sql = "\n".join(l for l in q.splitlines() if not l.strip().startswith("--"))
        lake_rows = con.execute(sql.replace(table, "lake")).fetchall()
        csv_rows = con.execute(sql.replace(table, "source")).fetchall()
        print(json.dumps({"sql": sql, "lake": [list(map(str, r)) for r in lake_rows],
                          "csv": [list(map(str, r)) for r in csv_rows], "equal": lake_rows == csv_rows}))


if __name__ == "__main__":
    main()
