//! Restoring the engine from the data directory: the newest valid snapshot
//! (chosen and loaded by `load`), then the log after it, then the log opened for appending (the decisions
//! are `plan`'s). `Store::load` is the same load without any write, for the
//! operator commands. A directory of
//! the earlier layout is restored by `migrate` and then migrated here: a
//! partitioned snapshot is taken, the directory is marked (`partitions`),
//! and the old files are removed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_executor::block_on;

use super::load::{install, load_pairs, newest_snapshot, replay_catalog};
use super::migrate::{remove_legacy, restore_legacy};
use super::plan::{layout, replay_start, usable_partitioned, Layout};
use super::{
    log_dir, shard_dir, write_partitions, Progress, RestoreReport, SnapshotInfo, Store, StoreError,
    BATCH,
};
use crate::engine::log::{LogError, PartitionId, Position, Record, Stream};
use crate::engine::shard::ReplayRecord;
use crate::engine::Engine;
use crate::persist::file_log::{self, FileLog};
use crate::persist::snapshot;

/// What a restore loaded, and where the logs continue.
pub(super) struct Loaded {
    pub(super) snapshot: Option<SnapshotInfo>,
    pub(super) catalog_next: u64,
    /// The next LSN of each shard's log.
    pub(super) shard_next: Vec<u64>,
}

pub(super) fn bad_record(what: &str, position: u64, why: impl ToString) -> StoreError {
    StoreError::Record {
        what: what.to_string(),
        position,
        why: why.to_string(),
    }
}

impl Store {
    /// Restores the newest valid snapshot and replays the log after it,
    /// migrating a directory of the earlier layout, then opens the log for
    /// appending. Blocking; call it off the arbiters.
    pub fn restore(
        engine: &Engine,
        dir: &Path,
        keep: usize,
    ) -> Result<(Store, RestoreReport), StoreError> {
        let span = tracing::info_span!(
            "restore",
            dir = %dir.display(),
            snapshot = tracing::field::Empty,
            pairs = tracing::field::Empty,
            pair_records = tracing::field::Empty,
            millis = tracing::field::Empty,
        )
        .entered();
        let started = Instant::now();
        let shards = engine.shard_count();
        super::check_dir(dir, shards)?;
        snapshot::remove_temporaries(dir)?;
        let Layout { stored, legacy } = layout(dir, engine.partitions())?;
        if stored.is_some() {
            // A migration that stopped after marking the directory.
            remove_legacy(dir)?;
        }
        let mut report = RestoreReport::default();
        if legacy {
            tracing::info!(
                "the data directory has the earlier layout (logs by shard): migrating it"
            );
        }
        let loaded = load_state(engine, dir, legacy, &mut report)?;
        let shard_dirs: Vec<_> = (0..shards)
            .map(|i| (shard_dir(&log_dir(dir), i), loaded.shard_next[i]))
            .collect();
        let log = Arc::new(FileLog::open(
            &log_dir(dir).join("catalog"),
            loaded.catalog_next,
            &shard_dirs,
        )?);
        block_on(engine.attach_log(log.clone()))?;
        let store = Store {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            log,
            one_at_a_time: Mutex::new(()),
            restored: RestoreReport::default(),
            last_snapshot: Mutex::new(loaded.snapshot),
            snapshots: AtomicU64::new(0),
            snapshot_failures: AtomicU64::new(0),
        };
        if legacy {
            // Everything restored goes into a partitioned snapshot before the
            // directory is marked; until then a restart migrates again.
            store.snapshot(engine)?;
            write_partitions(dir, engine.partitions())?;
            remove_legacy(dir)?;
            report.migrated = true;
            tracing::info!(partitions = engine.partitions(), "data directory migrated");
        } else if stored.is_none() {
            write_partitions(dir, engine.partitions())?;
        }
        report.duration = started.elapsed();
        span.record("pairs", report.pairs);
        span.record("pair_records", report.pair_records);
        span.record("millis", report.duration.as_millis() as u64);
        tracing::info!(
            snapshot = ?report.snapshot,
            pairs = report.pairs,
            catalog_records = report.catalog_records,
            pair_records = report.pair_records,
            migrated = report.migrated,
            millis = report.duration.as_millis() as u64,
            "restore finished"
        );
        let store = Store {
            restored: report.clone(),
            ..store
        };
        Ok((store, report))
    }
}

/// Loads the newest valid snapshot and replays the log after it, as the
/// layout says.
fn load_state(
    engine: &Engine,
    dir: &Path,
    legacy: bool,
    report: &mut RestoreReport,
) -> Result<Loaded, StoreError> {
    if legacy {
        restore_legacy(engine, dir, report)
    } else {
        restore_partitioned(engine, dir, report)
    }
}

impl Store {
    /// What a restore would load, loaded into `engine` without touching the
    /// directory: no log is opened (so no torn tail is cut and no segment is
    /// started), nothing is migrated, marked or removed, and no log is
    /// attached to the engine. For `ops inspect`; blocking, off the arbiters.
    ///
    /// One difference from a restore: in a directory marked partitioned,
    /// leftover snapshots of an unfinished migration are skipped (their
    /// layout) rather than deleted first.
    pub fn load(engine: &Engine, dir: &Path) -> Result<RestoreReport, StoreError> {
        let started = Instant::now();
        let Layout { legacy, .. } = layout(dir, engine.partitions())?;
        let mut report = RestoreReport::default();
        load_state(engine, dir, legacy, &mut report)?;
        report.duration = started.elapsed();
        Ok(report)
    }
}

/// Collects replayed records by partition and hands them to the engine in
/// batches, in order.
pub(super) struct Replayer<'a> {
    engine: &'a Engine,
    batches: HashMap<PartitionId, Vec<(Position, ReplayRecord)>>,
    records: u64,
    floor: u64,
    progress: Progress,
}

impl<'a> Replayer<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Replayer {
            engine,
            batches: HashMap::new(),
            records: 0,
            floor: 0,
            progress: Progress::new("log records replayed", None),
        }
    }

    /// Queues a record of a partition (`None`: found from the record, for
    /// logs of the earlier layout).
    pub(super) fn push(
        &mut self,
        partition: Option<PartitionId>,
        position: Position,
        record: Record,
    ) -> Result<(), StoreError> {
        self.floor = self.floor.max(position.0);
        let engine = self.engine;
        let (p, record) = match record {
            Record::Pair(change) => {
                engine.shared().raise_pair_numbers(change.pair_number);
                let Some(entry) = engine
                    .catalog
                    .read()
                    .achievements
                    .get(&change.achievement)
                    .cloned()
                else {
                    return Ok(()); // its achievement was deleted since
                };
                let p = partition
                    .unwrap_or_else(|| engine.partition_of(entry.application_id, &change.customer));
                (p, ReplayRecord::Pair(change, entry))
            }
            Record::Erase(erasure) => {
                let p = partition
                    .unwrap_or_else(|| engine.partition_of(erasure.application, &erasure.customer));
                (p, ReplayRecord::Erase(erasure))
            }
            Record::Expire(expiry) => {
                // Expiry records exist from version 4 on, which names the
                // partition.
                let Some(p) = partition else {
                    return Err(bad_record(
                        "shard log",
                        position.0,
                        "an expiry without a partition",
                    ));
                };
                (p, ReplayRecord::Expire(expiry))
            }
            Record::Catalog(_) => {
                return Err(bad_record("shard log", position.0, "a catalog record"))
            }
        };
        self.progress.advance(1);
        let batch = self.batches.entry(p).or_default();
        batch.push((position, record));
        if batch.len() >= BATCH {
            let records = std::mem::take(batch);
            self.send(p, records)?;
        }
        Ok(())
    }

    fn send(
        &mut self,
        p: PartitionId,
        records: Vec<(Position, ReplayRecord)>,
    ) -> Result<(), StoreError> {
        self.records += records.len() as u64;
        block_on(self.engine.replay(p, records))?;
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<(u64, u64), StoreError> {
        let batches = std::mem::take(&mut self.batches);
        for (p, records) in batches {
            if !records.is_empty() {
                self.send(p, records)?;
            }
        }
        Ok((self.records, self.floor))
    }
}

/// The partitioned layout: snapshot of version 3, log by partition.
fn restore_partitioned(
    engine: &Engine,
    dir: &Path,
    report: &mut RestoreReport,
) -> Result<Loaded, StoreError> {
    let partitions = engine.partitions() as usize;
    let mut image = newest_snapshot(dir, report, usable_partitioned(partitions))?;
    let snapshot = install(engine, &mut image);
    let (catalog_from, positions) = replay_start(image.as_ref().map(|i| &i.header), partitions);
    let root = log_dir(dir);
    let catalog_next = replay_catalog(engine, &root.join("catalog"), catalog_from, report)?;
    let mut floor = load_pairs(engine, image, report)?;

    let shards = engine.shard_count();
    let dirs: Vec<_> = (0..shards).map(|i| shard_dir(&root, i)).collect();
    let refs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
    let from: Vec<_> = positions
        .iter()
        .enumerate()
        .map(|(p, pos)| (Stream::Partition(PartitionId(p as u32)), Position(*pos)))
        .collect();
    let mut replayer = Replayer::new(engine);
    let mut failure = None;
    let mut each = |stream: Stream, position: Position, record: Record| -> Result<(), LogError> {
        if failure.is_some() {
            return Ok(());
        }
        let Stream::Partition(p) = stream else {
            return Ok(());
        };
        if let Err(e) = replayer.push(Some(p), position, record) {
            failure = Some(e);
        }
        Ok(())
    };
    let ends = file_log::read_files(&root.join("catalog"), &refs, &from, &mut each)?;
    if let Some(e) = failure {
        return Err(e);
    }
    let (records, replay_floor) = replayer.finish()?;
    report.pair_records = records;
    floor = floor.max(replay_floor);
    // New records number above every position a pair remembers (jumping
    // ahead in a log is harmless) and above every position a partition of
    // the file was snapshotted at.
    let shard_next = (0..shards)
        .map(|i| {
            let snapshotted = positions
                .iter()
                .enumerate()
                .filter(|(p, _)| p % shards == i)
                .map(|(_, pos)| *pos)
                .max()
                .unwrap_or(0);
            (ends.shards[i] + 1).max(snapshotted).max(floor + 1)
        })
        .collect();
    Ok(Loaded {
        snapshot,
        catalog_next,
        shard_next,
    })
}
