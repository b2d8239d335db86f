//! `ticklake athena --catalog ...`: what Athena needs for an Iceberg table the sink writes. With the Glue catalog
//! the table is already where Athena looks (nothing to create); with another catalog, the command that registers
//! the table's current metadata in Glue. Then the queries and the maintenance commands (`OPTIMIZE`, `VACUUM`).

use crate::lake::LakeUrl;
use crate::lake::iceberg::{CatalogUrl, PROP_EVENT_TIME, PROP_KEY};

/// The text for `table` (already loaded from `catalog`).
pub fn text(name: &str, catalog: &CatalogUrl, lake: &LakeUrl, table: &iceberg::table::Table) -> String {
    let meta = table.metadata();
    let (db, tbl) = name.split_once('.').unwrap_or(("default", name));
    let metadata = table.metadata_location().unwrap_or("(unknown)");
    let mut out = format!("-- Iceberg table {name} ({} catalog), location {}\n", catalog.describe(), meta.location());
    out.push_str(&format!("-- current metadata: {metadata}\n"));
    match (catalog, lake) {
        (_, LakeUrl::Local(_)) => out.push_str(
            "-- This table lives in a local folder: Athena reads tables on S3. Sink into s3://... with --catalog glue \
             for a table Athena reads as it is.\n",
        ),
        (CatalogUrl::Glue, _) => out.push_str(&format!(
            "-- The sink created it in the AWS Glue Data Catalog: Athena reads it as it is. Nothing to create.\n\
             -- (In the Athena console: database {db}, table {tbl}.)\n"
        )),
        (_, _) => {
            let input = serde_json::json!({
                "Name": tbl,
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {"table_type": "ICEBERG", "metadata_location": metadata},
            });
            out.push_str(&format!(
                "-- Athena reads Iceberg tables through the AWS Glue Data Catalog. Register this one there (Glue then \
                 points at the metadata above; commits the sink makes later through its {} catalog move only that \
                 catalog: register again, or sink with --catalog glue for a table Athena follows):\n\
                 -- aws glue create-database --database-input '{{\"Name\":\"{db}\"}}'\n\
                 -- aws glue create-table --database-name {db} --table-input '{input}'\n",
                catalog.describe()
            ));
        }
    }
    let props = meta.properties();
    let q = format!("\"{db}\".\"{tbl}\"");
    out.push('\n');
    match (props.get(PROP_KEY), props.get(PROP_EVENT_TIME)) {
        (Some(key), Some(time)) => out.push_str(&format!(
            "-- Rows and the newest event per {key}\nSELECT {key}, count(*) AS row_count, max({time}) AS newest FROM {q} GROUP BY {key} ORDER BY {key};\n\n"
        )),
        _ => out.push_str(&format!("-- Rows\nSELECT count(*) AS row_count FROM {q};\n\n")),
    }
    out.push_str(&format!(
        "-- Commits: each sink commit is one snapshot; its summary holds the Kafka offsets (ticklake.offsets.<topic>)\n\
         SELECT committed_at, snapshot_id, operation, summary FROM \"{db}\".\"{tbl}$snapshots\" ORDER BY committed_at DESC LIMIT 10;\n\n\
         -- Time travel: the table as it was an hour ago\n\
         SELECT count(*) FROM {q} FOR TIMESTAMP AS OF (current_timestamp - interval '1' hour);\n\n\
         -- Compaction: merge the small files of a live feed (safe while the sink runs: a concurrent commit costs it a retry, never a row)\n\
         OPTIMIZE {db}.{tbl} REWRITE DATA USING BIN_PACK;\n\n\
         -- Expire old snapshots and delete files no snapshot references (orphans of a sink killed between upload and commit)\n\
         VACUUM {db}.{tbl};\n"
    ));
    out
}
