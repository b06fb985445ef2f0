//! Period-end timers: the one place that makes a pair's expiry happen on
//! time, whether the pair is served by its shard or by an active actor.
//!
//! Owns: `Timers`, one per shard, shared (same thread) by the shard and its
//! pair actors. Entries are filed by the whole second at or after a pair's
//! deadline and point at the pair's cell weakly, so removing or moving a pair
//! never needs the timers rebuilt: an entry whose pair is gone, or whose
//! deadline changed since (`PairCell::armed` no longer matches), is skipped
//! when it comes due. Firing a timer only makes visible what time already
//! decided (`PairTracker::tick`), so a late or stale entry is harmless.

use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use chrono::{DateTime, Utc};

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

    /// Makes every pair whose deadline has passed at `now` show it; returns
    /// how many iterations expired.
    pub fn fire(&mut self, now: DateTime<Utc>) -> u64 {
        let mut expired = 0;
        let now_second = now.timestamp();
        while self
            .by_second
            .first_key_value()
            .is_some_and(|(second, _)| *second <= now_second)
        {
            let Some((second, cells)) = self.by_second.pop_first() else {
                break;
            };
            for cell in cells.iter().filter_map(Weak::upgrade) {
                // Re-armed since (its deadline moved) or disarmed (erased).
                if cell.armed.get() != Some(second) {
                    continue;
                }
                cell.armed.set(None);
                if cell.tracker.borrow_mut().tick(now) {
                    expired += 1;
                }
                // An expired iteration has no deadline; anything else that
                // still has one (a deadline in this very second) is filed again.
                self.arm(&cell);
            }
        }
        expired
    }
}
