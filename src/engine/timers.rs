//! Period-end timers: the one place that notices, on time, that a pair's
//! iteration has ended, whether the pair is live, frozen or served by an
//! active actor.
//!
//! Owns: `Timers`, one per shard. Entries are filed by the whole second at
//! or after a pair's deadline and name the pair by its partition and its
//! position there (8 bytes: no pointer, so a frozen pair needs no cell to be
//! found). An entry is only a hint: the shard checks, when it comes due,
//! that the slot there is still filed under that second (the second is kept
//! with the pair), and skips it otherwise. So removing a pair never needs
//! the timers touched; when positions move (a purge, a removed achievement)
//! the shard files the partition's pairs again (`Shard::refile`). The shard
//! records what comes due in the partition's log and applies it
//! (`Shard::expire`). Must not depend on the actor system.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::log::PartitionId;

/// The whole second at or after an instant: a timer filed there never fires
/// before the period ends.
pub fn timer_second(t: DateTime<Utc>) -> i64 {
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
    by_second: BTreeMap<i64, Vec<(PartitionId, u32)>>,
}

impl Timers {
    /// Files the pair at `index` of partition `p` under `second`.
    pub fn file(&mut self, second: i64, p: PartitionId, index: usize) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        self.by_second.entry(second).or_default().push((p, index));
    }

    /// Takes out the entries whose second has come at `now`: by partition,
    /// each pair's position with the second it was filed under (to check).
    pub fn due(&mut self, now: DateTime<Utc>) -> BTreeMap<PartitionId, Vec<(usize, i64)>> {
        let mut due: BTreeMap<PartitionId, Vec<(usize, i64)>> = BTreeMap::new();
        let now_second = now.timestamp();
        while self
            .by_second
            .first_key_value()
            .is_some_and(|(second, _)| *second <= now_second)
        {
            let Some((second, entries)) = self.by_second.pop_first() else {
                break;
            };
            for (p, index) in entries {
                due.entry(p).or_default().push((index as usize, second));
            }
        }
        due
    }

    /// Entries filed (stale ones included).
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.by_second.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn entries_come_due_at_their_second_by_partition() {
        let mut timers = Timers::default();
        timers.file(100, PartitionId(1), 7);
        timers.file(101, PartitionId(2), 3);
        timers.file(100, PartitionId(2), 9);
        timers.file(200, PartitionId(1), 1);
        let at = |s| Utc.timestamp_opt(s, 500_000_000).unwrap();
        assert!(timers.due(at(99)).is_empty());
        let due = timers.due(at(101));
        assert_eq!(due[&PartitionId(1)], vec![(7, 100)]);
        assert_eq!(due[&PartitionId(2)], vec![(9, 100), (3, 101)]);
        assert_eq!(timers.entries(), 1);
        assert_eq!(
            timer_second(Utc.timestamp_opt(5, 1).unwrap()),
            6,
            "a deadline within a second is filed at the next whole one"
        );
        assert_eq!(timer_second(Utc.timestamp_opt(5, 0).unwrap()), 5);
    }
}
