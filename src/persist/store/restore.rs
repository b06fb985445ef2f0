//! Restoring the engine from the data directory: the newest valid snapshot,
//! then the log after it, then the log opened for appending (the decisions
//! are `plan`'s). `Store::load` is the same load without any write, for the
//! operator commands. A directory of
//! the earlier layout is restored by `migrate` and then migrated here: a
//! partitioned snapshot is taken, the directory is marked (`partitions`),
//! and the old files are removed.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_executor::block_on;

use super::migrate::{remove_legacy, restore_legacy};
use super::plan::{check_snapshot_head, layout, replay_start, usable_partitioned, Layout};
use super::{
    log_dir, shard_dir, write_partitions, Progress, RestoreReport, SnapshotInfo, Store, StoreError,
    BATCH, IN_FLIGHT,
};
use crate::domain::CustomerId;
use crate::engine::catalog::CatalogState;
use crate::engine::log::{LogError, PartitionId, Position, Record, Stream};
use crate::engine::pair::PairKey;
use crate::engine::shard::{PairImage, ReplayRecord};
use crate::engine::Engine;
use crate::persist::file_log::{self, FileLog};
use crate::persist::model::PairV5;
use crate::persist::snapshot::{self, Header};

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

/// The snapshot a restore loads: checked (header, checksum, catalog); its
/// pairs are decoded while they are loaded (`load_pairs`).
pub(super) struct Image {
    id: u64,
    pub(super) header: Header,
    catalog: CatalogState,
    path: std::path::PathBuf,
    checked: snapshot::Checked,
    bytes: u64,
}

/// The newest snapshot that passes its checks and that `usable` accepts.
pub(super) fn newest_snapshot(
    dir: &Path,
    report: &mut RestoreReport,
    usable: impl Fn(&Header) -> Result<(), String>,
) -> Result<Option<Image>, StoreError> {
    for file in snapshot::list(dir)?.iter().rev() {
        match check_snapshot_head(&file.path, &usable) {
            Ok((checked, catalog)) => {
                tracing::info!(
                    id = file.id,
                    pairs = checked.header.pairs,
                    "restoring snapshot"
                );
                report.snapshot = Some(file.id);
                return Ok(Some(Image {
                    id: file.id,
                    header: checked.header.clone(),
                    catalog,
                    path: file.path.clone(),
                    checked,
                    bytes: fs::metadata(&file.path).map_or(0, |m| m.len()),
                }));
            }
            Err(why) => {
                tracing::error!(path = %file.path.display(), error = %why, "skipping an unreadable snapshot");
                report.skipped_snapshots.push((file.id, why));
            }
        }
    }
    Ok(None)
}

/// Installs a snapshot's catalog and pair counter; returns its info.
pub(super) fn install(engine: &Engine, image: &mut Option<Image>) -> Option<SnapshotInfo> {
    let (catalog, info) = match image.as_mut() {
        Some(i) => (
            std::mem::take(&mut i.catalog),
            Some(SnapshotInfo {
                id: i.id,
                created: i.header.created(),
                pairs: i.header.pairs,
                bytes: i.bytes,
                duration: None,
            }),
        ),
        None => (CatalogState::default(), None),
    };
    if let Some(i) = image.as_ref() {
        engine.shared().raise_pair_numbers(i.header.pair_numbers);
    }
    engine.catalog.replace(catalog);
    info
}

/// Replays the catalog's log from `from`; returns the next LSN.
pub(super) fn replay_catalog(
    engine: &Engine,
    catalog_dir: &Path,
    from: u64,
    report: &mut RestoreReport,
) -> Result<u64, StoreError> {
    let mut each = |_: Stream, _: Position, record: Record| -> Result<(), LogError> {
        if let Record::Catalog(r) = record {
            engine.catalog.apply(&r);
            report.catalog_records += 1;
        }
        Ok(())
    };
    let ends = file_log::read_files(
        catalog_dir,
        &[],
        &[(Stream::Catalog, Position(from))],
        &mut each,
    )?;
    Ok((ends.catalog + 1).max(from).max(1))
}

/// Turns a snapshot's pair into what the engine loads, with its partition;
/// `None` when its achievement is gone.
fn image_of(engine: &Engine, pair: PairV5) -> Result<Option<(PartitionId, PairImage)>, StoreError> {
    let Some(entry) = engine
        .catalog
        .read()
        .achievements
        .get(&crate::domain::AchievementId(pair.achievement))
        .cloned()
    else {
        return Ok(None);
    };
    let customer = CustomerId::parse(&pair.customer, "/integrationId")
        .map_err(|e| bad_record("snapshot pair", pair.last_lsn, e.message))?;
    let tracker = pair
        .tracker
        .to_parts()
        .map_err(|e| bad_record("snapshot pair", pair.last_lsn, e))?;
    let partition = engine.partition_of(entry.application_id, &customer);
    Ok(Some((
        partition,
        PairImage {
            key: PairKey {
                achievement: entry.achievement.id,
                customer,
            },
            last: Position(pair.last_lsn),
            tracker,
        },
    )))
}

/// A partition's pairs from one encoded section (`ChunkV5`, or `ChunkV3` when
/// `legacy`), as the engine loads them (cluster mode's partition snapshots are
/// such sections); pairs of deleted achievements are left out.
pub fn decode_chunk(
    engine: &Engine,
    bytes: &[u8],
    legacy: bool,
) -> Result<(PartitionId, Vec<PairImage>), StoreError> {
    let section = |e: String| bad_record("snapshot section", 0, e);
    let (partition, pairs) = if legacy {
        let chunk: crate::persist::model::ChunkV3 =
            crate::persist::codec::decode(bytes).map_err(|e| section(e.to_string()))?;
        let pairs = chunk
            .pairs
            .into_iter()
            .map(PairV5::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| section(e.to_string()))?;
        (chunk.partition, pairs)
    } else {
        let chunk: crate::persist::model::ChunkV5 =
            crate::persist::codec::decode(bytes).map_err(|e| section(e.to_string()))?;
        (chunk.partition, chunk.pairs)
    };
    let mut images = Vec::with_capacity(pairs.len());
    for pair in pairs {
        if let Some((_, image)) = image_of(engine, pair)? {
            images.push(image);
        }
    }
    Ok((PartitionId(partition), images))
}

/// Pairs of an older snapshot gathered per partition before a load.
const LEGACY_LOAD: usize = 1024;

/// Loads a snapshot's pairs into their partitions as they are decoded,
/// several loads in flight, so that the shards insert one chunk while this
/// thread decodes the next; returns the highest position a pair remembers.
///
/// The snapshot passed its checks (checksum, catalog) before anything was
/// installed; pairs that still fail to decode mean the file changed since
/// or was written wrong, and the restore stops rather than fall back to an
/// older snapshot over a partly loaded one.
pub(super) fn load_pairs(
    engine: &Engine,
    image: Option<Image>,
    report: &mut RestoreReport,
) -> Result<u64, StoreError> {
    let Some(image) = image else {
        return Ok(0);
    };
    // Room first: the hash spreads customers evenly over partitions.
    let per = image.header.pairs as usize / engine.partitions() as usize;
    block_on(engine.reserve_pairs(per + per / 8))?;
    let mut floor = 0;
    let mut progress = Progress::new("pairs restored", Some(image.header.pairs));
    let mut buckets: HashMap<PartitionId, Vec<PairImage>> = HashMap::new();
    let mut loading = Vec::new();
    let flush =
        |p: PartitionId, pairs: Vec<PairImage>, loading: &mut Vec<_>| -> Result<(), StoreError> {
            loading.push(engine.load_pairs(p, pairs));
            if loading.len() >= IN_FLIGHT {
                for r in block_on(futures_util::future::join_all(loading.drain(..))) {
                    r?;
                }
            }
            Ok(())
        };
    let mut on_chunk = |partition: Option<u32>, chunk: Vec<PairV5>| -> Result<(), StoreError> {
        // A partitioned snapshot's chunk goes to its partition as it is; an
        // older one's pairs are gathered by partition, in small loads (a
        // large buffer per partition would hold the whole snapshot twice).
        let mut direct = Vec::with_capacity(if partition.is_some() { chunk.len() } else { 0 });
        for pair in chunk {
            progress.advance(1);
            floor = floor.max(pair.last_lsn);
            let Some((p, image)) = image_of(engine, pair)? else {
                continue;
            };
            report.pairs += 1;
            if partition.is_some() {
                direct.push((p, image));
                continue;
            }
            let bucket = buckets.entry(p).or_default();
            bucket.push(image);
            if bucket.len() >= LEGACY_LOAD {
                let batch = std::mem::take(bucket);
                flush(p, batch, &mut loading)?;
            }
        }
        // The partition follows from each pair (the chunk's is the same).
        let mut by_partition: HashMap<PartitionId, Vec<PairImage>> = HashMap::new();
        for (p, image) in direct {
            by_partition.entry(p).or_default().push(image);
        }
        for (p, batch) in by_partition {
            flush(p, batch, &mut loading)?;
        }
        Ok(())
    };
    // One thread decodes the file's sections while this one turns pairs
    // into what the shards load and hands them over: three stages in
    // flight (decode, convert, insert) rather than one after the other.
    let (decoded, read) = std::thread::scope(|scope| -> Result<_, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Option<u32>, Vec<PairV5>)>(4);
        let (path, checked) = (&image.path, &image.checked);
        let reader = std::thread::Builder::new()
            .name("snapshot-decode".into())
            .spawn_scoped(scope, move || {
                snapshot::read_pairs(path, checked, |partition, chunk| {
                    // A closed channel: the loading side stopped on an error.
                    tx.send((partition, chunk))
                        .map_err(|_| snapshot::SnapshotError::Decode("the load stopped".into()))
                })
            })
            .map_err(|e| {
                bad_record(
                    "snapshot",
                    0,
                    format!("cannot start a decoding thread: {e}"),
                )
            })?;
        let mut decoded = Ok(());
        for (partition, chunk) in rx.iter() {
            if let Err(e) = on_chunk(partition, chunk) {
                decoded = Err(e);
                break;
            }
        }
        drop(rx);
        let read = reader.join().unwrap_or_else(|_| {
            Err(snapshot::SnapshotError::Decode(
                "the decoding thread panicked".into(),
            ))
        });
        Ok((decoded, read))
    })?;
    decoded?;
    read.map_err(|e| {
        bad_record(
            "snapshot",
            0,
            format!("its pairs could not be read after it passed its checks: {e}"),
        )
    })?;
    for (p, batch) in buckets {
        if !batch.is_empty() {
            flush(p, batch, &mut loading)?;
        }
    }
    for r in block_on(futures_util::future::join_all(loading)) {
        r?;
    }
    Ok(floor)
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
