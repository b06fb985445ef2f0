//! Migration from the earlier layout: logs by shard under `wal/` whose
//! records do not name their partition, snapshots of version 1 or 2. Such a
//! directory is restored with its records routed to their partitions (the
//! catalog knows each achievement's application), then `Store::restore`
//! takes a partitioned snapshot, marks the directory (`partitions`) and
//! removes the old files here.

use std::fs;
use std::path::Path;

use super::load::{install, load_pairs, newest_snapshot, replay_catalog};
use super::restore::{bad_record, Loaded, Replayer};
use super::{legacy_dir, shard_dir, shard_logs, RestoreReport, StoreError};
use crate::engine::log::Position;
use crate::engine::Engine;
use crate::persist::model::decode_shard_record;
use crate::persist::snapshot::{self, Covered, Header, VERSION_3};
use crate::persist::wal;

/// Whether a directory holds files of the earlier layout: logs by shard, or
/// snapshots of version 1 or 2.
pub(super) fn has_legacy_files(dir: &Path) -> Result<bool, StoreError> {
    if legacy_dir(dir).exists() {
        return Ok(true);
    }
    Ok(snapshot::list(dir)?
        .iter()
        .any(|f| snapshot::read_header(&f.path).is_ok_and(|h| h.version < VERSION_3)))
}

/// Removes the files of the earlier layout: its logs and its snapshots.
pub(super) fn remove_legacy(dir: &Path) -> Result<(), StoreError> {
    let old = legacy_dir(dir);
    if old.exists() {
        fs::remove_dir_all(&old)?;
    }
    for file in snapshot::list(dir)? {
        if snapshot::read_header(&file.path).is_ok_and(|h| h.version < VERSION_3) {
            fs::remove_file(&file.path)?;
        }
    }
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Whether a restore of the earlier layout can use a snapshot.
pub fn usable_legacy(h: &Header) -> Result<(), String> {
    match &h.covered {
        Covered::Shards(_) => Ok(()),
        Covered::Partitions(_) => {
            Err("it is of the partitioned layout, of an unfinished migration".into())
        }
    }
}

/// Where a restore of the earlier layout replays from after the snapshot it
/// chose (`None`: no snapshot): the catalog's position and each shard log's
/// (a shard without one replays from its start).
pub fn legacy_replay_start(header: Option<&Header>) -> (u64, Vec<u64>) {
    match header.map(|h| (h.catalog_position, &h.covered)) {
        Some((catalog, Covered::Shards(s))) => (catalog, s.clone()),
        _ => (0, Vec::new()),
    }
}

/// The earlier layout: snapshot of version 1 or 2, logs by shard whose
/// records do not name their partition (the catalog does: the achievement's
/// application and the customer).
pub(super) fn restore_legacy(
    engine: &Engine,
    dir: &Path,
    report: &mut RestoreReport,
) -> Result<Loaded, StoreError> {
    let mut image = newest_snapshot(dir, report, usable_legacy)?;
    let snapshot = install(engine, &mut image);
    let (catalog_from, shard_from) = legacy_replay_start(image.as_ref().map(|i| &i.header));
    let mut floor = shard_from.iter().copied().max().unwrap_or(0);
    let root = legacy_dir(dir);
    let catalog_next = replay_catalog(engine, &root.join("catalog"), catalog_from, report)?;
    floor = floor.max(load_pairs(engine, image, report)?);

    let mut replayer = Replayer::new(engine);
    for i in 0..shard_logs(&root).unwrap_or(0) {
        let from = shard_from.get(i).copied().unwrap_or(0);
        let mut failure = None;
        let last = wal::read_from(&shard_dir(&root, i), from, |lsn, bytes| {
            if failure.is_some() {
                return;
            }
            let result = decode_shard_record(bytes)
                .map_err(|e| bad_record(&format!("shard-{i:03} log"), lsn, e))
                .and_then(|(p, record)| replayer.push(p, Position(lsn), record));
            if let Err(e) = result {
                failure = Some(e);
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        floor = floor.max(last);
    }
    let (records, replay_floor) = replayer.finish()?;
    report.pair_records = records;
    floor = floor.max(replay_floor);
    // The new logs start above everything the old ones numbered, so every
    // position a pair remembers stays below what comes next.
    Ok(Loaded {
        snapshot,
        catalog_next,
        shard_next: vec![floor + 1; engine.shard_count()],
    })
}
