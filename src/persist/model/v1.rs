//! On-disk types of version 1, most of which later versions still use:
//! plain encodings of the engine's state (a decimal as its 16-byte form, an
//! instant as seconds + nanoseconds, enums as small numbers) and their
//! conversions to and from the domain and engine types.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{bad, ModelError};
use crate::domain::effects::Effect;
use crate::domain::period::PeriodEnd;
use crate::domain::{
    AchievementId, CustomerId, EventId, Increase, Iteration, ProgressStatus, ProgressTrackerId,
};
use crate::engine::log::{ChangeOp, ChangeOpRef, PairChange, PairChangeRef};

mod catalog;
pub use catalog::*;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct DecimalV1(pub [u8; 16]);

impl From<Decimal> for DecimalV1 {
    fn from(d: Decimal) -> Self {
        DecimalV1(d.serialize())
    }
}

impl From<DecimalV1> for Decimal {
    fn from(d: DecimalV1) -> Self {
        Decimal::deserialize(d.0)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimeV1 {
    pub secs: i64,
    pub nanos: u32,
}

impl From<DateTime<Utc>> for TimeV1 {
    fn from(t: DateTime<Utc>) -> Self {
        TimeV1 {
            secs: t.timestamp(),
            nanos: t.timestamp_subsec_nanos(),
        }
    }
}

impl TimeV1 {
    pub fn to_time(self) -> Result<DateTime<Utc>, ModelError> {
        DateTime::from_timestamp(self.secs, self.nanos).ok_or_else(|| bad("instant out of range"))
    }
}

fn opt_time(t: Option<TimeV1>) -> Result<Option<DateTime<Utc>>, ModelError> {
    t.map(TimeV1::to_time).transpose()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IterationV1 {
    pub id: u64,
    pub status: u8,
    pub progress: DecimalV1,
    pub start: TimeV1,
    /// (end, reported end)
    pub end: Option<(TimeV1, TimeV1)>,
    pub completion: Option<TimeV1>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum EffectV1 {
    Start {
        tracker: u64,
        target: DecimalV1,
        start: TimeV1,
        end: Option<TimeV1>,
    },
    Increase {
        tracker: u64,
        delta: DecimalV1,
        value: DecimalV1,
        target: DecimalV1,
        just_completed: bool,
    },
    Rollback {
        tracker: u64,
        decrease_by: DecimalV1,
        current: DecimalV1,
        target: DecimalV1,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppliedEventV1 {
    pub event_id: String,
    pub arrived: TimeV1,
    pub effects: Vec<EffectV1>,
    pub rolled_back: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrackerV1 {
    pub tracker_base: u64,
    pub next_seq: u32,
    pub current: Option<IterationV1>,
    pub history: Vec<IterationV1>,
    pub events: Vec<AppliedEventV1>,
}

/// One pair in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairV1 {
    pub achievement: u64,
    pub customer: String,
    /// The LSN of the last log record applied to this pair (in its shard's log).
    pub last_lsn: u64,
    pub tracker: TrackerV1,
}

/// What a pair record does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum PairOpV1 {
    Increase {
        delta: DecimalV1,
        at: Option<TimeV1>,
        event_id: Option<String>,
    },
    Rollback {
        event_id: String,
    },
}

/// An applied operation on a pair, in its shard's log: enough to apply it
/// again deterministically.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairRecordV1 {
    pub achievement: u64,
    pub customer: String,
    pub pair_number: u64,
    pub now: TimeV1,
    pub campaign_running: bool,
    pub op: PairOpV1,
}

/// The borrowed twin of [`PairRecordV1`], for encoding a record on the hot
/// path without copying its strings. It encodes to exactly the same bytes
/// (same fields in the same order; bincode writes no names).
#[derive(Debug, Clone, Serialize)]
pub struct PairRecordRefV1<'a> {
    pub achievement: u64,
    pub customer: &'a str,
    pub pair_number: u64,
    pub now: TimeV1,
    pub campaign_running: bool,
    pub op: PairOpRefV1<'a>,
}

/// The borrowed twin of [`PairOpV1`].
#[derive(Debug, Clone, Serialize)]
pub enum PairOpRefV1<'a> {
    Increase {
        delta: DecimalV1,
        at: Option<TimeV1>,
        event_id: Option<&'a str>,
    },
    Rollback {
        event_id: &'a str,
    },
}

impl<'a> From<&PairChangeRef<'a>> for PairRecordRefV1<'a> {
    fn from(c: &PairChangeRef<'a>) -> Self {
        PairRecordRefV1 {
            achievement: c.achievement.0,
            customer: c.customer.as_str(),
            pair_number: c.pair_number,
            now: c.now.into(),
            campaign_running: c.campaign_running,
            op: match c.op {
                ChangeOpRef::Increase(inc) => PairOpRefV1::Increase {
                    delta: inc.delta.into(),
                    at: inc.at.map(Into::into),
                    event_id: inc.event_id.as_ref().map(EventId::as_str),
                },
                ChangeOpRef::Rollback(id) => PairOpRefV1::Rollback {
                    event_id: id.as_str(),
                },
            },
        }
    }
}

fn status_code(s: ProgressStatus) -> u8 {
    match s {
        ProgressStatus::NotStarted => 0,
        ProgressStatus::InProgress => 1,
        ProgressStatus::Completed => 2,
        ProgressStatus::Expired => 3,
    }
}

impl From<&Iteration> for IterationV1 {
    fn from(i: &Iteration) -> Self {
        IterationV1 {
            id: i.id.0,
            status: status_code(i.status),
            progress: i.progress.into(),
            start: i.start.into(),
            end: i.end.map(|e| (e.end.into(), e.reported.into())),
            completion: i.completion.map(Into::into),
        }
    }
}

impl From<&Effect> for EffectV1 {
    fn from(e: &Effect) -> Self {
        match e {
            Effect::Start {
                tracker,
                target,
                start,
                end,
            } => EffectV1::Start {
                tracker: tracker.0,
                target: (*target).into(),
                start: (*start).into(),
                end: end.map(Into::into),
            },
            Effect::Increase {
                tracker,
                delta,
                value,
                target,
                just_completed,
            } => EffectV1::Increase {
                tracker: tracker.0,
                delta: (*delta).into(),
                value: (*value).into(),
                target: (*target).into(),
                just_completed: *just_completed,
            },
            Effect::Rollback {
                tracker,
                decrease_by,
                current,
                target,
            } => EffectV1::Rollback {
                tracker: tracker.0,
                decrease_by: (*decrease_by).into(),
                current: (*current).into(),
                target: (*target).into(),
            },
        }
    }
}

fn status_from(code: u8) -> Result<ProgressStatus, ModelError> {
    Ok(match code {
        0 => ProgressStatus::NotStarted,
        1 => ProgressStatus::InProgress,
        2 => ProgressStatus::Completed,
        3 => ProgressStatus::Expired,
        n => return Err(bad(format!("unknown progress status {n}"))),
    })
}

impl IterationV1 {
    pub fn to_iteration(&self) -> Result<Iteration, ModelError> {
        Ok(Iteration {
            id: ProgressTrackerId(self.id),
            status: status_from(self.status)?,
            progress: self.progress.into(),
            start: self.start.to_time()?,
            end: self
                .end
                .map(|(end, reported)| -> Result<PeriodEnd, ModelError> {
                    Ok(PeriodEnd {
                        end: end.to_time()?,
                        reported: reported.to_time()?,
                    })
                })
                .transpose()?,
            completion: opt_time(self.completion)?,
        })
    }
}

impl EffectV1 {
    pub fn to_effect(&self) -> Result<Effect, ModelError> {
        Ok(match self {
            EffectV1::Start {
                tracker,
                target,
                start,
                end,
            } => Effect::Start {
                tracker: ProgressTrackerId(*tracker),
                target: (*target).into(),
                start: start.to_time()?,
                end: opt_time(*end)?,
            },
            EffectV1::Increase {
                tracker,
                delta,
                value,
                target,
                just_completed,
            } => Effect::Increase {
                tracker: ProgressTrackerId(*tracker),
                delta: (*delta).into(),
                value: (*value).into(),
                target: (*target).into(),
                just_completed: *just_completed,
            },
            EffectV1::Rollback {
                tracker,
                decrease_by,
                current,
                target,
            } => Effect::Rollback {
                tracker: ProgressTrackerId(*tracker),
                decrease_by: (*decrease_by).into(),
                current: (*current).into(),
                target: (*target).into(),
            },
        })
    }
}

impl From<&PairChange> for PairRecordV1 {
    fn from(r: &PairChange) -> Self {
        PairRecordV1 {
            achievement: r.achievement.0,
            customer: r.customer.as_str().to_string(),
            pair_number: r.pair_number,
            now: r.now.into(),
            campaign_running: r.campaign_running,
            op: match &r.op {
                ChangeOp::Increase(inc) => PairOpV1::Increase {
                    delta: inc.delta.into(),
                    at: inc.at.map(Into::into),
                    event_id: inc.event_id.as_ref().map(|e| e.as_str().to_string()),
                },
                ChangeOp::Rollback(id) => PairOpV1::Rollback {
                    event_id: id.as_str().to_string(),
                },
            },
        }
    }
}

impl PairRecordV1 {
    pub fn to_change(&self) -> Result<PairChange, ModelError> {
        let event = |s: &str| EventId::parse(s, "/eventId").map_err(|e| bad(e.message));
        Ok(PairChange {
            achievement: AchievementId(self.achievement),
            customer: CustomerId::parse(&self.customer, "/integrationId")
                .map_err(|e| bad(e.message))?,
            pair_number: self.pair_number,
            now: self.now.to_time()?,
            campaign_running: self.campaign_running,
            op: match &self.op {
                PairOpV1::Increase {
                    delta,
                    at,
                    event_id,
                } => ChangeOp::Increase(Increase {
                    delta: (*delta).into(),
                    at: opt_time(*at)?,
                    event_id: event_id.as_deref().map(event).transpose()?,
                }),
                PairOpV1::Rollback { event_id } => ChangeOp::Rollback(event(event_id)?),
            },
        })
    }
}
