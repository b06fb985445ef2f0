//! A shard: the supervisor of the pairs whose customers hash to it.
//!
//! Owns: the state cells of its pairs (active or passive), their activation and
//! passivation, the one timer structure for passive pairs' period ends, and
//! the shard-wide reads (a customer's pairs, exports, deletion). One shard runs
//! on each actix arbiter; every pair of a customer lives in the same shard.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::catalog::AchievementEntry;
use super::error::EngineError;
use super::pair::{run_op, OpKind, PairActor, PairCell, PairKey, PairOp, Passivate};
use super::Shared;
use crate::clock;
use crate::domain::{AchievementId, CustomerId, EventResult, Increase, Iteration, PairTracker};

/// How often the shard fires due timers and looks for idle actors.
const TICK: Duration = Duration::from_millis(500);

struct Slot {
    cell: Rc<PairCell>,
    actor: Option<Addr<PairActor>>,
}

/// The supervisor actor of one shard.
pub struct Shard {
    index: usize,
    pairs: HashMap<PairKey, Slot>,
    active: HashSet<PairKey>,
    timers: BTreeSet<(DateTime<Utc>, PairKey)>,
    shared: Arc<Shared>,
}

impl Shard {
    pub fn new(index: usize, shared: Arc<Shared>) -> Shard {
        Shard {
            index,
            pairs: HashMap::new(),
            active: HashSet::new(),
            timers: BTreeSet::new(),
            shared,
        }
    }

    /// Runs an operation on a pair in this shard's thread; creates the pair
    /// if it is new and keeps it only if it then has progress.
    fn run_inline(&mut self, op: &PairOp) -> Result<EventResult, EngineError> {
        let created = !self.pairs.contains_key(&op.key);
        if created {
            if matches!(op.kind, OpKind::Rollback(_)) {
                return Ok(EventResult::rejected(crate::domain::Reason::UnknownEvent));
            }
            let number = self.shared.next_pair_number();
            self.pairs.insert(
                op.key.clone(),
                Slot {
                    cell: PairCell::new(PairTracker::new(number)),
                    actor: None,
                },
            );
        }
        let slot = self
            .pairs
            .get(&op.key)
            .ok_or(EngineError::Internal("pair slot missing"))?;
        let result = run_op(&slot.cell, op, &self.shared);
        let (keep, deadline) = {
            let tracker = slot.cell.tracker.borrow();
            (tracker.has_progress(), tracker.next_deadline())
        };
        let passive = slot.actor.is_none();
        if created && !keep {
            self.pairs.remove(&op.key);
        } else if created {
            self.shared.stats.pair_added(self.index);
        }
        if let (true, Some(at)) = (passive && keep, deadline) {
            self.timers.insert((at, op.key.clone()));
        }
        result
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
            ctx.address(),
        )
        .start();
        slot.actor = Some(actor.clone());
        self.active.insert(key.clone());
        self.shared.routes.insert(key.clone(), actor);
    }

    fn deactivate(&mut self, key: &PairKey) -> Option<Addr<PairActor>> {
        self.active.remove(key);
        self.shared.routes.remove(key);
        let slot = self.pairs.get_mut(key)?;
        let actor = slot.actor.take();
        if let Some(at) = slot.cell.tracker.borrow().next_deadline() {
            self.timers.insert((at, key.clone()));
        }
        actor
    }

    fn on_tick(&mut self) {
        let now = clock::now();
        while let Some(first) = self.timers.first() {
            if first.0 > now {
                break;
            }
            let Some((_, key)) = self.timers.pop_first() else {
                break;
            };
            if let Some(slot) = self.pairs.get(&key).filter(|s| s.actor.is_none()) {
                if slot.cell.tracker.borrow_mut().tick(now) {
                    self.shared.stats.count_expiry();
                }
            }
        }
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
    type Result = Result<EventResult, EngineError>;

    fn handle(&mut self, op: PairOp, ctx: &mut Self::Context) -> Self::Result {
        let result = self.run_inline(&op);
        if matches!(result, Err(EngineError::Internal(_))) {
            if let Some(actor) = self.deactivate(&op.key) {
                actor.do_send(Passivate);
            }
        } else if self.pairs.contains_key(&op.key) {
            self.activate(&op.key, ctx);
        }
        result
    }
}

/// Many increases for pairs of this shard, applied in order without
/// activating actors (bulk traffic would otherwise fill memory with actors).
pub struct PairBatch {
    pub ops: Vec<PairOp>,
}

impl Message for PairBatch {
    type Result = Vec<Result<EventResult, EngineError>>;
}

impl Handler<PairBatch> for Shard {
    type Result = MessageResult<PairBatch>;

    fn handle(&mut self, batch: PairBatch, _: &mut Self::Context) -> Self::Result {
        MessageResult(batch.ops.iter().map(|op| self.run_inline(op)).collect())
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
        let now = clock::now();
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
            .keys()
            .filter(|k| k.achievement == msg.achievement)
            .map(|k| k.customer.clone())
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
        let now = clock::now();
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
        for key in &doomed {
            if let Some(actor) = self.deactivate(key) {
                actor.do_send(Passivate);
            }
            self.pairs.remove(key);
            self.shared.stats.pair_removed(self.index);
        }
        doomed.len()
    }
}

/// Builds an increase op; a small helper for callers.
pub fn increase_op(key: PairKey, entry: Arc<AchievementEntry>, inc: Increase) -> PairOp {
    PairOp {
        key,
        entry,
        kind: OpKind::Increase(inc),
    }
}
