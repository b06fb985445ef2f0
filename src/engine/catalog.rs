//! The catalog: applications, their integration keys, campaigns and
//! achievement definitions.
//!
//! Owns: ids of these entities, the name → achievement index of each
//! application, key hashing, and the rules of creating and editing them.
//! Customer progress is not here (see `shard`/`pair`). The catalog is small
//! and read on every event, so it sits behind one `RwLock` and hands out
//! `Arc<AchievementEntry>` snapshots that carry what an event needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::error::EngineError;
use crate::domain::{
    Achievement, AchievementDraft, AchievementId, AchievementPatch, ApplicationId, CampaignId,
    FieldError,
};

pub const MAX_TEXT_LEN: usize = 1000;

/// Why an achievement id is not visible to an application's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotVisible {
    Missing,
    /// It exists, in another application (403, not 404).
    OtherApplication,
}

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

    pub fn parse(s: &str) -> Option<CampaignState> {
        match s {
            "enabled" => Some(CampaignState::Enabled),
            "disabled" => Some(CampaignState::Disabled),
            _ => None,
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
}

/// What a client sends to create or change a campaign.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub state: Option<CampaignState>,
    pub start_time: Option<Option<DateTime<Utc>>>,
    pub end_time: Option<Option<DateTime<Utc>>>,
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

/// One change of the catalog: what the write-ahead log records and what
/// `Catalog::apply` performs. Each carries the entity as it is after the
/// change, so replaying a record is an upsert.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogRecord {
    PutApplication(Application),
    PutApiKey { hash: [u8; 32], info: ApiKeyInfo },
    PutCampaign(Campaign),
    PutAchievement(Achievement),
    DeleteAchievement(AchievementId),
}

/// The whole catalog state, for snapshots.
#[derive(Debug, Default, Clone)]
pub struct CatalogState {
    pub next_id: u64,
    pub applications: BTreeMap<ApplicationId, Application>,
    pub api_keys: HashMap<[u8; 32], ApiKeyInfo>,
    pub campaigns: BTreeMap<CampaignId, Campaign>,
    pub achievements: BTreeMap<AchievementId, Arc<AchievementEntry>>,
    /// Achievement ids by application and API name.
    names: HashMap<ApplicationId, HashMap<String, AchievementId>>,
}

/// The catalog, shared by all HTTP workers and shards.
#[derive(Debug, Default)]
pub struct Catalog {
    state: RwLock<CatalogState>,
}

/// SHA-256 of a secret key.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Constant-time equality of two digests.
pub fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_name(errors: &mut Vec<FieldError>, pointer: &str, name: &str) {
    if name.trim().is_empty() {
        errors.push(FieldError::new(pointer, "must not be empty"));
    } else if name.chars().count() > MAX_TEXT_LEN {
        errors.push(FieldError::new(
            pointer,
            format!("must be at most {MAX_TEXT_LEN} characters"),
        ));
    }
}

impl Clone for AchievementEntry {
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

impl CatalogState {
    fn peek_next(&self) -> u64 {
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

    fn app(&self, id: ApplicationId) -> Result<&Application, EngineError> {
        self.applications
            .get(&id)
            .ok_or(EngineError::not_found("application", "applicationId"))
    }

    fn campaign(&self, app: ApplicationId, id: CampaignId) -> Result<&Campaign, EngineError> {
        self.app(app)?;
        self.campaigns
            .get(&id)
            .filter(|c| c.application_id == app)
            .ok_or(EngineError::not_found("campaign", "campaignId"))
    }

    fn entry(
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

impl Catalog {
    pub fn read(&self) -> RwLockReadGuard<'_, CatalogState> {
        // A panic while holding the lock leaves consistent data: every write
        // below validates before it mutates.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, CatalogState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the whole state (restore).
    pub fn replace(&self, state: CatalogState) {
        *self.write() = state;
    }

    pub fn from_state(state: CatalogState) -> Catalog {
        Catalog {
            state: RwLock::new(state),
        }
    }

    pub fn plan_create_application(
        &self,
        name: String,
        timezone: Tz,
        description: String,
        now: DateTime<Utc>,
    ) -> Result<CatalogRecord, EngineError> {
        let mut errors = Vec::new();
        check_name(&mut errors, "/name", &name);
        if description.chars().count() > 10_000 {
            errors.push(FieldError::new(
                "/description",
                "must be at most 10000 characters",
            ));
        }
        if !errors.is_empty() {
            return Err(EngineError::Invalid(errors));
        }
        Ok(CatalogRecord::PutApplication(Application {
            id: ApplicationId(self.read().peek_next()),
            created: now,
            name,
            timezone,
            description,
        }))
    }

    pub fn application(&self, id: ApplicationId) -> Result<Application, EngineError> {
        self.read().app(id).cloned()
    }

    pub fn applications(&self) -> Vec<Application> {
        self.read().applications.values().cloned().collect()
    }

    /// Plans a new integration key; returns the change and the secret.
    pub fn plan_create_api_key(
        &self,
        app: ApplicationId,
        name: String,
        now: DateTime<Utc>,
    ) -> Result<(CatalogRecord, String), EngineError> {
        if name.chars().count() > MAX_TEXT_LEN {
            return Err(EngineError::Invalid(vec![FieldError::new(
                "/name",
                format!("must be at most {MAX_TEXT_LEN} characters"),
            )]));
        }
        let s = self.read();
        s.app(app)?;
        let secret = super::keys::generate_secret();
        let info = ApiKeyInfo {
            id: s.peek_next(),
            application_id: app,
            name,
            created: now,
        };
        let hash = hash_key(&secret);
        Ok((CatalogRecord::PutApiKey { hash, info }, secret))
    }

    /// The application an integration key belongs to.
    pub fn authenticate(&self, secret: &str) -> Option<ApplicationId> {
        self.read()
            .api_keys
            .get(&hash_key(secret))
            .map(|k| k.application_id)
    }

    pub fn plan_create_campaign(
        &self,
        app: ApplicationId,
        patch: CampaignPatch,
        now: DateTime<Utc>,
    ) -> Result<CatalogRecord, EngineError> {
        let s = self.read();
        s.app(app)?;
        let mut errors = Vec::new();
        let name = patch.name.clone().unwrap_or_default();
        check_name(&mut errors, "/name", &name);
        let campaign = Campaign {
            id: CampaignId(s.peek_next()),
            application_id: app,
            created: now,
            name,
            state: patch.state.unwrap_or(CampaignState::Enabled),
            start_time: patch.start_time.flatten(),
            end_time: patch.end_time.flatten(),
        };
        check_campaign_times(&mut errors, &campaign);
        if !errors.is_empty() {
            return Err(EngineError::Invalid(errors));
        }
        Ok(CatalogRecord::PutCampaign(campaign))
    }

    pub fn campaign(&self, app: ApplicationId, id: CampaignId) -> Result<Campaign, EngineError> {
        self.read().campaign(app, id).cloned()
    }

    pub fn campaigns(&self, app: ApplicationId) -> Result<Vec<Campaign>, EngineError> {
        let s = self.read();
        s.app(app)?;
        Ok(s.campaigns
            .values()
            .filter(|c| c.application_id == app)
            .cloned()
            .collect())
    }

    pub fn plan_update_campaign(
        &self,
        app: ApplicationId,
        id: CampaignId,
        patch: CampaignPatch,
    ) -> Result<CatalogRecord, EngineError> {
        let mut next = self.read().campaign(app, id)?.clone();
        let mut errors = Vec::new();
        if let Some(name) = patch.name {
            check_name(&mut errors, "/name", &name);
            next.name = name;
        }
        if let Some(state) = patch.state {
            next.state = state;
        }
        if let Some(t) = patch.start_time {
            next.start_time = t;
        }
        if let Some(t) = patch.end_time {
            next.end_time = t;
        }
        check_campaign_times(&mut errors, &next);
        if !errors.is_empty() {
            return Err(EngineError::Invalid(errors));
        }
        Ok(CatalogRecord::PutCampaign(next))
    }

    pub fn plan_create_achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        draft: AchievementDraft,
        now: DateTime<Utc>,
    ) -> Result<CatalogRecord, EngineError> {
        let rules = draft.validate().map_err(EngineError::Invalid)?;
        let s = self.read();
        s.campaign(app, campaign)?;
        if s.names
            .get(&app)
            .is_some_and(|n| n.contains_key(&draft.name))
        {
            return Err(EngineError::Conflict {
                pointer: "/name",
                message: format!(
                    "an achievement named '{}' already exists in this application",
                    draft.name
                ),
            });
        }
        Ok(CatalogRecord::PutAchievement(Achievement {
            id: AchievementId(s.peek_next()),
            campaign_id: campaign,
            created: now,
            name: draft.name,
            title: draft.title,
            description: draft.description,
            rules,
        }))
    }

    pub fn achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        id: AchievementId,
    ) -> Result<Arc<AchievementEntry>, EngineError> {
        self.read().entry(app, campaign, id).cloned()
    }

    /// An achievement by id, as an integration key of `app` may see it.
    pub fn achievement_for(
        &self,
        app: ApplicationId,
        id: AchievementId,
    ) -> Result<Arc<AchievementEntry>, NotVisible> {
        match self.read().achievements.get(&id) {
            Some(e) if e.application_id == app => Ok(e.clone()),
            Some(_) => Err(NotVisible::OtherApplication),
            None => Err(NotVisible::Missing),
        }
    }

    /// An achievement of an application by its API name.
    pub fn achievement_by_name(
        &self,
        app: ApplicationId,
        name: &str,
    ) -> Option<Arc<AchievementEntry>> {
        let s = self.read();
        let id = s.names.get(&app)?.get(name)?;
        s.achievements.get(id).cloned()
    }

    pub fn achievements_of_campaign(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
    ) -> Result<Vec<Arc<AchievementEntry>>, EngineError> {
        let s = self.read();
        s.campaign(app, campaign)?;
        Ok(s.achievements
            .values()
            .filter(|e| e.achievement.campaign_id == campaign)
            .cloned()
            .collect())
    }

    pub fn achievements_of_app(&self, app: ApplicationId) -> Vec<Arc<AchievementEntry>> {
        self.read()
            .achievements
            .values()
            .filter(|e| e.application_id == app)
            .cloned()
            .collect()
    }

    /// Applies the editing rule (SPEC §1) to plan a new definition.
    pub fn plan_update_achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        id: AchievementId,
        patch: &AchievementPatch,
        now: DateTime<Utc>,
    ) -> Result<CatalogRecord, EngineError> {
        let entry = self.read().entry(app, campaign, id)?.clone();
        let locked = entry.campaign.running_at(now) || entry.has_progress();
        let achievement = entry
            .achievement
            .patched(patch, locked)
            .map_err(EngineError::Invalid)?;
        Ok(CatalogRecord::PutAchievement(achievement))
    }

    pub fn update_achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        id: AchievementId,
        patch: &AchievementPatch,
        now: DateTime<Utc>,
    ) -> Result<Arc<AchievementEntry>, EngineError> {
        let mut s = self.write();
        let entry = s.entry(app, campaign, id)?.clone();
        let locked = entry.campaign.running_at(now) || entry.has_progress();
        let achievement = entry
            .achievement
            .patched(patch, locked)
            .map_err(EngineError::Invalid)?;
        let next = Arc::new(AchievementEntry {
            achievement,
            ..AchievementEntry::clone(&entry)
        });
        s.achievements.insert(id, next.clone());
        Ok(next)
    }

    /// Plans the removal of a definition; returns its entry too (the caller
    /// removes its customers' progress).
    pub fn plan_delete_achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        id: AchievementId,
    ) -> Result<(CatalogRecord, Arc<AchievementEntry>), EngineError> {
        let entry = self.read().entry(app, campaign, id)?.clone();
        Ok((CatalogRecord::DeleteAchievement(id), entry))
    }

    /// Performs a planned change.
    pub fn apply(&self, record: &CatalogRecord) {
        self.write().apply(record);
    }
}

fn check_campaign_times(errors: &mut Vec<FieldError>, c: &Campaign) {
    if let (Some(s), Some(e)) = (c.start_time, c.end_time) {
        if e <= s {
            errors.push(FieldError::new(
                "/endTime",
                "endTime must be after startTime",
            ));
        }
    }
}
