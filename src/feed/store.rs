//! The feed's entries: kept in memory per application for reads, stored in
//! the feed's own log (`<data>/feed/`, the same CRC-framed, group-committed
//! files as the write-ahead log) so they outlive restarts.
//!
//! Owns: `Feed` (open/load, reads by cursor, retention, what the feed has
//! stored of each partition) and `Stored`. Entries get their sequence number
//! (the cursor) when they are stored; the writer (`writer.rs`) is the only
//! one that adds or removes.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

use super::cursor::Cursor;
use super::model::{FeedRecordV1, FEED_VERSION};
use crate::clock::Clock;
use crate::domain::{ApplicationId, CustomerId, EntryType};
use crate::engine::feed::FeedEntry;
use crate::engine::log::{PartitionId, Position};
use crate::persist::codec;
use crate::persist::wal::{self, OnFailure, Wal};

/// An entry as the feed keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its place in the feed; cursors point at it.
    pub seq: u64,
    /// When the feed stored it.
    pub written: DateTime<Utc>,
    pub entry: FeedEntry,
}

impl Stored {
    /// The entry's id: stable across restarts and re-deliveries because it
    /// names the log record that made it.
    pub fn id(&self) -> String {
        let e = &self.entry;
        format!("{}-{}-{}", e.partition.0, e.position.0, e.index)
    }
}

/// A page of entries.
#[derive(Debug)]
pub struct Page {
    pub entries: Vec<Arc<Stored>>,
    /// Pass as `after` to get what follows.
    pub next: Cursor,
    pub has_more: bool,
}

/// Why a read cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("entries after this cursor are no longer kept (older than the feed's retention); read the current state and start again without a cursor")]
    Gone,
}

/// Which entry types a read wants (all when empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Types(pub u8);

impl Types {
    pub fn all() -> Types {
        Types(0)
    }

    pub fn with(self, t: EntryType) -> Types {
        Types(self.0 | t.bit())
    }

    pub fn wants(self, t: EntryType) -> bool {
        self.0 == 0 || self.0 & t.bit() != 0
    }
}

/// What the feed counts (for metrics).
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Entries stored, by `EntryType as usize`.
    pub written: [AtomicU64; 4],
    pub erasures: AtomicU64,
    /// Messages sent by the engine and not yet handled by the writer.
    pub queued: AtomicU64,
    /// When the oldest of those was sent (Unix ms; 0 when none waits).
    pub oldest_queued_ms: AtomicU64,
    pub kept: AtomicU64,
    /// Live streams open, and those cut off for reading too slowly.
    pub streams_open: AtomicU64,
    pub streams_cut: AtomicU64,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) apps: HashMap<ApplicationId, VecDeque<Arc<Stored>>>,
    /// The last sequence number given (0: none yet).
    pub(super) head: u64,
    /// The highest sequence number dropped by retention: a cursor below it
    /// would skip entries, so it is refused.
    pub(super) trimmed_through: u64,
    /// Per partition, the last (position, index) stored: what a replay sends
    /// again is dropped up to there.
    pub(super) fed: HashMap<PartitionId, (Position, u32)>,
}

impl State {
    /// Whether the entry (or erasure, index 0) of this record was stored.
    pub(super) fn has(&self, p: PartitionId, position: Position, index: u32) -> bool {
        self.fed.get(&p).is_some_and(|f| (position, index) <= *f)
    }

    pub(super) fn note_fed(&mut self, p: PartitionId, position: Position, index: u32) {
        let f = self.fed.entry(p).or_default();
        *f = (*f).max((position, index));
    }

    pub(super) fn insert(&mut self, stored: Stored) {
        let e = &stored.entry;
        self.note_fed(e.partition, e.position, e.index);
        self.head = self.head.max(stored.seq);
        self.apps
            .entry(e.application)
            .or_default()
            .push_back(Arc::new(stored));
    }

    /// Removes the customer's entries made before `position`; returns how many.
    pub(super) fn erase(
        &mut self,
        application: ApplicationId,
        customer: &CustomerId,
        position: Position,
    ) -> usize {
        let Some(list) = self.apps.get_mut(&application) else {
            return 0;
        };
        let before = list.len();
        list.retain(|s| !(s.entry.customer == *customer && s.entry.position < position));
        before - list.len()
    }

    /// Drops entries stored before `cutoff`; returns how many.
    pub(super) fn trim(&mut self, cutoff: DateTime<Utc>) -> usize {
        let mut dropped = 0;
        for list in self.apps.values_mut() {
            while list.front().is_some_and(|s| s.written < cutoff) {
                if let Some(s) = list.pop_front() {
                    self.trimmed_through = self.trimmed_through.max(s.seq);
                    dropped += 1;
                }
            }
        }
        self.apps.retain(|_, l| !l.is_empty());
        dropped
    }

    fn kept(&self) -> u64 {
        self.apps.values().map(|l| l.len() as u64).sum()
    }
}

/// The feed: shared by the writer, the HTTP reads, live streams and
/// webhook deliveries.
pub struct Feed {
    pub(super) state: RwLock<State>,
    pub(super) wal: Wal,
    pub(super) retention: Duration,
    pub(super) clock: Clock,
    pub(super) head_tx: watch::Sender<u64>,
    pub stats: FeedStats,
}

/// Decodes a stored record.
pub fn decode(bytes: &[u8]) -> Result<FeedRecordV1, String> {
    match bytes {
        [FEED_VERSION, rest @ ..] => codec::decode(rest).map_err(|e| e.to_string()),
        [v, ..] => Err(format!("feed record version {v} is not supported")),
        [] => Err("an empty feed record".into()),
    }
}

pub fn encode(record: &FeedRecordV1) -> Result<Vec<u8>, String> {
    codec::encode_after(&[FEED_VERSION], record).map_err(|e| e.to_string())
}

impl Feed {
    /// Opens (or creates) the feed in `dir` and loads what it keeps.
    pub fn open(dir: &Path, retention: Duration, clock: Clock) -> io::Result<Arc<Feed>> {
        let mut state = State::default();
        let (mut first, mut last) = (None, 0);
        let mut bad = 0usize;
        wal::read_from(dir, 0, |seq, bytes| {
            first.get_or_insert(seq);
            last = seq;
            match decode(bytes) {
                Ok(FeedRecordV1::Entry(e)) => match e.to_entry() {
                    Ok((entry, written)) => state.insert(Stored {
                        seq,
                        written,
                        entry,
                    }),
                    Err(_) => bad += 1,
                },
                Ok(FeedRecordV1::Erase {
                    application,
                    customer,
                    partition,
                    position,
                }) => match CustomerId::parse(&customer, "/integrationId") {
                    Ok(c) => {
                        let (p, at) = (PartitionId(partition), Position(position));
                        state.note_fed(p, at, 0);
                        state.erase(ApplicationId(application), &c, at);
                    }
                    Err(_) => bad += 1,
                },
                Err(_) => bad += 1,
            }
        })?;
        if bad > 0 {
            tracing::error!(
                records = bad,
                "feed records that cannot be read were skipped"
            );
        }
        // Segments are named by the first number they may hold: numbering
        // continues after them even when retention emptied the files.
        let named = wal::segments(dir)?.last().map_or(1, |(n, _)| *n);
        let next = (last + 1).max(named);
        state.head = next - 1;
        // What was pruned from disk before this start is older than any
        // record left.
        state.trimmed_through = first.unwrap_or(next).saturating_sub(1);
        let wal = Wal::open(dir, next, 4096, OnFailure::Retain)?;
        let (head_tx, _) = watch::channel(state.head);
        let feed = Feed {
            state: RwLock::new(state),
            wal,
            retention,
            clock,
            head_tx,
            stats: FeedStats::default(),
        };
        feed.trim();
        Ok(Arc::new(feed))
    }

    /// Drops entries older than the retention (memory now, files as their
    /// segments close).
    pub fn trim(&self) {
        let cutoff = self.clock.now() - self.retention;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.trim(cutoff);
        let first_kept = st.trimmed_through + 1;
        self.stats.kept.store(st.kept(), Ordering::Relaxed);
        drop(st);
        self.wal.prune(first_kept);
    }

    /// The last sequence number stored, and a receiver that changes when it
    /// moves.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }

    /// Up to `limit` entries of an application after `after` (from the
    /// oldest kept when `None`), of the wanted types.
    pub fn read(
        &self,
        app: ApplicationId,
        after: Option<Cursor>,
        limit: usize,
        types: Types,
    ) -> Result<Page, ReadError> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        let from = after.map_or(0, |c| c.0);
        if after.is_some() && from < st.trimmed_through {
            return Err(ReadError::Gone);
        }
        let mut entries = Vec::new();
        let mut has_more = false;
        if let Some(list) = st.apps.get(&app) {
            let start = list.partition_point(|s| s.seq <= from);
            for s in list.range(start..) {
                if !types.wants(s.entry.transition.kind) {
                    continue;
                }
                if entries.len() == limit {
                    has_more = true;
                    break;
                }
                entries.push(s.clone());
            }
        }
        let next = match (has_more, entries.last()) {
            (true, Some(last)) => Cursor(last.seq),
            // Everything up to the head was looked at.
            _ => Cursor(from.max(st.head)),
        };
        Ok(Page {
            entries,
            next,
            has_more,
        })
    }

    /// The entries of all applications after `after`, oldest first (tests
    /// and tools).
    pub fn all_after(&self, after: u64) -> Vec<Arc<Stored>> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = st
            .apps
            .values()
            .flat_map(|l| l.iter().filter(|s| s.seq > after).cloned())
            .collect();
        all.sort_by_key(|s| s.seq);
        all
    }

    /// Makes an empty feed start after `seq` (a cluster node's new replica
    /// of a feed whose older entries are no longer kept): cursors before it
    /// are gone. Nothing changes once the feed holds anything.
    pub fn start_after(&self, seq: u64) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        if st.head == 0 && seq > 0 {
            st.head = seq;
            st.trimmed_through = seq;
            drop(st);
            self.head_tx.send_replace(seq);
        }
    }

    /// The last sequence number stored.
    pub fn head(&self) -> u64 {
        self.state.read().unwrap_or_else(|e| e.into_inner()).head
    }
}
