//! The catalog's entities: applications (tenants), their integration keys
//! and campaigns. Shared vocabulary of every layer, like the achievement
//! definitions beside them.
//!
//! Owns: the entities, what makes a campaign running, and the validation of
//! their fields. Pure: no I/O, never reads the clock.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::error::FieldError;
use super::ids::{ApplicationId, CampaignId};

/// Longest accepted application, key and campaign name.
pub const MAX_TEXT_LEN: usize = 1000;
/// Longest accepted application description.
pub const MAX_APP_DESCRIPTION_LEN: usize = 10_000;

/// A tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: ApplicationId,
    pub created: DateTime<Utc>,
    pub name: String,
    pub timezone: Tz,
    pub description: String,
}

/// An integration key's public part (the secret is shown once, then only its
/// hash is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyInfo {
    pub id: u64,
    pub application_id: ApplicationId,
    pub name: String,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignState {
    Enabled,
    Disabled,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Enabled => "enabled",
            CampaignState::Disabled => "disabled",
        }
    }
}

/// A campaign of an application.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub id: CampaignId,
    pub application_id: ApplicationId,
    pub created: DateTime<Utc>,
    pub name: String,
    pub state: CampaignState,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

impl Campaign {
    /// Enabled and `startTime <= t < endTime` (missing bounds are open).
    pub fn running_at(&self, t: DateTime<Utc>) -> bool {
        self.state == CampaignState::Enabled
            && self.start_time.is_none_or(|s| s <= t)
            && self.end_time.is_none_or(|e| t < e)
    }

    /// The problems of a campaign's own fields.
    pub fn check(&self, errors: &mut Vec<FieldError>) {
        check_name(errors, "/name", &self.name);
        if let (Some(s), Some(e)) = (self.start_time, self.end_time) {
            if e <= s {
                errors.push(FieldError::new(
                    "/endTime",
                    "endTime must be after startTime",
                ));
            }
        }
    }
}

/// What a client sends to create or change a campaign.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub state: Option<CampaignState>,
    pub start_time: Option<Option<DateTime<Utc>>>,
    pub end_time: Option<Option<DateTime<Utc>>>,
}

impl CampaignPatch {
    /// `campaign` with this patch applied (fields it leaves out unchanged).
    pub fn applied_to(self, mut campaign: Campaign) -> Campaign {
        if let Some(name) = self.name {
            campaign.name = name;
        }
        if let Some(state) = self.state {
            campaign.state = state;
        }
        if let Some(t) = self.start_time {
            campaign.start_time = t;
        }
        if let Some(t) = self.end_time {
            campaign.end_time = t;
        }
        campaign
    }
}

/// A required name of at most [`MAX_TEXT_LEN`] characters.
pub fn check_name(errors: &mut Vec<FieldError>, pointer: &str, name: &str) {
    if name.trim().is_empty() {
        errors.push(FieldError::new(pointer, "must not be empty"));
    } else {
        check_len(errors, pointer, name, MAX_TEXT_LEN);
    }
}

/// A text of at most `max` characters.
pub fn check_len(errors: &mut Vec<FieldError>, pointer: &str, text: &str, max: usize) {
    if text.chars().count() > max {
        errors.push(FieldError::new(
            pointer,
            format!("must be at most {max} characters"),
        ));
    }
}
