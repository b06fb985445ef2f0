//! The actor of an active pair.
//!
//! Owns: `PairActor`, which serves a hot pair's messages without going
//! through its shard (HTTP workers find it in the routing map), and
//! `Passivate`. Lifecycle (virtual actors): the shard activates an actor when
//! a pair's messages come less than a second apart and passivates it after an
//! idle time; the state stays in the shard's `PairCell` either way, so reads,
//! exports and snapshots never need the actor, and its period timer lives
//! with the shard's (`Timers`), which files an active pair's deadline at
//! each tick. A panic in a handler stops the actor; the
//! shard drops it and the next message restarts it from the cell's state.

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;

use super::error::EngineError;
use super::pair::{respond, run_op, PairCell, PairKey, PairMessage, Pending, Ticks};
use super::shard::{Deactivated, Shard};
use super::shard_log::ShardLog;
use super::Shared;

pub struct PairActor {
    key: PairKey,
    cell: Rc<PairCell>,
    shared: Arc<Shared>,
    log: Rc<ShardLog>,
    shard: Addr<Shard>,
}

impl PairActor {
    pub fn new(
        key: PairKey,
        cell: Rc<PairCell>,
        shared: Arc<Shared>,
        log: Rc<ShardLog>,
        shard: Addr<Shard>,
    ) -> Self {
        PairActor {
            key,
            cell,
            shared,
            log,
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

impl Handler<PairMessage> for PairActor {
    type Result = Result<Pending, EngineError>;

    fn handle(&mut self, msg: PairMessage, ctx: &mut Self::Context) -> Self::Result {
        let step = run_op(
            &self.cell,
            msg.as_ref(),
            &self.shared,
            &self.log,
            self.shared.clock.now(),
            Ticks::now(),
        );
        if matches!(step, Err(EngineError::Internal(_))) {
            // Restart from the last state: the shard drops this actor and
            // activates a fresh one on the next message.
            self.shard.do_send(Deactivated {
                key: self.key.clone(),
            });
            ctx.stop();
        }
        respond(step, &self.cell, msg.partition, &self.log, &self.shared)
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
