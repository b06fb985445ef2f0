//! The actor engine: shards on actix arbiters, pair actors, routing,
//! backpressure, the catalog and the log the engine runs on; the one facade
//! (`Engine`) the HTTP layer calls.
//!
//! Routing: customers are spread over a fixed number of partitions (a hash
//! of application + customer); a partition runs on one shard, so all of a
//! customer's pairs live there. Active pair actors are found through a
//! `DashMap` so HTTP workers send to them directly; other pairs are reached
//! through their shard, which activates them. Every queue is bounded: each
//! shard admits at most `queue_capacity` events in flight, beyond which
//! callers get `EngineError::Overloaded` (HTTP 429) and nothing is queued.
//!
//! Durability: the engine appends every change to its `Log` (a trait it
//! owns; `persist` and, later, a replicated log implement it) and answers
//! only once the change is durable. Pair changes are applied in memory first
//! and appended right after, on the pair's thread, so a read may see a
//! change a moment before it is durable (and, while the disk fails, changes
//! held for retry); the change's answer always waits. Catalog changes are
//! applied only once durable. `snapshots` holds the API that snapshots and
//! restores use; `reads` the progress and export reads.

pub mod actor;
pub mod catalog;
pub mod error;
pub mod feed;
pub mod keys;
pub mod log;
pub mod pair;
pub mod partition;
mod reads;
pub mod remote;
pub mod shard;
pub mod shard_log;
mod snapshots;
mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use catalog::CatalogRecord;
pub use catalog::{AchievementEntry, Catalog};
pub use error::EngineError;
use log::{Log, PartitionId, RecordRef, Stream};
use pair::{OpKind, PairKey, PairMessage};
use remote::{Answer, Remote};
use shard::{
    DropAchievement, EraseCustomer, ExportKeys, ExportRows, PairBatch, ReadCustomer, Shard,
};
use state::Admission;
pub use state::{EngineConfig, Shared, Stats};

use crate::clock::Clock;
use crate::domain::catalog::{ApiKeyInfo, Application, Campaign, CampaignPatch};
use crate::domain::{
    AchievementDraft, AchievementId, AchievementPatch, ApplicationId, CampaignId, CustomerId,
    EventId, EventResult, Increase, Iteration,
};

/// Tries at planning a catalog change while other nodes change it.
const CATALOG_ATTEMPTS: usize = 20;

/// An owner's answer to an event or a rollback.
fn event_answer(answer: Option<Result<Answer, EngineError>>) -> Result<EventResult, EngineError> {
    match answer {
        Some(Ok(Answer::Event(result))) => Ok(result),
        Some(Err(e)) => Err(e),
        _ => Err(EngineError::Internal("an event got another answer")),
    }
}

/// An increase addressed to an achievement.
#[derive(Debug, Clone)]
pub struct EventInput {
    pub customer: CustomerId,
    pub entry: Arc<AchievementEntry>,
    pub increase: Increase,
}

/// The engine facade.
#[derive(Clone)]
pub struct Engine {
    pub catalog: Arc<Catalog>,
    shards: Arc<Vec<Addr<Shard>>>,
    shared: Arc<Shared>,
    ready: Arc<AtomicBool>,
    /// Serialises catalog changes (plan → log → apply).
    catalog_writer: Arc<tokio::sync::Mutex<()>>,
    log: Arc<std::sync::RwLock<Option<Arc<dyn Log>>>>,
}

fn shard_gone(_: MailboxError) -> EngineError {
    EngineError::Internal("shard unavailable")
}

impl Engine {
    /// Starts the shards over the arbiters. Must run inside an actix system.
    pub fn start(config: EngineConfig, catalog: Catalog) -> Engine {
        let n = config.shards.max(1);
        let partitions = config.partitions.max(1);
        let shared = Arc::new(Shared {
            limits: config.limits,
            clock: config.clock,
            partitions,
            routes: Default::default(),
            stats: Stats::default(),
            idle_after: config.idle_after,
            activate_within: config.activate_within,
            freeze_after: config.freeze_after,
            queue_capacity: config.queue_capacity,
            inflight: (0..n).map(|_| Default::default()).collect(),
            pair_numbers: Default::default(),
            feed: Default::default(),
            remote: Default::default(),
        });
        let catalog = Arc::new(catalog);
        let arbiters: Vec<_> = (0..config.arbiters.clamp(1, n))
            .map(|_| Arbiter::new())
            .collect();
        let shards = (0..n)
            .map(|i| {
                let (shared, catalog) = (shared.clone(), catalog.clone());
                let arbiter = &arbiters[i % arbiters.len()];
                Shard::start_in_arbiter(&arbiter.handle(), move |_| {
                    Shard::new(i, n, partitions, shared, catalog)
                })
            })
            .collect();
        Engine {
            catalog,
            shards: Arc::new(shards),
            shared,
            ready: Arc::new(AtomicBool::new(true)),
            catalog_writer: Arc::default(),
            log: Arc::default(),
        }
    }

    /// Sends the feed every entry from now on (before a restore replays,
    /// so replayed records reach it too). Once.
    pub fn attach_feed(&self, sink: Arc<dyn feed::FeedSink>) -> Result<(), EngineError> {
        self.shared
            .feed
            .set(sink)
            .map_err(|_| EngineError::Internal("a feed is attached already"))
    }

    /// Runs the engine in a cluster: writes become records submitted to
    /// their partitions' logs, reads go to the partitions' owners, and
    /// catalog changes go through the cluster's catalog log (`remote`).
    /// Once, before serving.
    pub fn attach_remote(&self, remote: Arc<dyn Remote>) -> Result<(), EngineError> {
        self.shared
            .remote
            .set(remote)
            .map_err(|_| EngineError::Internal("a cluster is attached already"))
    }

    /// Resolves once the feed has stored everything the engine sent it so
    /// far (at once without a feed). A snapshot waits for this before it
    /// lets the log go: what the feed has not stored must stay replayable.
    pub async fn feed_barrier(&self) {
        if let Some(sink) = self.shared.feed.get() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            sink.send(feed::FeedMessage::Barrier(tx));
            let _ = rx.await;
        }
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// How many shards run the partitions.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// How many partitions customers are spread over.
    pub fn partitions(&self) -> u32 {
        self.shared.partitions
    }

    /// The partition of a customer of an application.
    pub fn partition_of(&self, app: ApplicationId, customer: &CustomerId) -> PartitionId {
        self.shared.partition_of(app, customer)
    }

    fn shard_of(&self, partition: PartitionId) -> usize {
        partition::shard_of(partition, self.shards.len())
    }

    fn log(&self) -> Option<Arc<dyn Log>> {
        self.log.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes a planned catalog change durable, then performs it. Changes are
    /// serialised, so what was validated when planning still holds.
    async fn commit<R>(
        &self,
        plan: impl Fn(&Catalog) -> Result<(CatalogRecord, R), EngineError>,
    ) -> Result<R, EngineError> {
        let _serial = self.catalog_writer.lock().await;
        if let Some(remote) = self.shared.remote().cloned() {
            // Planned on the catalog as followed; appended only if no other
            // node's change came in between, else followed and planned again.
            for _ in 0..CATALOG_ATTEMPTS {
                remote.catalog_sync().await?;
                let (record, out) = plan(&self.catalog)?;
                if remote.catalog_append(record).await? {
                    return Ok(out);
                }
            }
            return Err(EngineError::Unavailable(
                "the catalog is changing too fast to plan this change; retry",
            ));
        }
        let (record, out) = plan(&self.catalog)?;
        if let Some(log) = self.log() {
            let appended = log
                .append(&[(Stream::Catalog, RecordRef::Catalog(&record))])
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot append a catalog record");
                    EngineError::Unavailable("the write-ahead log cannot take writes now")
                })?;
            pair::after_durable(Some(appended.commit), ()).await?;
        }
        self.catalog.apply(&record);
        Ok(out)
    }

    pub async fn create_application(
        &self,
        name: String,
        timezone: chrono_tz::Tz,
        description: String,
    ) -> Result<Application, EngineError> {
        let now = self.now();
        self.commit(|c| c.plan_create_application(name.clone(), timezone, description.clone(), now))
            .await
    }

    /// A new integration key: its public part and the secret (shown once).
    pub async fn create_api_key(
        &self,
        app: ApplicationId,
        name: String,
    ) -> Result<(ApiKeyInfo, String), EngineError> {
        let now = self.now();
        self.commit(|c| c.plan_create_api_key(app, name.clone(), now))
            .await
    }

    pub async fn create_campaign(
        &self,
        app: ApplicationId,
        patch: CampaignPatch,
    ) -> Result<Campaign, EngineError> {
        let now = self.now();
        self.commit(|c| c.plan_create_campaign(app, patch.clone(), now))
            .await
    }

    pub async fn update_campaign(
        &self,
        app: ApplicationId,
        id: CampaignId,
        patch: CampaignPatch,
    ) -> Result<Campaign, EngineError> {
        self.commit(|c| c.plan_update_campaign(app, id, patch.clone()))
            .await
    }

    pub async fn create_achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        draft: AchievementDraft,
    ) -> Result<Arc<AchievementEntry>, EngineError> {
        let now = self.now();
        let id = self
            .commit(|c| c.plan_create_achievement(app, campaign, draft.clone(), now))
            .await?;
        self.catalog.achievement(app, campaign, id)
    }

    pub async fn update_achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        id: AchievementId,
        patch: &AchievementPatch,
    ) -> Result<Arc<AchievementEntry>, EngineError> {
        let now = self.now();
        self.commit(|c| c.plan_update_achievement(app, campaign, id, patch, now))
            .await?;
        self.catalog.achievement(app, campaign, id)
    }

    /// Removes an achievement and all its customers' progress.
    pub async fn delete_achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        id: AchievementId,
    ) -> Result<usize, EngineError> {
        let entry = self
            .commit(|c| c.plan_delete_achievement(app, campaign, id))
            .await?;
        self.drop_pairs(entry).await
    }

    /// "Now", as the engine sees it.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.shared.clock.now()
    }

    /// The engine's clock (manual in tests).
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    fn admit(&self, shard: usize, n: usize) -> Result<Admission<'_>, EngineError> {
        let counter = &self.shared.inflight[shard];
        let before = counter.fetch_add(n, Ordering::AcqRel);
        let admission = Admission { counter, n };
        if before + n > self.shared.queue_capacity && before > 0 {
            self.shared.stats.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(EngineError::Overloaded);
        }
        Ok(admission)
    }

    async fn run(&self, msg: PairMessage) -> Result<EventResult, EngineError> {
        if let Some(remote) = self.shared.remote() {
            let (p, record) = self.record_of(msg);
            let mut answers = remote.submit(vec![(p, record)]).await?;
            return event_answer(answers.pop());
        }
        let shard = self.shard_of(msg.partition);
        let _admission = self.admit(shard, 1)?;
        let direct = self.shared.routes.get(&msg.key).map(|a| a.clone());
        if let Some(actor) = direct {
            match actor.send(msg.clone()).await {
                Ok(pending) => {
                    let (result, commit) = pending?;
                    return pair::after_durable(commit, result).await;
                }
                // Passivated or restarted meanwhile: the message was not
                // handled, so it is safe to go through the shard.
                Err(MailboxError::Closed) => {}
                Err(MailboxError::Timeout) => return Err(EngineError::Internal("pair timed out")),
            }
        }
        let (result, commit) = self.shards[shard].send(msg).await.map_err(shard_gone)??;
        pair::after_durable(commit, result).await
    }

    /// A pair's operation as a record for a cluster's log: with the time it
    /// arrived and the campaign state seen here, numbered by its owner.
    fn record_of(&self, msg: PairMessage) -> (PartitionId, log::Record) {
        let now = self.now();
        let op = match msg.kind {
            OpKind::Increase(inc) => log::ChangeOp::Increase(inc),
            OpKind::Rollback(id) => log::ChangeOp::Rollback(id),
            #[cfg(test)]
            OpKind::Panic => unreachable!("injected panics run on a single node"),
        };
        let change = log::PairChange {
            achievement: msg.key.achievement,
            customer: msg.key.customer,
            pair_number: 0,
            now,
            campaign_running: msg.entry.campaign.running_at(now),
            op,
        };
        (msg.partition, log::Record::Pair(change))
    }

    fn message(
        &self,
        customer: CustomerId,
        entry: Arc<AchievementEntry>,
        kind: OpKind,
    ) -> PairMessage {
        PairMessage {
            partition: self.partition_of(entry.application_id, &customer),
            key: PairKey {
                achievement: entry.achievement.id,
                customer,
            },
            entry,
            kind,
        }
    }

    /// Applies one increase.
    pub async fn increase(&self, input: EventInput) -> Result<EventResult, EngineError> {
        self.run(self.message(
            input.customer,
            input.entry,
            OpKind::Increase(input.increase),
        ))
        .await
    }

    /// Applies many increases; results come back in input order. Events of
    /// one customer are applied in input order.
    pub async fn increase_batch(
        &self,
        inputs: Vec<EventInput>,
    ) -> Result<Vec<Result<EventResult, EngineError>>, EngineError> {
        if let Some(remote) = self.shared.remote() {
            let records = inputs
                .into_iter()
                .map(|i| {
                    self.record_of(self.message(i.customer, i.entry, OpKind::Increase(i.increase)))
                })
                .collect();
            let answers = remote.submit(records).await?;
            return Ok(answers.into_iter().map(|a| event_answer(Some(a))).collect());
        }
        let n = inputs.len();
        let mut per_shard: Vec<(Vec<usize>, PairBatch)> = (0..self.shards.len())
            .map(|_| {
                (
                    Vec::new(),
                    PairBatch {
                        entries: Vec::new(),
                        ops: Vec::new(),
                    },
                )
            })
            .collect();
        for (i, input) in inputs.into_iter().enumerate() {
            let partition = self.partition_of(input.entry.application_id, &input.customer);
            let (idx, batch) = &mut per_shard[self.shard_of(partition)];
            idx.push(i);
            // Batches usually address a few achievements: share one `Arc` each.
            let entry = match batch
                .entries
                .iter()
                .position(|e| Arc::ptr_eq(e, &input.entry))
            {
                Some(p) => p,
                None => {
                    batch.entries.push(input.entry.clone());
                    batch.entries.len() - 1
                }
            };
            batch.ops.push((
                PairKey {
                    achievement: input.entry.achievement.id,
                    customer: input.customer,
                },
                partition,
                OpKind::Increase(input.increase),
                entry,
            ));
        }
        let mut admissions = Vec::new();
        for (shard, (_, batch)) in per_shard.iter().enumerate() {
            if !batch.ops.is_empty() {
                admissions.push(self.admit(shard, batch.ops.len())?);
            }
        }
        let sends = per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, (_, batch))| !batch.ops.is_empty())
            .map(|(shard, (idx, batch))| {
                let addr = self.shards[shard].clone();
                async move {
                    let (answers, commit) = addr.send(batch).await.map_err(shard_gone)??;
                    pair::after_durable(commit, (idx, answers)).await
                }
            });
        let answers = futures_util::future::join_all(sends).await;
        let mut results: Vec<Option<Result<EventResult, EngineError>>> = vec![None; n];
        for answer in answers {
            let (idx, answer) = answer?;
            for (i, r) in idx.into_iter().zip(answer) {
                results[i] = Some(r);
            }
        }
        drop(admissions);
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(EngineError::Internal("missing batch result"))))
            .collect())
    }

    /// Rolls back an earlier increase.
    pub async fn rollback(
        &self,
        customer: CustomerId,
        entry: Arc<AchievementEntry>,
        event_id: EventId,
    ) -> Result<EventResult, EngineError> {
        self.run(self.message(customer, entry, OpKind::Rollback(event_id)))
            .await
    }

    /// Erases a customer's data in an application (`deleteCustomerData`):
    /// every pair, its history and remembered event ids, durably. Returns
    /// how many pairs were erased (0 for an unknown customer).
    pub async fn erase_customer(
        &self,
        app: ApplicationId,
        customer: CustomerId,
    ) -> Result<usize, EngineError> {
        let partition = self.partition_of(app, &customer);
        // Listed now: an achievement created after this point is concurrent
        // with the erasure, and its progress comes after it.
        let achievements = self
            .catalog
            .achievements_of_app(app)
            .iter()
            .map(|e| e.achievement.id)
            .collect();
        if let Some(remote) = self.shared.remote() {
            let erasure = log::Erasure {
                application: app,
                customer,
                achievements,
            };
            let answer = remote
                .submit(vec![(partition, log::Record::Erase(erasure))])
                .await?
                .pop();
            return match answer {
                Some(Ok(Answer::Erased(n))) => Ok(n),
                Some(Err(e)) => Err(e),
                _ => Err(EngineError::Internal("an erasure got another answer")),
            };
        }
        let shard = self.shard_of(partition);
        let _admission = self.admit(shard, 1)?;
        let (erased, commit) = self.shards[shard]
            .send(EraseCustomer {
                application: app,
                customer,
                partition,
                achievements,
            })
            .await
            .map_err(shard_gone)??;
        pair::after_durable(commit, erased).await
    }

    /// Removes all customers' progress in a deleted achievement.
    pub async fn drop_pairs(&self, entry: Arc<AchievementEntry>) -> Result<usize, EngineError> {
        let sends = self.shards.iter().map(|s| {
            s.send(DropAchievement {
                entry: entry.clone(),
            })
        });
        let mut removed = 0;
        for r in futures_util::future::join_all(sends).await {
            removed += r.map_err(shard_gone)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
