//! Which partitions a node owns, and owning them (SPEC §6 "Ownership",
//! "Takeover").
//!
//! Owns: the ownership loop (heartbeat; renew the leases held, dropping a
//! partition at once when its lease is lost; take the partitions that
//! rendezvous hashing over the live nodes gives this node and whose lease is
//! free; hand over the ones it gives another node), the partition task
//! (load the newest snapshot, follow the partition's log from the position
//! it covers, apply each record and answer its submitter, serve reads once
//! caught up, write a snapshot now and then), the graceful leave, and the
//! node's counters.
//!
//! A zombie (a node that lost its lease without noticing) cannot corrupt
//! anything: state follows only from the log, which any node may append
//! to, and a snapshot commit needs the lease's current revision. A node
//! that cannot renew a lease for the lease's length drops the partition.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::leases::{owner_of, Lease, LiveNode};
use super::node::{query_subject, Inner, ANSWER_HEADER, CORRELATION_HEADER};
use super::streams::ClusterError;
use super::takeover::{load_snapshot, snapshot_partition};
use super::wire;
use crate::engine::log::{PartitionId, Position, Record};
use crate::engine::remote::Applied;
use crate::engine::shard::ReplayRecord;
use crate::engine::EngineError;
use crate::persist::model::decode_shard_record;

/// Records applied per engine call.
const BATCH: usize = 512;
/// How often an idle partition checks that its consumer still follows.
const STALL_CHECK: Duration = Duration::from_secs(5);

struct Held {
    lease: Lease,
    renewed: Instant,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<Position, ClusterError>>,
}

/// The partitions this node holds, and its counters.
pub struct Ownership {
    held: Mutex<HashMap<u32, Held>>,
    serving: Vec<AtomicBool>,
    lag: Vec<AtomicU64>,
    leaving: AtomicBool,
    takeovers: AtomicU64,
    takeover_ms_total: AtomicU64,
    last_takeover_ms: AtomicU64,
}

/// A node's counters (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerStats {
    /// Partitions whose lease this node holds.
    pub owned: u64,
    /// Of those, the ones caught up and serving.
    pub serving: u64,
    pub takeovers: u64,
    pub takeover_ms_total: u64,
    pub last_takeover_ms: u64,
    /// Records stored in owned partitions' logs and not yet applied here.
    pub lag: u64,
}

/// Who owns what, as this node sees it (`GET /v1/admin/cluster`).
#[derive(Debug, Clone)]
pub struct OwnershipView {
    pub node_id: String,
    pub partitions: u32,
    pub nodes: Vec<(LiveNode, Vec<u32>)>,
}

impl Ownership {
    pub fn new(partitions: u32) -> Ownership {
        Ownership {
            held: Mutex::default(),
            serving: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
            lag: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
            leaving: AtomicBool::new(false),
            takeovers: AtomicU64::new(0),
            takeover_ms_total: AtomicU64::new(0),
            last_takeover_ms: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this node holds partition `p`'s lease.
    pub fn holds(&self, p: PartitionId) -> bool {
        self.lock().contains_key(&p.0)
    }

    fn lease_of(&self, p: PartitionId) -> Option<Lease> {
        self.lock().get(&p.0).map(|h| h.lease.clone())
    }

    pub fn stats(&self) -> OwnerStats {
        let held: Vec<u32> = self.lock().keys().copied().collect();
        OwnerStats {
            owned: held.len() as u64,
            serving: held
                .iter()
                .filter(|p| self.serving[**p as usize].load(Ordering::Relaxed))
                .count() as u64,
            takeovers: self.takeovers.load(Ordering::Relaxed),
            takeover_ms_total: self.takeover_ms_total.load(Ordering::Relaxed),
            last_takeover_ms: self.last_takeover_ms.load(Ordering::Relaxed),
            lag: held
                .iter()
                .map(|p| self.lag[*p as usize].load(Ordering::Relaxed))
                .sum(),
        }
    }
}

/// The ownership loop; ends when the node leaves.
pub(super) async fn run(inner: Arc<Inner>) {
    // Leases are renewed every third of their length; free partitions are
    // looked for every second (a node that left hands its partitions over
    // at once, and they should not wait for a long lease's tick).
    let tick = (inner.config.lease / 3).clamp(Duration::from_millis(300), Duration::from_secs(1));
    while !inner.ownership.leaving.load(Ordering::Acquire) {
        if let Err(e) = step(&inner).await {
            tracing::warn!(error = %e, "ownership step failed; trying again");
        }
        tokio::time::sleep(tick).await;
    }
}

async fn step(inner: &Arc<Inner>) -> Result<(), ClusterError> {
    let me = inner.config.node_id.clone();
    let beat = inner.nodes.heartbeat(&me, &inner.config.address).await;
    renew(inner).await;
    // Webhooks are delivered by one node: the owner of partition 0.
    inner.webhooks.set_delivering(
        inner.ownership.holds(PartitionId(0)) && !inner.ownership.leaving.load(Ordering::Acquire),
    );
    beat?;
    let live: Vec<String> = inner
        .nodes
        .live()
        .await?
        .into_iter()
        .map(|n| n.id)
        .collect();
    for p in (0..inner.config.partitions).map(PartitionId) {
        if inner.ownership.leaving.load(Ordering::Acquire) {
            return Ok(());
        }
        let mine = owner_of(p, &live) == Some(me.as_str());
        let holds = inner.ownership.holds(p);
        if mine && !holds {
            if let Some(lease) = inner.leases.acquire(p, &me).await? {
                start(inner, p, lease);
            }
        } else if !mine && holds && live.contains(&me) {
            // Another live node is this partition's owner now (it joined):
            // hand over without making it wait for the lease to run out.
            hand_over(inner, p).await;
        }
    }
    Ok(())
}

/// Renews every lease held; a lost one, or one not renewed for the
/// lease's length, is dropped at once (another node may hold it now).
async fn renew(inner: &Arc<Inner>) {
    let held: Vec<(u32, Lease, Instant, bool)> = inner
        .ownership
        .lock()
        .iter()
        .map(|(p, h)| (*p, h.lease.clone(), h.renewed, h.task.is_finished()))
        .collect();
    for (p, lease, renewed, finished) in held {
        let p = PartitionId(p);
        if finished {
            // Its task failed (logged): let go, and take it again afresh.
            drop_partition(inner, p, true).await;
            continue;
        }
        if renewed.elapsed() < inner.config.lease / 3 {
            continue;
        }
        match inner.leases.renew(&lease).await {
            Ok(Some(lease)) => {
                if let Some(h) = inner.ownership.lock().get_mut(&p.0) {
                    h.lease = lease;
                    h.renewed = Instant::now();
                }
            }
            Ok(None) => {
                tracing::warn!(partition = p.0, "lease lost; dropping the partition");
                drop_partition(inner, p, false).await;
            }
            Err(e) if renewed.elapsed() >= inner.config.lease => {
                tracing::warn!(partition = p.0, error = %e, "lease not renewed in time; dropping the partition");
                drop_partition(inner, p, false).await;
            }
            Err(e) => tracing::debug!(partition = p.0, error = %e, "lease renewal failed"),
        }
    }
}

fn start(inner: &Arc<Inner>, p: PartitionId, lease: Lease) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(inner.clone(), p, stopped));
    inner.ownership.lock().insert(
        p.0,
        Held {
            lease,
            renewed: Instant::now(),
            stop,
            task,
        },
    );
}

/// Stops a partition's task; its last applied position if it ended well.
async fn stop(inner: &Arc<Inner>, p: PartitionId) -> Option<(Lease, Option<Position>)> {
    let held = inner.ownership.lock().remove(&p.0)?;
    inner.ownership.serving[p.0 as usize].store(false, Ordering::Relaxed);
    let _ = held.stop.send(true);
    let next = match held.task.await {
        Ok(Ok(next)) => Some(next),
        Ok(Err(e)) => {
            tracing::warn!(partition = p.0, error = %e, "partition task failed");
            None
        }
        Err(e) => {
            tracing::error!(partition = p.0, error = %e, "partition task panicked");
            None
        }
    };
    Some((held.lease, next))
}

async fn drop_partition(inner: &Arc<Inner>, p: PartitionId, release: bool) {
    let stopped = stop(inner, p).await;
    inner.publisher.discard(p);
    if let Some((lease, _)) = stopped {
        if release {
            let _ = inner.leases.release(&lease).await;
        }
    }
    if let Err(e) = inner.engine.unload_partition(p).await {
        tracing::error!(partition = p.0, error = %e, "cannot unload a partition");
    }
}

/// Stops applying, writes the partition's snapshot, releases the lease.
async fn hand_over(inner: &Arc<Inner>, p: PartitionId) {
    let Some((lease, next)) = stop(inner, p).await else {
        return;
    };
    if let Some(next) = next {
        if let Err(e) = write_snapshot(inner, &lease, next).await {
            tracing::warn!(partition = p.0, error = %e, "no snapshot at hand-over; the next owner replays more");
        }
    }
    if let Err(e) = inner.leases.release(&lease).await {
        tracing::warn!(partition = p.0, error = %e, "cannot release a lease; it expires");
    }
    if let Err(e) = inner.engine.unload_partition(p).await {
        tracing::error!(partition = p.0, error = %e, "cannot unload a partition");
    }
    tracing::info!(partition = p.0, "partition handed over");
}

async fn write_snapshot(
    inner: &Arc<Inner>,
    lease: &Lease,
    next: Position,
) -> Result<(), ClusterError> {
    let blob = snapshot_partition(&inner.engine, lease.partition).await?;
    commit_snapshot(inner, lease, next, blob).await
}

/// Stores a partition's snapshot covering the log below `next`, once what
/// the records below it made is in the feed stream (a takeover that starts
/// from the snapshot does not make those entries again).
async fn commit_snapshot(
    inner: &Arc<Inner>,
    lease: &Lease,
    next: Position,
    blob: Vec<u8>,
) -> Result<(), ClusterError> {
    inner.engine.feed_barrier().await;
    match inner
        .snapshots
        .commit(&inner.leases, lease, next, &blob)
        .await?
    {
        Ok(_) => Ok(()),
        Err(refused) => {
            tracing::debug!(
                partition = lease.partition.0,
                ?refused,
                "snapshot not committed"
            );
            Ok(())
        }
    }
}

/// Leaves the cluster gracefully: every partition handed over.
pub(super) async fn leave(inner: &Arc<Inner>) {
    inner.ownership.leaving.store(true, Ordering::Release);
    inner.webhooks.set_delivering(false);
    if let Err(e) = inner.nodes.leave(&inner.config.node_id).await {
        tracing::warn!(error = %e, "cannot leave the node list; it expires");
    }
    let held: Vec<u32> = inner.ownership.lock().keys().copied().collect();
    for p in held {
        hand_over(inner, PartitionId(p)).await;
    }
}

pub(super) async fn view(inner: &Arc<Inner>) -> Result<OwnershipView, ClusterError> {
    let live = inner.nodes.live().await?;
    let mut owned: HashMap<String, Vec<u32>> = HashMap::new();
    for p in 0..inner.config.partitions {
        if let Some(lease) = inner.leases.holder(PartitionId(p)).await? {
            owned.entry(lease.node).or_default().push(p);
        }
    }
    Ok(OwnershipView {
        node_id: inner.config.node_id.clone(),
        partitions: inner.config.partitions,
        nodes: live
            .into_iter()
            .map(|n| {
                let ps = owned.remove(&n.id).unwrap_or_default();
                (n, ps)
            })
            .collect(),
    })
}

async fn next_query(queries: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match queries {
        Some(q) => q.next().await,
        None => std::future::pending().await,
    }
}

/// Owns partition `p` until stopped: takeover (snapshot + replay), then
/// the live log, answering submitters and reads. Returns the position of
/// the next record (what a snapshot taken now covers).
async fn serve(
    inner: Arc<Inner>,
    p: PartitionId,
    mut stopped: watch::Receiver<bool>,
) -> Result<Position, ClusterError> {
    let began = Instant::now();
    // Whatever an earlier ownership left is stale.
    let _ = inner.engine.unload_partition(p).await;
    let mut next = load_snapshot(&inner.engine, &inner.snapshots, p).await?;
    let target = inner.log.last_position(p).await?;
    let mut records = inner.log.tail_partition(p, next).await?;
    let mut queries = None;
    let mut last_snapshot = Instant::now();
    let mut changed = false;
    let mut watchdog = tokio::time::interval(STALL_CHECK);
    let mut upload: Option<JoinHandle<()>> = None;
    let mut applied_since_check = true;
    loop {
        // Caught up: every record stored when the takeover began is
        // applied (positions start at 1; 0 is an empty log).
        if queries.is_none() && (target.0 == 0 || next.0 > target.0) {
            queries = Some(
                inner
                    .client
                    .subscribe(query_subject(p))
                    .await
                    .map_err(|e| ClusterError::JetStream {
                        what: "subscription",
                        reason: e.to_string(),
                    })?,
            );
            inner.ownership.serving[p.0 as usize].store(true, Ordering::Relaxed);
            let ms = began.elapsed().as_millis() as u64;
            let o = &inner.ownership;
            o.takeovers.fetch_add(1, Ordering::Relaxed);
            o.takeover_ms_total.fetch_add(ms, Ordering::Relaxed);
            o.last_takeover_ms.store(ms, Ordering::Relaxed);
            tracing::info!(
                partition = p.0,
                from = next.0,
                took_ms = ms,
                "partition taken over"
            );
        }
        tokio::select! {
            _ = stopped.changed() => return Ok(next),
            msg = records.next() => {
                let Some(msg) = msg else {
                    return Err(ClusterError::JetStream { what: "partition log", reason: "the consumer ended".into() });
                };
                let mut batch = vec![msg.map_err(|e| ClusterError::JetStream { what: "partition log", reason: e.to_string() })?];
                while batch.len() < BATCH {
                    match records.next().now_or_never() {
                        Some(Some(Ok(m))) => batch.push(m),
                        _ => break,
                    }
                }
                let began = Instant::now();
                let n = batch.len();
                next = apply_batch(&inner, p, batch, next).await?;
                if began.elapsed() > Duration::from_secs(2) {
                    tracing::warn!(partition = p.0, records = n, took_ms = began.elapsed().as_millis() as u64, "applying records was slow");
                }
                changed = true;
                applied_since_check = true;
            }
            _ = watchdog.tick() => {
                // A consumer created while its stream was still electing a
                // leader can stay silent: if the log holds records this
                // task has not seen, follow it again from where it is.
                if !std::mem::take(&mut applied_since_check) {
                    let last = inner.log.last_position(p).await?;
                    if last.0 > 0 && last.0 >= next.0 {
                        tracing::warn!(partition = p.0, next = next.0, last = last.0, "the partition's consumer stalled; following again");
                        records = inner.log.tail_partition(p, next).await?;
                    }
                }
            }
            q = next_query(&mut queries) => {
                if let Some(q) = q {
                    answer_query(&inner, p, q).await;
                }
            }
        }
        let uploading = upload.as_ref().is_some_and(|u| !u.is_finished());
        if changed && !uploading && last_snapshot.elapsed() >= inner.config.snapshot_every {
            if let Some(lease) = inner.ownership.lease_of(p) {
                // The partition's pairs are copied now, between records;
                // waiting for the feed and storing the copy go on beside
                // the log, which must not wait for them.
                match snapshot_partition(&inner.engine, p).await {
                    Ok(blob) => {
                        let inner = inner.clone();
                        upload = Some(tokio::spawn(async move {
                            if let Err(e) = commit_snapshot(&inner, &lease, next, blob).await {
                                tracing::warn!(partition = p.0, error = %e, "periodic partition snapshot failed");
                            }
                        }));
                    }
                    Err(e) => {
                        tracing::warn!(partition = p.0, error = %e, "periodic partition snapshot failed")
                    }
                }
            }
            last_snapshot = Instant::now();
            changed = false;
        }
    }
}

type ReplyTo = Option<(String, u64)>;

fn reply_to(msg: &jetstream::Message) -> ReplyTo {
    let h = msg.headers.as_ref()?;
    let subject = h.get(ANSWER_HEADER)?.as_str().to_owned();
    let corr = h.get(CORRELATION_HEADER)?.as_str().parse().ok()?;
    Some((subject, corr))
}

async fn send_answer(
    inner: &Inner,
    to: ReplyTo,
    answer: &Result<crate::engine::remote::Answer, EngineError>,
) {
    if let Some((subject, corr)) = to {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(CORRELATION_HEADER, corr.to_string().as_str());
        let bytes = Bytes::from(wire::encode_answer(answer));
        if let Err(e) = inner
            .client
            .publish_with_headers(subject, headers, bytes)
            .await
        {
            tracing::debug!(error = %e, "cannot send an answer");
        }
    }
}

/// Applies records read from the partition's log, in order, and answers
/// their submitters; returns the position after the last one.
async fn apply_batch(
    inner: &Arc<Inner>,
    p: PartitionId,
    batch: Vec<jetstream::Message>,
    mut next: Position,
) -> Result<Position, ClusterError> {
    let mut records = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let mut touched: Vec<Arc<crate::engine::AchievementEntry>> = Vec::new();
    let mut pending = 0;
    for msg in batch {
        let info = msg.info().map_err(|e| ClusterError::JetStream {
            what: "record metadata",
            reason: e.to_string(),
        })?;
        let position = Position(info.stream_sequence);
        pending = info.pending;
        next = Position(position.0 + 1);
        let to = reply_to(&msg);
        let record = match decode_shard_record(&msg.payload) {
            Ok((_, record)) => record,
            Err(e) => {
                tracing::error!(partition = p.0, ?position, error = %e, "a record cannot be read; skipped");
                send_answer(
                    inner,
                    to,
                    &Err(EngineError::Internal("a record cannot be read")),
                )
                .await;
                continue;
            }
        };
        let replay = match record {
            Record::Pair(change) => {
                let mut entry = inner
                    .engine
                    .catalog
                    .read()
                    .achievements
                    .get(&change.achievement)
                    .cloned();
                if entry.is_none() {
                    // Created on another node a moment ago, or deleted.
                    let _ = inner.catalog_sync().await;
                    entry = inner
                        .engine
                        .catalog
                        .read()
                        .achievements
                        .get(&change.achievement)
                        .cloned();
                }
                match entry {
                    Some(entry) => {
                        if !touched.iter().any(|e| Arc::ptr_eq(e, &entry)) {
                            touched.push(entry.clone());
                        }
                        ReplayRecord::Pair(change, entry)
                    }
                    None => {
                        send_answer(
                            inner,
                            to,
                            &Err(EngineError::not_found("achievement", "achievementId")),
                        )
                        .await;
                        continue;
                    }
                }
            }
            Record::Erase(e) => ReplayRecord::Erase(e),
            Record::Expire(e) => ReplayRecord::Expire(e),
            Record::Catalog(_) => {
                tracing::error!(
                    partition = p.0,
                    ?position,
                    "a catalog record in a partition's log; skipped"
                );
                continue;
            }
        };
        records.push((position, replay));
        replies.push(to);
    }
    inner.ownership.lag[p.0 as usize].store(pending, Ordering::Relaxed);
    if records.is_empty() {
        return Ok(next);
    }
    let applied =
        inner
            .engine
            .apply_logged(p, records)
            .await
            .map_err(|e| ClusterError::JetStream {
                what: "applying records",
                reason: e.to_string(),
            })?;
    // Recorded before the answers, so every node learns within moments of
    // an acknowledgement that the definition has progress (editing rule).
    inner.tell_progress(&touched).await;
    for (applied, to) in applied.into_iter().zip(replies) {
        if let Applied::Answer(answer) = applied {
            send_answer(inner, to, &answer).await;
        }
    }
    Ok(next)
}

async fn answer_query(inner: &Arc<Inner>, p: PartitionId, q: async_nats::Message) {
    let Some(reply) = q.reply.clone() else { return };
    let engine = &inner.engine;
    let answer = match wire::Query::decode(&q.payload) {
        Ok(wire::Read::Progress(customer, achievements)) => engine
            .local_progress(p, &customer, &achievements)
            .await
            .map(wire::ReadReply::Progress),
        Ok(wire::Read::Export(application, achievement)) => engine
            .local_export(p, application, achievement)
            .await
            .map(wire::ReadReply::Export),
        Err(e) => {
            tracing::error!(error = %e, "a read cannot be read");
            Err(EngineError::Internal("a read cannot be read"))
        }
    };
    let bytes = Bytes::from(wire::encode_reply(&answer));
    if let Err(e) = inner.client.publish(reply, bytes).await {
        tracing::debug!(error = %e, "cannot send a read's reply");
    }
}
