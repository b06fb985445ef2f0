//! The feed's writer: takes what the engine sends, waits until the log has
//! made each entry's record durable, stores the entries (numbered, in the
//! order received) durably, then makes them visible and wakes readers.
//!
//! Owns: `FeedWriter` (the engine's `FeedSink`) and its thread. Sending
//! never blocks the engine: the queue is unbounded, and the writer handles
//! everything queued at once as one group (one wait per partition, one
//! fsync). What the feed stored already (a replay sends it again) is dropped
//! by its record's position.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_executor::block_on;
use tokio::sync::oneshot;

use super::model::{EntryV1, FeedRecordV1};
use super::store::{encode, Feed, Stored};
use crate::engine::feed::{FeedMessage, FeedSink};
use crate::engine::log::{Log, PartitionId, Position, Stream};

/// How often the writer applies retention when idle.
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// The most messages handled as one group.
const GROUP: usize = 4096;

/// The engine's sink: a queue to the writer thread.
pub struct FeedWriter {
    tx: Mutex<mpsc::Sender<Queued>>,
    feed: Arc<Feed>,
    log: Arc<OnceLock<Arc<dyn Log>>>,
}

/// A message as queued: when it was sent, and the sequence number its
/// first entry takes (a cluster's replica of the feed numbers entries as
/// the cluster's feed stream does).
type Queued = (u64, Option<u64>, FeedMessage);

impl FeedSink for FeedWriter {
    fn send(&self, message: FeedMessage) {
        self.queue(None, message);
    }

    fn log_attached(&self, log: Arc<dyn Log>) {
        let _ = self.log.set(log);
    }
}

impl FeedWriter {
    /// Stores a message read from a cluster's feed stream at `seq`: its
    /// entries take `seq` on (the same numbers on every node), unless the
    /// feed holds them already.
    pub fn send_numbered(&self, seq: u64, message: FeedMessage) {
        self.queue(Some(seq), message);
    }

    fn queue(&self, seq: Option<u64>, message: FeedMessage) {
        let now_ms = unix_ms();
        let stats = &self.feed.stats;
        if stats.queued.fetch_add(1, Ordering::AcqRel) == 0 {
            stats.oldest_queued_ms.store(now_ms, Ordering::Release);
        }
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.send((now_ms, seq, message)).is_err() {
            stats.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::error!("the feed writer has stopped; an entry was not stored");
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FeedWriter {
    /// Starts the writer thread for `feed`, asking `log` about durability.
    pub fn start(feed: Arc<Feed>) -> std::io::Result<Arc<FeedWriter>> {
        let (tx, rx) = mpsc::channel();
        let log: Arc<OnceLock<Arc<dyn Log>>> = Arc::default();
        let (writer_feed, writer_log) = (feed.clone(), log.clone());
        std::thread::Builder::new()
            .name("feed-writer".into())
            .spawn(move || run(writer_feed, writer_log, rx))?;
        Ok(Arc::new(FeedWriter {
            tx: Mutex::new(tx),
            feed,
            log,
        }))
    }
}

fn run(feed: Arc<Feed>, log: Arc<OnceLock<Arc<dyn Log>>>, rx: mpsc::Receiver<Queued>) {
    // Retention is applied every minute, by the wall clock or the feed's own
    // (a manual clock in tests moves days at once).
    let mut last_trim = (Instant::now(), feed.clock.now());
    loop {
        let first = match rx.recv_timeout(TRIM_EVERY) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut group: Vec<(Option<u64>, FeedMessage)> =
            first.into_iter().map(|(_, seq, m)| (seq, m)).collect();
        while group.len() < GROUP {
            match rx.try_recv() {
                Ok((_, seq, m)) => group.push((seq, m)),
                Err(_) => break,
            }
        }
        let handled = group.len() as u64;
        if !group.is_empty() {
            handle(&feed, log.get().map(|l| l.as_ref()), group);
        }
        let stats = &feed.stats;
        if stats.queued.fetch_sub(handled, Ordering::AcqRel) == handled {
            stats.oldest_queued_ms.store(0, Ordering::Release);
        }
        let by_clock = feed.clock.now() - last_trim.1 >= chrono::Duration::seconds(60);
        if last_trim.0.elapsed() >= TRIM_EVERY || by_clock {
            feed.trim();
            last_trim = (Instant::now(), feed.clock.now());
        }
    }
}

/// Stores one group: waits for the records' durability, drops what the
/// feed has, writes the rest with one fsync, then shows them.
fn handle(feed: &Feed, log: Option<&dyn Log>, group: Vec<(Option<u64>, FeedMessage)>) {
    // The furthest position of each partition the group needs durable.
    let mut upto: HashMap<PartitionId, Position> = HashMap::new();
    let mut barriers: Vec<oneshot::Sender<()>> = Vec::new();
    for (_, m) in &group {
        match m {
            FeedMessage::Entries(list) => {
                for e in list {
                    let u = upto.entry(e.partition).or_default();
                    *u = (*u).max(e.position);
                }
            }
            FeedMessage::Erased {
                partition,
                position,
                ..
            } => {
                let u = upto.entry(*partition).or_default();
                *u = (*u).max(*position);
            }
            FeedMessage::Barrier(_) => {}
        }
    }
    let mut failed: Vec<PartitionId> = Vec::new();
    for (p, position) in upto {
        // Without a log yet, what arrives is replayed from it: durable.
        let Some(log) = log.filter(|_| position.0 > 0) else {
            continue;
        };
        let durable = log
            .durable(Stream::Partition(p), position)
            .and_then(|commit| commit.map_or(Ok(()), block_on));
        if let Err(e) = durable {
            tracing::error!(partition = p.0, error = %e, "records did not become durable; their feed entries are dropped");
            failed.push(p);
        }
    }

    let now = feed.clock.now();
    let st = feed.state.read().unwrap_or_else(|e| e.into_inner());
    let mut next = st.head + 1;
    let mut records = Vec::new();
    let mut stored = Vec::new();
    let mut erasures = Vec::new();
    // What this group takes, on top of what the feed has: a record sent
    // twice within one group is kept once too.
    let mut taken: HashMap<PartitionId, (Position, u32)> = HashMap::new();
    let mut fresh = |p: PartitionId, position: Position, index: u32| {
        let seen = taken.get(&p).copied();
        if st.has(p, position, index) || seen.is_some_and(|s| (position, index) <= s) {
            return false;
        }
        taken.insert(p, (position, index));
        true
    };
    for (seq, m) in group {
        if let Some(seq) = seq {
            next = next.max(seq);
        }
        match m {
            FeedMessage::Entries(list) => {
                for e in list {
                    if failed.contains(&e.partition) || !fresh(e.partition, e.position, e.index) {
                        continue;
                    }
                    match encode(&FeedRecordV1::Entry(Box::new(EntryV1::new(&e, now)))) {
                        Ok(bytes) => records.push((next, bytes)),
                        Err(err) => {
                            tracing::error!(error = %err, "a feed entry could not be encoded");
                            continue;
                        }
                    }
                    stored.push(Stored {
                        seq: next,
                        written: now,
                        entry: e,
                    });
                    next += 1;
                }
            }
            FeedMessage::Erased {
                partition,
                position,
                application,
                customer,
            } => {
                if failed.contains(&partition) || !fresh(partition, position, 0) {
                    continue;
                }
                let record = FeedRecordV1::Erase {
                    application: application.0,
                    customer: customer.as_str().to_string(),
                    partition: partition.0,
                    position: position.0,
                };
                if let Ok(bytes) = encode(&record) {
                    records.push((next, bytes));
                    next += 1;
                }
                erasures.push((partition, position, application, customer));
            }
            FeedMessage::Barrier(done) => barriers.push(done),
        }
    }
    drop(st);
    let last = next - 1;
    if !records.is_empty() {
        // The disk first: an entry is shown only once it is stored. A
        // failing disk is retried by the log until it works (this waits).
        let written = feed
            .wal
            .append(records)
            .map_err(|e| e.to_string())
            .and_then(|d| block_on(d).map_err(|e| e.to_string()));
        if let Err(e) = written.and_then(|r| r.map_err(|e| e.to_string())) {
            tracing::error!(error = %e, "feed entries could not be stored");
            return;
        }
    }
    let mut st = feed.state.write().unwrap_or_else(|e| e.into_inner());
    for s in stored {
        feed.stats.written[s.entry.transition.kind as usize].fetch_add(1, Ordering::Relaxed);
        feed.stats.kept.fetch_add(1, Ordering::Relaxed);
        st.insert(s);
    }
    for (p, position, app, customer) in erasures {
        st.note_fed(p, position, 0);
        let gone = st.erase(app, &customer, position);
        feed.stats.kept.fetch_sub(gone as u64, Ordering::Relaxed);
        feed.stats.erasures.fetch_add(1, Ordering::Relaxed);
    }
    st.head = st.head.max(last);
    let head = st.head;
    drop(st);
    feed.head_tx.send_replace(head);
    for done in barriers {
        let _ = done.send(());
    }
}
