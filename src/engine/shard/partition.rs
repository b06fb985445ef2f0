//! One partition's pairs as a shard holds them.
//!
//! Owns: `Partition` (the pair slots of one partition, in insertion order so
//! a snapshot can walk them in chunks while traffic flows, and the token
//! that tells such a walk that positions moved) and the slot operations that
//! do not need the actor system: find or create, settle after a step, erase,
//! drop erased slots.

use std::rc::Rc;

use indexmap::IndexMap;

use crate::domain::{AchievementId, CustomerId, PairTracker};
use crate::engine::log::{PartitionId, Position};
use crate::engine::pair::{PairCell, PairKey};

/// A fast hasher seeded per process (keys come from clients).
pub type Hasher = ahash::RandomState;

/// A pair as its partition holds it. An active pair's actor address is
/// kept by the shard (`Shard::active`), not here: it takes 24 bytes, and
/// most pairs never have one.
pub struct Slot {
    pub cell: Rc<PairCell>,
}

#[derive(Default)]
pub struct Partition {
    pub pairs: IndexMap<PairKey, Slot, Hasher>,
    /// Bumped when pairs are removed, which moves positions in `pairs` and so
    /// invalidates a snapshot walking them.
    pub removals: u64,
    /// Slots left empty by erasures since the last purge: a purge walks the
    /// whole partition on its shard's thread (milliseconds for a large one,
    /// which every event behind it waits for), so it runs only when there
    /// is something to purge.
    emptied: usize,
}

impl Partition {
    /// The position of a pair's slot, created if it is missing; and whether
    /// it was created now.
    /// `hint` is where the slot may be (it is checked): a batch finds its
    /// pairs before applying them, and slots never move within a batch.
    pub fn ensure(
        &mut self,
        key: &PairKey,
        hint: Option<usize>,
        partition: PartitionId,
        number: impl FnOnce() -> u64,
    ) -> (usize, bool) {
        if let Some(i) = hint.filter(|i| self.pairs.get_index(*i).is_some_and(|(k, _)| k == key)) {
            return (i, false);
        }
        match self.pairs.get_index_of(key) {
            Some(i) => (i, false),
            None => {
                let (i, _) = self.pairs.insert_full(
                    key.clone(),
                    Slot {
                        cell: PairCell::new(PairTracker::new(number()), partition),
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
        self.emptied += erased;
        erased
    }

    /// Drops the slots of erased pairs (no progress, no actor: `active`
    /// tells which have one). Positions move, so this runs only where no
    /// snapshot walks them.
    pub fn purge_empty(&mut self, active: impl Fn(&PairKey) -> bool) {
        if self.emptied == 0 {
            return;
        }
        let before = self.pairs.len();
        // Empty slots with an actor stay, and are purged another time.
        let mut kept = 0;
        self.pairs.retain(|k, s| {
            if s.cell.tracker.borrow().has_progress() {
                return true;
            }
            let keep = active(k);
            kept += usize::from(keep);
            keep
        });
        self.emptied = kept;
        if self.pairs.len() != before {
            self.removals += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(customer: &str) -> PairKey {
        PairKey {
            achievement: AchievementId(1),
            customer: CustomerId::parse(customer, "/integrationId").expect("valid"),
        }
    }

    fn with_progress(part: &mut Partition, k: &PairKey) {
        let (i, _) = part.ensure(k, None, PartitionId(0), || 1);
        use crate::domain::{tracker::TrackerParts, Iteration, ProgressStatus, ProgressTrackerId};
        let t = PairTracker::from_parts(TrackerParts {
            tracker_base: 1,
            next_seq: 1,
            current: Some(Iteration {
                id: ProgressTrackerId(1),
                status: ProgressStatus::InProgress,
                progress: rust_decimal::Decimal::ONE,
                start: chrono::Utc::now(),
                end: None,
                completion: None,
            }),
            ..Default::default()
        });
        *part.pairs[i].cell.tracker.borrow_mut() = t;
    }

    #[test]
    fn a_purge_drops_erased_slots_and_moves_positions_only_after_an_erasure() {
        let mut part = Partition::default();
        let (a, b) = (key("a"), key("b"));
        with_progress(&mut part, &a);
        with_progress(&mut part, &b);
        part.purge_empty(|_| false);
        assert_eq!((part.pairs.len(), part.removals), (2, 0));
        assert_eq!(
            part.erase(&a.customer, &[a.achievement], Position(9), || 2),
            1
        );
        // An erased pair with an actor keeps its slot until a later purge.
        part.purge_empty(|k| k == &a);
        assert_eq!((part.pairs.len(), part.removals), (2, 0));
        part.purge_empty(|_| false);
        assert_eq!((part.pairs.len(), part.removals), (1, 1));
        assert!(part.pairs.contains_key(&b));
        part.purge_empty(|_| false);
        assert_eq!(part.removals, 1);
    }

    #[test]
    fn a_hint_is_used_only_where_it_names_the_pair() {
        let mut part = Partition::default();
        let (a, b, c) = (key("a"), key("b"), key("c"));
        assert_eq!(part.ensure(&a, None, PartitionId(0), || 1), (0, true));
        assert_eq!(part.ensure(&b, Some(0), PartitionId(0), || 2), (1, true));
        assert_eq!(part.ensure(&b, Some(1), PartitionId(0), || 3), (1, false));
        // A hint naming another pair, or no slot at all, is looked past.
        assert_eq!(part.ensure(&a, Some(1), PartitionId(0), || 4), (0, false));
        assert_eq!(part.ensure(&a, Some(7), PartitionId(0), || 5), (0, false));
        assert_eq!(part.ensure(&c, Some(0), PartitionId(0), || 6), (2, true));
        assert_eq!(part.pairs.len(), 3);
    }

    #[test]
    fn a_slot_is_one_pointer() {
        // Every pair has a slot; an actor's address (24 bytes) lives with
        // the shard's active pairs instead.
        assert_eq!(std::mem::size_of::<Slot>(), std::mem::size_of::<usize>());
    }
}
