//! The achievement event feed in a cluster: owners publish the entries
//! their partitions' records make to one JetStream stream, and every node
//! keeps a replica of the feed that follows it.
//!
//! Owns: the feed stream (`ACHV_FEED`, subject `achv.f.<partition>`, kept
//! for the feed's retention), `FeedPublisher` (the engine's `FeedSink` on
//! an owner: a partition's entries and erasures, in order, as messages of
//! up to 4096 records with one message in flight per partition) and
//! `follow_feed` (stores every record of the stream in this node's feed,
//! numbered `stream sequence << 16 | index`).
//!
//! Every node reads the same stream in the same order and numbers entries
//! by it, so a cursor means the same on every node and a reader can move
//! between nodes. One message in flight per partition keeps a partition's
//! entries in order even when a message must be published again (a
//! pipelined resend could land after a later message). A new owner replaying a partition publishes entries
//! again: JetStream drops those within its duplicate window, and each
//! node's feed drops the rest by the (position, index) it already holds —
//! the single node's rule for replays. A snapshot waits until what was
//! published before it is stored in the stream (`Engine::feed_barrier`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::streams::{ClusterError, DUPLICATE_WINDOW};
use crate::domain::{ApplicationId, CustomerId};
use crate::engine::feed::{FeedMessage, FeedSink};
use crate::engine::log::{Log, PartitionId, Position};
use crate::feed::model::{EntryV1, FeedRecordV1};
use crate::feed::store::{decode, encode};
use crate::feed::{Feed, FeedWriter};

pub const FEED_STREAM: &str = "ACHV_FEED";

fn subject(p: PartitionId) -> String {
    format!("achv.f.{}", p.0)
}

/// Creates the feed stream if it does not exist.
pub async fn create_stream(
    js: &jetstream::Context,
    retention: Duration,
    replicas: usize,
) -> Result<(), ClusterError> {
    js.get_or_create_stream(stream::Config {
        name: FEED_STREAM.into(),
        subjects: vec!["achv.f.>".into()],
        num_replicas: replicas.max(1),
        duplicate_window: DUPLICATE_WINDOW,
        max_age: retention,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| ClusterError::JetStream {
        what: "feed stream creation",
        reason: e.to_string(),
    })
}

/// The engine's feed sink on a cluster node: a queue to the publishing
/// task.
pub struct FeedPublisher {
    tx: mpsc::UnboundedSender<Control>,
}

enum Control {
    Publish(FeedMessage),
    /// Drop what is queued for a partition this node no longer owns.
    Discard(PartitionId),
}

impl FeedSink for FeedPublisher {
    fn send(&self, message: FeedMessage) {
        if self.tx.send(Control::Publish(message)).is_err() {
            tracing::error!("the feed publisher has stopped; an entry was not published");
        }
    }

    /// Records are durable before an owner applies them: nothing to ask.
    fn log_attached(&self, _: Arc<dyn Log>) {}
}

impl FeedPublisher {
    /// Starts the publishing task on the current runtime.
    pub fn start(js: jetstream::Context) -> Arc<FeedPublisher> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(publish(js, rx));
        Arc::new(FeedPublisher { tx })
    }

    /// Forgets the records of partition `p` not yet sent (the partition was
    /// lost without a hand-over: its next owner replays them and publishes
    /// them in order; sent late, ours could interleave with its).
    pub fn discard(&self, p: PartitionId) {
        let _ = self.tx.send(Control::Discard(p));
    }
}

/// Records of one message at most (a message's records are numbered
/// `stream sequence << 16 | index`).
const GROUP: usize = 4096;
const INDEX_BITS: u32 = 16;

/// The feed cursor of the `index`-th record of the stream's message `seq`.
pub fn feed_seq(seq: u64, index: usize) -> u64 {
    (seq << INDEX_BITS) | index as u64
}

/// A record to publish, with the message id its group takes if it leads.
struct Queued {
    id: String,
    bytes: Vec<u8>,
}

fn queued(message: FeedMessage, now: chrono::DateTime<chrono::Utc>) -> Vec<(PartitionId, Queued)> {
    let encoded = |p: PartitionId, id: String, record: FeedRecordV1| match encode(&record) {
        Ok(bytes) => Some((p, Queued { id, bytes })),
        Err(e) => {
            tracing::error!(error = %e, "a feed record cannot be encoded");
            None
        }
    };
    match message {
        FeedMessage::Entries(list) => list
            .into_iter()
            .filter_map(|e| {
                let id = format!("f{}-{}-{}", e.partition.0, e.position.0, e.index);
                let p = e.partition;
                encoded(p, id, FeedRecordV1::Entry(Box::new(EntryV1::new(&e, now))))
            })
            .collect(),
        FeedMessage::Erased {
            partition,
            position,
            application,
            customer,
        } => encoded(
            partition,
            format!("e{}-{}", partition.0, position.0),
            FeedRecordV1::Erase {
                application: application.0,
                customer: customer.as_str().to_string(),
                partition: partition.0,
                position: position.0,
            },
        )
        .into_iter()
        .collect(),
        FeedMessage::Barrier(_) => Vec::new(),
    }
}

/// One message of a partition's records, length-prefixed, published until
/// the stream stores it (the same id each time: stored once).
async fn publish_group(
    js: jetstream::Context,
    p: PartitionId,
    group: Vec<Queued>,
) -> (PartitionId, usize) {
    let id = format!("{}+{}", group[0].id, group.len());
    let mut payload = Vec::with_capacity(group.iter().map(|q| q.bytes.len() + 4).sum());
    for q in &group {
        payload.extend_from_slice(&(q.bytes.len() as u32).to_le_bytes());
        payload.extend_from_slice(&q.bytes);
    }
    let payload = Bytes::from(payload);
    loop {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let stored = match js
            .publish_with_headers(subject(p), headers, payload.clone())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(()) => return (p, group.len()),
            Err(e) => {
                tracing::warn!(partition = p.0, error = %e, "feed entries not stored; publishing them again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Publishes what the engine sends, per partition in order: one message
/// in flight per partition (the next waits until it is stored, so a resend
/// can never land after a later message), the records queued meanwhile
/// going out together as the next message. Partitions publish side by
/// side. A barrier is answered once every record queued before it is
/// stored.
async fn publish(js: jetstream::Context, mut rx: mpsc::UnboundedReceiver<Control>) {
    let mut queues: HashMap<PartitionId, VecDeque<Queued>> = HashMap::new();
    let mut busy: HashSet<PartitionId> = HashSet::new();
    let mut enqueued: HashMap<PartitionId, u64> = HashMap::new();
    let mut stored: HashMap<PartitionId, u64> = HashMap::new();
    let mut barriers: Vec<(HashMap<PartitionId, u64>, oneshot::Sender<()>)> = Vec::new();
    let mut inflight = tokio::task::JoinSet::new();
    let mut open = true;
    while open || !inflight.is_empty() {
        tokio::select! {
            message = rx.recv(), if open => match message {
                None => open = false,
                Some(Control::Discard(p)) => {
                    if let Some(q) = queues.remove(&p) {
                        // Counted as stored: no barrier waits for them.
                        *stored.entry(p).or_default() += q.len() as u64;
                    }
                }
                Some(Control::Publish(FeedMessage::Barrier(done))) => {
                    let upto: HashMap<PartitionId, u64> = enqueued
                        .iter()
                        .filter(|(p, n)| stored.get(p).copied().unwrap_or(0) < **n)
                        .map(|(p, n)| (*p, *n))
                        .collect();
                    barriers.push((upto, done));
                }
                Some(Control::Publish(message)) => {
                    for (p, q) in queued(message, chrono::Utc::now()) {
                        queues.entry(p).or_default().push_back(q);
                        *enqueued.entry(p).or_default() += 1;
                    }
                }
            },
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                if let Ok((p, n)) = done {
                    busy.remove(&p);
                    *stored.entry(p).or_default() += n as u64;
                }
            }
        }
        // Answer the barriers whose records are all stored.
        let mut i = 0;
        while i < barriers.len() {
            barriers[i]
                .0
                .retain(|p, n| stored.get(p).copied().unwrap_or(0) < *n);
            if barriers[i].0.is_empty() {
                let (_, done) = barriers.swap_remove(i);
                let _ = done.send(());
            } else {
                i += 1;
            }
        }
        // Start the next message of every idle partition with records.
        for (p, queue) in queues.iter_mut() {
            if queue.is_empty() || busy.contains(p) {
                continue;
            }
            let n = queue.len().min(GROUP);
            let group: Vec<Queued> = queue.drain(..n).collect();
            busy.insert(*p);
            inflight.spawn(publish_group(js.clone(), *p, group));
        }
        queues.retain(|_, q| !q.is_empty());
    }
}

/// A feed stream message's records as the feed writer takes them.
fn records(bytes: &[u8]) -> Result<Vec<FeedMessage>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or("a record cut short")? as usize;
        let record = rest.get(4..4 + len).ok_or("a record cut short")?;
        out.push(match decode(record)? {
            FeedRecordV1::Entry(e) => {
                let (entry, _) = e.to_entry().map_err(|e| e.to_string())?;
                FeedMessage::Entries(vec![entry])
            }
            FeedRecordV1::Erase {
                application,
                customer,
                partition,
                position,
            } => FeedMessage::Erased {
                partition: PartitionId(partition),
                position: Position(position),
                application: ApplicationId(application),
                customer: CustomerId::parse(&customer, "/integrationId")
                    .map_err(|e| e.to_string())?,
            },
        });
        rest = &rest[4 + len..];
    }
    if out.len() > GROUP {
        return Err(format!("{} records in one message", out.len()));
    }
    Ok(out)
}

/// Stores every message of the feed stream in this node's feed, from
/// where the feed stands on; runs for the node's life.
pub async fn follow_feed(js: jetstream::Context, feed: Arc<Feed>, writer: Arc<FeedWriter>) {
    loop {
        if let Err(e) = follow_once(&js, &feed, &writer).await {
            tracing::warn!(error = %e, "following the feed stream failed; following again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn follow_once(
    js: &jetstream::Context,
    feed: &Feed,
    writer: &FeedWriter,
) -> Result<(), ClusterError> {
    let err = |what: &'static str| move |e: String| ClusterError::JetStream { what, reason: e };
    let mut stream = js
        .get_stream(FEED_STREAM)
        .await
        .map_err(|e| err("feed stream lookup")(e.to_string()))?;
    let first = stream
        .info()
        .await
        .map_err(|e| err("feed stream info")(e.to_string()))?
        .state
        .first_sequence;
    // A new replica starts where the stream does: older cursors are gone.
    if first > 1 {
        feed.start_after(feed_seq(first, 0) - 1);
    }
    // The message holding the feed's last record, again: its records the
    // feed has are dropped by their positions.
    let from = (feed.head() >> INDEX_BITS).max(first).max(1);
    let mut messages = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| err("feed consumer")(e.to_string()))?
        .messages()
        .await
        .map_err(|e| err("feed consumer")(e.to_string()))?;
    while let Some(msg) = messages.next().await {
        let msg = msg.map_err(|e| err("feed consumer")(e.to_string()))?;
        let seq = msg
            .info()
            .map_err(|e| err("feed message")(e.to_string()))?
            .stream_sequence;
        match records(&msg.payload) {
            Ok(list) => {
                for (i, m) in list.into_iter().enumerate() {
                    writer.send_numbered(feed_seq(seq, i), m);
                }
            }
            Err(e) => {
                tracing::error!(seq, error = %e, "a feed stream message cannot be read; skipped")
            }
        }
    }
    Err(err("feed consumer")("ended".into()))
}
