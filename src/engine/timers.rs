//! Period-end timers: the one place that notices, on time, that a pair's
//! iteration has ended, whether the pair is served by its shard or by an
//! active actor.
//!
//! Owns: `Timers`, one per shard, shared (same thread) by the shard and its
//! pair actors. Entries are filed by the whole second at or after a pair's
//! deadline with the pair's partition, and point at the pair's cell weakly,
//! so removing or moving a pair never needs the timers rebuilt: an entry
//! whose pair is gone, or whose deadline changed since (`PairCell::armed`
//! no longer matches), is skipped when it comes due. The shard records what
//! comes due in the partition's log and applies it (`Shard::expire`).

use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use chrono::{DateTime, Utc};

use super::log::PartitionId;
use super::pair::PairCell;

/// The whole second at or after an instant: a timer filed there never fires
/// before the period ends.
fn timer_second(t: DateTime<Utc>) -> i64 {
    let s = t.timestamp();
    if t.timestamp_subsec_nanos() > 0 {
        s + 1
    } else {
        s
    }
}

/// A shard's timers.
#[derive(Default)]
pub struct Timers {
    /// Cells know their partition: a pointer per pair is all this keeps.
    by_second: BTreeMap<i64, Vec<Weak<PairCell>>>,
}

impl Timers {
    /// Files the pair's current deadline, unless it is filed already.
    pub fn arm(&mut self, cell: &Rc<PairCell>) {
        let second = cell.tracker.borrow().next_deadline().map(timer_second);
        if cell.armed.get() == second {
            return;
        }
        cell.armed.set(second);
        if let Some(at) = second {
            self.by_second
                .entry(at)
                .or_default()
                .push(Rc::downgrade(cell));
        }
    }

    /// Takes out the pairs whose filed deadline has come at `now`, by
    /// partition. They are disarmed: whoever takes them arms them again
    /// (after expiring them, or to try again later).
    pub fn due(&mut self, now: DateTime<Utc>) -> BTreeMap<PartitionId, Vec<Rc<PairCell>>> {
        let mut due: BTreeMap<PartitionId, Vec<Rc<PairCell>>> = BTreeMap::new();
        let now_second = now.timestamp();
        while self
            .by_second
            .first_key_value()
            .is_some_and(|(second, _)| *second <= now_second)
        {
            let Some((second, cells)) = self.by_second.pop_first() else {
                break;
            };
            for weak in cells {
                let Some(cell) = weak.upgrade() else {
                    continue;
                };
                // Re-armed since (its deadline moved) or disarmed (erased).
                if cell.armed.get() != Some(second) {
                    continue;
                }
                cell.armed.set(None);
                due.entry(cell.partition).or_default().push(cell);
            }
        }
        due
    }
}
