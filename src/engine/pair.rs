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
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::catalog::AchievementEntry;
use super::error::EngineError;
use super::shard::{Deactivated, Shard};
use super::Shared;
use crate::clock;
use crate::domain::{AchievementId, Ctx, CustomerId, EventId, EventResult, Increase, PairTracker};

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
    pub last_active: Cell<Instant>,
}

impl PairCell {
    pub fn new(tracker: PairTracker) -> Rc<PairCell> {
        Rc::new(PairCell {
            tracker: RefCell::new(tracker),
            last_active: Cell::new(Instant::now()),
        })
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
pub struct PairOp {
    pub key: PairKey,
    pub entry: Arc<AchievementEntry>,
    pub kind: OpKind,
}

impl Message for PairOp {
    type Result = Result<EventResult, EngineError>;
}

/// Applies one operation to a pair's state: the only call into the domain.
/// A panic inside the domain is caught, logged and counted; the state is left
/// as the domain left it (it validates before it mutates).
pub fn run_op(cell: &PairCell, op: &PairOp, shared: &Shared) -> Result<EventResult, EngineError> {
    if !op.entry.is_alive() {
        return Err(EngineError::not_found("achievement", "achievementId"));
    }
    let now = clock::now();
    let ctx = Ctx {
        rules: &op.entry.achievement.rules,
        tz: op.entry.tz,
        now,
        campaign_running: op.entry.campaign.running_at(now),
        limits: &shared.limits,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut tracker = cell.tracker.borrow_mut();
        let result = match &op.kind {
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
    cell.last_active.set(Instant::now());
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

/// The actor of an active pair.
pub struct PairActor {
    key: PairKey,
    cell: Rc<PairCell>,
    shared: Arc<Shared>,
    shard: Addr<Shard>,
    timer: Option<(chrono::DateTime<chrono::Utc>, SpawnHandle)>,
}

impl PairActor {
    pub fn new(key: PairKey, cell: Rc<PairCell>, shared: Arc<Shared>, shard: Addr<Shard>) -> Self {
        PairActor {
            key,
            cell,
            shared,
            shard,
            timer: None,
        }
    }

    /// Keeps one timer armed at the current iteration's end.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let deadline = self.cell.tracker.borrow().next_deadline();
        if self.timer.as_ref().map(|t| t.0) == deadline {
            return;
        }
        if let Some((_, handle)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = deadline {
            let wait = (at - clock::now()).to_std().unwrap_or_default();
            let handle = ctx.run_later(wait, |act, ctx| {
                act.timer = None;
                if act.cell.tracker.borrow_mut().tick(clock::now()) {
                    act.shared.stats.count_expiry();
                }
                act.arm_timer(ctx);
            });
            self.timer = Some((at, handle));
        }
    }
}

impl Actor for PairActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.stats.actor_started();
        self.arm_timer(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.stats.actor_stopped();
    }
}

impl Handler<PairOp> for PairActor {
    type Result = Result<EventResult, EngineError>;

    fn handle(&mut self, op: PairOp, ctx: &mut Self::Context) -> Self::Result {
        let result = run_op(&self.cell, &op, &self.shared);
        if matches!(result, Err(EngineError::Internal(_))) {
            // Restart from the last state: the shard drops this actor and
            // activates a fresh one on the next message.
            self.shard.do_send(Deactivated {
                key: self.key.clone(),
            });
            ctx.stop();
        } else {
            self.arm_timer(ctx);
        }
        result
    }
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
