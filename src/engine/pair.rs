//! One (customer, achievement) pair: its key, its state cell, the messages
//! that change it, and the one call into the domain.
//!
//! Owns: `PairKey`, `PairCell` (the tracker, shared on one arbiter thread by
//! the shard that keeps it and the actor that serves it while active), the
//! `PairMessage` message, `run_op` (check → domain step → the change to log)
//! and `apply_op` (the domain step alone, for live traffic and replay alike).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::catalog::AchievementEntry;
use super::error::EngineError;
use super::feed::{self, FeedEntry};
use super::log::{ChangeOpRef, Commit, PairChangeRef, PartitionId, Position};
use super::shard_log::ShardLog;
use super::Shared;
use crate::domain::{
    AchievementId, Ctx, CustomerId, EventId, EventResult, Increase, Outcome, PairTracker,
    Transition,
};

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
    /// The log position of the pair's last change (in its partition's stream).
    pub last: Cell<Position>,
    /// The deadline this pair has in its shard's timers, if any.
    pub armed: Armed,
}

/// The second a pair is filed under in its shard's timers, if any, in 8
/// bytes: an `Option<i64>` takes 16, which put a pair's cell (with `Rc`'s
/// counts) in the allocator's 192-byte class instead of the 160-byte one.
#[derive(Debug)]
pub struct Armed(Cell<i64>);

impl Armed {
    /// No deadline: no timer second is this far back (`DateTime`'s range
    /// ends hundreds of thousands of years before it).
    const NONE: i64 = i64::MIN;

    pub fn get(&self) -> Option<i64> {
        let second = self.0.get();
        (second != Self::NONE).then_some(second)
    }

    pub fn set(&self, second: Option<i64>) {
        self.0.set(second.unwrap_or(Self::NONE));
    }
}

impl PairCell {
    pub fn new(tracker: PairTracker) -> Rc<PairCell> {
        Rc::new(PairCell {
            tracker: RefCell::new(tracker),
            last_active: Cell::new(Ticks::now()),
            last: Cell::new(Position(0)),
            armed: Armed(Cell::new(Armed::NONE)),
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
pub struct PairMessage {
    pub key: PairKey,
    pub partition: PartitionId,
    pub entry: Arc<AchievementEntry>,
    pub kind: OpKind,
}

impl Message for PairMessage {
    /// The answer and, when it must wait for the log, what to wait for: the
    /// caller waits, so the pair's thread is free at once.
    type Result = Result<Pending, EngineError>;
}

/// An answer that may still wait for the log.
pub type Pending = (EventResult, Option<Commit>);

/// A borrowed operation: what one step needs, without cloning the entry
/// (bulk paths share one `Arc` per batch rather than one per event).
#[derive(Clone, Copy)]
pub struct OpRef<'a> {
    pub key: &'a PairKey,
    pub partition: PartitionId,
    pub entry: &'a AchievementEntry,
    pub kind: &'a OpKind,
}

impl PairMessage {
    pub fn as_ref(&self) -> OpRef<'_> {
        OpRef {
            key: &self.key,
            partition: self.partition,
            entry: &self.entry,
            kind: &self.kind,
        }
    }
}

/// A step's answer, the change to log (if it changed anything), and the
/// position that must be durable before the answer may be given (a
/// duplicate's original may still be on its way to the log).
pub struct Step<'a> {
    pub result: EventResult,
    pub change: Option<PairChangeRef<'a>>,
    pub wait: Position,
    /// What the change did, for the feed (sent once it has a position).
    pub feed: Vec<FeedEntry>,
}

/// Applies one operation to a pair's state: the only call into the domain.
/// A panic inside the domain is caught, logged and counted; the state is left
/// as the domain left it (it validates before it mutates).
pub fn run_op<'a>(
    cell: &PairCell,
    op: OpRef<'a>,
    shared: &Shared,
    log: &ShardLog,
    now: DateTime<Utc>,
    tick: Ticks,
) -> Result<Step<'a>, EngineError> {
    if !op.entry.is_alive() {
        return Err(EngineError::not_found("achievement", "achievementId"));
    }
    log.check_writable(op.partition)?;
    let running = op.entry.campaign.running_at(now);
    let mut transitions = Vec::new();
    let result = apply_op(cell, op, shared, now, tick, running, &mut transitions)?;
    let feed = if transitions.is_empty() {
        Vec::new()
    } else {
        let event_id = match op.kind {
            OpKind::Increase(inc) => inc.event_id.as_ref(),
            OpKind::Rollback(id) => Some(id),
            #[cfg(test)]
            OpKind::Panic => None,
        };
        feed::entries(
            op.entry,
            op.partition,
            &op.key.customer,
            event_id,
            transitions,
        )
    };
    let change = match (result.outcome, op.kind) {
        (Outcome::Applied, OpKind::Increase(inc)) => Some(ChangeOpRef::Increase(inc)),
        (Outcome::Applied, OpKind::Rollback(id)) => Some(ChangeOpRef::Rollback(id)),
        _ => None,
    }
    .map(|op_ref| PairChangeRef {
        achievement: op.key.achievement,
        customer: &op.key.customer,
        pair_number: cell.tracker.borrow().pair_number(),
        now,
        campaign_running: running,
        op: op_ref,
    });
    let wait = if result.outcome == Outcome::Duplicate {
        cell.last.get()
    } else {
        Position(0)
    };
    Ok(Step {
        result,
        change,
        wait,
        feed,
    })
}

/// The domain step with a given time and campaign state (live and replay);
/// what it did to the pair's iterations is added to `transitions`.
pub fn apply_op(
    cell: &PairCell,
    op: OpRef<'_>,
    shared: &Shared,
    now: DateTime<Utc>,
    tick: Ticks,
    campaign_running: bool,
    transitions: &mut Vec<Transition>,
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
        let mark = tracker.mark();
        let (result, at) = match op.kind {
            OpKind::Increase(inc) => (tracker.apply(&ctx, inc)?, inc.at.unwrap_or(now)),
            OpKind::Rollback(id) => (tracker.rollback(&ctx, id), now),
            #[cfg(test)]
            OpKind::Panic => panic!("injected test panic"),
        };
        if result.outcome == Outcome::Applied {
            tracker.transitions_since(mark, at, transitions);
        }
        if tracker.has_progress() {
            op.entry.mark_progress();
        }
        Ok(result)
    }));
    cell.last_active.set(tick);
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

/// Logs a step's change (or waits for an earlier one) and hands back what
/// the caller must wait for before answering.
pub fn respond(
    step: Result<Step<'_>, EngineError>,
    cell: &PairCell,
    partition: PartitionId,
    log: &ShardLog,
    shared: &Shared,
) -> Result<Pending, EngineError> {
    let step = step?;
    let commit = match step.change {
        Some(change) => {
            let (positions, commit) = log.append_changes(&[(partition, change, cell)])?;
            let at = positions.first().copied().unwrap_or_default();
            feed::send_entries(shared.feed(), at, step.feed);
            commit
        }
        None => log.durable(partition, step.wait)?,
    };
    Ok((step.result, commit))
}

/// Waits until a change is durable, then answers.
pub async fn after_durable<T>(commit: Option<Commit>, answer: T) -> Result<T, EngineError> {
    if let Some(commit) = commit {
        if let Err(e) = commit.await {
            tracing::error!(error = %e, "a change could not be made durable");
            return Err(EngineError::Unavailable(
                "the change could not be written to disk; it was not acknowledged",
            ));
        }
    }
    Ok(answer)
}
