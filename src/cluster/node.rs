//! A node of a cluster (SPEC §6): the engine's `Remote` on NATS JetStream.
//!
//! Owns: joining (streams, buckets, the partition count every node must
//! agree on, the shared management key), submitting records and waiting
//! for their owners' answers, forwarding reads to owners, following and
//! appending the catalog, and recording expiries. Which partitions this
//! node owns, and applying their logs, is `owner`.
//!
//! The request path: the accepting node sends the record to its
//! partition's stream with a message id derived from the request (an
//! `eventId` makes one; JetStream stores a given id once within its
//! duplicate window), a reply subject and a correlation number in the
//! headers. The owner applies the record when it reads it and publishes
//! the answer to that subject. No answer within the wait (the partition is
//! moving) is a 503: the record stays in the log and takes effect once an
//! owner applies it, so the retry must carry the same `eventId`, which the
//! pair's remembered ids then answer as a duplicate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::feed::{follow_feed, FeedPublisher};
use super::leases::{Leases, Nodes};
use super::owner::{Ownership, OwnershipView};
use super::snapshots::SnapshotStore;
use super::streams::{ClusterError, JetStreamLog, StreamLayout};
use super::webhooks::{follow_webhooks, KvWebhookStore};
use super::wire;
use crate::engine::catalog::CatalogRecord;
use crate::engine::log::{ChangeOp, Expiry, PartitionId, Position, Record};
use crate::engine::remote::{Answer, Remote, Reply};
use crate::engine::{Engine, EngineError};
use crate::feed::{Feed, FeedWriter, Webhooks};
use crate::persist::model::{
    decode_catalog_record, encode_catalog_record, encode_partition_record,
};

/// Where a cluster is and how this node takes part.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Comma-separated `nats://host:port`.
    pub urls: String,
    pub node_id: String,
    /// The HTTP address other nodes and operators see.
    pub address: String,
    pub partitions: u32,
    pub replicas: usize,
    /// How long a dead node's partitions wait before another takes them.
    pub lease: Duration,
    /// How long a request waits for its partition's owner.
    pub wait: Duration,
    /// How often an owner writes a partition's snapshot (if it changed).
    pub snapshot_every: Duration,
    /// How long the feed stream keeps entries.
    pub feed_retention: Duration,
}

const META_BUCKET: &str = "ACHV_META";
const PARTITIONS_KEY: &str = "partitions";
const MANAGEMENT_KEY: &str = "management_key";
/// Keys `progress.<achievement>` of the meta bucket: an achievement some
/// customer has progress in (the editing rule locks its definition).
const PROGRESS_PREFIX: &str = "progress.";
pub const ANSWER_HEADER: &str = "Achv-Reply";
pub const CORRELATION_HEADER: &str = "Achv-Corr";

/// The subject an owner answers reads of partition `p` on.
pub fn query_subject(p: PartitionId) -> String {
    format!("achv.q.{}", p.0)
}

fn unavailable(what: &'static str) -> impl Fn(ClusterError) -> EngineError {
    move |e| {
        tracing::warn!(error = %e, "{what}");
        EngineError::Unavailable("the cluster cannot take the request now; retry")
    }
}

const MOVING: &str =
    "the customer's partition is moving to another node and did not answer in time; \
     the change may still take effect: retry with the same eventId";

type Waiters = Mutex<HashMap<u64, oneshot::Sender<Result<Answer, EngineError>>>>;

/// Shared by the node's tasks.
pub(super) struct Inner {
    pub config: ClusterConfig,
    pub engine: Engine,
    pub log: JetStreamLog,
    pub client: async_nats::Client,
    pub leases: Leases,
    pub nodes: Nodes,
    pub snapshots: SnapshotStore,
    reply_subject: String,
    waiters: Waiters,
    next_corr: AtomicU64,
    /// The position after the last catalog record applied here.
    catalog_at: watch::Sender<Position>,
    pub ownership: Ownership,
    meta: async_nats::jetstream::kv::Store,
    /// The webhooks; this node delivers while it owns partition 0.
    pub(super) webhooks: Arc<Webhooks>,
    /// Where this node's owners publish feed entries.
    pub(super) publisher: Arc<FeedPublisher>,
    /// Achievements this node has recorded as having progress.
    progress_told: Mutex<std::collections::HashSet<crate::domain::AchievementId>>,
}

/// A running cluster node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

/// The engine's side of the node.
struct NodeRemote(Arc<Inner>);

impl Node {
    /// Joins the cluster: connects, creates what is missing, checks the
    /// partition count, follows the catalog to its end, attaches itself to
    /// `engine` and starts taking partitions. Must run on a Tokio runtime
    /// that keeps running (the node's tasks live there).
    pub async fn start(
        config: ClusterConfig,
        engine: Engine,
        feed: Arc<Feed>,
        writer: Arc<FeedWriter>,
        webhooks: Arc<Webhooks>,
    ) -> Result<Node, ClusterError> {
        let layout = StreamLayout::new(config.partitions);
        let log = connect(&config.urls, layout, config.replicas).await?;
        let js = log.jetstream().clone();
        let (leases, nodes, snapshots) = retrying(|| async {
            check_partitions(&js, config.partitions, config.replicas).await?;
            super::feed::create_stream(&js, config.feed_retention, config.replicas).await?;
            Ok((
                Leases::open(&js, config.lease, config.replicas).await?,
                Nodes::open(&js, config.lease, config.replicas).await?,
                SnapshotStore::open(&js, config.replicas).await?,
            ))
        })
        .await?;
        let meta = retrying(|| meta(&js, config.replicas)).await?;
        let hooks_kv = retrying(|| super::webhooks::bucket(&js, config.replicas)).await?;
        {
            // The shared list and positions, before anything delivers.
            let store = KvWebhookStore::new(hooks_kv.clone(), tokio::runtime::Handle::current());
            let webhooks = webhooks.clone();
            tokio::task::spawn_blocking(move || webhooks.attach_store(store))
                .await
                .map_err(|e| js_error("webhooks", e))?
                .map_err(|e| js_error("webhooks", e))?;
        }
        let client = log.client();
        let reply_subject = format!("achv.r.{:016x}", rand::random::<u64>());
        let answers =
            client
                .subscribe(reply_subject.clone())
                .await
                .map_err(|e| ClusterError::JetStream {
                    what: "subscription",
                    reason: e.to_string(),
                })?;
        let (catalog_at, _) = watch::channel(Position(0));
        let publisher = FeedPublisher::start(js.clone());
        let inner = Arc::new(Inner {
            ownership: Ownership::new(config.partitions),
            config,
            engine: engine.clone(),
            log,
            client,
            leases,
            nodes,
            snapshots,
            reply_subject,
            waiters: Mutex::default(),
            next_corr: AtomicU64::new(1),
            catalog_at,
            meta,
            publisher: publisher.clone(),
            webhooks: webhooks.clone(),
            progress_told: Mutex::default(),
        });
        tokio::spawn(dispatch_answers(inner.clone(), answers));
        tokio::spawn(follow_catalog(inner.clone()));
        retrying(|| inner.catalog_sync()).await?;
        tokio::spawn(follow_progress(inner.clone()));
        // Owners publish what their records make; every node keeps the feed.
        engine
            .attach_feed(publisher)
            .map_err(|e| js_error("engine", e))?;
        tokio::spawn(follow_feed(js.clone(), feed, writer));
        tokio::spawn(follow_webhooks(hooks_kv, webhooks));
        engine
            .attach_remote(Arc::new(NodeRemote(inner.clone())))
            .map_err(|e| ClusterError::JetStream {
                what: "engine",
                reason: e.to_string(),
            })?;
        tokio::spawn(super::owner::run(inner.clone()));
        Ok(Node { inner })
    }

    /// The management key all nodes share: the one given, else the one the
    /// cluster holds, else `generated` (stored for the others).
    pub async fn management_key(
        config: &ClusterConfig,
        given: Option<&str>,
        generated: String,
    ) -> Result<String, ClusterError> {
        if let Some(key) = given {
            return Ok(key.to_owned());
        }
        let replicas = config.replicas;
        let log = connect(&config.urls, StreamLayout::new(config.partitions), replicas).await?;
        retrying(|| async {
            let kv = meta(log.jetstream(), replicas).await?;
            let _ = kv
                .create(MANAGEMENT_KEY, Bytes::from(generated.clone()))
                .await;
            let stored = kv
                .get(MANAGEMENT_KEY)
                .await
                .map_err(|e| js_error("management key lookup", e))?
                .ok_or_else(|| js_error("management key lookup", "missing"))?;
            Ok(String::from_utf8_lossy(&stored).into_owned())
        })
        .await
    }

    /// Hands every partition over (snapshot, release) and leaves, so the
    /// other nodes take them at once instead of after the lease.
    pub async fn leave(&self) {
        super::owner::leave(&self.inner).await;
    }

    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// Who owns what, as this node sees it.
    pub async fn view(&self) -> Result<OwnershipView, ClusterError> {
        super::owner::view(&self.inner).await
    }

    /// This node's counters (owned partitions, takeovers, lag).
    pub fn stats(&self) -> super::owner::OwnerStats {
        self.inner.ownership.stats()
    }
}

/// Runs `f` until it succeeds, for up to a minute: a bucket or stream just
/// created answers only once its replicas elected a leader.
async fn retrying<T, F, Fut>(mut f: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline => {
                tracing::info!(error = %e, "the JetStream cluster is not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Connects, retrying while the JetStream cluster forms (servers started
/// together elect a leader first) for up to a minute.
async fn connect(
    urls: &str,
    layout: StreamLayout,
    replicas: usize,
) -> Result<JetStreamLog, ClusterError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match JetStreamLog::connect(urls, layout, replicas).await {
            Ok(log) => return Ok(log),
            Err(e) if Instant::now() < deadline => {
                tracing::info!(error = %e, "the JetStream cluster is not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn js_error(what: &'static str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::JetStream {
        what,
        reason: e.to_string(),
    }
}

async fn meta(
    js: &async_nats::jetstream::Context,
    replicas: usize,
) -> Result<async_nats::jetstream::kv::Store, ClusterError> {
    if let Ok(kv) = js.get_key_value(META_BUCKET).await {
        return Ok(kv);
    }
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: META_BUCKET.into(),
        history: 1,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await
    .map_err(|e| js_error("key-value bucket creation", e))
}

/// The partition count is fixed when the cluster's data is created.
async fn check_partitions(
    js: &async_nats::jetstream::Context,
    partitions: u32,
    replicas: usize,
) -> Result<(), ClusterError> {
    let kv = meta(js, replicas).await?;
    let _ = kv
        .create(PARTITIONS_KEY, Bytes::from(partitions.to_string()))
        .await;
    let stored = kv
        .get(PARTITIONS_KEY)
        .await
        .map_err(|e| js_error("partition count lookup", e))?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if stored != partitions.to_string() {
        return Err(ClusterError::JetStream {
            what: "joining",
            reason: format!(
                "the cluster's data has {stored} partitions and this node was started with \
                 --partitions {partitions}; the count is fixed when the data is created"
            ),
        });
    }
    Ok(())
}

/// Hands each owner's answer to the request waiting for it.
async fn dispatch_answers(inner: Arc<Inner>, mut answers: async_nats::Subscriber) {
    while let Some(msg) = answers.next().await {
        let corr = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(CORRELATION_HEADER))
            .and_then(|v| v.as_str().parse::<u64>().ok());
        let Some(corr) = corr else { continue };
        let waiter = inner
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&corr);
        if let Some(tx) = waiter {
            let answer = wire::decode_answer(&msg.payload).unwrap_or_else(|e| {
                tracing::error!(error = %e, "an owner's answer cannot be read");
                Err(EngineError::Internal("an owner's answer cannot be read"))
            });
            let _ = tx.send(answer);
        }
    }
}

/// Applies every catalog record, in order, as it is stored.
async fn follow_catalog(inner: Arc<Inner>) {
    loop {
        let from = Position(inner.catalog_at.borrow().0 + 1);
        let mut records = match inner.log.tail_catalog(from).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the catalog; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(msg) = records.next().await {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "the catalog's consumer failed; following again");
                    break;
                }
            };
            let Ok(info) = msg.info() else { continue };
            let position = Position(info.stream_sequence);
            if position.0 <= inner.catalog_at.borrow().0 {
                continue;
            }
            match decode_catalog_record(&msg.payload) {
                Ok(record) => apply_catalog(&inner.engine, &record).await,
                Err(e) => {
                    tracing::error!(?position, error = %e, "a catalog record cannot be read; skipped")
                }
            }
            inner.catalog_at.send_replace(position);
        }
    }
}

/// Marks achievements that some node recorded as having progress (the
/// bucket's keys now, then each new one as it comes).
async fn follow_progress(inner: Arc<Inner>) {
    loop {
        let watched = inner
            .meta
            .watch_with_history(format!("{PROGRESS_PREFIX}>"))
            .await;
        let mut updates = match watched {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch achievements' progress marks; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(Ok(entry)) = updates.next().await {
            let Some(id) = entry
                .key
                .strip_prefix(PROGRESS_PREFIX)
                .and_then(|id| id.parse().ok())
                .map(crate::domain::AchievementId)
            else {
                continue;
            };
            // The catalog may still be following the achievement's creation.
            for _ in 0..50 {
                let found = inner.engine.catalog.read().achievements.get(&id).cloned();
                if let Some(e) = found {
                    e.mark_progress();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Applies a catalog record here; a deleted achievement's pairs go from
/// the partitions this node holds.
async fn apply_catalog(engine: &Engine, record: &CatalogRecord) {
    let doomed = match record {
        CatalogRecord::DeleteAchievement(id) => engine.catalog.read().achievements.get(id).cloned(),
        _ => None,
    };
    engine.catalog.apply(record);
    if let Some(entry) = doomed {
        if let Err(e) = engine.drop_pairs(entry).await {
            tracing::error!(error = %e, "cannot drop a deleted achievement's pairs");
        }
    }
}

/// The message id of a submitted record: derived from the request when it
/// has an `eventId` (a client's retry, on any node, is stored once within
/// the duplicate window), else fresh (a node's own resend keeps it).
fn message_id(p: PartitionId, record: &Record) -> String {
    let derived = match record {
        Record::Pair(c) => match &c.op {
            ChangeOp::Increase(inc) => inc.event_id.as_ref().map(|id| ("i", id)),
            ChangeOp::Rollback(id) => Some(("r", id)),
        }
        .map(|(kind, id)| {
            let mut h = Sha256::new();
            for part in [
                kind.as_bytes(),
                &c.achievement.0.to_le_bytes(),
                c.customer.as_str().as_bytes(),
                b"\0",
                id.as_str().as_bytes(),
            ] {
                h.update(part);
            }
            let digest = h.finalize();
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("{kind}{}-{hex}", p.0)
        }),
        _ => None,
    };
    derived.unwrap_or_else(fresh_id)
}

fn fresh_id() -> String {
    format!("n-{:032x}", rand::random::<u128>())
}

/// A record sent and not yet answered.
struct Sent {
    p: PartitionId,
    msg_id: String,
    corr: u64,
    payload: Bytes,
    ack: async_nats::jetstream::context::PublishAckFuture,
    answer: oneshot::Receiver<Result<Answer, EngineError>>,
}

impl Inner {
    /// Records, once, that an achievement has progress (every node marks
    /// it from the meta bucket).
    pub(super) async fn tell_progress(&self, entries: &[Arc<crate::engine::AchievementEntry>]) {
        for entry in entries {
            let id = entry.achievement.id;
            if !entry.has_progress() || lock(&self.progress_told).contains(&id) {
                continue;
            }
            let key = format!("{PROGRESS_PREFIX}{}", id.0);
            let told = match self.meta.create(&key, Bytes::from_static(b"1")).await {
                Ok(_) => true,
                Err(e) => e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists,
            };
            if told {
                lock(&self.progress_told).insert(id);
            }
        }
    }

    fn headers(&self, msg_id: &str, corr: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", msg_id);
        h.insert(ANSWER_HEADER, self.reply_subject.as_str());
        h.insert(CORRELATION_HEADER, corr.to_string().as_str());
        h
    }

    /// Sends until the cluster takes it or the deadline passes.
    async fn send(
        &self,
        p: PartitionId,
        msg_id: &str,
        corr: u64,
        payload: &Bytes,
        deadline: Instant,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, EngineError> {
        loop {
            match self
                .log
                .send(p, self.headers(msg_id, corr), payload.clone())
                .await
            {
                Ok(ack) => return Ok(ack),
                Err(e) if Instant::now() + Duration::from_millis(200) < deadline => {
                    tracing::debug!(error = %e, "send failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(unavailable("cannot send a record")(e)),
            }
        }
    }

    /// Waits for a sent record to be stored (sending it again with the same
    /// id if the acknowledgement is lost), then for its owner's answer.
    async fn complete(&self, sent: Sent, deadline: Instant) -> Result<Answer, EngineError> {
        let Sent {
            p,
            msg_id,
            corr,
            payload,
            mut ack,
            answer,
        } = sent;
        let mut first = true;
        loop {
            match tokio::time::timeout_at(deadline, ack).await {
                Err(_) => return Err(EngineError::Unavailable(MOVING)),
                Ok(Ok(stored)) => {
                    if stored.duplicate && first {
                        // Another request with this id is in the log (a
                        // retry racing its original): this one goes in as a
                        // record of its own, which the pair's remembered
                        // ids answer.
                        let id = fresh_id();
                        ack = self.send(p, &id, corr, &payload, deadline).await?;
                        first = false;
                        continue;
                    }
                    break;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "no acknowledgement; sending again");
                    if Instant::now() + Duration::from_millis(200) >= deadline {
                        return Err(EngineError::Unavailable(MOVING));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    // Same id: stored once, whichever send got there.
                    ack = self.send(p, &msg_id, corr, &payload, deadline).await?;
                    first = false;
                }
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => answer,
            _ => Err(EngineError::Unavailable(MOVING)),
        }
    }

    fn forget(&self, corr: u64) {
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&corr);
    }

    async fn submit(
        self: Arc<Self>,
        records: Vec<(PartitionId, Record)>,
    ) -> Result<Vec<Result<Answer, EngineError>>, EngineError> {
        let deadline = Instant::now() + self.config.wait;
        let mut sent = Vec::with_capacity(records.len());
        // Sent one after another, so a partition's records keep their order.
        for (p, record) in records {
            let payload = encode_partition_record(p, &record.as_ref()).map_err(|e| {
                tracing::error!(error = %e, "cannot encode a record");
                EngineError::Internal("cannot encode a record")
            })?;
            let payload = Bytes::from(payload);
            let msg_id = message_id(p, &record);
            let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(corr, tx);
            match self.send(p, &msg_id, corr, &payload, deadline).await {
                Ok(ack) => sent.push(Ok(Sent {
                    p,
                    msg_id,
                    corr,
                    payload,
                    ack,
                    answer: rx,
                })),
                Err(e) => {
                    self.forget(corr);
                    sent.push(Err(e));
                }
            }
        }
        let waits = sent.into_iter().map(|s| {
            let inner = self.clone();
            async move {
                let sent = s?;
                let corr = sent.corr;
                let answer = inner.complete(sent, deadline).await;
                inner.forget(corr);
                answer
            }
        });
        Ok(futures_util::future::join_all(waits).await)
    }

    /// Asks partition `p`'s owner; while none answers (the partition is
    /// moving), asks again until the wait is over.
    async fn read(
        &self,
        p: PartitionId,
        query: wire::Query,
    ) -> Result<wire::ReadReply, EngineError> {
        let deadline = Instant::now() + self.config.wait;
        let payload = Bytes::from(query.encode());
        loop {
            let request = async_nats::Request::new()
                .payload(payload.clone())
                .timeout(Some(Duration::from_secs(5)));
            match self.client.send_request(query_subject(p), request).await {
                Ok(reply) => {
                    return wire::decode_reply(&reply.payload).unwrap_or_else(|e| {
                        tracing::error!(error = %e, "an owner's reply cannot be read");
                        Err(EngineError::Internal("an owner's reply cannot be read"))
                    })
                }
                Err(e) => {
                    if Instant::now() + Duration::from_millis(100) >= deadline {
                        tracing::debug!(error = %e, partition = p.0, "no owner answered a read");
                        return Err(EngineError::Unavailable(
                            "the customer's partition is moving to another node; retry",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Waits until the catalog here has every record stored so far.
    pub(super) async fn catalog_sync(&self) -> Result<(), ClusterError> {
        let last = self.log.catalog_last().await?;
        let mut at = self.catalog_at.subscribe();
        tokio::time::timeout(self.config.wait.max(Duration::from_secs(5)), async {
            while at.borrow_and_update().0 < last.0 {
                if at.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(|_| js_error("catalog", "the catalog did not catch up in time"))
    }

    async fn catalog_append(&self, record: CatalogRecord) -> Result<bool, EngineError> {
        let bytes = encode_catalog_record(&record).map_err(|e| {
            tracing::error!(error = %e, "cannot encode a catalog record");
            EngineError::Internal("cannot encode a catalog record")
        })?;
        let last = *self.catalog_at.borrow();
        let stored = self
            .log
            .append_catalog_after(last, &fresh_id(), Bytes::from(bytes))
            .await
            .map_err(unavailable("cannot append a catalog record"))?;
        let Some(stored) = stored else {
            return Ok(false);
        };
        let mut at = self.catalog_at.subscribe();
        tokio::time::timeout(self.config.wait, async {
            while at.borrow_and_update().0 < stored.position.0 {
                if at.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(|_| {
            EngineError::Unavailable("the catalog change is stored but not yet applied here")
        })?;
        Ok(true)
    }

    fn expire(self: Arc<Self>, p: PartitionId, expiry: Expiry) {
        tokio_handle().spawn(async move {
            let Ok(payload) = encode_partition_record(p, &Record::Expire(expiry).as_ref()) else {
                return;
            };
            let payload = Bytes::from(payload);
            let msg_id = fresh_id();
            // Until stored or the partition is no longer ours: whoever
            // holds it next sees the same ends and records them.
            while self.ownership.holds(p) {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", msg_id.as_str());
                let stored = match self.log.send(p, headers, payload.clone()).await {
                    Ok(ack) => ack.await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match stored {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(partition = p.0, error = %e, "cannot record an expiry; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

/// The runtime the node's tasks run on (set when the node starts).
static RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

fn tokio_handle() -> tokio::runtime::Handle {
    RUNTIME
        .get()
        .cloned()
        .unwrap_or_else(tokio::runtime::Handle::current)
}

/// Names the runtime the node's background work goes to (expiries come
/// from shard threads, which have none).
pub fn set_runtime(handle: tokio::runtime::Handle) {
    let _ = RUNTIME.set(handle);
}

impl Remote for NodeRemote {
    fn submit(
        &self,
        records: Vec<(PartitionId, Record)>,
    ) -> Reply<Vec<Result<Answer, EngineError>>> {
        Box::pin(self.0.clone().submit(records))
    }

    fn progress(
        &self,
        p: PartitionId,
        customer: crate::domain::CustomerId,
        achievements: Vec<crate::domain::AchievementId>,
    ) -> Reply<Vec<Vec<crate::domain::Iteration>>> {
        let inner = self.0.clone();
        Box::pin(async move {
            match inner
                .read(p, wire::Query::progress(&customer, &achievements))
                .await?
            {
                wire::ReadReply::Progress(lists) => Ok(lists),
                wire::ReadReply::Export(_) => {
                    Err(EngineError::Internal("a read got another reply"))
                }
            }
        })
    }

    fn export(
        &self,
        p: PartitionId,
        application: crate::domain::ApplicationId,
        achievement: crate::domain::AchievementId,
    ) -> Reply<Vec<(crate::domain::CustomerId, Vec<crate::domain::Iteration>)>> {
        let inner = self.0.clone();
        Box::pin(async move {
            match inner
                .read(p, wire::Query::export(application, achievement))
                .await?
            {
                wire::ReadReply::Export(rows) => Ok(rows),
                wire::ReadReply::Progress(_) => {
                    Err(EngineError::Internal("a read got another reply"))
                }
            }
        })
    }

    fn expire(&self, p: PartitionId, expiry: Expiry) {
        self.0.clone().expire(p, expiry);
    }

    fn catalog_sync(&self) -> Reply<()> {
        let inner = self.0.clone();
        Box::pin(async move {
            inner
                .catalog_sync()
                .await
                .map_err(unavailable("cannot follow the catalog"))
        })
    }

    fn catalog_append(&self, record: CatalogRecord) -> Reply<bool> {
        let inner = self.0.clone();
        Box::pin(async move { inner.catalog_append(record).await })
    }

    fn pair_number(&self, p: PartitionId, at: Position) -> u64 {
        // Positions are unique within a stream, and a stream's partitions
        // differ in `p mod streams`.
        let streams = u64::from(self.0.log.layout().streams);
        at.0 * streams + u64::from(p.0) % streams
    }
}
