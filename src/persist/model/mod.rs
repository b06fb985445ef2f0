//! On-disk types: what snapshots and log records hold, one module per format
//! version, separate from the domain and engine types so those can change
//! without breaking old files. A new version adds types and keeps the
//! readers of the old ones.
//!
//! Owns: the versions' types and conversions (`v1` … `v5`), and how a
//! log payload says its version. A version 1 payload is bare bincode, whose
//! first byte is a varint or an enum tag and so never `0xFF`; from version 2
//! on a payload starts with `0xFF` and its version byte. A log continued by a
//! newer build holds both, so every record is read by its own version.
//!
//! | version | catalog records | shard records | snapshots |
//! |---|---|---|---|
//! | 1 | `CatalogRecordV1` | `PairRecordV1` | `CatalogV1`, chunks of `PairV1`, shard positions |
//! | 2 | `CatalogRecordV2` | `ShardRecordV2` (+ erasure) | `CatalogV2`, as 1 |
//! | 3 | as 2 | `PartitionRecordV3` | `CatalogV2`, `ChunkV3`, partition positions |
//! | 4 | as 2 | `PartitionRecordV4` (+ expiry) | as 3 |
//! | 5 | as 2 | as 4 | `CatalogV2`, `ChunkV5` (event ids as keys, changes compact) |

pub mod v1;
pub mod v2;
pub mod v3;
pub mod v4;
pub mod v5;

use serde::Serialize;

pub use v1::*;
pub use v2::{AchievementV2, CatalogRecordV2, CatalogV2, EraseV2, ShardRecordRefV2, ShardRecordV2};
pub use v3::{ChunkV3, PartitionRecordRefV3, PartitionRecordV3};
pub use v4::{ExpireV4, PartitionRecordRefV4, PartitionRecordV4, ShardRecordRefV4, ShardRecordV4};
pub use v5::{ChangeV5, ChunkV5, PairV5, RememberedV5, TrackerV5};

use super::codec;
use crate::engine::catalog::CatalogRecord;
use crate::engine::log::{PartitionId, Record, RecordRef};

/// Why stored data could not be turned back into state.
#[derive(Debug, thiserror::Error)]
#[error("invalid stored data: {0}")]
pub struct ModelError(pub String);

pub(crate) fn bad(what: impl Into<String>) -> ModelError {
    ModelError(what.into())
}

/// The first byte of a versioned log payload.
pub const VERSIONED: u8 = 0xFF;
/// The version of catalog log records this build writes.
pub const CATALOG_LOG_VERSION: u8 = 2;
/// The version of shard log records this build writes.
pub const SHARD_LOG_VERSION: u8 = 4;

/// The version of a log payload and the bytes after its version mark.
fn versioned(bytes: &[u8]) -> Result<(u8, &[u8]), ModelError> {
    match bytes {
        [VERSIONED, version, rest @ ..] => Ok((*version, rest)),
        [VERSIONED] => Err(bad("a versioned record without its version")),
        _ => Ok((1, bytes)),
    }
}

fn unknown_version(v: u8) -> ModelError {
    bad(format!(
        "log record version {v} is not supported by this build"
    ))
}

fn encode_versioned<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, ModelError> {
    // A tuple encodes as its fields one after the other, and a `u8` as one
    // byte: the version mark, then the value, in one buffer.
    codec::encode(&(VERSIONED, version, value)).map_err(|e| bad(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ModelError> {
    codec::decode(bytes).map_err(|e| bad(e.to_string()))
}

/// Encodes a catalog change for the catalog's log.
pub fn encode_catalog_record(record: &CatalogRecord) -> Result<Vec<u8>, ModelError> {
    encode_versioned(CATALOG_LOG_VERSION, &CatalogRecordV2::from(record))
}

/// Reads a record of the catalog's log, of any version.
pub fn decode_catalog_record(bytes: &[u8]) -> Result<CatalogRecord, ModelError> {
    match versioned(bytes)? {
        (1, body) => decode::<CatalogRecordV1>(body)?.to_record(),
        (2, body) => decode::<CatalogRecordV2>(body)?.to_record(),
        (v, _) => Err(unknown_version(v)),
    }
}

/// Encodes a record of a partition's stream for a shard's log.
pub fn encode_partition_record(
    partition: PartitionId,
    record: &RecordRef<'_>,
) -> Result<Vec<u8>, ModelError> {
    let (erase, expire);
    let record = match record {
        RecordRef::Pair(change) => ShardRecordRefV4::Pair(change.into()),
        RecordRef::Erase(e) => {
            erase = EraseV2::from(*e);
            ShardRecordRefV4::Erase(&erase)
        }
        RecordRef::Expire(e) => {
            expire = ExpireV4::from(*e);
            ShardRecordRefV4::Expire(&expire)
        }
        RecordRef::Catalog(_) => return Err(bad("a catalog record in a partition's stream")),
    };
    encode_versioned(
        SHARD_LOG_VERSION,
        &PartitionRecordRefV4 {
            partition: partition.0,
            record,
        },
    )
}

/// Reads a record of a shard's log, of any version, with its partition
/// (records before version 3 do not name one).
pub fn decode_shard_record(bytes: &[u8]) -> Result<(Option<PartitionId>, Record), ModelError> {
    match versioned(bytes)? {
        (1, body) => Ok((
            None,
            Record::Pair(decode::<PairRecordV1>(body)?.to_change()?),
        )),
        (2, body) => Ok((None, decode::<ShardRecordV2>(body)?.to_record()?)),
        (3, body) => {
            let r = decode::<PartitionRecordV3>(body)?;
            Ok((Some(PartitionId(r.partition)), r.record.to_record()?))
        }
        (4, body) => {
            let r = decode::<PartitionRecordV4>(body)?;
            Ok((Some(PartitionId(r.partition)), r.record.to_record()?))
        }
        (v, _) => Err(unknown_version(v)),
    }
}

#[cfg(test)]
mod tests;
