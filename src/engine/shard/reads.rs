//! A shard's reads and removals: a customer's pairs, exports, the removal
//! of a deleted achievement's pairs and the erasure of a customer's data.

use std::sync::Arc;

use actix::prelude::*;

use super::{Shard, Slot};
use crate::domain::{AchievementId, ApplicationId, CustomerId, Iteration};
use crate::engine::actor::Passivate;
use crate::engine::catalog::AchievementEntry;
use crate::engine::error::EngineError;
use crate::engine::log::{Commit, Erasure, PartitionId, RecordRef};
use crate::engine::pair::PairKey;

/// Reads a customer's pairs in the given achievements, as of now.
pub struct ReadCustomer {
    pub customer: CustomerId,
    pub partition: PartitionId,
    pub achievements: Vec<AchievementId>,
}

impl Message for ReadCustomer {
    type Result = Result<Vec<Vec<Iteration>>, EngineError>;
}

impl Handler<ReadCustomer> for Shard {
    type Result = Result<Vec<Vec<Iteration>>, EngineError>;

    fn handle(&mut self, msg: ReadCustomer, _: &mut Self::Context) -> Self::Result {
        let now = self.shared.clock.now();
        let part = self.part(msg.partition)?;
        let mut key = PairKey {
            achievement: AchievementId(0),
            customer: msg.customer,
        };
        Ok(msg
            .achievements
            .iter()
            .map(|a| {
                key.achievement = *a;
                part.pairs
                    .get(&key)
                    .map(|s| s.read(|t| t.iterations_at(now).collect()))
                    .unwrap_or_default()
            })
            .collect())
    }
}

/// The customers of this shard with progress in an achievement, sorted.
pub struct ExportKeys {
    pub achievement: AchievementId,
    /// Only this partition's customers (a cluster's owner answers per
    /// partition); every partition of the shard when `None`.
    pub partition: Option<PartitionId>,
}

impl Message for ExportKeys {
    type Result = Vec<CustomerId>;
}

impl Handler<ExportKeys> for Shard {
    type Result = MessageResult<ExportKeys>;

    fn handle(&mut self, msg: ExportKeys, _: &mut Self::Context) -> Self::Result {
        let mut keys: Vec<CustomerId> = self
            .partitions
            .iter()
            .enumerate()
            .filter(|(i, _)| msg.partition.is_none_or(|p| p.0 as usize == *i))
            .filter_map(|(_, part)| part.as_ref())
            .flat_map(|part| part.pairs.iter())
            .filter(|(k, s)| k.achievement == msg.achievement && s.has_progress())
            .map(|(k, _)| k.customer.clone())
            .collect();
        keys.sort();
        MessageResult(keys)
    }
}

/// The iterations of some customers (of this shard) in an achievement, as
/// of now.
pub struct ExportRows {
    pub application: ApplicationId,
    pub achievement: AchievementId,
    pub customers: Vec<CustomerId>,
}

impl Message for ExportRows {
    type Result = Vec<(CustomerId, Vec<Iteration>)>;
}

impl Handler<ExportRows> for Shard {
    type Result = MessageResult<ExportRows>;

    fn handle(&mut self, msg: ExportRows, _: &mut Self::Context) -> Self::Result {
        let now = self.shared.clock.now();
        let rows = msg
            .customers
            .into_iter()
            .filter_map(|customer| {
                let p = self.shared.partition_of(msg.application, &customer);
                let key = PairKey {
                    achievement: msg.achievement,
                    customer,
                };
                let slot = self.part(p).ok()?.pairs.get(&key)?;
                let rows = slot.read(|t| t.iterations_at(now).collect());
                Some((key.customer, rows))
            })
            .collect();
        MessageResult(rows)
    }
}

/// Removes every pair of a deleted achievement.
pub struct DropAchievement {
    pub entry: Arc<AchievementEntry>,
}

impl Message for DropAchievement {
    type Result = usize;
}

impl Handler<DropAchievement> for Shard {
    type Result = usize;

    fn handle(&mut self, msg: DropAchievement, _: &mut Self::Context) -> usize {
        let id = msg.entry.achievement.id;
        let doomed: Vec<PairKey> = self
            .partitions
            .iter()
            .flatten()
            .flat_map(|part| part.pairs.keys())
            .filter(|k| k.achievement == id)
            .cloned()
            .collect();
        for key in &doomed {
            if let Some(actor) = self.deactivate(key) {
                actor.do_send(Passivate);
            }
        }
        let mut removed = 0;
        let mut moved = Vec::new();
        for (p, part) in self.partitions.iter_mut().enumerate() {
            let Some(part) = part else {
                continue;
            };
            let before = part.pairs.len();
            let mut frozen_gone = 0;
            part.pairs.retain(|k, s| {
                let gone = k.achievement == id;
                if gone && s.has_progress() {
                    removed += 1;
                }
                frozen_gone += usize::from(gone && matches!(s, Slot::Frozen(_)));
                !gone
            });
            part.frozen = part.frozen.saturating_sub(frozen_gone);
            if part.pairs.len() != before {
                part.removals += 1;
                moved.push(PartitionId(p as u32));
            }
        }
        // Timers name pairs by position, and positions moved.
        for p in moved {
            self.refile(p);
        }
        for _ in 0..removed {
            self.shared.stats.pair_removed(self.index);
        }
        removed
    }
}

/// Forgets every pair of a partition (a cluster node that no longer owns
/// it: its state lives on in the partition's log and snapshots).
pub struct UnloadPartition {
    pub partition: PartitionId,
}

impl Message for UnloadPartition {
    /// How many pairs were dropped.
    type Result = Result<usize, EngineError>;
}

impl Handler<UnloadPartition> for Shard {
    type Result = Result<usize, EngineError>;

    fn handle(&mut self, msg: UnloadPartition, _: &mut Self::Context) -> Self::Result {
        let p = msg.partition;
        self.part(p)?;
        for key in &self.active_in(p) {
            if let Some(actor) = self.deactivate(key) {
                actor.do_send(Passivate);
            }
        }
        let part = self.part_mut(p)?;
        let dropped = part.pairs.values().filter(|s| s.has_progress()).count();
        // Timer entries of the dropped pairs are skipped when they come due
        // (no slot there, or one not filed under their second).
        part.pairs.clear();
        part.frozen = 0;
        part.removals += 1;
        for _ in 0..dropped {
            self.shared.stats.pair_removed(self.index);
        }
        Ok(dropped)
    }
}

/// Erases a customer's pairs in the given achievements of an application
/// (`deleteCustomerData`), durably: the answer waits for the log.
pub struct EraseCustomer {
    pub application: ApplicationId,
    pub customer: CustomerId,
    pub partition: PartitionId,
    pub achievements: Vec<AchievementId>,
}

impl Message for EraseCustomer {
    /// How many pairs were erased, and what to wait for.
    type Result = Result<(usize, Option<Commit>), EngineError>;
}

impl Handler<EraseCustomer> for Shard {
    type Result = Result<(usize, Option<Commit>), EngineError>;

    fn handle(&mut self, msg: EraseCustomer, _: &mut Self::Context) -> Self::Result {
        self.log.check_writable(msg.partition)?;
        let erasable = self
            .part(msg.partition)?
            .erasable(&msg.customer, &msg.achievements, None);
        // Logged even when no pair is left (the customer may still have feed
        // entries, of an achievement deleted since): the record first,
        // nothing changes unless the log took it.
        let erasure = Erasure {
            application: msg.application,
            customer: msg.customer,
            achievements: erasable,
        };
        let (at, commit) = self
            .log
            .append_other(msg.partition, RecordRef::Erase(&erasure))?;
        let shared = self.shared.clone();
        let erased = self.part_mut(msg.partition)?.erase(
            &erasure.customer,
            &erasure.achievements,
            at,
            // The next progress starts a pair with a new number (new
            // progress tracker ids).
            || shared.next_pair_number(),
        );
        for _ in 0..erased {
            self.shared.stats.pair_removed(self.index);
            self.shared.stats.count_erased();
        }
        self.tell_erased(msg.partition, at, &erasure);
        Ok((erased, commit))
    }
}
