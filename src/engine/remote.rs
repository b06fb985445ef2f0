//! The engine in a cluster (SPEC §6): where a change goes when the log is
//! the router. The engine owns this interface; `cluster` implements it on
//! NATS JetStream, and without one the engine is the single node it always
//! was.
//!
//! Owns: `Remote` (submit records to their partitions' logs and wait for
//! the owners' answers, ask an owner for a customer's progress or a
//! partition's export, record an expiry, follow and append the catalog) and the values crossing it
//! (`Answer`, `Applied`).
//!
//! With a remote attached, the facade's writes build records instead of
//! applying changes: a pair change carries the time it arrived and the
//! campaign state the accepting node saw, and pair number 0, which the
//! owner replaces by a number derived from the record's position
//! (`Remote::pair_number`), so every replay gives a new pair the same ids.
//! Owners apply records read from the log with `Engine::apply_logged`.

use std::future::Future;
use std::pin::Pin;

use super::catalog::CatalogRecord;
use super::error::EngineError;
use super::log::{Expiry, PartitionId, Position, Record};
use crate::domain::{AchievementId, ApplicationId, CustomerId, EventResult, Iteration};

/// A remote call's pending answer.
pub type Reply<T> = Pin<Box<dyn Future<Output = Result<T, EngineError>> + Send>>;

/// An owner's answer to a submitted record.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// An increase's or a rollback's result.
    Event(EventResult),
    /// How many of the customer's pairs an erasure emptied.
    Erased(usize),
}

/// What applying one log record did (`Engine::apply_logged`).
#[derive(Debug, Clone)]
pub enum Applied {
    /// The partition already held it (its pair's last position is not
    /// older): nothing changed, nothing to answer.
    Skipped,
    /// Applied, with the answer its submitter waits for.
    Answer(Result<Answer, EngineError>),
    /// An expiry, applied; it has no submitter.
    Expired(u64),
}

/// How the engine reaches the partitions of a cluster.
pub trait Remote: Send + Sync {
    /// Appends each record (a pair change with pair number 0, or an
    /// erasure) to its partition's log and resolves, in the order given,
    /// with each owner's answer; records of one partition keep their order.
    fn submit(
        &self,
        records: Vec<(PartitionId, Record)>,
    ) -> Reply<Vec<Result<Answer, EngineError>>>;

    /// A customer's iterations in some achievements, asked of the owner of
    /// its partition (newest first, as of now, as `customer_progress`).
    fn progress(
        &self,
        p: PartitionId,
        customer: CustomerId,
        achievements: Vec<AchievementId>,
    ) -> Reply<Vec<Vec<Iteration>>>;

    /// Every customer's iterations in an achievement within partition
    /// `p`, asked of its owner (sorted by customer, as of now).
    fn export(
        &self,
        p: PartitionId,
        application: ApplicationId,
        achievement: AchievementId,
    ) -> Reply<Vec<(CustomerId, Vec<Iteration>)>>;

    /// Records that time passed the end of some pairs' iterations; the
    /// owner applies it when it reads it back from the log.
    fn expire(&self, p: PartitionId, expiry: Expiry);

    /// Resolves once this node's catalog has every change the catalog log
    /// held when called.
    fn catalog_sync(&self) -> Reply<()>;

    /// Appends a catalog change planned on this node's catalog; resolves
    /// `true` once this node has applied it, `false` when the catalog moved
    /// on meanwhile (nothing appended: follow it and plan again).
    fn catalog_append(&self, record: CatalogRecord) -> Reply<bool>;

    /// The number of a pair first created by the record at `at` of
    /// partition `p`: unique in the cluster and the same on every replay.
    fn pair_number(&self, p: PartitionId, at: Position) -> u64;
}
