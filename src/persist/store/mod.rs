//! The store: the data directory, restoring the engine from it, and taking
//! snapshots while traffic flows.
//!
//! Data directory layout:
//! - `partitions`: the partition count, fixed when the directory is created;
//! - `snapshot-<id>.snap`: snapshots (the newest `keep` are kept);
//! - `log/catalog/`: the catalog's log; `log/shard-<i>/`: the log each shard
//!   writes its partitions' records to (`FileLog`);
//! - `management.key`: the generated management key, if any.
//!
//! A directory of an earlier layout (`wal/`, snapshots by shard, no
//! `partitions` file) is migrated on its first start (`restore`).
//!
//! Owns: the layout, `Store` (the open log and the snapshot bookkeeping),
//! its reports. Restoring is in `restore` (what it decides, read-only, in
//! `plan`; the snapshot's load in `load`), taking snapshots in `take`. The
//! engine is reached only through its public API; store work runs on plain
//! threads (`futures_executor::block_on`), never on an arbiter.

mod load;
mod migrate;
mod plan;
mod restore;
mod take;

pub use load::decode_chunk;
pub use migrate::{legacy_replay_start, usable_legacy};
pub use plan::{check_snapshot_head, layout, replay_start, usable_partitioned, Layout};
pub use take::encode_chunk;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::file_log::FileLog;
use super::snapshot::{self, SnapshotError};
use super::wal::Wal;
use crate::engine::log::LogError;
use crate::engine::EngineError;

/// Pairs per snapshot chunk: a shard copies one between two other messages,
/// so an event waits for at most one copy (512: p99 under load about 3.1-3.7
/// ms against 4.3-4.9 ms with 2,048 asked ahead; 256 made a 10 M-pair
/// snapshot take 5-6 s instead of about 4).
const CHUNK_PAIRS: usize = 512;
/// Records per replay or load message.
const BATCH: usize = 8192;
/// Load messages in flight during a restore.
const IN_FLIGHT: usize = 16;
/// A restore step logs its progress at least this often...
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// ...or every this many items, whichever comes first.
const PROGRESS_ITEMS: u64 = 1_000_000;
/// The file that records a directory's partition count.
pub const PARTITIONS_FILE: &str = "partitions";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {path} was created with {stored} partitions, not {configured}; start it with --partitions {stored}")]
    Partitions {
        path: PathBuf,
        stored: u32,
        configured: u32,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("log: {0}")]
    Log(#[from] LogError),
    #[error("{what} record {position} cannot be read: {why}")]
    Record {
        what: String,
        position: u64,
        why: String,
    },
    #[error("the engine refused: {0}")]
    Engine(#[from] EngineError),
    #[error("the engine did not answer: {0}")]
    Mailbox(#[from] actix::MailboxError),
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
    /// The directory had an earlier layout and was migrated.
    pub migrated: bool,
    pub duration: Duration,
}

/// The durable side of a running engine.
pub struct Store {
    dir: PathBuf,
    keep: usize,
    log: Arc<FileLog>,
    one_at_a_time: Mutex<()>,
    /// What the restore that opened this store did.
    restored: RestoreReport,
    /// The newest snapshot taken or restored from.
    last_snapshot: Mutex<Option<SnapshotInfo>>,
    snapshots: AtomicU64,
    snapshot_failures: AtomicU64,
}

/// The log directory of the partitioned layout (`log/`).
pub fn log_dir(dir: &Path) -> PathBuf {
    dir.join("log")
}

/// The log directory of the earlier layout (`wal/`).
pub fn legacy_dir(dir: &Path) -> PathBuf {
    dir.join("wal")
}

/// Shard `i`'s log in a log directory.
pub fn shard_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("shard-{i:03}"))
}

/// The shard logs of a log directory (`log/` or the legacy `wal/`).
pub fn shard_logs(root: &Path) -> Option<usize> {
    fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("shard-"))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .max()
        .map(|i| i + 1)
}

/// The number of shards a data directory was started with (one log each), or
/// `default` for a new directory. It stays fixed for the directory's life.
pub fn shard_count(dir: &Path, default: usize) -> usize {
    shard_logs(&log_dir(dir))
        .or_else(|| shard_logs(&legacy_dir(dir)))
        .unwrap_or(default.max(1))
}

/// The partition count of a data directory: the one it records, else the
/// configured one (or the default) for a new directory. A configured count
/// that differs from the recorded one is an error: the log and snapshots
/// are organised by partition.
pub fn partition_count(dir: &Path, configured: Option<u32>) -> Result<u32, StoreError> {
    match (stored_partitions(dir)?, configured) {
        (Some(stored), Some(c)) if c != stored => Err(StoreError::Partitions {
            path: dir.to_path_buf(),
            stored,
            configured: c,
        }),
        (Some(stored), _) => Ok(stored),
        (None, c) => Ok(c.unwrap_or(crate::engine::partition::DEFAULT_PARTITIONS)),
    }
}

/// The partition count a data directory records, if any. Read-only.
pub fn stored_partitions(dir: &Path) -> Result<Option<u32>, StoreError> {
    let path = dir.join(PARTITIONS_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .map(Some)
            .map_err(|_| StoreError::Dir {
                path: path.clone(),
                source: std::io::Error::other(format!("{text:?} is not a partition count")),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Dir { path, source }),
    }
}

fn write_partitions(dir: &Path, partitions: u32) -> std::io::Result<()> {
    let tmp = dir.join(".partitions.tmp");
    let mut f = fs::File::create(&tmp)?;
    writeln!(f, "{partitions}")?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(PARTITIONS_FILE))?;
    fs::File::open(dir)?.sync_all()
}

/// Checks that the data directory can be used; a clear startup error if not.
pub fn check_dir(dir: &Path, shards: usize) -> Result<(), StoreError> {
    let err = |source| StoreError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    fs::read_dir(dir).map_err(err)?;
    for root in [log_dir(dir), legacy_dir(dir)] {
        if shard_logs(&root).is_some_and(|n| n > shards) {
            return Err(err(std::io::Error::other(format!(
                "{} holds logs of more shards than the {shards} this engine runs",
                root.display()
            ))));
        }
    }
    let probe = dir.join(".write-probe");
    fs::write(&probe, b"ok").map_err(err)?;
    fs::remove_file(&probe).map_err(err)?;
    Ok(())
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
        let pct = |total: u64| {
            if total > 0 {
                self.done as f64 * 100.0 / total as f64
            } else {
                100.0
            }
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
                pct(total),
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

impl Store {
    /// The log files with their names (`catalog`, `shard-000`, ...), catalog
    /// first, for metrics.
    pub fn named_wals(&self) -> impl Iterator<Item = (String, &Wal)> {
        self.log.wals()
    }

    /// The log files (catalog first).
    pub fn wals(&self) -> impl Iterator<Item = &Wal> {
        self.log.wals().map(|(_, w)| w)
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
