"""The demo's answer: rows per symbol and the last close over a local ticklake lake, with DuckDB.

The same question a user would ask Athena of the table `ticklake athena` prints; DuckDB reads the lake's hive
folders and Parquet files directly (by column name, so files written before a schema change read as NULL).

    query_lake.py LAKE_FOLDER
"""

import sys

import duckdb

root = sys.argv[1].rstrip("/")
con = duckdb.connect()
con.sql(
    f"""
    SELECT symbol, count(*) AS rows, max(trade_date) AS last_day, round(max_by(close, trade_date), 2) AS last_close
    FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true, union_by_name = true)
    GROUP BY symbol
    ORDER BY symbol
    """
).show(max_rows=100)
