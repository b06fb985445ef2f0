//! One partition's pairs as a shard holds them.
//!
//! Owns: `Partition` (the pair slots of one partition, in insertion order so
//! a snapshot can walk them in chunks while traffic flows, and the token
//! that tells such a walk that positions moved), `Slot` (a pair live in a
//! cell, or frozen into compact bytes while idle) and the slot operations
//! that do not need the actor system: find or create, thaw, freeze idle
//! pairs, erase, drop erased slots.

use std::rc::Rc;
use std::time::Duration;

use super::frozen::Frozen;
use super::table::PairTable;
use crate::domain::{AchievementId, CustomerId, PairTracker};
use crate::engine::log::Position;
use crate::engine::pair::{PairCell, PairKey};

/// How many slots ahead a walk over a partition asks for pairs' state.
pub const PREFETCH_AHEAD: usize = 8;

/// A fast hasher seeded per process (keys come from clients).
pub type Hasher = ahash::RandomState;

/// A pair as its partition holds it: live in a cell (shared with its actor,
/// if it has one: the shard keeps actors' addresses in `Shard::active`), or
/// frozen into compact bytes after it has been idle a while (`Frozen`; most
/// pairs, most of the time). A frozen pair always has progress.
pub enum Slot {
    Live(Rc<PairCell>),
    Frozen(Frozen),
}

impl Slot {
    /// Its cell, if it is live.
    pub fn live(&self) -> Option<&Rc<PairCell>> {
        match self {
            Slot::Live(cell) => Some(cell),
            Slot::Frozen(_) => None,
        }
    }

    /// The log position of the pair's last change.
    pub fn last(&self) -> Position {
        match self {
            Slot::Live(cell) => cell.last.get(),
            Slot::Frozen(f) => f.last(),
        }
    }

    /// The timer second the pair is filed under, if any.
    pub fn armed(&self) -> Option<i64> {
        match self {
            Slot::Live(cell) => cell.armed.get(),
            Slot::Frozen(f) => f.armed(),
        }
    }

    /// Whether the pair has progress (an erased pair's slot has none).
    pub fn has_progress(&self) -> bool {
        match self {
            Slot::Live(cell) => cell.tracker.borrow().has_progress(),
            Slot::Frozen(_) => true,
        }
    }

    /// Whether the pair handled a message within `window`.
    pub fn active_within(&self, window: Duration) -> bool {
        match self {
            Slot::Live(cell) => cell.last_active.get().elapsed() < window,
            Slot::Frozen(_) => false,
        }
    }

    /// Asks the CPU for the pair's state ahead of its use.
    pub fn prefetch(&self) {
        match self {
            Slot::Live(cell) => super::prefetch(Rc::as_ptr(cell)),
            Slot::Frozen(f) => super::prefetch(f.as_ptr()),
        }
    }

    /// Reads the pair's tracker (a frozen pair is decoded for the read and
    /// stays frozen).
    pub fn read<R>(&self, f: impl FnOnce(&PairTracker) -> R) -> R {
        match self {
            Slot::Live(cell) => f(&cell.tracker.borrow()),
            Slot::Frozen(frozen) => f(&frozen.tracker()),
        }
    }
}

#[derive(Default)]
pub struct Partition {
    pub pairs: PairTable<PairKey, Slot, Hasher>,
    /// Bumped when pairs are removed, which moves positions in `pairs` and so
    /// invalidates a snapshot walking them.
    pub removals: u64,
    /// Slots left empty by erasures since the last purge: a purge walks the
    /// whole partition on its shard's thread (milliseconds for a large one,
    /// which every event behind it waits for), so it runs only when there
    /// is something to purge.
    emptied: usize,
    /// Frozen slots.
    pub frozen: usize,
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
                    Slot::Live(PairCell::new(PairTracker::new(number()))),
                );
                (i, true)
            }
        }
    }

    /// The live cell of the pair at `index`, thawed first if it is frozen.
    /// `None` if there is no such slot.
    pub fn cell(&mut self, index: usize) -> Option<Rc<PairCell>> {
        let (_, slot) = self.pairs.get_index_mut(index)?;
        if let Slot::Frozen(frozen) = slot {
            *slot = Slot::Live(frozen.thaw());
            self.frozen = self.frozen.saturating_sub(1);
        }
        slot.live().cloned()
    }

    /// Freezes the pair at `index` again after a step that had to thaw it
    /// (an expiry), if it is live, has progress and nobody else holds it.
    pub fn refreeze(&mut self, index: usize) {
        let Some((_, slot)) = self.pairs.get_index_mut(index) else {
            return;
        };
        let Slot::Live(cell) = slot else {
            return;
        };
        if let Some(f) = frozen_alone(cell) {
            *slot = Slot::Frozen(f);
            self.frozen += 1;
        }
    }

    /// Freezes the idle pairs among the `max` slots from `from`: live, with
    /// progress, untouched for `idle`, and held by nobody else (no actor, no
    /// step in flight). Returns where to go on from (0 after the last slot)
    /// and how many were frozen.
    pub fn freeze_idle(&mut self, from: usize, max: usize, idle: Duration) -> (usize, usize) {
        let end = from.saturating_add(max).min(self.pairs.len());
        let mut frozen = 0;
        for i in from.min(end)..end {
            // Slots are in a row, their cells are not: ask for the cells a
            // few slots ahead so their cache misses overlap (frozen slots
            // are passed over without being read).
            let ahead = i + PREFETCH_AHEAD;
            if let Some((_, Slot::Live(cell))) = self.pairs.get_index(ahead).filter(|_| ahead < end)
            {
                super::prefetch(Rc::as_ptr(cell));
            }
            let Some((_, slot)) = self.pairs.get_index_mut(i) else {
                break;
            };
            let Slot::Live(cell) = slot else {
                continue;
            };
            let idle_enough = cell.last_active.get().elapsed() >= idle;
            if let Some(f) = idle_enough.then(|| frozen_alone(cell)).flatten() {
                *slot = Slot::Frozen(f);
                frozen += 1;
            }
        }
        self.frozen += frozen;
        let next = if end >= self.pairs.len() { 0 } else { end };
        (next, frozen)
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
                    before.is_none_or(|p| slot.last() < p) && slot.has_progress()
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
            let Some(cell) = self.pairs.get_index_of(&key).and_then(|i| self.cell(i)) else {
                continue;
            };
            *cell.tracker.borrow_mut() = PairTracker::new(numbers());
            // Its timer entry, if any, is now stale.
            cell.armed.set(None);
            cell.last.set(at);
            erased += 1;
        }
        self.emptied += erased;
        erased
    }

    /// Drops the slots of erased pairs (no progress, no actor: `active`
    /// tells which have one). Positions move, so this runs only where no
    /// snapshot walks them; returns whether they moved (timers filed by
    /// position must then be filed again).
    pub fn purge_empty(&mut self, active: impl Fn(&PairKey) -> bool) -> bool {
        if self.emptied == 0 {
            return false;
        }
        let before = self.pairs.len();
        // Empty slots with an actor stay, and are purged another time.
        let mut kept = 0;
        self.pairs.retain(|k, s| {
            if s.has_progress() {
                return true;
            }
            let keep = active(k);
            kept += usize::from(keep);
            keep
        });
        self.emptied = kept;
        let moved = self.pairs.len() != before;
        if moved {
            self.removals += 1;
        }
        moved
    }
}

/// A cell's frozen form, if it has progress and nobody but its slot holds
/// it (no actor, no step in flight).
fn frozen_alone(cell: &Rc<PairCell>) -> Option<Frozen> {
    let alone =
        Rc::strong_count(cell) == 1 && cell.tracker.try_borrow().is_ok_and(|t| t.has_progress());
    alone.then(|| Frozen::of(cell)).flatten()
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
        let (i, _) = part.ensure(k, None, || 1);
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
        *part.cell(i).expect("a slot").tracker.borrow_mut() = t;
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
        assert_eq!(part.ensure(&a, None, || 1), (0, true));
        assert_eq!(part.ensure(&b, Some(0), || 2), (1, true));
        assert_eq!(part.ensure(&b, Some(1), || 3), (1, false));
        // A hint naming another pair, or no slot at all, is looked past.
        assert_eq!(part.ensure(&a, Some(1), || 4), (0, false));
        assert_eq!(part.ensure(&a, Some(7), || 5), (0, false));
        assert_eq!(part.ensure(&c, Some(0), || 6), (2, true));
        assert_eq!(part.pairs.len(), 3);
    }

    #[test]
    fn a_slot_is_two_words() {
        // Every pair has a slot; an actor's address (24 bytes) lives with
        // the shard's active pairs instead.
        assert_eq!(
            std::mem::size_of::<Slot>(),
            2 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn a_pairs_entry_fits_the_cache_line_it_starts() {
        // The table puts each entry at the start of a line (64 bytes): a
        // larger key or slot would put every entry across two.
        assert!(std::mem::size_of::<(PairKey, Slot)>() <= 64);
    }
}
