//! The partition log on JetStream: where each partition's records live and
//! how they are appended (deduplicated) and read back in order.
//!
//! Owns: `StreamLayout` (partition `p` is subject `achv.p.<p>` of stream
//! `ACHV_P<p mod streams>`; a few streams rather than one so their leaders
//! spread over the servers, and not one per partition so the cluster's
//! metadata stays small; the catalog is stream `ACHV_CATALOG`) and
//! `JetStreamLog`, a client that creates the streams, appends a record with
//! a message id (JetStream stores a given id once within its duplicate
//! window, so a retried request is one record) and reads a partition's
//! records from a position. A position is the record's stream sequence: it
//! increases within a partition, with gaps where the stream's other
//! partitions' records sit — as a shard's file log does.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::engine::log::{PartitionId, Position};

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the NATS cluster at {urls}: {reason}")]
    Connect { urls: String, reason: String },
    #[error("JetStream {what} failed: {reason}")]
    JetStream { what: &'static str, reason: String },
}

fn js_error(what: &'static str) -> impl Fn(String) -> ClusterError {
    move |reason| ClusterError::JetStream { what, reason }
}

/// Where partitions' records live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLayout {
    pub partitions: u32,
    pub streams: u32,
}

/// Streams the partitions are spread over, at most.
pub const MAX_STREAMS: u32 = 16;
/// The catalog's stream and subject.
pub const CATALOG_STREAM: &str = "ACHV_CATALOG";
pub const CATALOG_SUBJECT: &str = "achv.catalog";

impl StreamLayout {
    pub fn new(partitions: u32) -> StreamLayout {
        let partitions = partitions.max(1);
        StreamLayout {
            partitions,
            streams: partitions.min(MAX_STREAMS),
        }
    }

    /// The stream holding partition `p`.
    pub fn stream_of(&self, p: PartitionId) -> String {
        format!("ACHV_P{}", p.0 % self.streams)
    }

    /// The subject of partition `p`'s records.
    pub fn subject_of(&self, p: PartitionId) -> String {
        format!("achv.p.{}", p.0)
    }

    /// Every stream's name and the subjects it captures.
    fn streams(&self) -> Vec<(String, Vec<String>)> {
        (0..self.streams)
            .map(|s| {
                let subjects = (s..self.partitions)
                    .step_by(self.streams as usize)
                    .map(|p| self.subject_of(PartitionId(p)))
                    .collect();
                (format!("ACHV_P{s}"), subjects)
            })
            .collect()
    }
}

/// An append's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub position: Position,
    /// The message id was stored before (within the duplicate window):
    /// `position` is the first record's.
    pub duplicate: bool,
}

/// The partition and catalog logs of a cluster.
pub struct JetStreamLog {
    js: jetstream::Context,
    layout: StreamLayout,
}

/// How long JetStream remembers message ids for deduplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

impl JetStreamLog {
    /// Connects to `urls` (comma-separated `nats://host:port`) and creates
    /// the streams if they do not exist, with `replicas` copies each.
    pub async fn connect(
        urls: &str,
        layout: StreamLayout,
        replicas: usize,
    ) -> Result<JetStreamLog, ClusterError> {
        let addrs: Vec<async_nats::ServerAddr> = urls
            .split(',')
            .map(|u| u.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e: std::io::Error| ClusterError::Connect {
                urls: urls.into(),
                reason: e.to_string(),
            })?;
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(addrs)
            .await
            .map_err(|e| ClusterError::Connect {
                urls: urls.into(),
                reason: e.to_string(),
            })?;
        let js = jetstream::new(client);
        let log = JetStreamLog { js, layout };
        let mut all = layout.streams();
        all.push((CATALOG_STREAM.into(), vec![CATALOG_SUBJECT.into()]));
        for (name, subjects) in all {
            let config = stream::Config {
                name,
                subjects,
                num_replicas: replicas.max(1),
                duplicate_window: DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            };
            let mut existing = log
                .js
                .get_or_create_stream(config.clone())
                .await
                .map_err(|e| e.to_string())
                .map_err(js_error("stream creation"))?;
            // A stream made for another layout captures other subjects: a
            // record sent to a subject no stream captures is lost.
            let info = existing
                .info()
                .await
                .map_err(|e| e.to_string())
                .map_err(js_error("stream info"))?;
            let mut have = info.config.subjects.clone();
            let mut want = config.subjects.clone();
            have.sort();
            want.sort();
            if have != want {
                log.js
                    .update_stream(stream::Config {
                        num_replicas: info.config.num_replicas,
                        ..config
                    })
                    .await
                    .map_err(|e| e.to_string())
                    .map_err(js_error("stream update"))?;
            }
        }
        Ok(log)
    }

    pub fn layout(&self) -> StreamLayout {
        self.layout
    }

    /// The JetStream context (for the key-value buckets of `leases`).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    async fn publish(
        &self,
        subject: String,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<Appended, ClusterError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        let ack = self
            .js
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("publish"))?
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("publish acknowledgement"))?;
        Ok(Appended {
            position: Position(ack.sequence),
            duplicate: ack.duplicate,
        })
    }

    /// Appends a record of partition `p`; resolves once it is stored on a
    /// quorum of the stream's replicas.
    pub async fn append(
        &self,
        p: PartitionId,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<Appended, ClusterError> {
        self.publish(self.layout.subject_of(p), msg_id, payload)
            .await
    }

    /// Appends a catalog record.
    pub async fn append_catalog(
        &self,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<Appended, ClusterError> {
        self.publish(CATALOG_SUBJECT.into(), msg_id, payload).await
    }

    /// The NATS connection (for what is not JetStream: answers, reads).
    pub fn client(&self) -> async_nats::Client {
        self.js.client()
    }

    /// Sends a record of partition `p` with its headers (a `Nats-Msg-Id`
    /// among them); the returned future resolves once it is stored. Sends
    /// made one after another are stored in that order.
    pub async fn send(
        &self,
        p: PartitionId,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<jetstream::context::PublishAckFuture, ClusterError> {
        self.js
            .publish_with_headers(self.layout.subject_of(p), headers, payload)
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("publish"))
    }

    /// Appends a catalog record only if the catalog's last record is at
    /// `last` (0: empty); `None` when another record came in between.
    pub async fn append_catalog_after(
        &self,
        last: Position,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<Option<Appended>, ClusterError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        headers.insert("Nats-Expected-Last-Sequence", last.0.to_string().as_str());
        let sent = self
            .js
            .publish_with_headers(CATALOG_SUBJECT, headers, payload)
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("publish"))?;
        match sent.await {
            Ok(ack) => Ok(Some(Appended {
                position: Position(ack.sequence),
                duplicate: ack.duplicate,
            })),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(None)
            }
            Err(e) => Err(js_error("publish acknowledgement")(e.to_string())),
        }
    }

    /// The position of the catalog's last record (0: none).
    pub async fn catalog_last(&self) -> Result<Position, ClusterError> {
        let mut stream = self
            .js
            .get_stream(CATALOG_STREAM)
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("stream lookup"))?;
        let info = stream
            .info()
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("stream info"))?;
        Ok(Position(info.state.last_sequence))
    }

    /// The position of partition `p`'s last record (0: none), as its
    /// stream's leader knows it.
    pub async fn last_position(&self, p: PartitionId) -> Result<Position, ClusterError> {
        let stream = self
            .js
            .get_stream(self.layout.stream_of(p))
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("stream lookup"))?;
        match stream
            .get_last_raw_message_by_subject(&self.layout.subject_of(p))
            .await
        {
            Ok(m) => Ok(Position(m.sequence)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok(Position(0))
            }
            Err(e) => Err(js_error("last record lookup")(e.to_string())),
        }
    }

    async fn tail(
        &self,
        stream_name: &str,
        subject: String,
        from: Position,
    ) -> Result<consumer::pull::Ordered, ClusterError> {
        let stream = self
            .js
            .get_stream(stream_name)
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("stream lookup"))?;
        stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from.0.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("consumer creation"))?
            .messages()
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("consumer messages"))
    }

    /// Partition `p`'s records from `from` on, in order, and every later
    /// one as it is stored (an ordered consumer: recreated by the client
    /// when a server goes away, never skipping or repeating a record).
    pub async fn tail_partition(
        &self,
        p: PartitionId,
        from: Position,
    ) -> Result<consumer::pull::Ordered, ClusterError> {
        self.tail(&self.layout.stream_of(p), self.layout.subject_of(p), from)
            .await
    }

    /// The catalog's records from `from` on, and every later one.
    pub async fn tail_catalog(
        &self,
        from: Position,
    ) -> Result<consumer::pull::Ordered, ClusterError> {
        self.tail(CATALOG_STREAM, CATALOG_SUBJECT.into(), from)
            .await
    }

    async fn read_subject(
        &self,
        stream_name: &str,
        subject: String,
        from: Position,
        max: usize,
    ) -> Result<Vec<(Position, Bytes)>, ClusterError> {
        let stream = self
            .js
            .get_stream(stream_name)
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("stream lookup"))?;
        // The subject's last record, asked of the stream's leader: a read
        // goes on until it has it (a consumer may sit on a replica that is
        // still catching up, say one just restarted).
        let last = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m.sequence,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(js_error("last record lookup")(e.to_string())),
        };
        if last < from.0 {
            return Ok(Vec::new());
        }
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                filter_subject: subject,
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from.0.max(1),
                },
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                // A read's consumer lives for one read: one replica in
                // memory, not a replicated group of its own (cheap to
                // create, also while a server is down).
                num_replicas: 1,
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("consumer creation"))?;
        let mut out: Vec<(Position, Bytes)> = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.len() < max && out.last().is_none_or(|(p, _)| p.0 < last) {
            if std::time::Instant::now() > deadline {
                let _ = stream.delete_consumer(&consumer.cached_info().name).await;
                return Err(js_error("fetch")(format!(
                    "the records up to {last} did not arrive within 10 s"
                )));
            }
            let mut batch = consumer
                .fetch()
                .max_messages((max - out.len()).min(1000))
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .map_err(|e| e.to_string())
                .map_err(js_error("fetch"))?;
            while let Some(message) = batch.next().await {
                let message = message
                    .map_err(|e| e.to_string())
                    .map_err(js_error("fetch"))?;
                let seq = message
                    .info()
                    .map_err(|e| e.to_string())
                    .map_err(js_error("message metadata"))?
                    .stream_sequence;
                out.push((Position(seq), message.payload.clone()));
            }
        }
        let _ = stream.delete_consumer(&consumer.cached_info().name).await;
        Ok(out)
    }

    /// Up to `max` records of partition `p` from position `from` on, in
    /// order.
    pub async fn read(
        &self,
        p: PartitionId,
        from: Position,
        max: usize,
    ) -> Result<Vec<(Position, Bytes)>, ClusterError> {
        self.read_subject(
            &self.layout.stream_of(p),
            self.layout.subject_of(p),
            from,
            max,
        )
        .await
    }

    /// Up to `max` catalog records from position `from` on, in order.
    pub async fn read_catalog(
        &self,
        from: Position,
        max: usize,
    ) -> Result<Vec<(Position, Bytes)>, ClusterError> {
        self.read_subject(CATALOG_STREAM, CATALOG_SUBJECT.into(), from, max)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_over_streams_and_every_subject_is_captured_once() {
        let layout = StreamLayout::new(256);
        assert_eq!(layout.streams, MAX_STREAMS);
        let streams = layout.streams();
        let mut all: Vec<String> = streams.iter().flat_map(|(_, s)| s.clone()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256);
        for p in [0u32, 1, 15, 16, 255] {
            let p = PartitionId(p);
            let (name, subjects) = streams
                .iter()
                .find(|(name, _)| *name == layout.stream_of(p))
                .expect("its stream exists");
            assert!(subjects.contains(&layout.subject_of(p)), "{name}");
        }
        let small = StreamLayout::new(3);
        assert_eq!(small.streams, 3);
        assert_eq!(
            small.streams().iter().map(|(_, s)| s.len()).sum::<usize>(),
            3
        );
    }
}
