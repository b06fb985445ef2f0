//! On-disk types of version 5: a pair's remembered event ids as 64-bit keys
//! and what each event did, compactly (`domain::tracker::remembered`),
//! instead of the id's text and a copy of its effects. Snapshot chunks of
//! version 5 hold `PairV5`; pairs of older snapshots are read as version 1
//! and converted (their ids hashed, their effects kept whole until the
//! tracker compacts them).

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use super::v1::{DecimalV1, EffectV1, IterationV1, PairV1, TrackerV1};
use super::{bad, ModelError};
use crate::domain::tracker::{AppliedChange, EventKey, RememberedEvent, TrackerParts};
use crate::domain::EventId;

/// What an applied increase did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ChangeV5 {
    One {
        seq: u32,
        delta: DecimalV1,
        value: DecimalV1,
        just_completed: bool,
        started: bool,
    },
    Effects(Vec<EffectV1>),
}

/// A remembered event id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RememberedV5 {
    pub key: u64,
    /// Arrival, milliseconds since the Unix epoch.
    pub arrived_ms: i64,
    pub rolled_back: bool,
    pub change: ChangeV5,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrackerV5 {
    pub tracker_base: u64,
    pub next_seq: u32,
    pub current: Option<IterationV1>,
    pub history: Vec<IterationV1>,
    pub events: Vec<RememberedV5>,
}

/// One pair in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairV5 {
    pub achievement: u64,
    pub customer: String,
    /// The position of the last log record applied to this pair.
    pub last_lsn: u64,
    pub tracker: TrackerV5,
}

/// A chunk of one partition's pairs in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkV5 {
    pub partition: u32,
    pub pairs: Vec<PairV5>,
}

impl From<&RememberedEvent> for RememberedV5 {
    fn from(e: &RememberedEvent) -> Self {
        RememberedV5 {
            key: e.key.0,
            arrived_ms: e.arrived.timestamp_millis(),
            rolled_back: e.rolled_back,
            change: match &e.change {
                AppliedChange::One {
                    seq,
                    delta,
                    value,
                    just_completed,
                    started,
                } => ChangeV5::One {
                    seq: *seq,
                    delta: (*delta).into(),
                    value: (*value).into(),
                    just_completed: *just_completed,
                    started: *started,
                },
                AppliedChange::Effects(effects) => {
                    ChangeV5::Effects(effects.iter().map(Into::into).collect())
                }
            },
        }
    }
}

impl RememberedV5 {
    fn to_event(&self) -> Result<RememberedEvent, ModelError> {
        Ok(RememberedEvent {
            key: EventKey(self.key),
            arrived: DateTime::from_timestamp_millis(self.arrived_ms)
                .ok_or_else(|| bad("instant out of range"))?,
            rolled_back: self.rolled_back,
            change: match &self.change {
                ChangeV5::One {
                    seq,
                    delta,
                    value,
                    just_completed,
                    started,
                } => AppliedChange::One {
                    seq: *seq,
                    delta: (*delta).into(),
                    value: (*value).into(),
                    just_completed: *just_completed,
                    started: *started,
                },
                ChangeV5::Effects(effects) => AppliedChange::Effects(
                    effects
                        .iter()
                        .map(EffectV1::to_effect)
                        .collect::<Result<_, _>>()?,
                ),
            },
        })
    }
}

impl From<&TrackerParts> for TrackerV5 {
    fn from(p: &TrackerParts) -> Self {
        TrackerV5 {
            tracker_base: p.tracker_base,
            next_seq: p.next_seq,
            current: p.current.as_ref().map(Into::into),
            history: p.history.iter().map(Into::into).collect(),
            events: p.events.iter().map(Into::into).collect(),
        }
    }
}

impl TrackerV5 {
    pub fn to_parts(&self) -> Result<TrackerParts, ModelError> {
        Ok(TrackerParts {
            tracker_base: self.tracker_base,
            next_seq: self.next_seq,
            current: self
                .current
                .as_ref()
                .map(IterationV1::to_iteration)
                .transpose()?,
            history: self
                .history
                .iter()
                .map(IterationV1::to_iteration)
                .collect::<Result<_, _>>()?,
            events: self
                .events
                .iter()
                .map(RememberedV5::to_event)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl TryFrom<TrackerV1> for TrackerV5 {
    type Error = ModelError;

    /// A version 1 tracker: each id hashed to its key, its effects kept.
    fn try_from(t: TrackerV1) -> Result<Self, ModelError> {
        let mut events = t
            .events
            .into_iter()
            .map(|e| -> Result<RememberedV5, ModelError> {
                let id = EventId::parse(&e.event_id, "/eventId").map_err(|e| bad(e.message))?;
                let arrived = e.arrived.to_time()?;
                Ok(RememberedV5 {
                    key: EventKey::of(&id).0,
                    arrived_ms: arrived.timestamp_millis(),
                    rolled_back: e.rolled_back,
                    change: ChangeV5::Effects(e.effects),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        events.sort_by_key(|e| e.key);
        Ok(TrackerV5 {
            tracker_base: t.tracker_base,
            next_seq: t.next_seq,
            current: t.current,
            history: t.history,
            events,
        })
    }
}

impl TryFrom<PairV1> for PairV5 {
    type Error = ModelError;

    fn try_from(p: PairV1) -> Result<Self, ModelError> {
        Ok(PairV5 {
            achievement: p.achievement,
            customer: p.customer,
            last_lsn: p.last_lsn,
            tracker: p.tracker.try_into()?,
        })
    }
}
