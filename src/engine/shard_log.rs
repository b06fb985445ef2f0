//! A shard's access to the log: the hot path's appends and waits.
//!
//! Owns: `ShardLog`, shared (same thread) by a shard and its pair actors. It
//! turns applied changes into log records of their partition's stream and
//! remembers, in each pair's cell, the position its last change got. Without
//! a log (before a restore attached one, or in tests) changes are only in
//! memory and nothing waits.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::error::EngineError;
use super::log::{Commit, Log, PairChangeRef, PartitionId, Position, RecordRef, Stream};
use super::pair::PairCell;

#[derive(Default)]
pub struct ShardLog {
    log: RefCell<Option<Arc<dyn Log>>>,
}

fn unavailable(e: super::log::LogError) -> EngineError {
    tracing::error!(error = %e, "the log refused a write");
    EngineError::Unavailable("the write-ahead log cannot take writes now")
}

impl ShardLog {
    pub fn new() -> Rc<ShardLog> {
        Rc::new(ShardLog::default())
    }

    /// Starts logging.
    pub fn attach(&self, log: Arc<dyn Log>) {
        *self.log.borrow_mut() = Some(log);
    }

    /// Refuses changes while the log cannot write (disk full or failing): the
    /// engine answers 503 rather than change what it could not persist.
    pub fn check_writable(&self, partition: PartitionId) -> Result<(), EngineError> {
        match self.log.borrow().as_ref() {
            Some(log) if !log.writable(Stream::Partition(partition)) => {
                Err(EngineError::Unavailable(
                    "the disk cannot take writes now; nothing was changed, retry later",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Appends applied changes, each to its partition's stream, in order;
    /// each pair's cell learns its change's position. Returns the positions
    /// (none without a log) and what resolves once they are durable.
    pub fn append_changes(
        &self,
        changes: &[(PartitionId, PairChangeRef<'_>, &PairCell)],
    ) -> Result<(Vec<Position>, Option<Commit>), EngineError> {
        let log = self.log.borrow();
        let Some(log) = log.as_ref() else {
            return Ok((Vec::new(), None));
        };
        if changes.is_empty() {
            return Ok((Vec::new(), None));
        }
        let records: Vec<(Stream, RecordRef<'_>)> = changes
            .iter()
            .map(|(p, c, _)| (Stream::Partition(*p), RecordRef::Pair(*c)))
            .collect();
        let appended = log.append(&records).map_err(unavailable)?;
        for ((_, _, cell), position) in changes.iter().zip(&appended.positions) {
            cell.last.set(*position);
        }
        Ok((appended.positions, Some(appended.commit)))
    }

    /// Appends a record that is not a pair's change (an erasure, an expiry);
    /// returns its position (0 without a log) and what to wait for.
    pub fn append_other(
        &self,
        partition: PartitionId,
        record: RecordRef<'_>,
    ) -> Result<(Position, Option<Commit>), EngineError> {
        let log = self.log.borrow();
        let Some(log) = log.as_ref() else {
            return Ok((Position(0), None));
        };
        let appended = log
            .append(&[(Stream::Partition(partition), record)])
            .map_err(unavailable)?;
        let at = appended.positions.first().copied().unwrap_or_default();
        Ok((at, Some(appended.commit)))
    }

    /// Resolves once the partition's stream is durable up to `upto`
    /// (`None` if it already is, or nothing to wait for).
    pub fn durable(
        &self,
        partition: PartitionId,
        upto: Position,
    ) -> Result<Option<Commit>, EngineError> {
        match self.log.borrow().as_ref() {
            Some(log) if upto.0 > 0 => log
                .durable(Stream::Partition(partition), upto)
                .map_err(unavailable),
            _ => Ok(None),
        }
    }

    /// The position the partition's next record gets (0 without a log).
    pub fn next_position(&self, partition: PartitionId) -> Position {
        self.log.borrow().as_ref().map_or(Position(0), |log| {
            log.next_position(Stream::Partition(partition))
        })
    }
}
