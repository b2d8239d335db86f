//! The lake: where and how rows land. Foundation layer shared by `sink`, `lake` commands and `athena`.
//!
//! `store` (the `ObjectStore` seam: local folder, S3, in memory), `table` (the stored table spec), `state`
//! (checkpoints, rejects and object names under the hidden `_ticklake/` prefix, which Athena ignores because it
//! starts with `_`), `verify` (the exactly-once check), `partition` (hive paths), `layout` → `columns` →
//! `parquet` (which columns a file holds, the row buffer, the encoding).

pub mod columns;
pub mod compact;
pub mod fence;
pub mod iceberg;
pub mod layout;
pub mod lease;
pub mod parquet;
pub mod partition;
pub mod state;
pub mod store;
pub mod table;
pub mod verify;

pub use partition::{PartitionSpec, SpecError};
pub use store::{LakeUrl, ObjectInfo, S3Options, Store, StoreError, retry};
