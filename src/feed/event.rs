//! The AchievementEvent shape (API.md): what reads, live streams and
//! webhook deliveries show of an entry.

use serde::Serialize;

use super::store::Stored;
use crate::http::json::{Num, Time};

/// API.md's AchievementEvent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AchievementEvent<'a> {
    pub id: String,
    #[serde(rename = "type")]
    #[schema(value_type = crate::http::openapi::enums::EventTypeName)]
    pub kind: &'static str,
    pub created: Time,
    pub application_id: u64,
    pub campaign_id: u64,
    pub achievement_id: u64,
    pub achievement_name: &'a str,
    pub integration_id: &'a str,
    pub progress_tracker_id: u64,
    pub progress: Num,
    pub target: Num,
    pub start_date: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_date: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<&'a str>,
}

impl<'a> From<&'a Stored> for AchievementEvent<'a> {
    fn from(s: &'a Stored) -> Self {
        let e = &s.entry;
        let it = &e.transition.iteration;
        AchievementEvent {
            id: s.id(),
            kind: e.transition.kind.as_str(),
            created: Time(e.transition.at),
            application_id: e.application.0,
            campaign_id: e.campaign.0,
            achievement_id: e.achievement.0,
            achievement_name: &e.achievement_name,
            integration_id: e.customer.as_str(),
            progress_tracker_id: it.id.0,
            progress: Num(it.progress),
            target: Num(e.target),
            start_date: Time(it.start),
            end_date: it.end.map(|end| Time(end.reported)),
            completion_date: it.completion.map(Time),
            event_id: e.event_id.as_ref().map(|id| id.as_str()),
        }
    }
}

impl Stored {
    /// The entry as the JSON body of API.md's AchievementEvent.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_vec(&AchievementEvent::from(self)).unwrap_or_default()
    }
}
