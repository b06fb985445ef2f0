//! One (customer, achievement) pair: its state cell and its actor.
//!
//! Owns: `PairKey`, `PairCell` (the tracker, shared on one arbiter thread by
//! the shard that keeps it and the actor that serves it while active), the
//! `PairOp` message and `PairActor`, which runs the pair's period timer and
//! hands each message to the domain in one call (`run_op`).
//!
//! Lifecycle (virtual actors): the shard activates a `PairActor` when a single
//! event arrives for a passive pair and passivates it after an idle time; the
//! state stays in the shard's `PairCell` either way, so reads, exports and
//! snapshots never need the actor. A panic in a handler stops the actor; its
//! shard (the supervisor) drops it and the next message restarts it from the
//! cell's last state.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use chrono::{DateTime, Utc};

use super::catalog::AchievementEntry;
use super::error::EngineError;
use super::shard::{Deactivated, Shard};
use super::timers::Timers;
use super::Shared;
use crate::domain::{
    AchievementId, Ctx, CustomerId, EventId, EventResult, Increase, Outcome, PairTracker,
};
use crate::persist::model::{encode_record, EraseV2, PairRecordRefV1, ShardRecordRefV2};
use crate::persist::wal::{Durable, Record, Wal};

/// A pair's key within the engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairKey {
    pub achievement: AchievementId,
    pub customer: CustomerId,
}

/// A pair's state, shared by its shard and (while active) its actor. Both
/// live on the same arbiter thread, so `Rc`/`RefCell` suffice.
#[derive(Debug)]
pub struct PairCell {
    pub tracker: RefCell<PairTracker>,
    /// When the pair last handled a message (`Ticks`, coarse and small).
    pub last_active: Cell<Ticks>,
    /// The LSN of the last record of this pair in its shard's log.
    pub last_lsn: Cell<u64>,
    /// The deadline this pair has in its shard's timer set, if any.
    pub armed: Cell<Option<i64>>,
}

impl PairCell {
    pub fn new(tracker: PairTracker) -> Rc<PairCell> {
        Rc::new(PairCell {
            tracker: RefCell::new(tracker),
            last_active: Cell::new(Ticks::now()),
            last_lsn: Cell::new(0),
            armed: Cell::new(None),
        })
    }
}

/// A coarse monotonic time: tenths of a second since the process started,
/// in 4 bytes (enough for 13 years of uptime), to keep idle pairs small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticks(u32);

impl Ticks {
    pub fn now() -> Ticks {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let start = START.get_or_init(Instant::now);
        Ticks((start.elapsed().as_millis() / 100).min(u128::from(u32::MAX)) as u32)
    }

    /// Time since this tick.
    pub fn elapsed(self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(Ticks::now().0.saturating_sub(self.0)) * 100)
    }
}

/// A shard's write-ahead log, shared by the shard and its actors (one
/// thread): it numbers records and hands them to the log's writer.
pub struct ShardLog {
    pub next_lsn: Cell<u64>,
    pub wal: RefCell<Option<Wal>>,
}

impl ShardLog {
    pub fn new() -> Rc<ShardLog> {
        Rc::new(ShardLog {
            next_lsn: Cell::new(1),
            wal: RefCell::new(None),
        })
    }

    /// Numbers the record of an applied operation and queues it; `None`
    /// when the engine runs without a log.
    pub fn record(
        &self,
        cell: &PairCell,
        op: OpRef<'_>,
        now: DateTime<Utc>,
        campaign_running: bool,
    ) -> Result<Option<Record>, EngineError> {
        if self.wal.borrow().is_none() {
            return Ok(None);
        }
        let pair_number = cell.tracker.borrow().pair_number();
        let (achievement, customer) = (op.key.achievement, &op.key.customer);
        let record = match op.kind {
            OpKind::Increase(inc) => PairRecordRefV1::increase(
                achievement,
                customer,
                pair_number,
                now,
                campaign_running,
                inc,
            ),
            OpKind::Rollback(id) => PairRecordRefV1::rollback(
                achievement,
                customer,
                pair_number,
                now,
                campaign_running,
                id,
            ),
            #[cfg(test)]
            OpKind::Panic => return Ok(None),
        };
        let bytes = encode_record(&ShardRecordRefV2::Pair(record))
            .map_err(|_| EngineError::Internal("cannot encode a log record"))?;
        let lsn = self.next_lsn.get();
        self.next_lsn.set(lsn + 1);
        cell.last_lsn.set(lsn);
        Ok(Some((lsn, bytes)))
    }

    /// Numbers a customer's erasure and encodes it; `None` when the engine
    /// runs without a log.
    pub fn record_erasure(&self, erasure: &EraseV2) -> Result<Option<Record>, EngineError> {
        if self.wal.borrow().is_none() {
            return Ok(None);
        }
        let bytes = encode_record(&ShardRecordRefV2::Erase(erasure))
            .map_err(|_| EngineError::Internal("cannot encode a log record"))?;
        let lsn = self.next_lsn.get();
        self.next_lsn.set(lsn + 1);
        Ok(Some((lsn, bytes)))
    }

    /// Refuses changes while the log cannot write (disk full or failing): the
    /// engine answers 503 rather than change what it could not persist.
    pub fn check_writable(&self) -> Result<(), EngineError> {
        match self.wal.borrow().as_ref() {
            Some(wal) if wal.is_degraded() => Err(EngineError::Unavailable(
                "the disk cannot take writes now; nothing was changed, retry later",
            )),
            _ => Ok(()),
        }
    }

    /// Resolves once the log is durable up to `lsn` (`None` if it is already).
    pub fn durable_after(&self, lsn: u64) -> Result<Option<Durable>, EngineError> {
        match self.wal.borrow().as_ref() {
            Some(wal) if lsn > 0 && wal.stats.durable_lsn.load(Ordering::Acquire) < lsn => {
                wal.barrier().map(Some).map_err(|e| {
                    tracing::error!(error = %e, "cannot wait for the log");
                    EngineError::Unavailable("the write-ahead log cannot take writes now")
                })
            }
            _ => Ok(None),
        }
    }

    /// Queues the records of a step (or waits for `wait` to be durable when
    /// there are none); the answer resolves once durable.
    pub fn settle(&self, records: Vec<Record>, wait: u64) -> Result<Option<Durable>, EngineError> {
        if records.is_empty() {
            self.durable_after(wait)
        } else {
            self.append(records)
        }
    }

    /// Hands numbered records to the log; the answer resolves once durable.
    pub fn append(&self, records: Vec<Record>) -> Result<Option<Durable>, EngineError> {
        if records.is_empty() {
            return Ok(None);
        }
        match self.wal.borrow().as_ref() {
            None => Ok(None),
            Some(wal) => wal.append(records).map(Some).map_err(|e| {
                tracing::error!(error = %e, "cannot queue a log record");
                EngineError::Unavailable("the write-ahead log cannot take writes now")
            }),
        }
    }
}

/// A step's answer, the log record of its change (if it changed anything),
/// and the LSN that must be durable before the answer may be given (a
/// duplicate's original may still be on its way to disk; 0 = none).
pub type StepOutcome = Result<(EventResult, Option<Record>, u64), EngineError>;

/// Waits until a change is durable, then answers.
pub async fn after_durable<T>(durable: Option<Durable>, answer: T) -> Result<T, EngineError> {
    if let Some(durable) = durable {
        match durable.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a change could not be made durable");
                return Err(EngineError::Unavailable(
                    "the change could not be written to disk; it was not acknowledged",
                ));
            }
            Err(_) => return Err(EngineError::Unavailable("the write-ahead log stopped")),
        }
    }
    Ok(answer)
}

/// What to do to a pair.
#[derive(Debug, Clone)]
pub enum OpKind {
    Increase(Increase),
    Rollback(EventId),
    /// For tests: a handler that panics inside the domain call.
    #[cfg(test)]
    Panic,
}

/// A message for one pair.
#[derive(Debug, Clone)]
pub struct PairOp {
    pub key: PairKey,
    pub entry: Arc<AchievementEntry>,
    pub kind: OpKind,
}

impl Message for PairOp {
    /// The answer and, when it must wait for the log, what to wait for: the
    /// caller waits, so the pair's thread is free at once.
    type Result = Result<Pending, EngineError>;
}

/// An answer that may still wait for the log.
pub type Pending = (EventResult, Option<Durable>);

/// A borrowed operation: what one step needs, without cloning the entry
/// (bulk paths share one `Arc` per batch rather than one per event).
#[derive(Clone, Copy)]
pub struct OpRef<'a> {
    pub key: &'a PairKey,
    pub entry: &'a AchievementEntry,
    pub kind: &'a OpKind,
}

impl PairOp {
    pub fn as_ref(&self) -> OpRef<'_> {
        OpRef {
            key: &self.key,
            entry: &self.entry,
            kind: &self.kind,
        }
    }
}

/// Applies one operation to a pair's state: the only call into the domain.
/// A panic inside the domain is caught, logged and counted; the state is left
/// as the domain left it (it validates before it mutates). An applied change
/// is numbered and returned as a log record to append.
pub fn run_op(
    cell: &PairCell,
    op: OpRef<'_>,
    shared: &Shared,
    log: &ShardLog,
    now: DateTime<Utc>,
) -> StepOutcome {
    if !op.entry.is_alive() {
        return Err(EngineError::not_found("achievement", "achievementId"));
    }
    log.check_writable()?;
    let running = op.entry.campaign.running_at(now);
    let result = apply_op(cell, op, shared, now, running)?;
    let record = if result.outcome == Outcome::Applied {
        log.record(cell, op, now, running)?
    } else {
        None
    };
    let wait = if result.outcome == Outcome::Duplicate {
        cell.last_lsn.get()
    } else {
        0
    };
    Ok((result, record, wait))
}

/// The domain step with a given time and campaign state (live and replay).
pub fn apply_op(
    cell: &PairCell,
    op: OpRef<'_>,
    shared: &Shared,
    now: DateTime<Utc>,
    campaign_running: bool,
) -> Result<EventResult, EngineError> {
    let ctx = Ctx {
        rules: &op.entry.achievement.rules,
        tz: op.entry.tz,
        now,
        campaign_running,
        limits: &shared.limits,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut tracker = cell.tracker.borrow_mut();
        let result = match op.kind {
            OpKind::Increase(inc) => tracker.apply(&ctx, inc)?,
            OpKind::Rollback(id) => tracker.rollback(&ctx, id),
            #[cfg(test)]
            OpKind::Panic => panic!("injected test panic"),
        };
        if tracker.has_progress() {
            op.entry.mark_progress();
        }
        Ok(result)
    }));
    cell.last_active.set(Ticks::now());
    match outcome {
        Ok(result) => result,
        Err(panic) => {
            shared.stats.count_panic();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(
                achievement = %op.key.achievement,
                panic = %what,
                "pair handler panicked; the pair keeps its last state"
            );
            Err(EngineError::Internal("pair handler panicked"))
        }
    }
}

/// The actor of an active pair: serves its messages without going through
/// the shard. Its period timer lives with the shard's (`Timers`).
pub struct PairActor {
    key: PairKey,
    cell: Rc<PairCell>,
    shared: Arc<Shared>,
    log: Rc<ShardLog>,
    timers: Rc<RefCell<Timers>>,
    shard: Addr<Shard>,
}

impl PairActor {
    pub fn new(
        key: PairKey,
        cell: Rc<PairCell>,
        shared: Arc<Shared>,
        log: Rc<ShardLog>,
        timers: Rc<RefCell<Timers>>,
        shard: Addr<Shard>,
    ) -> Self {
        PairActor {
            key,
            cell,
            shared,
            log,
            timers,
            shard,
        }
    }
}

impl Actor for PairActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Counted by the shard when it starts the actor (so the count is
        // right as soon as the activating message is answered).
        self.shared.stats.actor_stopped();
    }
}

impl Handler<PairOp> for PairActor {
    type Result = Result<Pending, EngineError>;

    fn handle(&mut self, op: PairOp, ctx: &mut Self::Context) -> Self::Result {
        let outcome = run_op(
            &self.cell,
            op.as_ref(),
            &self.shared,
            &self.log,
            self.shared.clock.now(),
        );
        if matches!(outcome, Err(EngineError::Internal(_))) {
            // Restart from the last state: the shard drops this actor and
            // activates a fresh one on the next message.
            self.shard.do_send(Deactivated {
                key: self.key.clone(),
            });
            ctx.stop();
        } else {
            self.timers.borrow_mut().arm(&self.cell);
        }
        respond(outcome, &self.log)
    }
}

/// Queues a step's record (or a wait for an earlier one) with the log; the
/// answer goes back with what the caller must wait for before using it.
pub fn respond(outcome: StepOutcome, log: &ShardLog) -> Result<Pending, EngineError> {
    let (result, record, wait) = outcome?;
    let durable = log.settle(record.into_iter().collect(), wait)?;
    Ok((result, durable))
}

/// Asks an active actor to stop (passivation or removal).
pub struct Passivate;

impl Message for Passivate {
    type Result = ();
}

impl Handler<Passivate> for PairActor {
    type Result = ();

    fn handle(&mut self, _: Passivate, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
