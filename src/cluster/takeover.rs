//! A partition changing hands (SPEC §6 "Takeover"): its holder writes the
//! partition's snapshot to the object store; the next holder loads the
//! newest snapshot and replays the partition's JetStream log from the
//! position the snapshot covers, then serves.
//!
//! Owns: `snapshot_partition` and `take_over`. The snapshot is `SECTIONS_V5`
//! and then the partition's pairs as version 4 snapshot sections (`ChunkV5`,
//! each length-prefixed; a blob without the mark holds `ChunkV3` sections,
//! as written before it), the log records are version 4 shard records: the
//! same encodings as the single node's files, so both read each other's
//! data.

use super::snapshots::SnapshotStore;
use super::streams::{ClusterError, JetStreamLog};
use crate::engine::log::{PartitionId, Position, Record};
use crate::engine::shard::ReplayRecord;
use crate::engine::Engine;
use crate::persist::model::decode_shard_record;
use crate::persist::store::{decode_chunk, encode_chunk};

/// Pairs per snapshot section, and records per replayed batch.
const CHUNK: usize = 2048;
const BATCH: usize = 1000;
/// The first bytes of a blob of `ChunkV5` sections. A blob of `ChunkV3`
/// sections starts with a section's length, whose last byte is 0 (no
/// section reaches 2^24 bytes), so it never starts with these.
const SECTIONS_V5: &[u8; 8] = b"ACHVPS05";

fn engine_error(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::JetStream {
        what: "engine call",
        reason: e.to_string(),
    }
}

fn bad(what: &'static str) -> impl Fn(String) -> ClusterError {
    move |reason| ClusterError::JetStream { what, reason }
}

/// The partition's pairs as one snapshot blob. The caller applies nothing
/// to the partition meanwhile, so the blob is the state after the records
/// it applied (it names the position they cover when it commits).
pub async fn snapshot_partition(engine: &Engine, p: PartitionId) -> Result<Vec<u8>, ClusterError> {
    let begin = engine.snapshot_begin(p).await.map_err(engine_error)?;
    let mut out = SECTIONS_V5.to_vec();
    let mut from = 0;
    loop {
        let chunk = engine
            .snapshot_chunk(p, from, CHUNK, begin.token)
            .await
            .map_err(engine_error)?;
        let (next, done) = (chunk.next, chunk.done);
        if !chunk.is_empty() {
            let bytes = encode_chunk(p, chunk.into_images()).map_err(bad("snapshot section"))?;
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        from = next;
        if done {
            return Ok(out);
        }
    }
}

/// Loads partition `p`'s newest snapshot (if any) into `engine`; returns
/// the position it covers (where replaying the log starts).
pub async fn load_snapshot(
    engine: &Engine,
    snapshots: &SnapshotStore,
    p: PartitionId,
) -> Result<Position, ClusterError> {
    let mut from = Position(0);
    if let Some((covered, blob)) = snapshots.latest(p).await? {
        let (legacy, mut rest) = match blob.strip_prefix(SECTIONS_V5) {
            Some(rest) => (false, rest),
            None => (true, &blob[..]),
        };
        while !rest.is_empty() {
            let len = rest
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| bad("snapshot section")("cut short".into()))?
                as usize;
            let section = rest
                .get(4..4 + len)
                .ok_or_else(|| bad("snapshot section")("cut short".into()))?;
            let (partition, images) = decode_chunk(engine, section, legacy)
                .map_err(|e| bad("snapshot section")(e.to_string()))?;
            if partition != p {
                return Err(bad("snapshot section")(format!(
                    "a section of partition {} in partition {}'s snapshot",
                    partition.0, p.0
                )));
            }
            engine.load_pairs(p, images).await.map_err(engine_error)?;
            rest = &rest[4 + len..];
        }
        from = covered;
    }
    Ok(from)
}

/// Loads partition `p`'s newest snapshot (if any) into `engine`, then
/// replays its log from there; returns the position of the next record
/// (where following the log goes on).
pub async fn take_over(
    engine: &Engine,
    log: &JetStreamLog,
    snapshots: &SnapshotStore,
    p: PartitionId,
) -> Result<Position, ClusterError> {
    let mut from = load_snapshot(engine, snapshots, p).await?;
    loop {
        let records = log.read(p, from, BATCH).await?;
        if records.is_empty() {
            return Ok(from);
        }
        let mut batch = Vec::with_capacity(records.len());
        for (position, bytes) in records {
            let (_, record) =
                decode_shard_record(&bytes).map_err(|e| bad("log record")(e.to_string()))?;
            let replay = match record {
                Record::Pair(change) => {
                    engine.shared().raise_pair_numbers(change.pair_number);
                    let entry = engine
                        .catalog
                        .read()
                        .achievements
                        .get(&change.achievement)
                        .cloned();
                    // Its achievement was deleted since: nothing to apply.
                    entry.map(|entry| ReplayRecord::Pair(change, entry))
                }
                Record::Erase(e) => Some(ReplayRecord::Erase(e)),
                Record::Expire(e) => Some(ReplayRecord::Expire(e)),
                Record::Catalog(_) => {
                    return Err(bad("log record")(
                        "a catalog record in a partition's log".into(),
                    ))
                }
            };
            batch.extend(replay.map(|r| (position, r)));
            from = Position(position.0 + 1);
        }
        engine.replay(p, batch).await.map_err(engine_error)?;
    }
}
