//! A shard: the supervisor of the pairs whose customers hash to it.
//!
//! Owns: the state cells of its pairs (active or passive), their activation and
//! passivation, the one timer structure for passive pairs' period ends, its
//! write-ahead log (numbering records), the shard-wide reads (a customer's
//! pairs, exports, deletion), and its part of snapshots and restores. Several
//! shards may share an actix arbiter; every pair of a customer lives in the
//! same shard.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use super::catalog::AchievementEntry;
use super::error::EngineError;
use super::pair::{
    apply_op, respond, run_op, OpKind, OpRef, PairActor, PairCell, PairKey, PairOp, Passivate,
    Pending, ShardLog, StepOutcome,
};
use super::timers::Timers;
use super::Shared;
use crate::domain::tracker::TrackerParts;
use crate::domain::{
    AchievementId, ApplicationId, CustomerId, EventResult, Iteration, PairTracker, Reason,
};
use crate::persist::codec;
use crate::persist::model::{EraseV2, Erasure, PairRecord, PairRecordOp, PairV1, TrackerV1};
use crate::persist::wal::{Durable, Wal};

/// How often the shard fires due timers and looks for idle actors.
const TICK: Duration = Duration::from_millis(500);

/// A pair gets an actor when a message follows its previous one this soon.
const ACTIVATE_WITHIN: Duration = Duration::from_secs(1);

struct Slot {
    cell: Rc<PairCell>,
    actor: Option<Addr<PairActor>>,
}

/// The supervisor actor of one shard.
/// A fast hasher seeded per process (keys come from clients).
type Hasher = ahash::RandomState;

pub struct Shard {
    index: usize,
    pairs: IndexMap<PairKey, Slot, Hasher>,
    active: HashSet<PairKey, Hasher>,
    /// Period ends of every pair of the shard, active or passive.
    timers: Rc<RefCell<Timers>>,
    log: Rc<ShardLog>,
    /// Bumped when pairs are removed, which moves positions in `pairs` and so
    /// invalidates a snapshot walking them.
    removals: u64,
    shared: Arc<Shared>,
}

impl Shard {
    pub fn new(index: usize, shared: Arc<Shared>) -> Shard {
        Shard {
            index,
            pairs: IndexMap::default(),
            active: HashSet::default(),
            timers: Rc::default(),
            log: ShardLog::new(),
            removals: 0,
            shared,
        }
    }

    /// The position of a pair's slot, created if it is missing.
    fn ensure(&mut self, key: &PairKey, number: impl FnOnce() -> u64) -> (usize, bool) {
        match self.pairs.get_index_of(key) {
            Some(i) => (i, false),
            None => {
                let (i, _) = self.pairs.insert_full(
                    key.clone(),
                    Slot {
                        cell: PairCell::new(PairTracker::new(number())),
                        actor: None,
                    },
                );
                (i, true)
            }
        }
    }

    /// After a step on the pair at `index`: keeps a new pair only if it has
    /// progress, counts a pair that has progress again (`was_empty`: new,
    /// or erased before), and arms the shard timer of a passive pair whose
    /// deadline changed.
    fn settle(&mut self, index: usize, created: bool, was_empty: bool) {
        let Some((_, slot)) = self.pairs.get_index(index) else {
            return;
        };
        let keep = slot.cell.tracker.borrow().has_progress();
        if created && !keep {
            // The new slot is the last one, so removing it moves nothing.
            self.pairs.swap_remove_index(index);
            return;
        }
        if was_empty && keep {
            self.shared.stats.pair_added(self.index);
        }
        self.timers.borrow_mut().arm(&slot.cell);
    }

    /// Runs an operation on a pair in this shard's thread. Returns the
    /// pair's position (if it exists after the step) with the outcome.
    fn run_inline(&mut self, op: OpRef<'_>, now: DateTime<Utc>) -> (Option<usize>, StepOutcome) {
        if matches!(op.kind, OpKind::Rollback(_)) && !self.pairs.contains_key(op.key) {
            return (
                None,
                Ok((EventResult::rejected(Reason::UnknownEvent), None, 0)),
            );
        }
        let shared = self.shared.clone();
        let (index, created) = self.ensure(op.key, || shared.next_pair_number());
        let cell = self.pairs[index].cell.clone();
        let was_empty = created || !cell.tracker.borrow().has_progress();
        let outcome = run_op(&cell, op, &self.shared, &self.log, now);
        self.settle(index, created, was_empty);
        let kept = index < self.pairs.len();
        (kept.then_some(index), outcome)
    }

    fn activate(&mut self, key: &PairKey, ctx: &mut Context<Self>) {
        let Some(slot) = self.pairs.get_mut(key) else {
            return;
        };
        if slot.actor.is_some() {
            return;
        }
        let actor = PairActor::new(
            key.clone(),
            slot.cell.clone(),
            self.shared.clone(),
            self.log.clone(),
            self.timers.clone(),
            ctx.address(),
        )
        .start();
        self.shared.stats.actor_started();
        slot.actor = Some(actor.clone());
        self.active.insert(key.clone());
        self.shared.routes.insert(key.clone(), actor);
    }

    fn deactivate(&mut self, key: &PairKey) -> Option<Addr<PairActor>> {
        self.active.remove(key);
        self.shared.routes.remove(key);
        self.pairs.get_mut(key)?.actor.take()
    }

    /// The achievements among `achievements` in which the customer has a pair
    /// with progress; in replay (`after`), only pairs last changed before
    /// that log position (a pair changed after the erasure is a new one).
    fn erasable(
        &self,
        customer: &CustomerId,
        achievements: &[AchievementId],
        after: Option<u64>,
    ) -> Vec<AchievementId> {
        let mut key = PairKey {
            achievement: AchievementId(0),
            customer: customer.clone(),
        };
        achievements
            .iter()
            .copied()
            .filter(|a| {
                key.achievement = *a;
                self.pairs.get(&key).is_some_and(|slot| {
                    after.is_none_or(|l| slot.cell.last_lsn.get() < l)
                        && slot.cell.tracker.borrow().has_progress()
                })
            })
            .collect()
    }

    /// Empties a customer's pairs (from `erasable`) in place: slots stay (an
    /// active actor keeps its cell, a snapshot in progress keeps its
    /// positions) and are dropped when the next snapshot starts. `lsn` is the
    /// erasure's log position (0 without a log).
    fn erase(
        &mut self,
        customer: &CustomerId,
        achievements: &[AchievementId],
        lsn: u64,
        live: bool,
    ) {
        let mut key = PairKey {
            achievement: AchievementId(0),
            customer: customer.clone(),
        };
        for a in achievements {
            key.achievement = *a;
            let Some(slot) = self.pairs.get(&key) else {
                continue;
            };
            // Live, the next progress starts a pair with a new number (new
            // progress tracker ids); replay takes the number from the record
            // of that progress.
            let number = if live {
                self.shared.stats.count_erased();
                self.shared.next_pair_number()
            } else {
                0
            };
            *slot.cell.tracker.borrow_mut() = PairTracker::new(number);
            // Its timer entry, if any, is now stale.
            slot.cell.armed.set(None);
            slot.cell.last_lsn.set(lsn);
            self.shared.stats.pair_removed(self.index);
        }
    }

    /// Drops the slots of erased pairs (no progress, no actor). Positions
    /// move, so this runs only where no snapshot walks them.
    fn purge_empty(&mut self) {
        let before = self.pairs.len();
        self.pairs
            .retain(|_, s| s.actor.is_some() || s.cell.tracker.borrow().has_progress());
        if self.pairs.len() != before {
            self.removals += 1;
        }
    }

    fn on_tick(&mut self) {
        let expired = self.timers.borrow_mut().fire(self.shared.clock.now());
        self.shared.stats.count_expiries(expired);
        let idle_after = self.shared.idle_after;
        let idle: Vec<PairKey> = self
            .active
            .iter()
            .filter(|k| {
                self.pairs
                    .get(*k)
                    .is_none_or(|s| s.cell.last_active.get().elapsed() >= idle_after)
            })
            .cloned()
            .collect();
        for key in idle {
            if let Some(actor) = self.deactivate(&key) {
                actor.do_send(Passivate);
                self.shared.stats.count_passivation();
            }
        }
    }
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Admission control in `Engine` bounds what is queued here; the
        // mailbox must never make a sender wait below that bound.
        ctx.set_mailbox_capacity(self.shared.queue_capacity + 64);
        ctx.run_interval(TICK, |shard, _| shard.on_tick());
    }
}

impl Handler<PairOp> for Shard {
    type Result = Result<Pending, EngineError>;

    fn handle(&mut self, op: PairOp, ctx: &mut Self::Context) -> Self::Result {
        // A pair whose previous message came within `ACTIVATE_WITHIN` is hot:
        // it gets an actor, so its next messages skip the shard. Cold pairs
        // are served here without one, which keeps scattered traffic over
        // millions of pairs from creating an actor per event.
        let hot = self
            .pairs
            .get(&op.key)
            .is_some_and(|s| s.cell.last_active.get().elapsed() < ACTIVATE_WITHIN);
        let (index, outcome) = self.run_inline(op.as_ref(), self.shared.clock.now());
        if matches!(outcome, Err(EngineError::Internal(_))) {
            if let Some(actor) = self.deactivate(&op.key) {
                actor.do_send(Passivate);
            }
        } else if hot && index.is_some() {
            self.activate(&op.key, ctx);
        }
        respond(outcome, &self.log)
    }
}

/// Many increases for pairs of this shard, applied in order without
/// activating actors (bulk traffic would otherwise fill memory with actors),
/// made durable together.
pub struct PairBatch {
    /// The achievements the ops refer to (by position).
    pub entries: Vec<Arc<AchievementEntry>>,
    pub ops: Vec<(PairKey, OpKind, usize)>,
}

impl Message for PairBatch {
    /// Every answer, and what to wait for before using them.
    type Result = Result<(Vec<Result<EventResult, EngineError>>, Option<Durable>), EngineError>;
}

impl Handler<PairBatch> for Shard {
    type Result = Result<(Vec<Result<EventResult, EngineError>>, Option<Durable>), EngineError>;

    fn handle(&mut self, batch: PairBatch, _: &mut Self::Context) -> Self::Result {
        let mut records = Vec::new();
        let mut wait = 0;
        // One arrival time for the whole batch (it arrived at once).
        let now = self.shared.clock.now();
        let results: Vec<_> = batch
            .ops
            .iter()
            .map(|(key, kind, entry)| {
                let op = OpRef {
                    key,
                    entry: &batch.entries[*entry],
                    kind,
                };
                self.run_inline(op, now).1.map(|(result, record, w)| {
                    records.extend(record);
                    wait = wait.max(w);
                    result
                })
            })
            .collect();
        let durable = self.log.settle(records, wait)?;
        Ok((results, durable))
    }
}

/// An actor that panicked asks its supervisor to drop it.
pub struct Deactivated {
    pub key: PairKey,
}

impl Message for Deactivated {
    type Result = ();
}

impl Handler<Deactivated> for Shard {
    type Result = ();

    fn handle(&mut self, msg: Deactivated, _: &mut Self::Context) {
        self.deactivate(&msg.key);
    }
}

/// Reads a customer's pairs in the given achievements, as of now.
pub struct ReadCustomer {
    pub customer: CustomerId,
    pub achievements: Vec<AchievementId>,
}

impl Message for ReadCustomer {
    type Result = Vec<Vec<Iteration>>;
}

impl Handler<ReadCustomer> for Shard {
    type Result = MessageResult<ReadCustomer>;

    fn handle(&mut self, msg: ReadCustomer, _: &mut Self::Context) -> Self::Result {
        let now = self.shared.clock.now();
        let mut key = PairKey {
            achievement: AchievementId(0),
            customer: msg.customer,
        };
        MessageResult(
            msg.achievements
                .iter()
                .map(|a| {
                    key.achievement = *a;
                    self.pairs
                        .get(&key)
                        .map(|s| s.cell.tracker.borrow().iterations_at(now).collect())
                        .unwrap_or_default()
                })
                .collect(),
        )
    }
}

/// The customers of this shard with progress in an achievement, sorted.
pub struct ExportKeys {
    pub achievement: AchievementId,
}

impl Message for ExportKeys {
    type Result = Vec<CustomerId>;
}

impl Handler<ExportKeys> for Shard {
    type Result = MessageResult<ExportKeys>;

    fn handle(&mut self, msg: ExportKeys, _: &mut Self::Context) -> Self::Result {
        let mut keys: Vec<CustomerId> = self
            .pairs
            .iter()
            .filter(|(k, s)| {
                k.achievement == msg.achievement && s.cell.tracker.borrow().has_progress()
            })
            .map(|(k, _)| k.customer.clone())
            .collect();
        keys.sort();
        MessageResult(keys)
    }
}

/// The iterations of some customers in an achievement, as of now.
pub struct ExportRows {
    pub achievement: AchievementId,
    pub customers: Vec<CustomerId>,
}

impl Message for ExportRows {
    type Result = Vec<(CustomerId, Vec<Iteration>)>;
}

impl Handler<ExportRows> for Shard {
    type Result = MessageResult<ExportRows>;

    fn handle(&mut self, msg: ExportRows, _: &mut Self::Context) -> Self::Result {
        let now = self.shared.clock.now();
        MessageResult(
            msg.customers
                .into_iter()
                .filter_map(|customer| {
                    let key = PairKey {
                        achievement: msg.achievement,
                        customer,
                    };
                    let slot = self.pairs.get(&key)?;
                    let rows = slot.cell.tracker.borrow().iterations_at(now).collect();
                    Some((key.customer, rows))
                })
                .collect(),
        )
    }
}

/// Removes every pair of a deleted achievement.
pub struct DropAchievement {
    pub entry: Arc<AchievementEntry>,
}

impl Message for DropAchievement {
    type Result = usize;
}

impl Handler<DropAchievement> for Shard {
    type Result = usize;

    fn handle(&mut self, msg: DropAchievement, _: &mut Self::Context) -> usize {
        let id = msg.entry.achievement.id;
        let doomed: Vec<PairKey> = self
            .pairs
            .keys()
            .filter(|k| k.achievement == id)
            .cloned()
            .collect();
        let mut removed = 0;
        for key in &doomed {
            if let Some(actor) = self.deactivate(key) {
                actor.do_send(Passivate);
            }
            if self.pairs[key].cell.tracker.borrow().has_progress() {
                self.shared.stats.pair_removed(self.index);
                removed += 1;
            }
        }
        if !doomed.is_empty() {
            self.pairs.retain(|k, _| k.achievement != id);
            self.removals += 1;
        }
        removed
    }
}

/// Erases a customer's pairs in the given achievements of an application
/// (`deleteCustomerData`), durably: the answer waits for the log.
pub struct EraseCustomer {
    pub application: ApplicationId,
    pub customer: CustomerId,
    pub achievements: Vec<AchievementId>,
}

impl Message for EraseCustomer {
    /// How many pairs were erased, and what to wait for.
    type Result = Result<(usize, Option<Durable>), EngineError>;
}

impl Handler<EraseCustomer> for Shard {
    type Result = Result<(usize, Option<Durable>), EngineError>;

    fn handle(&mut self, msg: EraseCustomer, _: &mut Self::Context) -> Self::Result {
        self.log.check_writable()?;
        let erasable = self.erasable(&msg.customer, &msg.achievements, None);
        if erasable.is_empty() {
            return Ok((0, None));
        }
        // Nothing changes before the record is made.
        let record = self.log.record_erasure(&EraseV2::from(&Erasure {
            application: msg.application,
            customer: msg.customer.clone(),
            achievements: erasable.clone(),
        }))?;
        let lsn = record.as_ref().map_or(0, |(lsn, _)| *lsn);
        self.erase(&msg.customer, &erasable, lsn, true);
        let durable = self.log.append(record.into_iter().collect())?;
        Ok((erasable.len(), durable))
    }
}

// ---- snapshots ----

/// Starts this shard's part of a snapshot: the log position from which
/// records may be missing from the snapshot, the number of pairs, and a token
/// that later chunks check.
pub struct SnapshotBegin;

pub struct SnapshotStart {
    pub next_lsn: u64,
    pub pairs: usize,
    pub token: u64,
}

impl Message for SnapshotBegin {
    type Result = SnapshotStart;
}

impl Handler<SnapshotBegin> for Shard {
    type Result = MessageResult<SnapshotBegin>;

    fn handle(&mut self, _: SnapshotBegin, _: &mut Self::Context) -> Self::Result {
        // Erased pairs leave empty slots so that erasing never moves the
        // positions a snapshot in progress walks; they go here, before this
        // snapshot starts walking.
        self.purge_empty();
        MessageResult(SnapshotStart {
            next_lsn: self.log.next_lsn.get(),
            pairs: self.pairs.len(),
            token: self.removals,
        })
    }
}

/// Encodes up to `max` pairs from position `from`; traffic is served between
/// chunks, so a large shard never stalls for the whole snapshot.
pub struct SnapshotChunk {
    pub from: usize,
    pub max: usize,
    pub token: u64,
}

pub struct EncodedChunk {
    pub bytes: Vec<u8>,
    pub pairs: usize,
    pub next: usize,
    pub done: bool,
}

impl Message for SnapshotChunk {
    type Result = Result<EncodedChunk, EngineError>;
}

impl Handler<SnapshotChunk> for Shard {
    type Result = Result<EncodedChunk, EngineError>;

    fn handle(&mut self, msg: SnapshotChunk, _: &mut Self::Context) -> Self::Result {
        if msg.token != self.removals {
            return Err(EngineError::Unavailable(
                "pairs were removed during the snapshot; retry it",
            ));
        }
        let end = (msg.from + msg.max).min(self.pairs.len());
        let chunk: Vec<PairV1> = self
            .pairs
            .get_range(msg.from.min(end)..end)
            .into_iter()
            .flat_map(|slice| slice.iter())
            // Erased pairs (empty slots) are not part of the state.
            .filter(|(_, slot)| slot.cell.tracker.borrow().has_progress())
            .map(|(key, slot)| PairV1 {
                achievement: key.achievement.0,
                customer: key.customer.as_str().to_string(),
                last_lsn: slot.cell.last_lsn.get(),
                tracker: TrackerV1::from(&slot.cell.tracker.borrow().to_parts()),
            })
            .collect();
        let bytes = codec::encode(&chunk)
            .map_err(|_| EngineError::Internal("cannot encode a snapshot chunk"))?;
        Ok(EncodedChunk {
            bytes,
            pairs: chunk.len(),
            next: end,
            done: end >= self.pairs.len(),
        })
    }
}

// ---- restore ----

/// Pairs restored from a snapshot.
pub struct LoadPairs {
    pub pairs: Vec<(PairKey, TrackerParts, u64)>,
}

/// Makes room for the pairs a restore will load (no rehashing as it grows).
pub struct ReservePairs(pub usize);

impl Message for ReservePairs {
    type Result = ();
}

impl Handler<ReservePairs> for Shard {
    type Result = ();

    fn handle(&mut self, msg: ReservePairs, _: &mut Self::Context) {
        self.pairs.reserve(msg.0);
    }
}

impl Message for LoadPairs {
    type Result = ();
}

impl Handler<LoadPairs> for Shard {
    type Result = ();

    fn handle(&mut self, msg: LoadPairs, _: &mut Self::Context) {
        for (key, parts, last_lsn) in msg.pairs {
            let cell = PairCell::new(PairTracker::from_parts(parts));
            cell.last_lsn.set(last_lsn);
            self.timers.borrow_mut().arm(&cell);
            if self.pairs.insert(key, Slot { cell, actor: None }).is_none() {
                self.shared.stats.pair_added(self.index);
            }
        }
    }
}

/// Log records applied again after a snapshot; records a pair already holds
/// (its `last_lsn` is not older) are skipped.
pub struct Replay {
    pub records: Vec<(u64, ReplayRecord)>,
}

/// One record to apply again.
pub enum ReplayRecord {
    Pair(PairRecord, Arc<AchievementEntry>),
    Erase(Erasure),
}

impl Message for Replay {
    type Result = usize;
}

impl Handler<Replay> for Shard {
    type Result = usize;

    fn handle(&mut self, msg: Replay, _: &mut Self::Context) -> usize {
        let mut applied = 0;
        for (lsn, record) in msg.records {
            let (record, entry) = match record {
                ReplayRecord::Pair(record, entry) => (record, entry),
                ReplayRecord::Erase(erasure) => {
                    let erasable =
                        self.erasable(&erasure.customer, &erasure.achievements, Some(lsn));
                    self.erase(&erasure.customer, &erasable, lsn, false);
                    applied += 1;
                    continue;
                }
            };
            let key = PairKey {
                achievement: record.achievement,
                customer: record.customer.clone(),
            };
            let (index, created) = self.ensure(&key, || record.pair_number);
            let cell = self.pairs[index].cell.clone();
            if cell.last_lsn.get() >= lsn {
                continue;
            }
            let was_empty = created || !cell.tracker.borrow().has_progress();
            if was_empty {
                // A pair erased earlier in the log starts again with the
                // number it was given live.
                *cell.tracker.borrow_mut() = PairTracker::new(record.pair_number);
            }
            let op = PairOp {
                key: key.clone(),
                entry,
                kind: match record.op {
                    PairRecordOp::Increase(inc) => OpKind::Increase(inc),
                    PairRecordOp::Rollback(id) => OpKind::Rollback(id),
                },
            };
            if let Err(e) = apply_op(
                &cell,
                op.as_ref(),
                &self.shared,
                record.now,
                record.campaign_running,
            ) {
                tracing::warn!(lsn, error = %e, "a log record did not apply again");
            }
            cell.last_lsn.set(lsn);
            applied += 1;
            self.settle(index, created, was_empty);
        }
        applied
    }
}

/// Starts logging: the shard's log and the next LSN to hand out.
pub struct AttachLog {
    pub wal: Wal,
    pub next_lsn: u64,
}

impl Message for AttachLog {
    type Result = ();
}

impl Handler<AttachLog> for Shard {
    type Result = ();

    fn handle(&mut self, msg: AttachLog, _: &mut Self::Context) {
        self.log.next_lsn.set(msg.next_lsn);
        *self.log.wal.borrow_mut() = Some(msg.wal);
    }
}
