//! What applying an event or a rollback answers: the outcome, the reason for a
//! rejection, and the effects in Talon.One's vocabulary.
//!
//! Owns: `EventResult`, `Outcome`, `Reason`, `Effect`. The HTTP layer adds the
//! achievement's id and name when it renders effects. Pure data.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::ids::ProgressTrackerId;

/// Whether an event changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Applied,
    Duplicate,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Why an event or a rollback was rejected (API.md's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    CampaignNotRunning,
    OutsideSchedule,
    FutureTimestamp,
    Late,
    AlreadyCompleted,
    Expired,
    UnknownEvent,
    AlreadyRolledBack,
    RollbackNotAllowed,
    PeriodEnded,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::CampaignNotRunning,
        Reason::OutsideSchedule,
        Reason::FutureTimestamp,
        Reason::Late,
        Reason::AlreadyCompleted,
        Reason::Expired,
        Reason::UnknownEvent,
        Reason::AlreadyRolledBack,
        Reason::RollbackNotAllowed,
        Reason::PeriodEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::CampaignNotRunning => "campaign_not_running",
            Reason::OutsideSchedule => "outside_schedule",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::Late => "late",
            Reason::AlreadyCompleted => "already_completed",
            Reason::Expired => "expired",
            Reason::UnknownEvent => "unknown_event",
            Reason::AlreadyRolledBack => "already_rolled_back",
            Reason::RollbackNotAllowed => "rollback_not_allowed",
            Reason::PeriodEnded => "period_ended",
        }
    }
}

/// One effect of an applied event or rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `startAchievementProgress`: an iteration opened.
    Start {
        tracker: ProgressTrackerId,
        target: Decimal,
        start: DateTime<Utc>,
        /// The reported end (absent when the iteration never expires).
        end: Option<DateTime<Utc>>,
    },
    /// `increaseAchievementProgress`: progress added to one iteration.
    Increase {
        tracker: ProgressTrackerId,
        delta: Decimal,
        value: Decimal,
        target: Decimal,
        just_completed: bool,
    },
    /// `rollbackIncreasedAchievementProgress`: an increase undone.
    Rollback {
        tracker: ProgressTrackerId,
        decrease_by: Decimal,
        current: Decimal,
        target: Decimal,
    },
}

impl Effect {
    pub fn effect_type(&self) -> &'static str {
        match self {
            Effect::Start { .. } => "startAchievementProgress",
            Effect::Increase { .. } => "increaseAchievementProgress",
            Effect::Rollback { .. } => "rollbackIncreasedAchievementProgress",
        }
    }
}

/// The answer to one event or rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResult {
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub effects: Vec<Effect>,
}

impl EventResult {
    pub fn rejected(reason: Reason) -> EventResult {
        EventResult {
            outcome: Outcome::Rejected,
            reason: Some(reason),
            effects: Vec::new(),
        }
    }

    pub fn applied(effects: Vec<Effect>) -> EventResult {
        EventResult {
            outcome: Outcome::Applied,
            reason: None,
            effects,
        }
    }
}
