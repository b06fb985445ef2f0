//! The engine's log: what the engine appends and reads back, and nothing of
//! how or where it is stored.
//!
//! Owns: the `Log` trait, its streams (the catalog's, and one per partition),
//! positions, the records as engine values (a pair's change, an erasure, a
//! catalog change), the commit future, and `MemoryLog`, an implementation in
//! memory for tests. The file write-ahead log (`persist::FileLog`) and, later,
//! a replicated log implement the trait; the engine never names them.
//!
//! The contract that replay leans on: applying a record depends only on the
//! record (which carries the arrival time and campaign state it was applied
//! with) and the state before it, never on the clock at replay.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};

use super::catalog::CatalogRecord;
use crate::domain::{AchievementId, ApplicationId, CustomerId, EventId, Increase};

/// A partition: customers are spread over a fixed number of them, and a
/// partition is the unit of log position, snapshot section and (later)
/// ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId(pub u32);

/// A position in one stream of the log. Positions of a stream increase with
/// every record; a snapshot that covers a stream up to (not including) a
/// position is replayed from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position(pub u64);

/// A stream of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Catalog,
    Partition(PartitionId),
}

/// What a pair's change did.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeOp {
    Increase(Increase),
    Rollback(EventId),
}

/// An applied change of one pair, with what it was applied with, so that
/// applying it again gives the same state and answer.
#[derive(Debug, Clone, PartialEq)]
pub struct PairChange {
    pub achievement: AchievementId,
    pub customer: CustomerId,
    /// The pair's number (its progress tracker ids derive from it).
    pub pair_number: u64,
    /// The server time it arrived (and was applied) at.
    pub now: DateTime<Utc>,
    pub campaign_running: bool,
    pub op: ChangeOp,
}

/// The borrowed twin of [`PairChange`]: what the hot path appends without
/// copying strings.
#[derive(Debug, Clone, Copy)]
pub struct PairChangeRef<'a> {
    pub achievement: AchievementId,
    pub customer: &'a CustomerId,
    pub pair_number: u64,
    pub now: DateTime<Utc>,
    pub campaign_running: bool,
    pub op: ChangeOpRef<'a>,
}

/// The borrowed twin of [`ChangeOp`].
#[derive(Debug, Clone, Copy)]
pub enum ChangeOpRef<'a> {
    Increase(&'a Increase),
    Rollback(&'a EventId),
}

/// A customer's data erased from one application: the pairs it removed, so
/// replay removes exactly those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub application: ApplicationId,
    pub customer: CustomerId,
    pub achievements: Vec<AchievementId>,
}

/// Time passed the end of some pairs' iterations (their owner's timers
/// noticed): recorded so that replay and replicas expire the same
/// iterations at the same point of the partition's stream, and the feed
/// tells each expiry once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The time the timers fired at; each named pair's iteration that ended
    /// by then becomes `expired`.
    pub at: DateTime<Utc>,
    pub pairs: Vec<(AchievementId, CustomerId)>,
}

/// A record as read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Pair(PairChange),
    Erase(Erasure),
    Expire(Expiry),
    Catalog(CatalogRecord),
}

/// A record to append.
#[derive(Debug, Clone, Copy)]
pub enum RecordRef<'a> {
    Pair(PairChangeRef<'a>),
    Erase(&'a Erasure),
    Expire(&'a Expiry),
    Catalog(&'a CatalogRecord),
}

impl PairChangeRef<'_> {
    pub fn to_owned(&self) -> PairChange {
        PairChange {
            achievement: self.achievement,
            customer: self.customer.clone(),
            pair_number: self.pair_number,
            now: self.now,
            campaign_running: self.campaign_running,
            op: match self.op {
                ChangeOpRef::Increase(inc) => ChangeOp::Increase(inc.clone()),
                ChangeOpRef::Rollback(id) => ChangeOp::Rollback(id.clone()),
            },
        }
    }
}

impl Record {
    /// The record borrowed, as appends take it.
    pub fn as_ref(&self) -> RecordRef<'_> {
        match self {
            Record::Pair(c) => RecordRef::Pair(PairChangeRef {
                achievement: c.achievement,
                customer: &c.customer,
                pair_number: c.pair_number,
                now: c.now,
                campaign_running: c.campaign_running,
                op: match &c.op {
                    ChangeOp::Increase(inc) => ChangeOpRef::Increase(inc),
                    ChangeOp::Rollback(id) => ChangeOpRef::Rollback(id),
                },
            }),
            Record::Erase(e) => RecordRef::Erase(e),
            Record::Expire(e) => RecordRef::Expire(e),
            Record::Catalog(c) => RecordRef::Catalog(c),
        }
    }
}

impl RecordRef<'_> {
    pub fn to_owned(&self) -> Record {
        match self {
            RecordRef::Pair(p) => Record::Pair(p.to_owned()),
            RecordRef::Erase(e) => Record::Erase((*e).clone()),
            RecordRef::Expire(e) => Record::Expire((*e).clone()),
            RecordRef::Catalog(c) => Record::Catalog((*c).clone()),
        }
    }
}

/// The underlying error of a log's failure (its implementation's own).
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// A cause that is only a message.
pub fn cause(message: impl Into<String>) -> Cause {
    Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(
        message.into(),
    ))
}

/// Why the log refused or failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// It cannot take writes now (disk full or failing, queue full, closed):
    /// nothing was appended; retry later.
    #[error("the log cannot take writes now: {0}")]
    Unavailable(#[source] Cause),
    /// Appended records could not be made durable.
    #[error("the log could not make records durable: {0}")]
    NotDurable(#[source] Cause),
    /// A stored record cannot be read.
    #[error("record {position:?} of {stream:?} cannot be read: {why}")]
    Corrupt {
        stream: Stream,
        position: Position,
        why: String,
    },
    #[error("log I/O error: {0}")]
    Io(#[source] Arc<std::io::Error>),
}

/// Resolves once appended records are durable (or failed to become so).
pub struct Commit(Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>>);

impl Commit {
    pub fn new(f: impl Future<Output = Result<(), LogError>> + Send + 'static) -> Commit {
        Commit(Box::pin(f))
    }

    /// Already durable.
    pub fn done() -> Commit {
        Commit::new(std::future::ready(Ok(())))
    }
}

impl Future for Commit {
    type Output = Result<(), LogError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Commit")
    }
}

/// What an append hands back: each record's position (in the order the
/// records were given) and a commit that resolves once all are durable.
#[derive(Debug)]
pub struct Appended {
    pub positions: Vec<Position>,
    pub commit: Commit,
}

/// The log the engine runs on.
///
/// Appends to one stream come from one thread at a time (a partition's shard,
/// or the catalog's serialised commits), in the order their changes were
/// applied; the log numbers them and keeps that order.
pub trait Log: Send + Sync {
    /// Appends records, each to its stream (a batch may touch several
    /// partitions). Within a stream, records keep the order given and get
    /// increasing positions.
    fn append(&self, records: &[(Stream, RecordRef<'_>)]) -> Result<Appended, LogError>;

    /// Resolves once everything appended to the stream up to `upto` is
    /// durable; `None` when it already is.
    fn durable(&self, stream: Stream, upto: Position) -> Result<Option<Commit>, LogError>;

    /// Whether the stream takes writes now (a failing disk makes the engine
    /// refuse changes rather than hold ones it cannot persist).
    fn writable(&self, stream: Stream) -> bool;

    /// The position the next record of the stream gets.
    fn next_position(&self, stream: Stream) -> Position;

    /// Reads the records of some streams, each from a position on, in
    /// position order within each stream.
    fn read(
        &self,
        from: &[(Stream, Position)],
        each: &mut dyn FnMut(Stream, Position, Record) -> Result<(), LogError>,
    ) -> Result<(), LogError>;
}

/// A log in memory, for tests: durable at once, unless commits are held
/// (`hold`), which lets a test look at what a read sees before a change is
/// durable.
#[derive(Default)]
pub struct MemoryLog {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    streams: HashMap<StreamKey, Vec<(Position, Record)>>,
    next: HashMap<StreamKey, u64>,
    held: Option<Vec<tokio::sync::oneshot::Sender<()>>>,
    failing: bool,
}

type StreamKey = (u8, u32);

fn key(stream: Stream) -> StreamKey {
    match stream {
        Stream::Catalog => (0, 0),
        Stream::Partition(p) => (1, p.0),
    }
}

impl MemoryLog {
    pub fn new() -> Arc<MemoryLog> {
        Arc::new(MemoryLog::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on, commits wait until `release`.
    pub fn hold(&self) {
        self.lock().held.get_or_insert_with(Vec::new);
    }

    /// Resolves every held commit and stops holding.
    pub fn release(&self) {
        for tx in self.lock().held.take().unwrap_or_default() {
            let _ = tx.send(());
        }
    }

    /// Makes appends fail (or work again).
    pub fn fail(&self, failing: bool) {
        self.lock().failing = failing;
    }

    /// Every record of a stream, in order.
    pub fn records(&self, stream: Stream) -> Vec<(Position, Record)> {
        self.lock()
            .streams
            .get(&key(stream))
            .cloned()
            .unwrap_or_default()
    }
}

impl Log for MemoryLog {
    fn append(&self, records: &[(Stream, RecordRef<'_>)]) -> Result<Appended, LogError> {
        let mut inner = self.lock();
        if inner.failing {
            return Err(LogError::Unavailable(cause("writes fail (test)")));
        }
        let mut positions = Vec::with_capacity(records.len());
        for (stream, r) in records {
            let k = key(*stream);
            let next = inner.next.entry(k).or_insert(1);
            let position = Position(*next);
            *next += 1;
            inner
                .streams
                .entry(k)
                .or_default()
                .push((position, r.to_owned()));
            positions.push(position);
        }
        let commit = match inner.held.as_mut() {
            None => Commit::done(),
            Some(held) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                held.push(tx);
                Commit::new(async move {
                    rx.await
                        .map_err(|_| LogError::NotDurable(cause("the memory log was dropped")))
                })
            }
        };
        Ok(Appended { positions, commit })
    }

    fn durable(&self, _: Stream, _: Position) -> Result<Option<Commit>, LogError> {
        let mut inner = self.lock();
        Ok(inner.held.as_mut().map(|held| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            held.push(tx);
            Commit::new(async move {
                rx.await
                    .map_err(|_| LogError::NotDurable(cause("the memory log was dropped")))
            })
        }))
    }

    fn writable(&self, _: Stream) -> bool {
        !self.lock().failing
    }

    fn next_position(&self, stream: Stream) -> Position {
        Position(*self.lock().next.get(&key(stream)).unwrap_or(&1))
    }

    fn read(
        &self,
        from: &[(Stream, Position)],
        each: &mut dyn FnMut(Stream, Position, Record) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        for (stream, start) in from {
            for (position, record) in self.records(*stream) {
                if position >= *start {
                    each(*stream, position, record)?;
                }
            }
        }
        Ok(())
    }
}
