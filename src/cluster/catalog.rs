//! The catalog in a cluster: every node follows the catalog's JetStream
//! log and applies each change once it is there — the single node's rule
//! ("catalog changes are applied only once durable") with JetStream as the
//! log.
//!
//! Owns: `publish_catalog` (a catalog change as a v2 catalog record, with a
//! message id so a retried change is one record) and `follow_catalog`
//! (applies the records from a position on; returns where to go on).

use bytes::Bytes;

use super::streams::{Appended, ClusterError, JetStreamLog};
use crate::engine::catalog::CatalogRecord;
use crate::engine::log::Position;
use crate::engine::Engine;
use crate::persist::model::{decode_catalog_record, encode_catalog_record};

/// Records applied per read.
const BATCH: usize = 1000;

fn bad(reason: String) -> ClusterError {
    ClusterError::JetStream {
        what: "catalog record",
        reason,
    }
}

/// Appends a catalog change.
pub async fn publish_catalog(
    log: &JetStreamLog,
    msg_id: &str,
    record: &CatalogRecord,
) -> Result<Appended, ClusterError> {
    let bytes = encode_catalog_record(record).map_err(|e| bad(e.to_string()))?;
    log.append_catalog(msg_id, Bytes::from(bytes)).await
}

/// Applies every catalog record from `from` on to `engine`'s catalog;
/// returns the position after the last one.
pub async fn follow_catalog(
    engine: &Engine,
    log: &JetStreamLog,
    mut from: Position,
) -> Result<Position, ClusterError> {
    loop {
        let records = log.read_catalog(from, BATCH).await?;
        if records.is_empty() {
            return Ok(from);
        }
        for (position, bytes) in records {
            let record = decode_catalog_record(&bytes).map_err(|e| bad(e.to_string()))?;
            engine.catalog.apply(&record);
            from = Position(position.0 + 1);
        }
    }
}
