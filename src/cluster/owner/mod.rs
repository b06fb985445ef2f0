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
//! to, and a snapshot commit needs the lease's current revision. Nor can
//! it answer a read with state that may be stale: each partition task
//! stops serving at its lease's local deadline — nine tenths of the lease
//! after the last acquisition or renewal *was sent*, earlier than the
//! bucket can let the key expire — unless a renewal moved the deadline.
//! Renewals have a loop of their own and go out together, so neither a
//! slow node listing (it needs the JetStream API, which waits for a meta
//! leader after a server is lost) nor one slow lease holds them back.

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

mod partition;

use partition::serve;

struct Held {
    lease: Lease,
    renewed: Instant,
    /// When the partition task stops serving unless renewed.
    deadline: watch::Sender<Instant>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<Position, ClusterError>>,
}

/// The partitions this node holds, and its counters.
pub struct Ownership {
    held: Mutex<HashMap<u32, Held>>,
    serving: Vec<AtomicBool>,
    lag: Vec<AtomicU64>,
    leaving: AtomicBool,
    /// Held by a renewal pass, a hand-over and a drop, so a lease is never
    /// renewed while it is being given up.
    lease_ops: tokio::sync::Mutex<()>,
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
            lease_ops: tokio::sync::Mutex::new(()),
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

/// The ownership loops; end when the node leaves.
pub(super) async fn run(inner: Arc<Inner>) {
    // Leases are renewed every third of their length; free partitions are
    // looked for every second (a node that left hands its partitions over
    // at once, and they should not wait for a long lease's tick).
    let tick = (inner.config.lease / 3).clamp(Duration::from_millis(300), Duration::from_secs(1));
    let renewing = tokio::spawn({
        let inner = inner.clone();
        async move {
            let every = (inner.config.lease / 6).max(Duration::from_millis(50));
            while !inner.ownership.leaving.load(Ordering::Acquire) {
                renew(&inner).await;
                tokio::time::sleep(every).await;
            }
        }
    });
    while !inner.ownership.leaving.load(Ordering::Acquire) {
        if let Err(e) = step(&inner).await {
            tracing::warn!(error = %e, "ownership step failed; trying again");
        }
        tokio::time::sleep(tick).await;
    }
    let _ = renewing.await;
}

async fn step(inner: &Arc<Inner>) -> Result<(), ClusterError> {
    let me = inner.config.node_id.clone();
    let beat = inner.nodes.heartbeat(&me, &inner.config.address).await;
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
            let sent = Instant::now();
            if let Some(lease) = inner.leases.acquire(p, &me).await? {
                start(inner, p, lease, sent);
            }
        } else if !mine && holds && live.contains(&me) {
            // Another live node is this partition's owner now (it joined):
            // hand over without making it wait for the lease to run out.
            hand_over(inner, p).await;
        }
    }
    Ok(())
}

/// How long a lease is held for sure after its acquisition or renewal
/// was sent: the bucket lets the key expire `lease` after it stored the
/// write, which is later; the tenth left is a margin for timers.
fn held_for(lease: Duration) -> Duration {
    lease - lease / 10
}

/// Renews every lease due (all at once); a lost one, or one not renewed
/// for the lease's length, is dropped at once (another node may hold it
/// now).
async fn renew(inner: &Arc<Inner>) {
    let _one = inner.ownership.lease_ops.lock().await;
    if inner.ownership.leaving.load(Ordering::Acquire) {
        return;
    }
    let held: Vec<(u32, Lease, Instant, bool)> = inner
        .ownership
        .lock()
        .iter()
        .map(|(p, h)| (*p, h.lease.clone(), h.renewed, h.task.is_finished()))
        .collect();
    let mut due = Vec::new();
    for (p, lease, renewed, finished) in held {
        let p = PartitionId(p);
        if finished {
            // Its task failed or outlived its lease (logged): let go, and
            // take it again afresh.
            let_go(inner, p, true).await;
        } else if renewed.elapsed() >= inner.config.lease / 3 {
            due.push((p, lease, renewed));
        }
    }
    let sent = Instant::now();
    let results = futures_util::future::join_all(
        due.iter()
            .map(|(_, lease, _)| async move { inner.leases.renew(lease).await }),
    )
    .await;
    for ((p, _, renewed), result) in due.into_iter().zip(results) {
        match result {
            Ok(Some(lease)) => {
                if let Some(h) = inner.ownership.lock().get_mut(&p.0) {
                    h.lease = lease;
                    h.renewed = sent;
                    let _ = h.deadline.send(sent + held_for(inner.config.lease));
                }
            }
            Ok(None) => {
                tracing::warn!(partition = p.0, "lease lost; dropping the partition");
                let_go(inner, p, false).await;
            }
            Err(e) if renewed.elapsed() >= inner.config.lease => {
                tracing::warn!(partition = p.0, error = %e, "lease not renewed in time; dropping the partition");
                let_go(inner, p, false).await;
            }
            Err(e) => tracing::debug!(partition = p.0, error = %e, "lease renewal failed"),
        }
    }
}

fn start(inner: &Arc<Inner>, p: PartitionId, lease: Lease, sent: Instant) {
    let (stop, stopped) = watch::channel(false);
    let (deadline, until) = watch::channel(sent + held_for(inner.config.lease));
    let task = tokio::spawn(serve(inner.clone(), p, stopped, until));
    inner.ownership.lock().insert(
        p.0,
        Held {
            lease,
            renewed: sent,
            deadline,
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

/// Stops serving a partition without a hand-over (its lease is lost, or
/// its task failed); the caller holds `lease_ops`.
async fn let_go(inner: &Arc<Inner>, p: PartitionId, release: bool) {
    // Not held (any more): whoever stopped it finishes the job.
    let Some((lease, _)) = stop(inner, p).await else {
        return;
    };
    inner.publisher.discard(p);
    if release {
        let _ = inner.leases.release(&lease).await;
    }
    if let Err(e) = inner.engine.unload_partition(p).await {
        tracing::error!(partition = p.0, error = %e, "cannot unload a partition");
    }
}

/// Stops applying, writes the partition's snapshot, releases the lease.
async fn hand_over(inner: &Arc<Inner>, p: PartitionId) {
    let _one = inner.ownership.lease_ops.lock().await;
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
