//! Catalog commands: whether a change is allowed, and what it would be.
//!
//! Owns: the `plan_*` methods. Each validates against the current state and
//! returns the change as a `CatalogRecord` (what the log records and `apply`
//! performs) with the value the caller answers with; none of them changes
//! anything. The engine makes the record durable, then applies it
//! (`Engine::commit`), so the catalog never holds a change the log lacks.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{AchievementEntry, Catalog, CatalogRecord};
use crate::domain::catalog::{
    check_len, check_name, ApiKeyInfo, Application, Campaign, CampaignPatch, CampaignState,
    MAX_APP_DESCRIPTION_LEN, MAX_TEXT_LEN,
};
use crate::domain::{
    Achievement, AchievementDraft, AchievementId, AchievementPatch, ApplicationId, CampaignId,
};
use crate::engine::error::EngineError;
use crate::engine::keys;

/// `Ok` when there is nothing to complain about.
fn valid(errors: Vec<crate::domain::FieldError>) -> Result<(), EngineError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Invalid(errors))
    }
}

impl Catalog {
    pub fn plan_create_application(
        &self,
        name: String,
        timezone: Tz,
        description: String,
        now: DateTime<Utc>,
    ) -> Result<(CatalogRecord, Application), EngineError> {
        let mut errors = Vec::new();
        check_name(&mut errors, "/name", &name);
        check_len(
            &mut errors,
            "/description",
            &description,
            MAX_APP_DESCRIPTION_LEN,
        );
        valid(errors)?;
        let app = Application {
            id: ApplicationId(self.read().peek_next()),
            created: now,
            name,
            timezone,
            description,
        };
        Ok((CatalogRecord::PutApplication(app.clone()), app))
    }

    /// A new integration key; the value is its public part and the secret.
    pub fn plan_create_api_key(
        &self,
        app: ApplicationId,
        name: String,
        now: DateTime<Utc>,
    ) -> Result<(CatalogRecord, (ApiKeyInfo, String)), EngineError> {
        let mut errors = Vec::new();
        check_len(&mut errors, "/name", &name, MAX_TEXT_LEN);
        valid(errors)?;
        let s = self.read();
        s.app(app)?;
        let secret = keys::generate_secret();
        let info = ApiKeyInfo {
            id: s.peek_next(),
            application_id: app,
            name,
            created: now,
        };
        let hash = keys::hash_key(&secret);
        Ok((
            CatalogRecord::PutApiKey {
                hash,
                info: info.clone(),
            },
            (info, secret),
        ))
    }

    pub fn plan_create_campaign(
        &self,
        app: ApplicationId,
        patch: CampaignPatch,
        now: DateTime<Utc>,
    ) -> Result<(CatalogRecord, Campaign), EngineError> {
        let s = self.read();
        s.app(app)?;
        let campaign = Campaign {
            id: CampaignId(s.peek_next()),
            application_id: app,
            created: now,
            name: patch.name.unwrap_or_default(),
            state: patch.state.unwrap_or(CampaignState::Enabled),
            start_time: patch.start_time.flatten(),
            end_time: patch.end_time.flatten(),
        };
        let mut errors = Vec::new();
        campaign.check(&mut errors);
        valid(errors)?;
        Ok((CatalogRecord::PutCampaign(campaign.clone()), campaign))
    }

    pub fn plan_update_campaign(
        &self,
        app: ApplicationId,
        id: CampaignId,
        patch: CampaignPatch,
    ) -> Result<(CatalogRecord, Campaign), EngineError> {
        let current = self.read().campaign(app, id)?.clone();
        let next = patch.applied_to(current);
        let mut errors = Vec::new();
        next.check(&mut errors);
        valid(errors)?;
        Ok((CatalogRecord::PutCampaign(next.clone()), next))
    }

    /// A new definition; the value is its id.
    pub fn plan_create_achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        draft: AchievementDraft,
        now: DateTime<Utc>,
    ) -> Result<(CatalogRecord, AchievementId), EngineError> {
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
        let id = AchievementId(s.peek_next());
        Ok((
            CatalogRecord::PutAchievement(Achievement {
                id,
                campaign_id: campaign,
                created: now,
                name: draft.name,
                title: draft.title,
                description: draft.description,
                rules,
            }),
            id,
        ))
    }

    /// Applies the editing rule (SPEC §1) to plan a new definition.
    pub fn plan_update_achievement(
        &self,
        app: ApplicationId,
        campaign: CampaignId,
        id: AchievementId,
        patch: &AchievementPatch,
        now: DateTime<Utc>,
    ) -> Result<(CatalogRecord, ()), EngineError> {
        let entry = self.read().entry(app, campaign, id)?.clone();
        let locked = entry.campaign.running_at(now) || entry.has_progress();
        let achievement = entry
            .achievement
            .patched(patch, locked)
            .map_err(EngineError::Invalid)?;
        Ok((CatalogRecord::PutAchievement(achievement), ()))
    }

    /// The removal of a definition; the value is its entry (the caller
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
}
