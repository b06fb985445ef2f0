//! A shard: the supervisor of the partitions it runs and of their pairs.
//!
//! Owns: the `Shard` actor, its partitions (`partition`), the hot path (a
//! pair's message served here or by an activated actor, batches), activation
//! and passivation, the sweep that freezes idle pairs (`frozen`), and its
//! timers (their filing and expiries in `expiry`). Reads, exports, removals
//! and erasures are in `reads`; snapshots, loads and replay in `restore`. Several shards may share an actix arbiter;
//! every pair of a partition lives in one shard.

mod expiry;
mod frozen;
mod partition;
mod reads;
mod restore;
mod table;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};

pub use partition::Hasher;
use partition::{Partition, Slot};
pub use reads::{
    DropAchievement, EraseCustomer, ExportKeys, ExportRows, ReadCustomer, UnloadPartition,
};
pub use restore::{
    AttachLog, Chunk, LoadPairs, PairImage, Replay, ReplayRecord, ReservePairs, SnapshotBegin,
    SnapshotChunk, SnapshotStart,
};

use super::actor::{PairActor, Passivate};
use super::catalog::AchievementEntry;
use super::catalog::Catalog;
use super::error::EngineError;
use super::feed::{self, FeedEntry, FeedMessage};
use super::log::{Commit, Erasure, PairChangeRef, PartitionId, Position};
use super::pair::{
    respond, run_op, OpKind, OpRef, PairCell, PairKey, PairMessage, Pending, Step, Ticks,
};
use super::shard_log::ShardLog;
use super::timers::Timers;
use super::Shared;
use crate::domain::{EventResult, Reason};

/// How often the shard fires due timers and looks for idle actors.
const TICK: Duration = Duration::from_millis(500);

/// Slots a shard looks at for idle pairs to freeze at each tick, and the
/// most time it gives the sweep (a slot already frozen costs nanoseconds,
/// freezing one a few hundred): 16,000 slots a second, so 5 M pairs a
/// shard are gone through in about five minutes.
const FREEZE_SWEEP: usize = 8_192;
const FREEZE_SWEEP_TIME: Duration = Duration::from_millis(1);
/// Slots swept between looks at the time.
const FREEZE_STEP: usize = 256;

/// The supervisor actor of one shard.
pub struct Shard {
    index: usize,
    /// Indexed by partition id; `Some` for the partitions this shard runs
    /// (`p % shards == index`), so finding one takes no division.
    partitions: Vec<Option<Partition>>,
    /// Pairs with an actor: their partitions and actors.
    active: HashMap<PairKey, (PartitionId, Addr<PairActor>), Hasher>,
    /// Period ends of every pair of the shard, active, live or frozen.
    timers: RefCell<Timers>,
    /// Where the sweep for idle pairs to freeze goes on: a partition id and
    /// a position in it.
    sweep: (usize, usize),
    /// The frozen pairs this shard last counted in `Stats::frozen`.
    frozen_told: i64,
    log: Rc<ShardLog>,
    shared: Arc<Shared>,
    /// For what timers and replay tell the feed about a pair's achievement.
    catalog: Arc<Catalog>,
}

impl Shard {
    pub fn new(
        index: usize,
        shards: usize,
        partitions: u32,
        shared: Arc<Shared>,
        catalog: Arc<Catalog>,
    ) -> Shard {
        let shards = shards.max(1);
        Shard {
            index,
            partitions: (0..partitions as usize)
                .map(|p| (p % shards == index).then(Partition::default))
                .collect(),
            active: HashMap::default(),
            timers: RefCell::default(),
            sweep: (0, 0),
            frozen_told: 0,
            log: ShardLog::new(),
            shared,
            catalog,
        }
    }

    fn part(&self, p: PartitionId) -> Result<&Partition, EngineError> {
        self.partitions
            .get(p.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(EngineError::Internal(
                "a partition was sent to the wrong shard",
            ))
    }

    fn part_mut(&mut self, p: PartitionId) -> Result<&mut Partition, EngineError> {
        self.partitions
            .get_mut(p.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(EngineError::Internal(
                "a partition was sent to the wrong shard",
            ))
    }

    /// After a step on the pair at `index` of a partition: keeps a new pair
    /// only if it has progress, counts a pair that has progress again
    /// (`was_empty`: new, or erased before), and files its timer.
    /// Returns whether the pair is kept.
    fn settle(&mut self, p: PartitionId, index: usize, created: bool, was_empty: bool) -> bool {
        let Ok(part) = self.part_mut(p) else {
            return false;
        };
        let Some(cell) = part.cell(index) else {
            return false;
        };
        let keep = cell.tracker.borrow().has_progress();
        if created && !keep {
            // The new slot is the last one, so removing it moves nothing.
            part.pairs.swap_remove_index(index);
            return false;
        }
        if was_empty && keep {
            self.shared.stats.pair_added(self.index);
        }
        self.arm(p, index, &cell);
        true
    }

    /// Runs an operation on a pair in this shard's thread; `hint` is where
    /// the pair's slot was seen last (checked before it is used). Returns the
    /// pair's cell (if it exists after the step) with the step.
    fn run_inline<'a>(
        &mut self,
        op: OpRef<'a>,
        hint: Option<usize>,
        now: DateTime<Utc>,
        tick: Ticks,
    ) -> (Option<Rc<PairCell>>, Result<Step<'a>, EngineError>) {
        let shared = self.shared.clone();
        let part = match self.part_mut(op.partition) {
            Ok(part) => part,
            Err(e) => return (None, Err(e)),
        };
        if matches!(op.kind, OpKind::Rollback(_)) && !part.pairs.contains_key(op.key) {
            let step = Step {
                result: EventResult::rejected(Reason::UnknownEvent),
                change: None,
                wait: Position(0),
                feed: Vec::new(),
            };
            return (None, Ok(step));
        }
        let (index, created) = part.ensure(op.key, hint, || shared.next_pair_number());
        let Some(cell) = part.cell(index) else {
            return (
                None,
                Err(EngineError::Internal("a pair's slot went missing")),
            );
        };
        let was_empty = created || !cell.tracker.borrow().has_progress();
        let step = run_op(&cell, op, &self.shared, &self.log, now, tick);
        // Not kept: a new pair whose first event applied nothing.
        let kept = self.settle(op.partition, index, created, was_empty) || !created;
        (kept.then_some(cell), step)
    }

    fn activate(&mut self, key: &PairKey, p: PartitionId, ctx: &mut Context<Self>) {
        if self.active.contains_key(key) {
            return;
        }
        let (shared, log) = (self.shared.clone(), self.log.clone());
        let Ok(part) = self.part(p) else {
            return;
        };
        let Some(cell) = part.pairs.get(key).and_then(Slot::live) else {
            return;
        };
        let actor = PairActor::new(
            key.clone(),
            cell.clone(),
            shared.clone(),
            log,
            ctx.address(),
        )
        .start();
        shared.stats.actor_started();
        self.active.insert(key.clone(), (p, actor.clone()));
        self.shared.routes.insert(key.clone(), actor);
    }

    /// The pairs of partition `p` that have an actor (few: hot pairs only).
    fn active_in(&self, p: PartitionId) -> Vec<PairKey> {
        self.active
            .iter()
            .filter(|(_, (at, _))| *at == p)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn deactivate(&mut self, key: &PairKey) -> Option<Addr<PairActor>> {
        let (_, actor) = self.active.remove(key)?;
        self.shared.routes.remove(key);
        Some(actor)
    }

    fn on_tick(&mut self) {
        let now = self.shared.clock.now();
        // Actors step their pairs without the shard: their deadlines are
        // filed here, before what is due is taken; and those idle for
        // long enough are passivated.
        let idle_after = self.shared.idle_after;
        let mut idle = Vec::new();
        for (key, (p, _)) in &self.active {
            let slot = self.part(*p).ok().and_then(|part| part.pairs.get_full(key));
            match slot {
                Some((index, _, Slot::Live(cell))) => {
                    self.arm(*p, index, cell);
                    if cell.last_active.get().elapsed() >= idle_after {
                        idle.push(key.clone());
                    }
                }
                _ => idle.push(key.clone()),
            }
        }
        let due = self.timers.borrow_mut().due(now);
        for (p, entries) in due {
            self.expire(p, entries, now);
        }
        for key in idle {
            if let Some(actor) = self.deactivate(&key) {
                actor.do_send(Passivate);
                self.shared.stats.count_passivation();
            }
        }
        if let Some(idle) = self.shared.freeze_after {
            self.sweep_idle(FREEZE_SWEEP, idle);
        }
        let frozen: usize = self.partitions.iter().flatten().map(|p| p.frozen).sum();
        let frozen = frozen as i64;
        self.shared.stats.frozen_changed(frozen - self.frozen_told);
        self.frozen_told = frozen;
    }

    /// Freezes idle pairs among the next `budget` slots of the sweep, going
    /// from partition to partition, for at most `FREEZE_SWEEP_TIME`.
    /// Returns how many were frozen.
    fn sweep_idle(&mut self, mut budget: usize, idle: Duration) -> usize {
        let until = Instant::now() + FREEZE_SWEEP_TIME;
        let partitions = self.partitions.len().max(1);
        let (mut frozen, mut passed) = (0, 0);
        // Every partition once at most, however few pairs there are.
        while budget > 0 && passed < partitions && Instant::now() < until {
            let (p, from) = self.sweep;
            let (next, step) = match self.partitions.get_mut(p) {
                Some(Some(part)) => {
                    let step = budget
                        .min(FREEZE_STEP)
                        .min(part.pairs.len().saturating_sub(from));
                    let (next, n) = part.freeze_idle(from, step, idle);
                    frozen += n;
                    (next, step)
                }
                _ => (0, 0),
            };
            budget -= step;
            self.sweep = if next == 0 {
                passed += 1;
                ((p + 1) % partitions, 0)
            } else {
                (p, next)
            };
        }
        frozen
    }
}

impl Shard {
    /// Tells the feed that a customer's data was erased at `position`.
    fn tell_erased(&self, p: PartitionId, position: Position, erasure: &Erasure) {
        if let Some(sink) = self.shared.feed() {
            sink.send(FeedMessage::Erased {
                partition: p,
                position,
                application: erasure.application,
                customer: erasure.customer.clone(),
            });
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

impl Handler<PairMessage> for Shard {
    type Result = Result<Pending, EngineError>;

    fn handle(&mut self, msg: PairMessage, ctx: &mut Self::Context) -> Self::Result {
        // A pair whose previous message came within `activate_within` is hot:
        // it gets an actor, so its next messages skip the shard. Cold pairs
        // are served here without one, which keeps scattered traffic over
        // millions of pairs from creating an actor per event.
        let found = self.part(msg.partition)?.pairs.get_full(&msg.key);
        let hot = found.is_some_and(|(_, _, s)| {
            self.shared
                .activate_within
                .is_some_and(|w| s.active_within(w))
        });
        // Where the slot is, so the step need not look it up again.
        let hint = found.map(|(index, ..)| index);
        let (cell, step) =
            self.run_inline(msg.as_ref(), hint, self.shared.clock.now(), Ticks::now());
        if matches!(step, Err(EngineError::Internal(_))) {
            if let Some(actor) = self.deactivate(&msg.key) {
                actor.do_send(Passivate);
            }
        } else if hot && cell.is_some() {
            self.activate(&msg.key, msg.partition, ctx);
        }
        match cell {
            Some(cell) => respond(step, &cell, msg.partition, &self.log, &self.shared),
            // No pair (a rollback of an unknown pair, or a rejected first
            // event): nothing to log, nothing to wait for.
            None => step.map(|s| (s.result, None)),
        }
    }
}

/// Many increases for pairs of this shard, applied in order without
/// activating actors (bulk traffic would otherwise fill memory with actors),
/// made durable together.
pub struct PairBatch {
    /// The achievements the ops refer to (by position).
    pub entries: Vec<Arc<AchievementEntry>>,
    pub ops: Vec<(PairKey, PartitionId, OpKind, usize)>,
}

impl Message for PairBatch {
    /// Every answer, and what to wait for before using them.
    type Result = Result<(Vec<Result<EventResult, EngineError>>, Option<Commit>), EngineError>;
}

impl Shard {
    /// Looks up every pair of a batch once, in stages over the whole batch,
    /// and asks the CPU for its state. The lookups do not depend on each
    /// other, so their cache misses overlap; applied in order below, each
    /// pair would wait for its own misses in turn (a table slot, an entry,
    /// the state), which over millions of pairs was most of an event's
    /// cost. Returns where each pair's slot is, so applying need not look it
    /// up again.
    fn warm(&self, ops: &[(PairKey, PartitionId, OpKind, usize)]) -> Vec<Option<usize>> {
        // In stages, each over the whole batch: every key's hash (its slot
        // in the table asked for), every candidate entry (asked for), then
        // every key checked and its state asked for. Within a stage nothing
        // waits on the misses the stage before started.
        let tables: Vec<_> = ops
            .iter()
            .map(|(_, p, ..)| self.part(*p).ok().map(|part| &part.pairs))
            .collect();
        let hashes: Vec<u32> = ops
            .iter()
            .zip(&tables)
            .map(|((key, ..), table)| table.map_or(0, |t| t.stage_hash(key)))
            .collect();
        let candidates: Vec<Option<usize>> = tables
            .iter()
            .zip(&hashes)
            .map(|(table, h)| table.and_then(|t| t.stage_candidate(*h)))
            .collect();
        ops.iter()
            .zip(tables)
            .zip(hashes.into_iter().zip(candidates))
            .map(|(((key, ..), table), (h, candidate))| {
                let table = table?;
                let index = table.stage_confirm(key, h, candidate)?;
                if let Some((_, slot)) = table.get_index(index) {
                    slot.prefetch();
                }
                Some(index)
            })
            .collect()
    }
}

/// Asks the CPU to bring `value`'s memory into its caches, without waiting.
pub(super) fn prefetch<T>(value: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let at = value.cast::<i8>();
        // Every cache line the value spans: its start, each 64 bytes on, its end.
        let size = std::mem::size_of::<T>().max(1);
        for offset in (0..size).step_by(64).chain([size - 1]) {
            // SAFETY: a prefetch is a hint: it reads nothing the program
            // sees and cannot fault, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

impl Handler<PairBatch> for Shard {
    type Result = Result<(Vec<Result<EventResult, EngineError>>, Option<Commit>), EngineError>;

    fn handle(&mut self, batch: PairBatch, _: &mut Self::Context) -> Self::Result {
        // The changes in order, with their pairs' cells; the most each
        // partition must wait for (duplicates of changes still on their way
        // to the log).
        let mut changes: Vec<(PartitionId, PairChangeRef<'_>, Rc<PairCell>)> = Vec::new();
        // What each change tells the feed (by the change's place).
        let mut told: Vec<(usize, Vec<FeedEntry>)> = Vec::new();
        let mut waits: Vec<(PartitionId, Position)> = Vec::new();
        // One arrival time for the whole batch (it arrived at once), and
        // one reading of the coarse clock that says when pairs were active:
        // a reading per event cost a fifth of the events per second at 10 M
        // pairs (the clock's read is ordered, so it waits for the cache
        // misses the batch's warm-up has in flight).
        let (now, tick) = (self.shared.clock.now(), Ticks::now());
        let hints = self.warm(&batch.ops);
        let results: Vec<_> = batch
            .ops
            .iter()
            .zip(hints)
            .map(|((key, partition, kind, entry), hint)| {
                let op = OpRef {
                    key,
                    partition: *partition,
                    entry: &batch.entries[*entry],
                    kind,
                };
                let (cell, step) = self.run_inline(op, hint, now, tick);
                step.map(|step| {
                    if let (Some(change), Some(cell)) = (step.change, cell) {
                        if !step.feed.is_empty() {
                            told.push((changes.len(), step.feed));
                        }
                        changes.push((*partition, change, cell));
                    } else if step.wait.0 > 0 {
                        match waits.iter_mut().find(|(p, _)| p == partition) {
                            Some((_, w)) => *w = (*w).max(step.wait),
                            None => waits.push((*partition, step.wait)),
                        }
                    }
                    step.result
                })
            })
            .collect();
        let refs: Vec<(PartitionId, PairChangeRef<'_>, &PairCell)> = changes
            .iter()
            .map(|(p, c, cell)| (*p, *c, cell.as_ref()))
            .collect();
        let (positions, commit) = self.log.append_changes(&refs)?;
        for (i, list) in told {
            let at = positions.get(i).copied().unwrap_or_default();
            feed::send_entries(self.shared.feed(), at, list);
        }
        let mut commits: Vec<Commit> = commit.into_iter().collect();
        for (partition, wait) in waits {
            commits.extend(self.log.durable(partition, wait)?);
        }
        let commit = match commits.len() {
            0 => None,
            1 => commits.pop(),
            _ => Some(Commit::new(async move {
                for c in commits {
                    c.await?;
                }
                Ok(())
            })),
        };
        Ok((results, commit))
    }
}

/// Freezes the idle pairs of one partition from a position, a bounded
/// number at a time (traffic is served between requests): what the
/// periodic sweep does, at once, for tools and tests.
pub struct FreezeIdle {
    pub partition: PartitionId,
    pub from: usize,
    /// Pairs untouched this long are frozen.
    pub idle: Duration,
}

impl Message for FreezeIdle {
    /// Where to go on from (0: the partition is done), and how many froze.
    type Result = Result<(usize, usize), EngineError>;
}

impl Handler<FreezeIdle> for Shard {
    type Result = Result<(usize, usize), EngineError>;

    fn handle(&mut self, msg: FreezeIdle, _: &mut Self::Context) -> Self::Result {
        let part = self.part_mut(msg.partition)?;
        Ok(part.freeze_idle(msg.from, FREEZE_SWEEP, msg.idle))
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
