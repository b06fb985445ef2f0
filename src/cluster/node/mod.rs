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

mod following;
mod requests;

use following::{follow_catalog, follow_progress};
use requests::dispatch_answers;

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
        // The shared list and positions, before anything delivers.
        retrying(|| {
            let store = KvWebhookStore::new(hooks_kv.clone(), tokio::runtime::Handle::current());
            let webhooks = webhooks.clone();
            async move {
                tokio::task::spawn_blocking(move || webhooks.attach_store(store))
                    .await
                    .map_err(|e| js_error("webhooks", e))?
                    .map_err(|e| js_error("webhooks", e))
            }
        })
        .await?;
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
