//! What the engine's parts share: its tunables, its counters, and the state
//! every shard and actor reads (limits, clock, routing to active actors,
//! admission counters, pair numbers).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use dashmap::DashMap;

use super::actor::PairActor;
use super::feed::FeedSink;
use super::log::PartitionId;
use super::pair::PairKey;
use super::partition::{partition_of, DEFAULT_PARTITIONS};
use super::remote::Remote;
use crate::clock::Clock;
use crate::domain::{ApplicationId, CustomerId, Limits};

/// Engine tunables.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Shards: actors that run partitions, spread over the arbiters.
    pub shards: usize,
    /// Partitions customers are spread over (fixed for a data directory's
    /// life; partition `p` runs on shard `p % shards`).
    pub partitions: u32,
    /// Actix arbiters (threads) that run the shards and pair actors.
    pub arbiters: usize,
    pub limits: Limits,
    /// Events admitted in flight per shard before callers get 429.
    pub queue_capacity: usize,
    /// How long an active pair actor may sit idle before it is passivated.
    pub idle_after: Duration,
    /// A pair whose messages come less than this apart gets an actor of its
    /// own (`None`: never; every message goes through its shard).
    pub activate_within: Option<Duration>,
    /// A pair untouched this long is frozen into a compact form (about a
    /// third of a live pair's memory) until its next message (`None`:
    /// never). Restored pairs start frozen.
    pub freeze_after: Option<Duration>,
    /// Where the engine reads "now" (the system clock, or a manual one in
    /// tests).
    pub clock: Clock,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            partitions: DEFAULT_PARTITIONS,
            arbiters: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limits: Limits::default(),
            queue_capacity: 65_536,
            idle_after: Duration::from_secs(30),
            activate_within: Some(Duration::from_secs(1)),
            freeze_after: Some(Duration::from_secs(60)),
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
    /// Pairs held frozen (idle, compact), as the shards last told (at each
    /// tick).
    pub frozen: AtomicI64,
}

impl Stats {
    pub(super) fn pair_added(&self, _shard: usize) {
        self.pairs.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn pair_removed(&self, _shard: usize) {
        self.pairs.fetch_sub(1, Ordering::Relaxed);
    }
    pub(super) fn actor_started(&self) {
        self.actors.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn actor_stopped(&self) {
        self.actors.fetch_sub(1, Ordering::Relaxed);
    }
    pub(super) fn count_panic(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn count_expiries(&self, n: u64) {
        self.expiries.fetch_add(n, Ordering::Relaxed);
    }
    pub(super) fn frozen_changed(&self, by: i64) {
        self.frozen.fetch_add(by, Ordering::Relaxed);
    }
    pub(super) fn count_erased(&self) {
        self.erased.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn count_passivation(&self) {
        self.passivations.fetch_add(1, Ordering::Relaxed);
    }
}

/// State shared by the engine facade, its shards and pair actors.
pub struct Shared {
    pub limits: Limits,
    pub clock: Clock,
    pub partitions: u32,
    pub routes: DashMap<PairKey, Addr<PairActor>, ahash::RandomState>,
    pub stats: Stats,
    pub idle_after: Duration,
    pub activate_within: Option<Duration>,
    pub freeze_after: Option<Duration>,
    pub queue_capacity: usize,
    pub(super) inflight: Vec<AtomicUsize>,
    pub(super) pair_numbers: AtomicU64,
    /// Where feed entries go, once attached.
    pub(super) feed: std::sync::OnceLock<Arc<dyn FeedSink>>,
    /// The cluster this engine's partitions live in, once attached.
    pub(super) remote: std::sync::OnceLock<Arc<dyn Remote>>,
}

impl Shared {
    /// A new pair's number (its progress tracker ids derive from it).
    pub fn next_pair_number(&self) -> u64 {
        self.pair_numbers.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The feed's sink, if one is attached.
    pub fn feed(&self) -> Option<&Arc<dyn FeedSink>> {
        self.feed.get()
    }

    /// The cluster, if the engine runs in one.
    pub fn remote(&self) -> Option<&Arc<dyn Remote>> {
        self.remote.get()
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

    /// The partition of a customer of an application.
    pub fn partition_of(&self, app: ApplicationId, customer: &CustomerId) -> PartitionId {
        partition_of(app, customer, self.partitions)
    }
}

/// Holds a shard's admission slots until the work is done.
pub(super) struct Admission<'a> {
    pub(super) counter: &'a AtomicUsize,
    pub(super) n: usize,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.n, Ordering::AcqRel);
    }
}
