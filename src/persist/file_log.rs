//! The file log: the engine's `Log` on the write-ahead log files of a data
//! directory.
//!
//! Owns: the mapping of streams onto files (the catalog has its own log;
//! partition `p` shares the log of shard `p % shards` with the shard's other
//! partitions, so a shard's changes are made durable by one writer thread
//! and one fsync per group) and the encoding of records (`model`). A
//! partition's position is the LSN of its record in its shard's log: it
//! increases within the partition, with gaps where other partitions' records
//! sit. The files' guarantees (CRC frames, group commit, segments, degraded
//! mode on disk faults) are `wal`'s.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::model;
use super::wal::{self, OnFailure, Wal, WalError};
use std::sync::Arc;

use crate::engine::log::{
    cause, Appended, Commit, Log, LogError, PartitionId, Position, Record, RecordRef, Stream,
};

/// Appends queued per file before callers are told it is full.
const WAL_QUEUE: usize = 1 << 20;

/// One file of the log and the next LSN it hands out.
struct File {
    wal: Wal,
    /// Numbering and queueing happen under this lock, so LSNs reach the
    /// writer in order.
    next: Mutex<u64>,
}

/// The engine's log on files.
pub struct FileLog {
    catalog: File,
    shards: Vec<File>,
}

fn refused(e: WalError) -> LogError {
    LogError::Unavailable(Arc::new(e))
}

fn commit(durable: wal::Durable) -> Commit {
    Commit::new(async move {
        match durable.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LogError::NotDurable(Arc::new(e))),
            Err(_) => Err(LogError::NotDurable(cause("the log writer stopped"))),
        }
    })
}

impl FileLog {
    /// Opens the catalog's log and one log per shard, each appending from
    /// its next LSN.
    pub fn open(
        catalog_dir: &Path,
        catalog_next: u64,
        shard_dirs: &[(std::path::PathBuf, u64)],
    ) -> std::io::Result<FileLog> {
        let file = |dir: &Path, next: u64, on_failure| -> std::io::Result<File> {
            Ok(File {
                wal: Wal::open(dir, next, WAL_QUEUE, on_failure)?,
                next: Mutex::new(next),
            })
        };
        Ok(FileLog {
            // Catalog changes are applied only once durable: one that failed
            // was not performed and is dropped.
            catalog: file(catalog_dir, catalog_next, OnFailure::Discard)?,
            // Pair changes are in memory already: kept and written once the
            // disk works again.
            shards: shard_dirs
                .iter()
                .map(|(dir, next)| file(dir, *next, OnFailure::Retain))
                .collect::<std::io::Result<_>>()?,
        })
    }

    /// The file of a stream: 0 is the catalog's, `1 + s` shard `s`'s.
    fn index(&self, stream: Stream) -> usize {
        match stream {
            Stream::Catalog => 0,
            Stream::Partition(p) => 1 + p.0 as usize % self.shards.len(),
        }
    }

    fn by_index(&self, i: usize) -> &File {
        match i {
            0 => &self.catalog,
            i => &self.shards[i - 1],
        }
    }

    fn file(&self, stream: Stream) -> &File {
        self.by_index(self.index(stream))
    }

    /// Numbers payloads from file `f`'s next LSN and queues them; returns
    /// the first LSN and what resolves once they are durable.
    fn queue(&self, f: usize, payloads: Vec<Vec<u8>>) -> Result<(u64, wal::Durable), LogError> {
        let file = self.by_index(f);
        let mut next = file.next.lock().unwrap_or_else(|e| e.into_inner());
        let first = *next;
        let count = payloads.len() as u64;
        let numbered = payloads
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| (first + i as u64, bytes))
            .collect();
        let durable = file.wal.append(numbered).map_err(refused)?;
        *next = first + count;
        Ok((first, durable))
    }

    /// The files (catalog first) with their names, for metrics and faults.
    pub fn wals(&self) -> impl Iterator<Item = (String, &Wal)> {
        std::iter::once(("catalog".to_string(), &self.catalog.wal)).chain(
            self.shards
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("shard-{i:03}"), &f.wal)),
        )
    }

    /// Deletes what a snapshot made unnecessary: catalog records below
    /// `catalog`, and in each shard's log records below the lowest position
    /// its partitions still need.
    pub fn prune(&self, catalog: u64, partitions: &[u64]) {
        self.catalog.wal.prune(catalog);
        let n = self.shards.len();
        for (i, f) in self.shards.iter().enumerate() {
            let lowest = partitions
                .iter()
                .enumerate()
                .filter(|(p, _)| p % n == i)
                .map(|(_, pos)| *pos)
                .min();
            if let Some(lowest) = lowest {
                f.wal.prune(lowest);
            }
        }
    }
}

impl Log for FileLog {
    fn append(&self, records: &[(Stream, RecordRef<'_>)]) -> Result<Appended, LogError> {
        let encode = |(stream, r): &(Stream, RecordRef<'_>)| match (stream, r) {
            (Stream::Catalog, RecordRef::Catalog(c)) => model::encode_catalog_record(c),
            (Stream::Partition(p), r) => model::encode_partition_record(*p, r),
            (Stream::Catalog, _) => Err(model::bad("a pair record in the catalog's stream")),
        };
        let payloads = records
            .iter()
            .map(encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LogError::Unavailable(Arc::new(e)))?;
        // Usually every record goes to one file (a single event, a shard's
        // batch); a file's records are numbered and queued together, under
        // its lock.
        let files: Vec<usize> = records.iter().map(|(s, _)| self.index(*s)).collect();
        if files.windows(2).all(|w| w[0] == w[1]) {
            let Some(&f) = files.first() else {
                return Ok(Appended {
                    positions: Vec::new(),
                    commit: Commit::done(),
                });
            };
            let (first, durable) = self.queue(f, payloads)?;
            return Ok(Appended {
                positions: (0..records.len() as u64)
                    .map(|i| Position(first + i))
                    .collect(),
                commit: commit(durable),
            });
        }
        let mut distinct = files.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let mut positions = vec![Position(0); records.len()];
        let mut commits = Vec::with_capacity(distinct.len());
        let mut payloads: Vec<Option<Vec<u8>>> = payloads.into_iter().map(Some).collect();
        for f in distinct {
            let mine: Vec<usize> = (0..files.len()).filter(|i| files[*i] == f).collect();
            let bytes = mine
                .iter()
                .map(|i| payloads[*i].take().unwrap_or_default())
                .collect();
            let (first, durable) = self.queue(f, bytes)?;
            for (k, i) in mine.into_iter().enumerate() {
                positions[i] = Position(first + k as u64);
            }
            commits.push(commit(durable));
        }
        let commit = match commits.len() {
            1 => commits.pop().unwrap_or_else(Commit::done),
            _ => Commit::new(async move {
                for c in commits {
                    c.await?;
                }
                Ok(())
            }),
        };
        Ok(Appended { positions, commit })
    }

    fn durable(&self, stream: Stream, upto: Position) -> Result<Option<Commit>, LogError> {
        let wal = &self.file(stream).wal;
        if wal.stats.durable_lsn.load(Ordering::Acquire) >= upto.0 {
            return Ok(None);
        }
        wal.barrier().map(|d| Some(commit(d))).map_err(refused)
    }

    fn writable(&self, stream: Stream) -> bool {
        !self.file(stream).wal.is_degraded()
    }

    fn next_position(&self, stream: Stream) -> Position {
        Position(
            *self
                .file(stream)
                .next
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    fn read(
        &self,
        from: &[(Stream, Position)],
        each: &mut dyn FnMut(Stream, Position, Record) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        read_files(
            self.catalog.wal.dir(),
            &self.shards.iter().map(|f| f.wal.dir()).collect::<Vec<_>>(),
            from,
            each,
        )
        .map(|_| ())
    }
}

/// The highest LSN seen in each file a read went through (0 for none).
#[derive(Debug, Clone, Default)]
pub struct Ends {
    pub catalog: u64,
    pub shards: Vec<u64>,
}

/// Reads streams of a file log's directories (also before it is opened for
/// appending, as a restore does): each file once, records of the wanted
/// streams from their positions on.
pub fn read_files(
    catalog_dir: &Path,
    shard_dirs: &[&Path],
    from: &[(Stream, Position)],
    each: &mut dyn FnMut(Stream, Position, Record) -> Result<(), LogError>,
) -> Result<Ends, LogError> {
    let mut ends = Ends {
        catalog: 0,
        shards: vec![0; shard_dirs.len()],
    };
    let io = |e: std::io::Error| LogError::Io(Arc::new(e));
    let mut failure = None;
    if let Some((_, start)) = from.iter().find(|(s, _)| *s == Stream::Catalog) {
        ends.catalog = wal::read_from(catalog_dir, start.0, |lsn, bytes| {
            if failure.is_some() {
                return;
            }
            let position = Position(lsn);
            let result = model::decode_catalog_record(bytes)
                .map_err(|e| LogError::Corrupt {
                    stream: Stream::Catalog,
                    position,
                    why: e.to_string(),
                })
                .and_then(|r| each(Stream::Catalog, position, Record::Catalog(r)));
            if let Err(e) = result {
                failure = Some(e);
            }
        })
        .map_err(io)?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let n = shard_dirs.len().max(1);
    for (i, dir) in shard_dirs.iter().enumerate() {
        // The wanted partitions of this file, and where each starts.
        let wanted: std::collections::HashMap<u32, u64> = from
            .iter()
            .filter_map(|(s, start)| match s {
                Stream::Partition(p) if p.0 as usize % n == i => Some((p.0, start.0)),
                _ => None,
            })
            .collect();
        let Some(lowest) = wanted.values().min().copied() else {
            continue;
        };
        ends.shards[i] = wal::read_from(dir, lowest, |lsn, bytes| {
            if failure.is_some() {
                return;
            }
            let position = Position(lsn);
            let result = match model::decode_shard_record(bytes) {
                Ok((Some(p), record)) => match wanted.get(&p.0) {
                    Some(start) if lsn >= *start => {
                        each(Stream::Partition(PartitionId(p.0)), position, record)
                    }
                    _ => Ok(()),
                },
                Ok((None, _)) => Err(LogError::Corrupt {
                    stream: Stream::Partition(PartitionId(i as u32)),
                    position,
                    why: "a record without its partition in a partitioned log".into(),
                }),
                Err(e) => Err(LogError::Corrupt {
                    stream: Stream::Partition(PartitionId(i as u32)),
                    position,
                    why: e.to_string(),
                }),
            };
            if let Err(e) = result {
                failure = Some(e);
            }
        })
        .map_err(io)?;
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(ends)
}
