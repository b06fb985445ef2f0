//! The pure domain of achievements: definitions, the catalog's entities,
//! period arithmetic and one pair's progress.
//!
//! Depends only on std, chrono/chrono-tz, rust_decimal and thiserror: no actix,
//! no I/O, and it never reads the clock (time is always a parameter), so it can
//! be tested and benchmarked on its own and replayed deterministically.

pub mod achievement;
pub mod catalog;
pub mod effects;
pub mod error;
pub mod happened;
pub mod ids;
pub mod period;
pub mod tracker;

pub use achievement::{
    Achievement, AchievementDraft, AchievementPatch, AchievementRules, ActivationPolicy,
    DefinitionStatus, RecurrencePolicy,
};
pub use effects::{Effect, EventResult, Outcome, Reason};
pub use error::{DomainError, FieldError};
pub use happened::{EntryType, Mark, Transition};
pub use ids::{AchievementId, ApplicationId, CampaignId, CustomerId, EventId, ProgressTrackerId};
pub use period::{Period, PeriodEnd, PeriodError};
pub use tracker::{Ctx, Increase, Iteration, Limits, PairTracker, ProgressStatus};
