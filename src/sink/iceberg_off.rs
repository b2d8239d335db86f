//! `sink --format iceberg` in a build without the `iceberg` feature: refused at start, before any data moves.

use std::sync::Arc;

use super::buffer::Cut;
use super::commit::Committed;
use super::{IcebergOptions, SinkConfig, SinkError};
use crate::lake::Store;
use crate::lake::state::Checkpoint;
use crate::lake::table::TableSpec;
use crate::schema::Schema;

/// Never built: `open` refuses first.
pub struct IcebergTarget {
    never: std::convert::Infallible,
}

impl IcebergTarget {
    pub fn next_offset(&self, _partition: i32) -> Option<i64> {
        match self.never {}
    }

    pub fn set_fence(&self, _fence: Arc<crate::lake::fence::Fence>) {
        match self.never {}
    }

    pub fn set_partitions(&self, _n: usize) {
        match self.never {}
    }

    pub async fn refresh(&self, _partition: i32) -> Result<(), SinkError> {
        match self.never {}
    }

    pub async fn commit(&self, _cp: &mut Checkpoint, _cut: Cut, _buffered: usize) -> Result<Committed, SinkError> {
        match self.never {}
    }
}

pub(super) async fn open(
    _cfg: &SinkConfig,
    _opts: &IcebergOptions,
    _store: Store,
    _partitions: usize,
    _sample: impl AsyncFnOnce() -> Result<Option<Schema>, SinkError>,
) -> Result<Option<(TableSpec, Arc<IcebergTarget>)>, SinkError> {
    Err(SinkError::Config(format!("--format iceberg: {}", crate::lake::iceberg::NOT_BUILT)))
}
