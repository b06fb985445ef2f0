//! What a change did to a pair's iterations, in the achievement event
//! feed's words: an iteration started, completed, expired, or had its
//! completion rolled back.
//!
//! Owns: `EntryType`, `Transition` and the comparison of a pair before and
//! after a change (`PairTracker::mark` / `transitions_since`). Comparing
//! stored states rather than reading effects means every path that changes
//! an iteration (an event, a rollback, time passing, an event that finds its
//! iteration ended) is covered by one rule. Pure, like the rest of `domain`.

use chrono::{DateTime, Utc};

use super::ids::ProgressTrackerId;
use super::tracker::{Iteration, PairTracker, ProgressStatus};

/// The kinds of feed entries (API.md's `type` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryType {
    Started,
    Completed,
    Expired,
    CompletionRolledBack,
}

impl EntryType {
    pub const ALL: [EntryType; 4] = [
        EntryType::Started,
        EntryType::Completed,
        EntryType::Expired,
        EntryType::CompletionRolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Started => "achievement.started",
            EntryType::Completed => "achievement.completed",
            EntryType::Expired => "achievement.expired",
            EntryType::CompletionRolledBack => "achievement.completion_rolled_back",
        }
    }

    pub fn parse(s: &str) -> Option<EntryType> {
        EntryType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// A small bit set position, for type filters.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One thing that happened to one iteration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: EntryType,
    /// When it took place: the event's time for a start or a completion, the
    /// period's end for an expiry, the arrival of a rollback.
    pub at: DateTime<Utc>,
    /// The iteration as it is after the change.
    pub iteration: Iteration,
}

/// A pair's newest iteration and its stored status, taken before a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(Option<(ProgressTrackerId, ProgressStatus)>);

fn step(from: ProgressStatus, to: ProgressStatus) -> Option<EntryType> {
    use ProgressStatus::*;
    match (from, to) {
        (InProgress | Expired | NotStarted, Completed) => Some(EntryType::Completed),
        (InProgress | NotStarted, Expired) => Some(EntryType::Expired),
        (Completed, InProgress) => Some(EntryType::CompletionRolledBack),
        _ => None,
    }
}

impl PairTracker {
    /// What `transitions_since` compares against.
    pub fn mark(&self) -> Mark {
        Mark(self.current().map(|c| (c.id, c.status)))
    }

    /// Appends to `out`, oldest first, what changed since `mark`: iterations
    /// opened since (started, then whatever they became) and the status
    /// change of the iteration that was newest then. `at` is the change's
    /// time (the event's time, or the arrival of a rollback).
    pub fn transitions_since(&self, mark: Mark, at: DateTime<Utc>, out: &mut Vec<Transition>) {
        let first = out.len();
        for it in self.stored_iterations() {
            let before = match mark.0 {
                Some((id, status)) if it.id == id => Some(status),
                Some((id, _)) if it.id < id => break,
                _ => None,
            };
            let (from, opened) = match before {
                Some(status) => (status, false),
                None => (ProgressStatus::InProgress, true),
            };
            // Pushed newest first, reversed below.
            if let Some(kind) = step(from, it.status) {
                let when = match kind {
                    EntryType::Completed => it.completion.unwrap_or(at),
                    EntryType::Expired => it.end.map_or(at, |e| e.end),
                    _ => at,
                };
                out.push(Transition {
                    kind,
                    at: when,
                    iteration: it.clone(),
                });
            }
            if opened {
                out.push(Transition {
                    kind: EntryType::Started,
                    at: at.max(it.start),
                    iteration: it.clone(),
                });
            }
            if before.is_some() {
                break;
            }
        }
        out[first..].reverse();
    }
}
