//! A shard's part of snapshots and restores: walking a partition's pairs in
//! chunks while traffic flows, loading pairs, replaying log records, and
//! attaching the log.

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;

use super::frozen::Frozen;
use super::partition::PREFETCH_AHEAD;
use super::{Shard, Slot};
use crate::domain::tracker::TrackerParts;
use crate::domain::PairTracker;
use crate::engine::catalog::AchievementEntry;
use crate::engine::error::EngineError;
use crate::engine::feed;
use crate::engine::log::{ChangeOp, Erasure, Expiry, Log, PairChange, PartitionId, Position};
use crate::engine::pair::{apply_op, OpKind, OpRef, PairCell, PairKey, Ticks};
use crate::engine::remote::{Answer, Applied};
use crate::engine::timers::timer_second;

/// One pair as a snapshot holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct PairImage {
    pub key: PairKey,
    /// The position of its last change in its partition's stream.
    pub last: Position,
    pub tracker: TrackerParts,
}

/// Starts a snapshot of one partition: the position from which records may
/// be missing from the snapshot, the number of pairs, and a token that later
/// chunks check.
pub struct SnapshotBegin {
    pub partition: PartitionId,
}

#[derive(Debug, Clone, Copy)]
pub struct SnapshotStart {
    pub next: Position,
    pub pairs: usize,
    pub token: u64,
}

impl Message for SnapshotBegin {
    type Result = Result<SnapshotStart, EngineError>;
}

impl Handler<SnapshotBegin> for Shard {
    type Result = Result<SnapshotStart, EngineError>;

    fn handle(&mut self, msg: SnapshotBegin, _: &mut Self::Context) -> Self::Result {
        let next = self.log.next_position(msg.partition);
        let active = self.active_in(msg.partition);
        let part = self.part_mut(msg.partition)?;
        // Erased pairs leave empty slots so that erasing never moves the
        // positions a snapshot in progress walks; they go here, before this
        // snapshot starts walking.
        let moved = part.purge_empty(|k| active.contains(k));
        let start = SnapshotStart {
            next,
            pairs: part.pairs.len(),
            token: part.removals,
        };
        if moved {
            self.refile(msg.partition);
        }
        Ok(start)
    }
}

/// Copies up to `max` pairs of a partition from position `from`; traffic is
/// served between chunks, so a large partition never stalls its shard. The
/// shard only copies: whoever asked encodes, on a thread of its own, so a
/// snapshot takes as little of the shards' time as it can.
pub struct SnapshotChunk {
    pub partition: PartitionId,
    pub from: usize,
    pub max: usize,
    pub token: u64,
}

pub struct Chunk {
    /// The pairs with progress among those walked, in order.
    pairs: Vec<ChunkPair>,
    pub next: usize,
    pub done: bool,
}

/// A pair as a chunk carries it: a live pair's copy, or a frozen pair's
/// bytes, decoded by whoever takes the chunk (on their own thread: the
/// shard only copies).
enum ChunkPair {
    Image(PairImage),
    Frozen(PairKey, Frozen),
}

impl Chunk {
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// The pairs, in order, decoded.
    pub fn into_images(self) -> Vec<PairImage> {
        self.pairs
            .into_iter()
            .map(|pair| match pair {
                ChunkPair::Image(image) => image,
                ChunkPair::Frozen(key, f) => PairImage {
                    key,
                    last: f.last(),
                    tracker: f.parts(),
                },
            })
            .collect()
    }
}

impl Message for SnapshotChunk {
    type Result = Result<Chunk, EngineError>;
}

impl Handler<SnapshotChunk> for Shard {
    type Result = Result<Chunk, EngineError>;

    fn handle(&mut self, msg: SnapshotChunk, _: &mut Self::Context) -> Self::Result {
        let part = self.part(msg.partition)?;
        if msg.token != part.removals {
            return Err(EngineError::Unavailable(
                "pairs were removed during the snapshot; retry it",
            ));
        }
        let end = (msg.from + msg.max).min(part.pairs.len());
        let from = msg.from.min(end);
        let mut pairs = Vec::with_capacity(end - from);
        let slots = part.pairs.get_range(from..end).into_iter().flatten();
        let mut ahead = part
            .pairs
            .get_range(from..end)
            .into_iter()
            .flatten()
            .skip(PREFETCH_AHEAD);
        for (key, slot) in slots {
            // Slots are in a row, their cells are not: ask for a cell a few
            // slots ahead so the cache misses overlap.
            if let Some((_, next)) = ahead.next() {
                next.prefetch();
            }
            pairs.push(match slot {
                Slot::Live(cell) => {
                    let tracker = cell.tracker.borrow();
                    // Erased pairs (empty slots) are not part of the state.
                    if !tracker.has_progress() {
                        continue;
                    }
                    ChunkPair::Image(PairImage {
                        key: key.clone(),
                        last: cell.last.get(),
                        tracker: tracker.to_parts(),
                    })
                }
                Slot::Frozen(f) => ChunkPair::Frozen(key.clone(), f.clone()),
            });
        }
        Ok(Chunk {
            pairs,
            next: end,
            done: end >= part.pairs.len(),
        })
    }
}

/// Makes room for the pairs a restore will load into each partition (no
/// rehashing as they grow).
pub struct ReservePairs {
    pub per_partition: usize,
}

impl Message for ReservePairs {
    type Result = ();
}

impl Handler<ReservePairs> for Shard {
    type Result = ();

    fn handle(&mut self, msg: ReservePairs, _: &mut Self::Context) {
        for part in self.partitions.iter_mut().flatten() {
            part.pairs.reserve(msg.per_partition);
        }
    }
}

/// Pairs of one partition restored from a snapshot.
pub struct LoadPairs {
    pub partition: PartitionId,
    pub pairs: Vec<PairImage>,
}

impl Message for LoadPairs {
    type Result = Result<(), EngineError>;
}

impl Handler<LoadPairs> for Shard {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: LoadPairs, _: &mut Self::Context) -> Self::Result {
        let mut added = 0;
        let p = msg.partition;
        let part = self.part_mut(p)?;
        let mut filed = Vec::new();
        for image in msg.pairs {
            let second = image.tracker.next_deadline().map(timer_second);
            // Restored pairs are idle until traffic comes: they are kept
            // frozen (unless they remember an event whole, or have no
            // progress).
            let frozen = match image.tracker.current.is_some() {
                true => Frozen::from_parts(&image.tracker, image.last, second),
                false => None,
            };
            let slot = frozen.map(Slot::Frozen).unwrap_or_else(|| {
                let cell = PairCell::new(PairTracker::from_parts(image.tracker));
                cell.last.set(image.last);
                cell.armed.set(second);
                Slot::Live(cell)
            });
            part.frozen += usize::from(matches!(slot, Slot::Frozen(_)));
            let (index, old) = part.pairs.insert_full(image.key, slot);
            match old {
                None => added += 1,
                Some(Slot::Frozen(_)) => part.frozen = part.frozen.saturating_sub(1),
                Some(Slot::Live(_)) => {}
            }
            filed.extend(second.map(|s| (s, index)));
        }
        let mut timers = self.timers.borrow_mut();
        for (second, index) in filed {
            timers.file(second, p, index);
        }
        drop(timers);
        for _ in 0..added {
            self.shared.stats.pair_added(self.index);
        }
        Ok(())
    }
}

/// One record to apply again.
#[derive(Debug, Clone)]
pub enum ReplayRecord {
    Pair(PairChange, Arc<AchievementEntry>),
    Erase(Erasure),
    Expire(Expiry),
}

/// Log records of one partition applied again after a snapshot; records a
/// pair already holds (its last position is not older) are skipped.
pub struct Replay {
    pub partition: PartitionId,
    pub records: Vec<(Position, ReplayRecord)>,
}

impl Message for Replay {
    /// What each record did, in order.
    type Result = Result<Vec<Applied>, EngineError>;
}

impl Handler<Replay> for Shard {
    type Result = Result<Vec<Applied>, EngineError>;

    fn handle(&mut self, msg: Replay, _: &mut Self::Context) -> Self::Result {
        let p = msg.partition;
        self.part(p)?;
        let mut applied = Vec::with_capacity(msg.records.len());
        let tick = Ticks::now();
        for (position, record) in msg.records {
            let (change, entry) = match record {
                ReplayRecord::Pair(change, entry) => (change, entry),
                ReplayRecord::Expire(expiry) => {
                    let part = self.part_mut(p)?;
                    // Frozen pairs are frozen again once ticked (`Shard::expire`).
                    let mut thawed = Vec::new();
                    let pairs: Vec<(usize, PairKey, Rc<PairCell>)> = expiry
                        .pairs
                        .into_iter()
                        .filter_map(|(achievement, customer)| {
                            let key = PairKey {
                                achievement,
                                customer,
                            };
                            let (index, _, slot) = part.pairs.get_full(&key)?;
                            if matches!(slot, Slot::Frozen(_)) {
                                thawed.push(index);
                            }
                            let cell = part.cell(index)?;
                            (cell.last.get() < position).then_some((index, key, cell))
                        })
                        .collect();
                    let expired = self.apply_expiry(p, position, expiry.at, &pairs);
                    drop(pairs);
                    let part = self.part_mut(p)?;
                    for index in thawed {
                        part.refreeze(index);
                    }
                    self.shared.stats.count_expiries(expired);
                    applied.push(Applied::Expired(expired));
                    continue;
                }
                ReplayRecord::Erase(erasure) => {
                    let part = self.part_mut(p)?;
                    let erasable =
                        part.erasable(&erasure.customer, &erasure.achievements, Some(position));
                    // Replay takes the next number from the record of the
                    // pair's next progress.
                    let erased = part.erase(&erasure.customer, &erasable, position, || 0);
                    for _ in 0..erased {
                        self.shared.stats.pair_removed(self.index);
                    }
                    self.tell_erased(p, position, &erasure);
                    applied.push(Applied::Answer(Ok(Answer::Erased(erased))));
                    continue;
                }
            };
            let key = PairKey {
                achievement: change.achievement,
                customer: change.customer.clone(),
            };
            // Number 0: a record submitted in a cluster, numbered by its
            // position (the same on every replay).
            let number = match (change.pair_number, self.shared.remote()) {
                (0, Some(remote)) => remote.pair_number(p, position),
                (n, _) => n,
            };
            let part = self.part_mut(p)?;
            let (index, created) = part.ensure(&key, None, || number);
            let Some(cell) = part.cell(index) else {
                applied.push(Applied::Skipped);
                continue;
            };
            if cell.last.get() >= position {
                applied.push(Applied::Skipped);
                continue;
            }
            let was_empty = created || !cell.tracker.borrow().has_progress();
            if was_empty {
                // A pair erased earlier in the log starts again with the
                // number it was given live.
                *cell.tracker.borrow_mut() = PairTracker::new(number);
            }
            let kind = match change.op {
                ChangeOp::Increase(inc) => OpKind::Increase(inc),
                ChangeOp::Rollback(id) => OpKind::Rollback(id),
            };
            let op = OpRef {
                key: &key,
                partition: p,
                entry: &entry,
                kind: &kind,
            };
            let mut transitions = Vec::new();
            let applied_op = apply_op(
                &cell,
                op,
                &self.shared,
                change.now,
                tick,
                change.campaign_running,
                &mut transitions,
            );
            if let Err(e) = &applied_op {
                tracing::warn!(?position, error = %e, "a log record did not apply");
            }
            if !transitions.is_empty() {
                let event_id = match &kind {
                    OpKind::Increase(inc) => inc.event_id.as_ref(),
                    OpKind::Rollback(id) => Some(id),
                    #[cfg(test)]
                    OpKind::Panic => None,
                };
                let list = feed::entries(&entry, p, &key.customer, event_id, transitions);
                feed::send_entries(self.shared.feed(), position, list);
            }
            cell.last.set(position);
            applied.push(Applied::Answer(applied_op.map(Answer::Event)));
            self.settle(p, index, created, was_empty);
        }
        Ok(applied)
    }
}

/// Starts logging.
pub struct AttachLog {
    pub log: Arc<dyn Log>,
}

impl Message for AttachLog {
    type Result = ();
}

impl Handler<AttachLog> for Shard {
    type Result = ();

    fn handle(&mut self, msg: AttachLog, _: &mut Self::Context) {
        self.log.attach(msg.log);
    }
}
