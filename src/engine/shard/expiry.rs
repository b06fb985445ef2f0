//! A shard's period ends: filing a pair's deadline in the shard's timers,
//! filing a partition's pairs again when their positions moved, and
//! expiring what comes due through the partition's log (live and replay).
//!
//! Owns: `Shard::arm`, `Shard::refile`, `Shard::expire` and
//! `Shard::apply_expiry`. The timers themselves are `engine::timers`.

use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::{Shard, Slot};
use crate::engine::feed;
use crate::engine::log::{Expiry, PartitionId, Position, RecordRef};
use crate::engine::pair::{PairCell, PairKey};
use crate::engine::timers::timer_second;

impl Shard {
    /// Files the current deadline of the pair at `index` of partition `p`
    /// (a live cell), unless it is filed already.
    pub(super) fn arm(&self, p: PartitionId, index: usize, cell: &PairCell) {
        let second = cell.tracker.borrow().next_deadline().map(timer_second);
        if cell.armed.get() == second {
            return;
        }
        cell.armed.set(second);
        if let Some(second) = second {
            self.timers.borrow_mut().file(second, p, index);
        }
    }

    /// Files every pair of partition `p` again, after its positions moved
    /// (the entries filed before name old positions: they are skipped).
    pub(super) fn refile(&self, p: PartitionId) {
        let Ok(part) = self.part(p) else {
            return;
        };
        let mut timers = self.timers.borrow_mut();
        for (index, slot) in part.pairs.values().enumerate() {
            if let Some(second) = slot.armed() {
                timers.file(second, p, index);
            }
        }
    }

    /// Expires, through the partition's log, the iterations that ended by
    /// `now` among the pairs whose timer entries (a position and the second
    /// filed) came due: one record names the pairs, then each is ticked and
    /// the feed told. If the log cannot take it, they are filed again and
    /// tried on the next tick (reads show them expired meanwhile).
    pub(super) fn expire(
        &mut self,
        p: PartitionId,
        entries: Vec<(usize, i64)>,
        now: DateTime<Utc>,
    ) {
        let Ok(part) = self.part_mut(p) else {
            return;
        };
        // Only entries whose slot is still filed under that second: others
        // are stale (the deadline moved, the pair went, positions moved).
        let mut pairs: Vec<(usize, PairKey, Rc<PairCell>)> = Vec::new();
        // Frozen pairs are thawed to be ticked, and frozen again after:
        // when a fixed schedule ends everyone's period at once, they would
        // otherwise all come back to life together.
        let mut thawed = Vec::new();
        for (index, second) in entries {
            let Some((_, slot)) = part.pairs.get_index(index) else {
                continue;
            };
            if slot.armed() != Some(second) {
                continue;
            }
            if matches!(slot, Slot::Frozen(_)) {
                thawed.push(index);
            }
            let Some(cell) = part.cell(index) else {
                continue;
            };
            cell.armed.set(None);
            let key = part.pairs.get_index(index).map(|(k, _)| k.clone());
            pairs.extend(key.map(|key| (index, key, cell)));
        }
        self.expire_found(p, pairs, now);
        if let Ok(part) = self.part_mut(p) {
            for index in thawed {
                part.refreeze(index);
            }
        }
    }

    /// `expire`'s work on the pairs found due (their cells are dropped when
    /// it returns).
    fn expire_found(
        &mut self,
        p: PartitionId,
        pairs: Vec<(usize, PairKey, Rc<PairCell>)>,
        now: DateTime<Utc>,
    ) {
        let ended = |c: &PairCell| c.tracker.borrow().next_deadline().is_some_and(|d| d <= now);
        let rearm = |shard: &Shard, pairs: &[(usize, PairKey, Rc<PairCell>)]| {
            for (index, _, cell) in pairs {
                shard.arm(p, *index, cell);
            }
        };
        if !pairs.iter().any(|(_, _, c)| ended(c)) || self.log.check_writable(p).is_err() {
            rearm(self, &pairs);
            return;
        }
        let (ended_pairs, later): (Vec<_>, Vec<_>) =
            pairs.into_iter().partition(|(_, _, c)| ended(c));
        rearm(self, &later);
        let expiry = Expiry {
            at: now,
            pairs: ended_pairs
                .iter()
                .map(|(_, k, _)| (k.achievement, k.customer.clone()))
                .collect(),
        };
        if let Some(remote) = self.shared.remote() {
            // In a cluster the record is applied when the log hands it back
            // (`apply_logged`), as on every replica of the partition, and
            // files them again.
            remote.expire(p, expiry);
            return;
        }
        let position = match self.log.append_other(p, RecordRef::Expire(&expiry)) {
            // Nobody waits for it; the feed waits until it is durable.
            Ok((position, _)) => position,
            Err(_) => {
                rearm(self, &ended_pairs);
                return;
            }
        };
        let expired = self.apply_expiry(p, position, now, &ended_pairs);
        self.shared.stats.count_expiries(expired);
    }

    /// Ticks pairs at `at` as the expiry record at `position` says (live and
    /// replay), tells the feed, and returns how many iterations expired.
    pub(super) fn apply_expiry(
        &self,
        p: PartitionId,
        position: Position,
        at: DateTime<Utc>,
        pairs: &[(usize, PairKey, Rc<PairCell>)],
    ) -> u64 {
        let mut expired = 0;
        let mut feed = Vec::new();
        let catalog = self.catalog.read();
        for (index, key, cell) in pairs {
            let mut transitions = Vec::new();
            {
                let mut tracker = cell.tracker.borrow_mut();
                let mark = tracker.mark();
                if tracker.tick(at) {
                    expired += 1;
                }
                tracker.transitions_since(mark, at, &mut transitions);
            }
            cell.last.set(position);
            if let Some(entry) = catalog.achievements.get(&key.achievement) {
                let first = feed.len() as u32;
                feed.extend(
                    feed::entries(entry, p, &key.customer, None, transitions)
                        .into_iter()
                        .map(|mut e| {
                            e.index += first;
                            e
                        }),
                );
            }
            self.arm(p, *index, cell);
        }
        feed::send_entries(self.shared.feed(), position, feed);
        expired
    }
}
