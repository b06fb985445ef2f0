//! The actor engine: shards on actix arbiters, pair actors, routing,
//! backpressure, and the catalog; the one facade (`Engine`) the HTTP layer
//! calls.
//!
//! Routing: a customer's pairs all live in one shard, chosen by a hash of
//! (application, customer). Active pair actors are found through a `DashMap`
//! so HTTP workers send to them directly; other pairs are reached through
//! their shard, which activates them. Every queue is bounded: each shard
//! admits at most `queue_capacity` events in flight, beyond which callers get
//! `EngineError::Overloaded` (HTTP 429) and nothing is queued.

pub mod catalog;
pub mod error;
pub mod keys;
pub mod pair;
pub mod shard;
#[doc(hidden)]
pub mod testing;
pub mod timers;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;

use catalog::CatalogRecord;
pub use catalog::{AchievementEntry, Catalog};
pub use error::EngineError;
use pair::{OpKind, PairActor, PairKey, PairOp};
use shard::{
    DropAchievement, EraseCustomer, ExportKeys, ExportRows, PairBatch, ReadCustomer, Shard,
};

use crate::clock::Clock;
use crate::domain::catalog::{ApiKeyInfo, Application, Campaign, CampaignPatch};
use crate::domain::{
    AchievementDraft, AchievementId, AchievementPatch, ApplicationId, CampaignId, CustomerId,
    EventId, EventResult, Increase, Iteration, Limits,
};
use crate::persist::model;
use crate::persist::wal::Wal;

/// Engine tunables.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Shards, each with its own log; they are spread over the arbiters. A
    /// data directory keeps the count it was first started with
    /// (`persist::store::shard_count`).
    pub shards: usize,
    /// Actix arbiters (threads) that run the shards and pair actors.
    pub arbiters: usize,
    pub limits: Limits,
    /// Events admitted in flight per shard before callers get 429.
    pub queue_capacity: usize,
    /// How long an active pair actor may sit idle before it is passivated.
    pub idle_after: Duration,
    /// Where the engine reads "now" (the system clock, or a manual one in
    /// tests).
    pub clock: Clock,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            arbiters: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limits: Limits::default(),
            queue_capacity: 65_536,
            idle_after: Duration::from_secs(30),
            clock: Clock::system(),
        }
    }
}

/// Counters the engine keeps about itself.
#[derive(Debug, Default)]
pub struct Stats {
    pub pairs: AtomicI64,
    pub actors: AtomicI64,
    pub panics: AtomicU64,
    pub expiries: AtomicU64,
    pub passivations: AtomicU64,
    pub overloaded: AtomicU64,
    /// Pairs erased by `deleteCustomerData` (not counting replay).
    pub erased: AtomicU64,
}

impl Stats {
    fn pair_added(&self, _shard: usize) {
        self.pairs.fetch_add(1, Ordering::Relaxed);
    }
    fn pair_removed(&self, _shard: usize) {
        self.pairs.fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn actor_started(&self) {
        self.actors.fetch_add(1, Ordering::Relaxed);
    }
    fn actor_stopped(&self) {
        self.actors.fetch_sub(1, Ordering::Relaxed);
    }
    fn count_panic(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }
    fn count_expiries(&self, n: u64) {
        self.expiries.fetch_add(n, Ordering::Relaxed);
    }
    fn count_erased(&self) {
        self.erased.fetch_add(1, Ordering::Relaxed);
    }
    fn count_passivation(&self) {
        self.passivations.fetch_add(1, Ordering::Relaxed);
    }
}

/// State shared by the engine facade, its shards and pair actors.
pub struct Shared {
    pub limits: Limits,
    pub clock: Clock,
    pub routes: DashMap<PairKey, Addr<PairActor>, ahash::RandomState>,
    pub stats: Stats,
    pub idle_after: Duration,
    pub queue_capacity: usize,
    inflight: Vec<AtomicUsize>,
    pair_numbers: AtomicU64,
}

impl Shared {
    /// A new pair's number (its progress tracker ids derive from it).
    pub fn next_pair_number(&self) -> u64 {
        self.pair_numbers.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The highest pair number handed out.
    pub fn pair_numbers(&self) -> u64 {
        self.pair_numbers.load(Ordering::Relaxed)
    }

    /// Events admitted and not yet answered, per shard (for metrics).
    pub fn inflight(&self) -> Vec<usize> {
        self.inflight
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Makes sure new pair numbers come after `n` (after a restore).
    pub fn raise_pair_numbers(&self, n: u64) {
        self.pair_numbers.fetch_max(n, Ordering::Relaxed);
    }
}

/// The hash that places a customer in a shard: FNV-1a over the application
/// id and the customer id. It must never change, because each shard's log
/// holds the records of the pairs this hash gave it (std's hasher is not
/// guaranteed stable across Rust versions).
pub fn partition_hash(app: ApplicationId, customer: &CustomerId) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    app.0
        .to_le_bytes()
        .iter()
        .chain(customer.as_str().as_bytes())
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Holds a shard's admission slots until the work is done.
struct Admission<'a> {
    counter: &'a AtomicUsize,
    n: usize,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.n, Ordering::AcqRel);
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
    /// Serialises catalog changes; holds the next catalog log position.
    catalog_writer: Arc<tokio::sync::Mutex<u64>>,
    catalog_wal: Arc<std::sync::RwLock<Option<Wal>>>,
}

impl Engine {
    /// Starts one shard per arbiter. Must run inside an actix system.
    pub fn start(config: EngineConfig, catalog: Catalog) -> Engine {
        let n = config.shards.max(1);
        let shared = Arc::new(Shared {
            limits: config.limits,
            clock: config.clock,
            routes: DashMap::default(),
            stats: Stats::default(),
            idle_after: config.idle_after,
            queue_capacity: config.queue_capacity,
            inflight: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            pair_numbers: AtomicU64::new(0),
        });
        let arbiters: Vec<_> = (0..config.arbiters.clamp(1, n))
            .map(|_| Arbiter::new())
            .collect();
        let shards = (0..n)
            .map(|i| {
                let shared = shared.clone();
                let arbiter = &arbiters[i % arbiters.len()];
                Shard::start_in_arbiter(&arbiter.handle(), move |_| Shard::new(i, shared))
            })
            .collect();
        Engine {
            catalog: Arc::new(catalog),
            shards: Arc::new(shards),
            shared,
            ready: Arc::new(AtomicBool::new(true)),
            catalog_writer: Arc::new(tokio::sync::Mutex::new(1)),
            catalog_wal: Arc::new(std::sync::RwLock::new(None)),
        }
    }

    /// The shards' addresses, by index.
    pub fn shard_addrs(&self) -> &[Addr<Shard>] {
        &self.shards
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The shard that holds a customer's pairs.
    pub fn shard_for(&self, app: ApplicationId, customer: &CustomerId) -> usize {
        self.shard_of(app, customer)
    }

    /// Starts logging catalog changes from `next_lsn` on.
    pub async fn attach_catalog_log(&self, wal: Wal, next_lsn: u64) {
        let mut writer = self.catalog_writer.lock().await;
        *writer = next_lsn;
        *self.catalog_wal.write().unwrap_or_else(|e| e.into_inner()) = Some(wal);
    }

    /// The catalog as of a log position: everything below it is included.
    pub fn catalog_at_position(&self) -> (crate::persist::model::CatalogV2, u64) {
        let writer = self.catalog_writer.blocking_lock();
        let state = crate::persist::model::CatalogV2::from(&*self.catalog.read());
        (state, *writer)
    }

    /// Makes a planned catalog change durable, then performs it. Changes are
    /// serialised, so what was validated when planning still holds.
    async fn commit<R>(
        &self,
        plan: impl FnOnce(&Catalog) -> Result<(CatalogRecord, R), EngineError>,
    ) -> Result<R, EngineError> {
        let mut next_lsn = self.catalog_writer.lock().await;
        let (record, out) = plan(&self.catalog)?;
        let wal = self
            .catalog_wal
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(wal) = wal {
            let bytes = model::encode_record(&model::CatalogRecordV2::from(&record))
                .map_err(|_| EngineError::Internal("cannot encode a catalog record"))?;
            let durable = wal.append(vec![(*next_lsn, bytes)]).map_err(|e| {
                tracing::error!(error = %e, "cannot queue a catalog record");
                EngineError::Unavailable("the write-ahead log cannot take writes now")
            })?;
            pair::after_durable(Some(durable), ()).await?;
            *next_lsn += 1;
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
        self.commit(|c| c.plan_create_application(name, timezone, description, now))
            .await
    }

    /// A new integration key: its public part and the secret (shown once).
    pub async fn create_api_key(
        &self,
        app: ApplicationId,
        name: String,
    ) -> Result<(ApiKeyInfo, String), EngineError> {
        let now = self.now();
        self.commit(|c| c.plan_create_api_key(app, name, now)).await
    }

    pub async fn create_campaign(
        &self,
        app: ApplicationId,
        patch: CampaignPatch,
    ) -> Result<Campaign, EngineError> {
        let now = self.now();
        self.commit(|c| c.plan_create_campaign(app, patch, now))
            .await
    }

    pub async fn update_campaign(
        &self,
        app: ApplicationId,
        id: CampaignId,
        patch: CampaignPatch,
    ) -> Result<Campaign, EngineError> {
        self.commit(|c| c.plan_update_campaign(app, id, patch))
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
            .commit(|c| c.plan_create_achievement(app, campaign, draft, now))
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

    fn shard_of(&self, app: ApplicationId, customer: &CustomerId) -> usize {
        (partition_hash(app, customer) % self.shards.len() as u64) as usize
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

    async fn run(&self, op: PairOp) -> Result<EventResult, EngineError> {
        let shard = self.shard_of(op.entry.application_id, &op.key.customer);
        let _admission = self.admit(shard, 1)?;
        let direct = self.shared.routes.get(&op.key).map(|a| a.clone());
        if let Some(actor) = direct {
            match actor.send(op.clone()).await {
                Ok(pending) => {
                    let (result, durable) = pending?;
                    return pair::after_durable(durable, result).await;
                }
                // Passivated or restarted meanwhile: the message was not
                // handled, so it is safe to go through the shard.
                Err(MailboxError::Closed) => {}
                Err(MailboxError::Timeout) => return Err(EngineError::Internal("pair timed out")),
            }
        }
        let (result, durable) = self.shards[shard]
            .send(op)
            .await
            .map_err(|_| EngineError::Internal("shard unavailable"))??;
        pair::after_durable(durable, result).await
    }

    /// Applies one increase.
    pub async fn increase(&self, input: EventInput) -> Result<EventResult, EngineError> {
        self.run(PairOp {
            key: PairKey {
                achievement: input.entry.achievement.id,
                customer: input.customer,
            },
            entry: input.entry,
            kind: OpKind::Increase(input.increase),
        })
        .await
    }

    /// Applies many increases; results come back in input order. Events of
    /// one customer are applied in input order.
    pub async fn increase_batch(
        &self,
        inputs: Vec<EventInput>,
    ) -> Result<Vec<Result<EventResult, EngineError>>, EngineError> {
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
            let shard = self.shard_of(input.entry.application_id, &input.customer);
            let (idx, batch) = &mut per_shard[shard];
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
                async move { (idx, addr.send(batch).await) }
            });
        let sends = sends.map(|f| async move {
            let (idx, answer) = f.await;
            let (answer, durable) =
                answer.map_err(|_| EngineError::Internal("shard unavailable"))??;
            pair::after_durable(durable, (idx, answer)).await
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
        self.run(PairOp {
            key: PairKey {
                achievement: entry.achievement.id,
                customer,
            },
            entry,
            kind: OpKind::Rollback(event_id),
        })
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
        let shard = self.shard_of(app, &customer);
        let _admission = self.admit(shard, 1)?;
        // Listed now: an achievement created after this point is concurrent
        // with the erasure, and its progress comes after it.
        let achievements = self
            .catalog
            .achievements_of_app(app)
            .iter()
            .map(|e| e.achievement.id)
            .collect();
        let (erased, durable) = self.shards[shard]
            .send(EraseCustomer {
                application: app,
                customer,
                achievements,
            })
            .await
            .map_err(|_| EngineError::Internal("shard unavailable"))??;
        pair::after_durable(durable, erased).await
    }

    /// A customer's iterations (newest first, as of now) in each achievement.
    pub async fn customer_progress(
        &self,
        app: ApplicationId,
        customer: &CustomerId,
        entries: &[Arc<AchievementEntry>],
    ) -> Result<Vec<Vec<Iteration>>, EngineError> {
        let shard = self.shard_of(app, customer);
        self.shards[shard]
            .send(ReadCustomer {
                customer: customer.clone(),
                achievements: entries.iter().map(|e| e.achievement.id).collect(),
            })
            .await
            .map_err(|_| EngineError::Internal("shard unavailable"))
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
            removed += r.map_err(|_| EngineError::Internal("shard unavailable"))?;
        }
        Ok(removed)
    }

    /// The customers with progress in an achievement, per shard, sorted.
    pub async fn export_keys(
        &self,
        entry: &AchievementEntry,
    ) -> Result<Vec<Vec<CustomerId>>, EngineError> {
        let sends = self.shards.iter().map(|s| {
            s.send(ExportKeys {
                achievement: entry.achievement.id,
            })
        });
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .map(|r| r.map_err(|_| EngineError::Internal("shard unavailable")))
            .collect()
    }

    /// The iterations of some customers of one shard (from `export_keys`).
    pub async fn export_rows(
        &self,
        shard: usize,
        entry: &AchievementEntry,
        customers: Vec<CustomerId>,
    ) -> Result<Vec<(CustomerId, Vec<Iteration>)>, EngineError> {
        self.shards[shard]
            .send(ExportRows {
                achievement: entry.achievement.id,
                customers,
            })
            .await
            .map_err(|_| EngineError::Internal("shard unavailable"))
    }
}

#[cfg(test)]
mod tests;
