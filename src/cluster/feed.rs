//! The achievement event feed in a cluster: owners publish the entries
//! their partitions' records make to one JetStream stream, and every node
//! keeps a replica of the feed that follows it.
//!
//! Owns: the feed stream (`ACHV_FEED`, subject `achv.f.<partition>`, kept
//! for the feed's retention), `FeedPublisher` (the engine's `FeedSink` on
//! an owner: one message per entry or erasure, in order, with the entry's
//! id as message id) and `follow_feed` (stores every message of the stream
//! in this node's feed at the stream's sequence number).
//!
//! Every node reads the same stream in the same order and numbers entries
//! by it, so a cursor means the same on every node and a reader can move
//! between nodes. A new owner replaying a partition publishes entries
//! again: JetStream drops those within its duplicate window, and each
//! node's feed drops the rest by the (position, index) it already holds —
//! the single node's rule for replays. A snapshot waits until what was
//! published before it is stored in the stream (`Engine::feed_barrier`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, context::PublishAckFuture, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

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

/// Acknowledgements awaited at most before the publisher waits for the
/// oldest.
const IN_FLIGHT: usize = 1024;

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
    tx: mpsc::UnboundedSender<FeedMessage>,
}

impl FeedSink for FeedPublisher {
    fn send(&self, message: FeedMessage) {
        if self.tx.send(message).is_err() {
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
}

struct Pending {
    subject: String,
    msg_id: String,
    payload: Bytes,
    ack: PublishAckFuture,
}

async fn send(js: &jetstream::Context, subject: String, msg_id: String, payload: Bytes) -> Pending {
    loop {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        match js
            .publish_with_headers(subject.clone(), headers, payload.clone())
            .await
        {
            Ok(ack) => {
                return Pending {
                    subject,
                    msg_id,
                    payload,
                    ack,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish a feed entry; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Waits until a published message is stored, sending it again (same id:
/// stored once) while the cluster does not acknowledge it.
async fn settle(js: &jetstream::Context, mut p: Pending) {
    loop {
        match p.ack.await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "a feed entry was not acknowledged; publishing it again");
                tokio::time::sleep(Duration::from_millis(200)).await;
                p = send(js, p.subject, p.msg_id, p.payload).await;
            }
        }
    }
}

async fn publish(js: jetstream::Context, mut rx: mpsc::UnboundedReceiver<FeedMessage>) {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    while let Some(message) = rx.recv().await {
        let now = chrono::Utc::now();
        match message {
            FeedMessage::Entries(list) => {
                for e in list {
                    let record = FeedRecordV1::Entry(Box::new(EntryV1::new(&e, now)));
                    let Ok(bytes) = encode(&record) else {
                        tracing::error!("a feed entry cannot be encoded");
                        continue;
                    };
                    let id = format!("f{}-{}-{}", e.partition.0, e.position.0, e.index);
                    pending
                        .push_back(send(&js, subject(e.partition), id, Bytes::from(bytes)).await);
                }
            }
            FeedMessage::Erased {
                partition,
                position,
                application,
                customer,
            } => {
                let record = FeedRecordV1::Erase {
                    application: application.0,
                    customer: customer.as_str().to_string(),
                    partition: partition.0,
                    position: position.0,
                };
                let Ok(bytes) = encode(&record) else { continue };
                let id = format!("e{}-{}", partition.0, position.0);
                pending.push_back(send(&js, subject(partition), id, Bytes::from(bytes)).await);
            }
            FeedMessage::Barrier(done) => {
                while let Some(p) = pending.pop_front() {
                    settle(&js, p).await;
                }
                let _ = done.send(());
            }
        }
        while pending.len() > IN_FLIGHT {
            if let Some(p) = pending.pop_front() {
                settle(&js, p).await;
            }
        }
    }
}

/// A feed stream message as the feed writer takes it.
fn message(bytes: &[u8]) -> Result<FeedMessage, String> {
    match decode(bytes)? {
        FeedRecordV1::Entry(e) => {
            let (entry, _) = e.to_entry().map_err(|e| e.to_string())?;
            Ok(FeedMessage::Entries(vec![entry]))
        }
        FeedRecordV1::Erase {
            application,
            customer,
            partition,
            position,
        } => Ok(FeedMessage::Erased {
            partition: PartitionId(partition),
            position: Position(position),
            application: ApplicationId(application),
            customer: CustomerId::parse(&customer, "/integrationId").map_err(|e| e.to_string())?,
        }),
    }
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
    feed.start_after(first.saturating_sub(1));
    let from = feed.head() + 1;
    let mut messages = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from.max(first).max(1),
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
        match message(&msg.payload) {
            Ok(m) => writer.send_numbered(seq, m),
            Err(e) => {
                tracing::error!(seq, error = %e, "a feed stream message cannot be read; skipped")
            }
        }
    }
    Err(err("feed consumer")("ended".into()))
}
