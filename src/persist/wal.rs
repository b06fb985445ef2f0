//! The write-ahead log: an append-only sequence of records, each with a log
//! sequence number (LSN), in segment files of one directory.
//!
//! Owns: the frame format, group commit and segment files. The interface is
//! small on purpose (append a batch → it is durable; read from a position) so
//! a replicated log can take its place later.
//!
//! Frame: `lsn u64 LE | len u32 LE | crc32 u32 LE (of lsn bytes + payload) |
//! payload`. Segments are named by the first LSN they may hold
//! (`00000000000000000001.wal`). A frame that is cut short or fails its
//! checksum ends its segment: it was never acknowledged (the append answers
//! only after `fdatasync`).
//!
//! Group commit: one writer thread per log takes every append queued while it
//! was writing the previous group and makes them durable with one fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};
use tokio::sync::oneshot;

/// A segment is closed once it grows past this size.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The largest payload of one record.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
const FRAME_HEADER: usize = 16;

/// Why an append failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log I/O error: {0}")]
    Io(#[source] Arc<io::Error>),
    #[error("write-ahead log queue is full")]
    Full,
    #[error("write-ahead log is closed")]
    Closed,
    #[error("the disk cannot take writes; changes are refused until it can")]
    Degraded,
}

/// What the writer thread counts (for metrics) and its health.
#[derive(Debug, Default)]
pub struct WalStats {
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_micros: AtomicU64,
    pub errors: AtomicU64,
    pub durable_lsn: AtomicU64,
    /// Set while writes fail; the engine then refuses new changes (503)
    /// and the writer retries what it holds until the disk works again.
    pub degraded: AtomicBool,
    /// Fault injection for tests and drills: writes fail while set.
    pub fail_writes: AtomicBool,
}

/// What a log does with records it could not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Keep them and write them (in order, before anything newer) once the
    /// disk works again: their changes are already in memory. Shard logs.
    Retain,
    /// Drop them: the change was not performed. The catalog's log (its
    /// changes are applied only after they are durable).
    Discard,
}

/// How often a degraded log tries again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

enum Job {
    Append {
        records: Vec<Record>,
        done: oneshot::Sender<Result<(), WalError>>,
    },
    Prune {
        before: u64,
    },
    /// Resolves once everything queued before it is durable.
    Barrier {
        done: oneshot::Sender<Result<(), WalError>>,
    },
}

/// A handle to an open log; cheap to clone.
#[derive(Clone)]
pub struct Wal {
    tx: mpsc::Sender<Job>,
    pub stats: Arc<WalStats>,
    dir: PathBuf,
}

/// One record: its LSN and payload.
pub type Record = (u64, Vec<u8>);

/// A waiting append: resolves once its records are durable.
pub type Durable = oneshot::Receiver<Result<(), WalError>>;

fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

/// The segments of a log directory, sorted by first LSN.
pub fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(first) = name
            .strip_suffix(".wal")
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Encodes one frame.
pub fn frame(buf: &mut Vec<u8>, lsn: u64, payload: &[u8]) {
    let lsn_bytes = lsn.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&lsn_bytes);
    crc.update(payload);
    buf.extend_from_slice(&lsn_bytes);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Reads the valid frames at the start of a segment; returns them and the
/// length of the valid prefix.
pub fn read_segment(path: &Path) -> io::Result<(Vec<Record>, u64)> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut records = Vec::new();
    let mut valid = 0u64;
    let mut header = [0u8; FRAME_HEADER];
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let lsn = u64::from_le_bytes(header[0..8].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(header[12..16].try_into().unwrap_or_default());
        if len > MAX_RECORD_BYTES {
            break;
        }
        let mut payload = vec![0u8; len];
        match reader.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let mut check = crc32fast::Hasher::new();
        check.update(&header[0..8]);
        check.update(&payload);
        if check.finalize() != crc {
            break;
        }
        records.push((lsn, payload));
        valid += (FRAME_HEADER + len) as u64;
    }
    Ok((records, valid))
}

/// Reads every valid record of a log with `lsn >= from`, in LSN order.
/// Calls `f` for each; returns the highest LSN seen (0 when none).
pub fn read_from(dir: &Path, from: u64, mut f: impl FnMut(u64, &[u8])) -> io::Result<u64> {
    let mut last = 0;
    for (_, path) in segments(dir)? {
        let (records, _) = read_segment(&path)?;
        for (lsn, payload) in records {
            last = last.max(lsn);
            if lsn >= from {
                f(lsn, &payload);
            }
        }
    }
    Ok(last)
}

/// The highest valid LSN of a log (0 when empty).
pub fn last_lsn(dir: &Path) -> io::Result<u64> {
    read_from(dir, u64::MAX, |_, _| {})
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Wal {
    /// Opens a log for appending records from `next_lsn` on: cuts any torn
    /// tail off the existing segments and starts a new segment.
    pub fn open(dir: &Path, next_lsn: u64, queue: usize, on_failure: OnFailure) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        for (_, path) in segments(dir)? {
            let (_, valid) = read_segment(&path)?;
            let file = OpenOptions::new().write(true).open(&path)?;
            if file.metadata()?.len() != valid {
                file.set_len(valid)?;
                file.sync_all()?;
            }
        }
        let path = dir.join(segment_name(next_lsn));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(dir)?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = Arc::new(WalStats::default());
        stats
            .durable_lsn
            .store(next_lsn.saturating_sub(1), Ordering::Relaxed);
        let writer = Writer {
            dir: dir.to_path_buf(),
            len: file.metadata()?.len(),
            file,
            stats: stats.clone(),
            on_failure,
            pending: Vec::new(),
            pending_last: None,
        };
        std::thread::Builder::new()
            .name(format!(
                "wal-{}",
                dir.file_name().and_then(|n| n.to_str()).unwrap_or("log")
            ))
            .spawn(move || writer.run(rx))?;
        Ok(Wal {
            tx,
            stats,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues records (in LSN order) without blocking; the answer resolves
    /// once they are durable.
    pub fn append(&self, records: Vec<Record>) -> Result<Durable, WalError> {
        let (done, rx) = oneshot::channel();
        match self.tx.try_send(Job::Append { records, done }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(WalError::Full),
            Err(TrySendError::Closed(_)) => Err(WalError::Closed),
        }
    }

    /// Resolves once every record queued so far is durable.
    pub fn barrier(&self) -> Result<Durable, WalError> {
        let (done, rx) = oneshot::channel();
        match self.tx.try_send(Job::Barrier { done }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(WalError::Full),
            Err(TrySendError::Closed(_)) => Err(WalError::Closed),
        }
    }

    /// Whether writes are failing now (the engine refuses changes then).
    pub fn is_degraded(&self) -> bool {
        self.stats.degraded.load(Ordering::Acquire)
    }

    /// Fault injection for tests and drills: make writes fail (or work again).
    pub fn fail_writes(&self, fail: bool) {
        self.stats.fail_writes.store(fail, Ordering::Release);
    }

    /// Deletes closed segments that hold only records below `before`.
    pub fn prune(&self, before: u64) {
        let _ = self.tx.try_send(Job::Prune { before });
    }
}

struct Writer {
    dir: PathBuf,
    file: File,
    len: u64,
    stats: Arc<WalStats>,
    on_failure: OnFailure,
    /// Frames that failed to write and are retried (`OnFailure::Retain`).
    pending: Vec<u8>,
    pending_last: Option<u64>,
}

impl Writer {
    fn degraded(&self) -> bool {
        self.stats.degraded.load(Ordering::Acquire)
    }

    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut buf = Vec::with_capacity(1 << 20);
        loop {
            let first = if self.degraded() {
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => {
                        std::thread::sleep(RETRY_EVERY);
                        self.retry();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.blocking_recv() {
                    Some(job) => job,
                    None => break,
                }
            };
            let mut jobs = vec![first];
            while jobs.len() < 65_536 {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            buf.clear();
            let mut waiters = Vec::new();
            let mut last_lsn = None;
            for job in jobs {
                match job {
                    Job::Append { records, done } => {
                        for (lsn, payload) in &records {
                            frame(&mut buf, *lsn, payload);
                            last_lsn = Some(*lsn);
                        }
                        waiters.push(done);
                    }
                    Job::Prune { before } => self.prune(before),
                    Job::Barrier { done } => waiters.push(done),
                }
            }
            if waiters.is_empty() {
                continue;
            }
            if self.degraded() {
                self.retry();
            }
            let result = if self.degraded() {
                // Still failing: nobody is acknowledged; what is already in
                // memory waits here to be written later.
                self.hold(&buf, last_lsn);
                Err(WalError::Degraded)
            } else if buf.is_empty() {
                // Earlier groups are durable already.
                Ok(())
            } else {
                let written = self.write(&buf);
                match &written {
                    Ok(()) => {
                        if let Some(lsn) = last_lsn {
                            self.durable(lsn);
                        }
                    }
                    Err(_) => {
                        self.hold(&buf, last_lsn);
                        if self.on_failure == OnFailure::Retain {
                            self.stats.degraded.store(true, Ordering::Release);
                        }
                    }
                }
                written
            };
            for done in waiters {
                let _ = done.send(result.clone());
            }
        }
    }

    /// Keeps frames that could not be written, if this log retains them.
    fn hold(&mut self, buf: &[u8], last_lsn: Option<u64>) {
        if self.on_failure == OnFailure::Retain && !buf.is_empty() {
            self.pending.extend_from_slice(buf);
            self.pending_last = last_lsn.or(self.pending_last);
        }
    }

    /// Tries to write what is held; leaves degraded mode when it works.
    fn retry(&mut self) {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            if self.write(&pending).is_err() {
                self.pending = pending;
                return;
            }
            if let Some(lsn) = self.pending_last.take() {
                self.durable(lsn);
            }
        }
        if self.degraded() {
            tracing::warn!(dir = %self.dir.display(), "write-ahead log writes work again");
            self.stats.degraded.store(false, Ordering::Release);
        }
    }

    fn durable(&mut self, lsn: u64) {
        self.stats.durable_lsn.store(lsn, Ordering::Release);
        if self.len > SEGMENT_BYTES {
            if let Err(e) = self.rotate(lsn + 1) {
                tracing::error!(error = %e, dir = %self.dir.display(), "cannot start a new log segment");
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> Result<(), WalError> {
        let started = Instant::now();
        let result = if self.stats.fail_writes.load(Ordering::Acquire) {
            Err(io::Error::other("injected write failure"))
        } else {
            self.file.write_all(buf).and_then(|_| self.file.sync_data())
        };
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                self.stats
                    .bytes
                    .fetch_add(buf.len() as u64, Ordering::Relaxed);
                self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .fsync_micros
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // Cut off whatever part of the group reached the file, so
                // the next group follows the last durable frame.
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                tracing::error!(error = %e, dir = %self.dir.display(), "write-ahead log append failed");
                Err(WalError::Io(Arc::new(e)))
            }
        }
    }

    fn rotate(&mut self, next_lsn: u64) -> io::Result<()> {
        let path = self.dir.join(segment_name(next_lsn));
        self.file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.len = 0;
        sync_dir(&self.dir)
    }

    fn prune(&self, before: u64) {
        let Ok(list) = segments(&self.dir) else {
            return;
        };
        for pair in list.windows(2) {
            let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
            if *next_first <= before {
                if let Err(e) = fs::remove_file(path) {
                    tracing::warn!(error = %e, path = %path.display(), "cannot delete an old log segment");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
