//! The lake: where and how rows land. Foundation layer shared by `sink`, `lake` commands and `athena`.
//!
//! `store` (local folder or S3), `partition` (hive paths), `parquet` (file encoding), `state` (checkpoints and
//! rejects under the hidden `_ticklake/` prefix, which Athena ignores because it starts with `_`).

pub mod columns;
pub mod layout;
pub mod parquet;
pub mod partition;
pub mod state;
pub mod store;
pub mod table;
pub mod verify;

pub use partition::{PartitionSpec, SpecError};
pub use store::{LakeUrl, ObjectInfo, S3Options, Store, StoreError, retry};
