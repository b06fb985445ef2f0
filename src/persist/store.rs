//! The store: restoring the engine from the data directory (newest valid
//! snapshot, then the write-ahead logs after it) and taking snapshots while
//! traffic flows.
//!
//! Data directory layout:
//! - `snapshot-<id>.snap`: snapshots (the newest `keep` are kept);
//! - `wal/catalog/`: the catalog's log; `wal/shard-<i>/`: each shard's log;
//! - `management.key`: the generated management key, if any.
//!
//! Runs on plain threads and talks to shards by message
//! (`futures_executor::block_on`), so a snapshot never blocks an arbiter.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_executor::block_on;

use super::model::{decode_catalog_record, decode_shard_record, PairV1, ShardRecord};
use super::snapshot::{self, HeaderV1, SnapshotError, SnapshotWriter};
use super::wal::{self, OnFailure, Wal};
use crate::domain::{AchievementId, CustomerId};
use crate::engine::catalog::CatalogState;
use crate::engine::pair::PairKey;
use crate::engine::shard::{
    AttachLog, LoadPairs, Replay, ReplayRecord, ReservePairs, SnapshotBegin, SnapshotChunk,
};
use crate::engine::Engine;

/// Pairs per snapshot chunk: small enough that a shard answers other
/// messages between chunks within a few milliseconds.
const CHUNK_PAIRS: usize = 2048;
/// Records per replay or load message.
const BATCH: usize = 8192;
/// Load messages in flight during a restore.
const IN_FLIGHT: usize = 16;
/// Appends queued per log before callers are told it is full.
const WAL_QUEUE: usize = 1 << 20;
/// A restore step logs its progress at least this often...
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// ...or every this many items, whichever comes first.
const PROGRESS_ITEMS: u64 = 1_000_000;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("log record {lsn} in {log} cannot be read: {why}")]
    Record { log: String, lsn: u64, why: String },
    #[error("the engine did not answer: {0}")]
    Engine(String),
}

/// A snapshot that was taken or is on disk.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub id: u64,
    pub created: DateTime<Utc>,
    pub pairs: u64,
    pub bytes: u64,
    pub duration: Option<Duration>,
}

/// What a restore found and did.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    pub snapshot: Option<u64>,
    pub skipped_snapshots: Vec<(u64, String)>,
    pub pairs: u64,
    pub catalog_records: u64,
    pub pair_records: u64,
    pub duration: Duration,
}

/// The durable side of a running engine.
pub struct Store {
    dir: PathBuf,
    keep: usize,
    catalog_wal: Wal,
    shard_wals: Vec<Wal>,
    one_at_a_time: Mutex<()>,
    /// What the restore that opened this store did.
    restored: RestoreReport,
    /// The newest snapshot taken or restored from.
    last_snapshot: Mutex<Option<SnapshotInfo>>,
    snapshots: AtomicU64,
    snapshot_failures: AtomicU64,
}

/// Logs a progress line for a long restore step, at most every
/// `PROGRESS_EVERY` or `PROGRESS_ITEMS` items, with the rate so far.
struct Progress {
    step: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    logged_at: Instant,
    logged_done: u64,
    checked_done: u64,
}

impl Progress {
    fn new(step: &'static str, total: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            step,
            total,
            done: 0,
            started: now,
            logged_at: now,
            logged_done: 0,
            checked_done: 0,
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        // Look at the clock only every few thousand items.
        if self.done - self.checked_done < 4096 {
            return;
        }
        self.checked_done = self.done;
        if self.done - self.logged_done >= PROGRESS_ITEMS
            || self.logged_at.elapsed() >= PROGRESS_EVERY
        {
            self.log();
        }
    }

    fn log(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (self.done as f64 / secs) as u64
        } else {
            0
        };
        match self.total {
            Some(total) => tracing::info!(
                step = self.step,
                done = self.done,
                total,
                rate,
                "restore progress: {} {} / {} ({:.0}%), {} per second",
                self.step,
                self.done,
                total,
                if total > 0 {
                    self.done as f64 * 100.0 / total as f64
                } else {
                    100.0
                },
                rate
            ),
            None => tracing::info!(
                step = self.step,
                done = self.done,
                rate,
                "restore progress: {} {}, {} per second",
                self.step,
                self.done,
                rate
            ),
        }
        self.logged_at = Instant::now();
        self.logged_done = self.done;
    }
}

fn shard_dir(dir: &Path, i: usize) -> PathBuf {
    dir.join("wal").join(format!("shard-{i:03}"))
}

fn catalog_dir(dir: &Path) -> PathBuf {
    dir.join("wal").join("catalog")
}

/// The number of shards a data directory was started with (one log each), or
/// `default` for a new directory. It stays fixed for the directory's life, so
/// a restart with another worker count keeps every pair in its log.
pub fn shard_count(dir: &Path, default: usize) -> usize {
    let logs = fs::read_dir(dir.join("wal"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("shard-"))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .max();
    logs.map_or(default.max(1), |i| i + 1)
}

/// Checks that the data directory can be used; a clear startup error if not.
pub fn check_dir(dir: &Path, shards: usize) -> Result<(), StoreError> {
    let err = |source| StoreError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    fs::read_dir(dir).map_err(err)?;
    let wal_root = dir.join("wal");
    fs::create_dir_all(&wal_root).map_err(err)?;
    for entry in fs::read_dir(&wal_root).map_err(err)? {
        let name = entry.map_err(err)?.file_name();
        let index = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .and_then(|n| n.parse::<usize>().ok());
        if index.is_some_and(|i| i >= shards) {
            return Err(err(std::io::Error::other(format!(
                "it holds a log for shard {:?} but this engine runs {shards} shards",
                name
            ))));
        }
    }
    let probe = dir.join(".write-probe");
    fs::write(&probe, b"ok").map_err(err)?;
    fs::remove_file(&probe).map_err(err)?;
    Ok(())
}

/// Waits for every queued shard answer.
fn wait_all<F, T>(pending: &mut Vec<F>) -> Result<(), StoreError>
where
    F: std::future::Future<Output = Result<T, actix::MailboxError>>,
{
    for r in block_on(futures_util::future::join_all(pending.drain(..))) {
        r.map_err(|e| StoreError::Engine(e.to_string()))?;
    }
    Ok(())
}

fn ask<M>(addr: &actix::Addr<crate::engine::shard::Shard>, msg: M) -> Result<M::Result, StoreError>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    crate::engine::shard::Shard: actix::Handler<M>,
{
    block_on(addr.send(msg)).map_err(|e| StoreError::Engine(e.to_string()))
}

impl Store {
    /// Restores the newest valid snapshot and replays the logs after it,
    /// then opens the logs for appending. Blocking; call it off the arbiters.
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
        let shards = engine.shard_addrs().len();
        check_dir(dir, shards)?;
        snapshot::remove_temporaries(dir)?;
        let mut report = RestoreReport::default();
        let mut last_snapshot = None;

        // 1. The newest snapshot that passes its checks.
        let mut loaded: Option<(HeaderV1, CatalogState, Vec<PairV1>)> = None;
        for file in snapshot::list(dir)?.iter().rev() {
            let mut pairs = Vec::new();
            let total = snapshot::read_header(&file.path).ok().map(|h| h.pairs);
            let mut progress = Progress::new("snapshot pairs read", total);
            let result = snapshot::read(&file.path, |chunk| {
                progress.advance(chunk.len() as u64);
                pairs.extend(chunk);
                Ok(())
            })
            .map_err(|e| e.to_string())
            .and_then(|(header, catalog)| {
                catalog
                    .to_state()
                    .map(|state| (header, state))
                    .map_err(|e| e.to_string())
            });
            match result {
                Ok((header, state)) => {
                    tracing::info!(id = file.id, pairs = header.pairs, "restoring snapshot");
                    report.snapshot = Some(file.id);
                    span.record("snapshot", file.id);
                    last_snapshot = Some(SnapshotInfo {
                        id: file.id,
                        created: header.created(),
                        pairs: header.pairs,
                        bytes: fs::metadata(&file.path).map_or(0, |m| m.len()),
                        duration: None,
                    });
                    loaded = Some((header, state, pairs));
                    break;
                }
                Err(why) => {
                    tracing::error!(path = %file.path.display(), error = %why, "skipping an unreadable snapshot");
                    report.skipped_snapshots.push((file.id, why));
                }
            }
        }
        let (header, state, pairs) = loaded.unwrap_or_else(|| {
            (
                HeaderV1 {
                    created_secs: 0,
                    created_nanos: 0,
                    catalog_lsn: 0,
                    shard_lsns: Vec::new(),
                    pair_numbers: 0,
                    pairs: 0,
                    body_len: 0,
                    body_crc: 0,
                },
                CatalogState::default(),
                Vec::new(),
            )
        });
        engine.catalog.replace(state);
        engine.shared().raise_pair_numbers(header.pair_numbers);

        // 2. Catalog changes after the snapshot.
        let catalog_log = catalog_dir(dir);
        let mut failure = None;
        let last = wal::read_from(&catalog_log, header.catalog_lsn, |lsn, bytes| {
            if failure.is_some() {
                return;
            }
            match decode_catalog_record(bytes).map_err(|e| e.to_string()) {
                Ok(record) => {
                    engine.catalog.apply(&record);
                    report.catalog_records += 1;
                }
                Err(why) => {
                    failure = Some(StoreError::Record {
                        log: "catalog".into(),
                        lsn,
                        why,
                    })
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let catalog_next = (last + 1).max(header.catalog_lsn).max(1);

        let mut lsn_floor = header.shard_lsns.iter().copied().max().unwrap_or(0);
        let mut loading = Vec::new();
        // 3. Pairs of the snapshot, to the shards that now own them. Room for
        // them first: the stable hash spreads customers evenly, so each shard
        // gets about its share.
        let share = pairs.len() / shards.max(1);
        for addr in engine.shard_addrs() {
            ask(addr, ReservePairs(share + share / 8))?;
        }
        let mut buckets: Vec<Vec<_>> = (0..shards).map(|_| Vec::new()).collect();
        let mut progress = Progress::new("pairs restored", Some(pairs.len() as u64));
        for pair in pairs {
            progress.advance(1);
            let Some(entry) = engine
                .catalog
                .read()
                .achievements
                .get(&AchievementId(pair.achievement))
                .cloned()
            else {
                continue;
            };
            let customer = CustomerId::parse(&pair.customer, "/integrationId").map_err(|e| {
                StoreError::Record {
                    log: "snapshot".into(),
                    lsn: 0,
                    why: e.message,
                }
            })?;
            let parts = pair.tracker.to_parts().map_err(|e| StoreError::Record {
                log: "snapshot".into(),
                lsn: 0,
                why: e.to_string(),
            })?;
            let shard = engine.shard_for(entry.application_id, &customer);
            lsn_floor = lsn_floor.max(pair.last_lsn);
            buckets[shard].push((
                PairKey {
                    achievement: entry.achievement.id,
                    customer,
                },
                parts,
                pair.last_lsn,
            ));
            report.pairs += 1;
            if buckets[shard].len() >= BATCH {
                let batch = std::mem::take(&mut buckets[shard]);
                // Keep several loads in flight: the shards insert in
                // parallel while this thread decodes the next pairs.
                loading.push(engine.shard_addrs()[shard].send(LoadPairs { pairs: batch }));
                if loading.len() >= IN_FLIGHT {
                    wait_all(&mut loading)?;
                }
            }
        }
        for (shard, batch) in buckets.into_iter().enumerate() {
            if !batch.is_empty() {
                loading.push(engine.shard_addrs()[shard].send(LoadPairs { pairs: batch }));
            }
        }
        wait_all(&mut loading)?;

        // 4. Pair changes after the snapshot, shard log by shard log.
        let mut next_lsns = Vec::with_capacity(shards);
        let mut progress = Progress::new("log records replayed", None);
        for i in 0..shards {
            let from = header.shard_lsns.get(i).copied().unwrap_or(0);
            let log = shard_dir(dir, i);
            let mut batch = Vec::new();
            let mut failure = None;
            let addr = &engine.shard_addrs()[i];
            let last = wal::read_from(&log, from, |lsn, bytes| {
                if failure.is_some() {
                    return;
                }
                let record = match decode_shard_record(bytes).map_err(|e| e.to_string()) {
                    Ok(ShardRecord::Pair(r)) => r,
                    Ok(ShardRecord::Erase(erasure)) => {
                        batch.push((lsn, ReplayRecord::Erase(erasure)));
                        progress.advance(1);
                        return;
                    }
                    Err(why) => {
                        failure = Some(StoreError::Record {
                            log: format!("shard-{i:03}"),
                            lsn,
                            why,
                        });
                        return;
                    }
                };
                engine.shared().raise_pair_numbers(record.pair_number);
                let Some(entry) = engine
                    .catalog
                    .read()
                    .achievements
                    .get(&record.achievement)
                    .cloned()
                else {
                    return; // its achievement was deleted since
                };
                batch.push((lsn, ReplayRecord::Pair(record, entry)));
                progress.advance(1);
                if batch.len() >= BATCH {
                    let records = std::mem::take(&mut batch);
                    report.pair_records += records.len() as u64;
                    if let Err(e) = ask(addr, Replay { records }) {
                        failure = Some(e);
                    }
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            if !batch.is_empty() {
                report.pair_records += batch.len() as u64;
                ask(addr, Replay { records: batch })?;
            }
            // New records must number above every LSN a pair remembers
            // (even one from another shard's log), or a later replay would
            // skip them; jumping ahead in a log is harmless.
            next_lsns.push((last + 1).max(from).max(lsn_floor + 1));
        }

        // 5. Open the logs for new records.
        let catalog_wal = Wal::open(&catalog_log, catalog_next, WAL_QUEUE, OnFailure::Discard)?;
        block_on(engine.attach_catalog_log(catalog_wal.clone(), catalog_next));
        let mut shard_wals = Vec::with_capacity(shards);
        for (i, next_lsn) in next_lsns.into_iter().enumerate() {
            let wal = Wal::open(&shard_dir(dir, i), next_lsn, WAL_QUEUE, OnFailure::Retain)?;
            ask(
                &engine.shard_addrs()[i],
                AttachLog {
                    wal: wal.clone(),
                    next_lsn,
                },
            )?;
            shard_wals.push(wal);
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
            millis = report.duration.as_millis() as u64,
            "restore finished"
        );
        Ok((
            Store {
                dir: dir.to_path_buf(),
                keep: keep.max(1),
                catalog_wal,
                shard_wals,
                one_at_a_time: Mutex::new(()),
                restored: report.clone(),
                last_snapshot: Mutex::new(last_snapshot),
                snapshots: AtomicU64::new(0),
                snapshot_failures: AtomicU64::new(0),
            },
            report,
        ))
    }

    /// The logs (catalog first), for metrics.
    pub fn wals(&self) -> impl Iterator<Item = &Wal> {
        std::iter::once(&self.catalog_wal).chain(self.shard_wals.iter())
    }

    /// The logs with their names (`catalog`, `shard-000`, ...), catalog first.
    pub fn named_wals(&self) -> impl Iterator<Item = (String, &Wal)> {
        std::iter::once(("catalog".to_string(), &self.catalog_wal)).chain(
            self.shard_wals
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("shard-{i:03}"), w)),
        )
    }

    /// What the restore that opened this store did.
    pub fn restore_report(&self) -> &RestoreReport {
        &self.restored
    }

    /// The newest snapshot this process took, or else the one it restored.
    pub fn last_snapshot(&self) -> Option<SnapshotInfo> {
        self.last_snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Snapshots taken by this process, and attempts that failed.
    pub fn snapshot_counts(&self) -> (u64, u64) {
        (
            self.snapshots.load(Ordering::Relaxed),
            self.snapshot_failures.load(Ordering::Relaxed),
        )
    }

    /// Takes a snapshot while traffic flows: the catalog at a log position,
    /// then each shard chunk by chunk. Blocking; one at a time.
    pub fn snapshot(&self, engine: &Engine) -> Result<SnapshotInfo, StoreError> {
        let span = tracing::info_span!(
            "snapshot",
            id = tracing::field::Empty,
            pairs = tracing::field::Empty,
            bytes = tracing::field::Empty,
            millis = tracing::field::Empty,
        )
        .entered();
        match self.write_snapshot(engine) {
            Ok(info) => {
                span.record("id", info.id);
                span.record("pairs", info.pairs);
                span.record("bytes", info.bytes);
                span.record("millis", info.duration.map_or(0, |d| d.as_millis() as u64));
                self.snapshots.fetch_add(1, Ordering::Relaxed);
                *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
                Ok(info)
            }
            Err(e) => {
                self.snapshot_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn write_snapshot(&self, engine: &Engine) -> Result<SnapshotInfo, StoreError> {
        let _one = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let created = engine.now();
        let id = snapshot::list(&self.dir)?.last().map_or(1, |s| s.id + 1);
        let (catalog, catalog_lsn) = engine.catalog_at_position();
        let mut writer = SnapshotWriter::create(&self.dir, id, engine.shard_addrs().len())?;
        writer.write_catalog(&catalog)?;
        let mut shard_lsns = Vec::new();
        for addr in engine.shard_addrs() {
            let begin = ask(addr, SnapshotBegin)?;
            shard_lsns.push(begin.next_lsn);
            let mut from = 0;
            loop {
                let chunk = ask(
                    addr,
                    SnapshotChunk {
                        from,
                        max: CHUNK_PAIRS,
                        token: begin.token,
                    },
                )?
                .map_err(|e| StoreError::Engine(e.to_string()))?;
                if chunk.pairs > 0 {
                    writer.write_chunk(&chunk.bytes, chunk.pairs)?;
                }
                from = chunk.next;
                if chunk.done {
                    break;
                }
            }
        }
        let (_, bytes, pairs) = writer.finish(
            created,
            catalog_lsn,
            shard_lsns,
            engine.shared().pair_numbers(),
        )?;
        let kept = snapshot::retain_newest(&self.dir, self.keep)?;
        if let Some(oldest) = kept.first() {
            let header = snapshot::read_header(&oldest.path)?;
            self.catalog_wal.prune(header.catalog_lsn);
            for (wal, lsn) in self.shard_wals.iter().zip(&header.shard_lsns) {
                wal.prune(*lsn);
            }
        }
        let duration = started.elapsed();
        tracing::info!(
            id,
            pairs,
            bytes,
            millis = duration.as_millis() as u64,
            "snapshot written"
        );
        Ok(SnapshotInfo {
            id,
            created,
            pairs,
            bytes,
            duration: Some(duration),
        })
    }

    /// The snapshots on disk, newest first.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        let mut out = Vec::new();
        for file in snapshot::list(&self.dir)?.iter().rev() {
            let bytes = fs::metadata(&file.path)?.len();
            match snapshot::read_header(&file.path) {
                Ok(h) => out.push(SnapshotInfo {
                    id: file.id,
                    created: h.created(),
                    pairs: h.pairs,
                    bytes,
                    duration: None,
                }),
                Err(e) => {
                    tracing::warn!(path = %file.path.display(), error = %e, "unreadable snapshot header")
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
