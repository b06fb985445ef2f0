//! The catalog's state and its changes.
//!
//! Owns: `CatalogState` (every application, key, campaign and definition,
//! with the name index and the id counter), `CatalogRecord` (one change, as
//! the log records it) and `apply`, the only code that changes the state;
//! `AchievementEntry`, the snapshot of a definition that events carry.
//! Deciding whether a change is allowed is `commands`' job, not this file's.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono_tz::Tz;

use crate::domain::catalog::{ApiKeyInfo, Application, Campaign};
use crate::domain::{Achievement, AchievementId, ApplicationId, CampaignId};
use crate::engine::error::EngineError;

/// Why an achievement id is not visible to an application's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotVisible {
    Missing,
    /// It exists, in another application (403, not 404).
    OtherApplication,
}

/// Everything an event for one achievement needs, as of the catalog's last
/// change: the definition, its application's zone and its campaign.
#[derive(Debug)]
pub struct AchievementEntry {
    pub achievement: Achievement,
    pub application_id: ApplicationId,
    pub tz: Tz,
    pub campaign: Campaign,
    has_progress: Arc<AtomicBool>,
    deleted: Arc<AtomicBool>,
}

impl AchievementEntry {
    /// False once the achievement was deleted: late events for it are refused.
    pub fn is_alive(&self) -> bool {
        !self.deleted.load(Ordering::Relaxed)
    }

    pub fn has_progress(&self) -> bool {
        self.has_progress.load(Ordering::Relaxed)
    }

    /// Called when a customer first makes progress.
    pub fn mark_progress(&self) {
        self.has_progress.store(true, Ordering::Relaxed);
    }
}

impl Clone for AchievementEntry {
    /// A new snapshot of the same definition: it shares the progress and
    /// deletion flags with the original.
    fn clone(&self) -> Self {
        AchievementEntry {
            achievement: self.achievement.clone(),
            application_id: self.application_id,
            tz: self.tz,
            campaign: self.campaign.clone(),
            has_progress: self.has_progress.clone(),
            deleted: self.deleted.clone(),
        }
    }
}

/// One change of the catalog: what the log records and what `apply`
/// performs. Each carries the entity as it is after the change, so applying
/// a record again is an upsert.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogRecord {
    PutApplication(Application),
    PutApiKey { hash: [u8; 32], info: ApiKeyInfo },
    PutCampaign(Campaign),
    PutAchievement(Achievement),
    DeleteAchievement(AchievementId),
}

/// The whole catalog state.
#[derive(Debug, Default, Clone)]
pub struct CatalogState {
    pub next_id: u64,
    pub applications: BTreeMap<ApplicationId, Application>,
    pub api_keys: HashMap<[u8; 32], ApiKeyInfo>,
    pub campaigns: BTreeMap<CampaignId, Campaign>,
    pub achievements: BTreeMap<AchievementId, Arc<AchievementEntry>>,
    /// Achievement ids by application and API name.
    pub(super) names: HashMap<ApplicationId, HashMap<String, AchievementId>>,
}

impl CatalogState {
    /// The id the next new entity gets (ids are shared by every kind).
    pub(super) fn peek_next(&self) -> u64 {
        self.next_id + 1
    }

    fn bump(&mut self, id: u64) {
        self.next_id = self.next_id.max(id);
    }

    /// Performs a change (validated when it was planned).
    pub fn apply(&mut self, record: &CatalogRecord) {
        match record {
            CatalogRecord::PutApplication(app) => {
                self.bump(app.id.0);
                self.applications.insert(app.id, app.clone());
            }
            CatalogRecord::PutApiKey { hash, info } => {
                self.bump(info.id);
                self.api_keys.insert(*hash, info.clone());
            }
            CatalogRecord::PutCampaign(campaign) => {
                self.bump(campaign.id.0);
                self.campaigns.insert(campaign.id, campaign.clone());
                self.refresh_campaign(campaign);
            }
            CatalogRecord::PutAchievement(achievement) => {
                self.bump(achievement.id.0);
                match self.achievements.get(&achievement.id).cloned() {
                    Some(entry) => {
                        let next = AchievementEntry {
                            achievement: achievement.clone(),
                            ..AchievementEntry::clone(&entry)
                        };
                        self.achievements.insert(achievement.id, Arc::new(next));
                    }
                    None => self.insert_achievement(achievement.clone(), false),
                }
            }
            CatalogRecord::DeleteAchievement(id) => {
                if let Some(entry) = self.achievements.remove(id) {
                    if let Some(names) = self.names.get_mut(&entry.application_id) {
                        names.remove(&entry.achievement.name);
                    }
                    entry.deleted.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    pub(super) fn app(&self, id: ApplicationId) -> Result<&Application, EngineError> {
        self.applications
            .get(&id)
            .ok_or(EngineError::not_found("application", "applicationId"))
    }

    pub(super) fn campaign(
        &self,
        app: ApplicationId,
        id: CampaignId,
    ) -> Result<&Campaign, EngineError> {
        self.app(app)?;
        self.campaigns
            .get(&id)
            .filter(|c| c.application_id == app)
            .ok_or(EngineError::not_found("campaign", "campaignId"))
    }

    pub(super) fn entry(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        id: AchievementId,
    ) -> Result<&Arc<AchievementEntry>, EngineError> {
        self.campaign(app, campaign)?;
        self.achievements
            .get(&id)
            .filter(|e| e.achievement.campaign_id == campaign)
            .ok_or(EngineError::not_found("achievement", "achievementId"))
    }

    /// Rebuilds the entries of a campaign after it changed.
    fn refresh_campaign(&mut self, campaign: &Campaign) {
        for entry in self.achievements.values_mut() {
            if entry.campaign.id == campaign.id {
                let mut next = AchievementEntry::clone(entry);
                next.campaign = campaign.clone();
                *entry = Arc::new(next);
            }
        }
    }

    /// Inserts a definition as restored from a snapshot or log.
    pub fn insert_achievement(&mut self, achievement: Achievement, has_progress: bool) {
        let Some(campaign) = self.campaigns.get(&achievement.campaign_id).cloned() else {
            return;
        };
        let Some(app) = self.applications.get(&campaign.application_id) else {
            return;
        };
        let entry = AchievementEntry {
            application_id: app.id,
            tz: app.timezone,
            campaign,
            has_progress: Arc::new(AtomicBool::new(has_progress)),
            deleted: Arc::new(AtomicBool::new(false)),
            achievement,
        };
        self.names
            .entry(entry.application_id)
            .or_default()
            .insert(entry.achievement.name.clone(), entry.achievement.id);
        self.achievements
            .insert(entry.achievement.id, Arc::new(entry));
    }
}
