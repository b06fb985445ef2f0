//! The catalog: applications, their integration keys, campaigns and
//! achievement definitions, as the engine holds them.
//!
//! Owns: `Catalog`, the shared handle (one `RwLock`, read on every event, so
//! it hands out `Arc<AchievementEntry>` snapshots that carry what an event
//! needs) and its lookups. The state and its changes are in `state`, the
//! rules of changing it in `commands`; the entities themselves are domain
//! vocabulary (`domain::catalog`). Customer progress is not here.

mod commands;
mod state;

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use state::{AchievementEntry, CatalogRecord, CatalogState, NotVisible};

use super::error::EngineError;
use super::keys::hash_key;
use crate::domain::catalog::{Application, Campaign};
use crate::domain::{AchievementId, ApplicationId, CampaignId};

/// The catalog, shared by all HTTP workers and shards.
#[derive(Debug, Default)]
pub struct Catalog {
    state: RwLock<CatalogState>,
}

impl Catalog {
    pub fn read(&self) -> RwLockReadGuard<'_, CatalogState> {
        // A panic while holding the lock leaves consistent data: changes are
        // planned (validated) before `apply` performs them.
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

    /// Performs a change that the log holds (or that a restore replays).
    pub fn apply(&self, record: &CatalogRecord) {
        self.write().apply(record);
    }

    pub fn application(&self, id: ApplicationId) -> Result<Application, EngineError> {
        self.read().app(id).cloned()
    }

    pub fn applications(&self) -> Vec<Application> {
        self.read().applications.values().cloned().collect()
    }

    /// The application an integration key belongs to.
    pub fn authenticate(&self, secret: &str) -> Option<ApplicationId> {
        self.read()
            .api_keys
            .get(&hash_key(secret))
            .map(|k| k.application_id)
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
}
