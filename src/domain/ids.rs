//! Identifier newtypes shared by the whole crate.
//!
//! Owns: the numeric ids of applications, campaigns, achievements and progress
//! trackers, and the validated string ids that clients send (customer
//! integration ids, event ids). Pure: no I/O.

use compact_str::CompactString;
use std::fmt;

use super::error::FieldError;

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

numeric_id!(
    /// An application (tenant).
    ApplicationId
);
numeric_id!(
    /// A campaign of an application.
    CampaignId
);
numeric_id!(
    /// An achievement definition.
    AchievementId
);
numeric_id!(
    /// One iteration of one customer's progress in one achievement.
    ProgressTrackerId
);

/// Longest accepted customer integration id (Talon.One's limit).
pub const MAX_CUSTOMER_ID_LEN: usize = 1000;
/// Longest accepted event id (SPEC §3).
pub const MAX_EVENT_ID_LEN: usize = 128;

/// A customer's integration id: non-empty, at most 1000 characters. Ids of
/// up to 24 bytes are stored inline (no allocation), which keeps a pair small.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(CompactString);

impl CustomerId {
    /// Validates `raw`; `pointer` names the field in errors.
    pub fn parse(raw: &str, pointer: &str) -> Result<CustomerId, FieldError> {
        if raw.trim().is_empty() {
            return Err(FieldError::new(pointer, "integrationId must not be empty"));
        }
        if raw.chars().count() > MAX_CUSTOMER_ID_LEN {
            return Err(FieldError::new(
                pointer,
                format!("integrationId must be at most {MAX_CUSTOMER_ID_LEN} characters"),
            ));
        }
        Ok(CustomerId(CompactString::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client-chosen event id used for idempotency and rollback.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Box<str>);

impl EventId {
    /// Validates `raw`; `pointer` names the field in errors.
    pub fn parse(raw: &str, pointer: &str) -> Result<EventId, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new(pointer, "eventId must not be empty"));
        }
        if raw.chars().count() > MAX_EVENT_ID_LEN {
            return Err(FieldError::new(
                pointer,
                format!("eventId must be at most {MAX_EVENT_ID_LEN} characters"),
            ));
        }
        Ok(EventId(Box::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
