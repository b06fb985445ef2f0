//! The feed's on-disk records (version 1): an entry as stored, and an
//! erasure mark. Separate from the engine's types so either can change
//! without breaking stored feeds; plain encodings (bincode-friendly).

use serde::{Deserialize, Serialize};

use crate::domain::{
    AchievementId, ApplicationId, CampaignId, CustomerId, EntryType, EventId, Transition,
};
use crate::engine::feed::FeedEntry;
use crate::engine::log::{PartitionId, Position};
use crate::persist::model::{bad, DecimalV1, IterationV1, ModelError, TimeV1};

/// The first byte of every feed record: its version.
pub const FEED_VERSION: u8 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum FeedRecordV1 {
    Entry(Box<EntryV1>),
    /// The customer's entries made before `position` are gone.
    Erase {
        application: u64,
        customer: String,
        partition: u32,
        position: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryV1 {
    /// When the feed stored it (retention counts from here).
    pub written: TimeV1,
    pub partition: u32,
    pub position: u64,
    pub index: u32,
    pub application: u64,
    pub campaign: u64,
    pub achievement: u64,
    pub achievement_name: String,
    pub customer: String,
    pub target: DecimalV1,
    pub event_id: Option<String>,
    /// `EntryType` as its number.
    pub kind: u8,
    pub at: TimeV1,
    pub iteration: IterationV1,
}

fn kind_from(n: u8) -> Result<EntryType, ModelError> {
    EntryType::ALL
        .into_iter()
        .find(|k| *k as u8 == n)
        .ok_or_else(|| bad(format!("unknown feed entry type {n}")))
}

impl EntryV1 {
    pub fn new(e: &FeedEntry, written: chrono::DateTime<chrono::Utc>) -> EntryV1 {
        EntryV1 {
            written: written.into(),
            partition: e.partition.0,
            position: e.position.0,
            index: e.index,
            application: e.application.0,
            campaign: e.campaign.0,
            achievement: e.achievement.0,
            achievement_name: e.achievement_name.clone(),
            customer: e.customer.as_str().to_string(),
            target: e.target.into(),
            event_id: e.event_id.as_ref().map(|id| id.as_str().to_string()),
            kind: e.transition.kind as u8,
            at: e.transition.at.into(),
            iteration: IterationV1::from(&e.transition.iteration),
        }
    }

    pub fn to_entry(&self) -> Result<(FeedEntry, chrono::DateTime<chrono::Utc>), ModelError> {
        let entry = FeedEntry {
            partition: PartitionId(self.partition),
            position: Position(self.position),
            index: self.index,
            application: ApplicationId(self.application),
            campaign: CampaignId(self.campaign),
            achievement: AchievementId(self.achievement),
            achievement_name: self.achievement_name.clone(),
            customer: CustomerId::parse(&self.customer, "/integrationId")
                .map_err(|e| bad(e.message))?,
            target: self.target.into(),
            event_id: self
                .event_id
                .as_deref()
                .map(|id| EventId::parse(id, "/eventId").map_err(|e| bad(e.message)))
                .transpose()?,
            transition: Transition {
                kind: kind_from(self.kind)?,
                at: self.at.to_time()?,
                iteration: self.iteration.to_iteration()?,
            },
        };
        Ok((entry, self.written.to_time()?))
    }
}
