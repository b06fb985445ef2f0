//! One partition's pairs as a shard holds them.
//!
//! Owns: `Partition` (the pair slots of one partition, in insertion order so
//! a snapshot can walk them in chunks while traffic flows, and the token
//! that tells such a walk that positions moved) and the slot operations that
//! do not need the actor system: find or create, settle after a step, erase,
//! drop erased slots.

use std::rc::Rc;

use actix::Addr;
use indexmap::IndexMap;

use crate::domain::{AchievementId, CustomerId, PairTracker};
use crate::engine::actor::PairActor;
use crate::engine::log::Position;
use crate::engine::pair::{PairCell, PairKey};

/// A fast hasher seeded per process (keys come from clients).
pub type Hasher = ahash::RandomState;

pub struct Slot {
    pub cell: Rc<PairCell>,
    pub actor: Option<Addr<PairActor>>,
}

#[derive(Default)]
pub struct Partition {
    pub pairs: IndexMap<PairKey, Slot, Hasher>,
    /// Bumped when pairs are removed, which moves positions in `pairs` and so
    /// invalidates a snapshot walking them.
    pub removals: u64,
}

impl Partition {
    /// The position of a pair's slot, created if it is missing; and whether
    /// it was created now.
    pub fn ensure(&mut self, key: &PairKey, number: impl FnOnce() -> u64) -> (usize, bool) {
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

    /// The achievements among `achievements` in which the customer has a
    /// pair with progress; in replay (`before`), only pairs last changed
    /// before that position (a pair changed after the erasure is a new one).
    pub fn erasable(
        &self,
        customer: &CustomerId,
        achievements: &[AchievementId],
        before: Option<Position>,
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
                    before.is_none_or(|p| slot.cell.last.get() < p)
                        && slot.cell.tracker.borrow().has_progress()
                })
            })
            .collect()
    }

    /// Empties a customer's pairs (from `erasable`) in place: slots stay (an
    /// active actor keeps its cell, a snapshot in progress keeps its
    /// positions) and are dropped when the next snapshot starts. `numbers`
    /// gives each emptied pair its next pair number. Returns how many.
    pub fn erase(
        &mut self,
        customer: &CustomerId,
        achievements: &[AchievementId],
        at: Position,
        mut numbers: impl FnMut() -> u64,
    ) -> usize {
        let mut key = PairKey {
            achievement: AchievementId(0),
            customer: customer.clone(),
        };
        let mut erased = 0;
        for a in achievements {
            key.achievement = *a;
            let Some(slot) = self.pairs.get(&key) else {
                continue;
            };
            *slot.cell.tracker.borrow_mut() = PairTracker::new(numbers());
            // Its timer entry, if any, is now stale.
            slot.cell.armed.set(None);
            slot.cell.last.set(at);
            erased += 1;
        }
        erased
    }

    /// Drops the slots of erased pairs (no progress, no actor). Positions
    /// move, so this runs only where no snapshot walks them.
    pub fn purge_empty(&mut self) {
        let before = self.pairs.len();
        self.pairs
            .retain(|_, s| s.actor.is_some() || s.cell.tracker.borrow().has_progress());
        if self.pairs.len() != before {
            self.removals += 1;
        }
    }
}
