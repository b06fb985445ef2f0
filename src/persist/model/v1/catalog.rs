//! Version 1 of the catalog's on-disk types: applications, keys, campaigns,
//! achievements, the catalog's log records and its snapshot section.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{opt_time, DecimalV1, TimeV1};
use crate::domain::catalog::{ApiKeyInfo, Application, Campaign, CampaignState};
use crate::domain::{
    Achievement, AchievementDraft, AchievementId, ActivationPolicy, ApplicationId, CampaignId,
    RecurrencePolicy,
};
use crate::engine::catalog::{CatalogRecord, CatalogState};
use crate::persist::model::v2::CatalogV2;
use crate::persist::model::{bad, ModelError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApplicationV1 {
    pub id: u64,
    pub created: TimeV1,
    pub name: String,
    pub timezone: String,
    pub description: String,
}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiKeyV1 {
    pub hash: [u8; 32],
    pub id: u64,
    pub application_id: u64,
    pub name: String,
    pub created: TimeV1,
}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CampaignV1 {
    pub id: u64,
    pub application_id: u64,
    pub created: TimeV1,
    pub name: String,
    pub enabled: bool,
    pub start_time: Option<TimeV1>,
    pub end_time: Option<TimeV1>,
}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AchievementV1 {
    pub id: u64,
    pub campaign_id: u64,
    pub created: TimeV1,
    pub name: String,
    pub title: String,
    pub description: String,
    pub target: DecimalV1,
    pub period: Option<String>,
    pub recurrence: u8,
    pub activation: u8,
    pub fixed_start_date: Option<TimeV1>,
    pub end_date: Option<TimeV1>,
    pub allow_rollback_after_completion: bool,
    pub end_progress_on_target: bool,
}
/// A change of the catalog in the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum CatalogRecordV1 {
    PutApplication(ApplicationV1),
    PutApiKey(ApiKeyV1),
    PutCampaign(CampaignV1),
    PutAchievement(AchievementV1),
    DeleteAchievement(u64),
}
/// The catalog in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CatalogV1 {
    pub next_id: u64,
    pub applications: Vec<ApplicationV1>,
    pub api_keys: Vec<ApiKeyV1>,
    pub campaigns: Vec<CampaignV1>,
    /// Each with whether customers have progress in it.
    pub achievements: Vec<(AchievementV1, bool)>,
}
// ---- conversions: engine → disk ----

impl From<&Application> for ApplicationV1 {
    fn from(a: &Application) -> Self {
        ApplicationV1 {
            id: a.id.0,
            created: a.created.into(),
            name: a.name.clone(),
            timezone: a.timezone.name().to_string(),
            description: a.description.clone(),
        }
    }
}
fn api_key_v1(hash: &[u8; 32], k: &ApiKeyInfo) -> ApiKeyV1 {
    ApiKeyV1 {
        hash: *hash,
        id: k.id,
        application_id: k.application_id.0,
        name: k.name.clone(),
        created: k.created.into(),
    }
}
impl From<&Campaign> for CampaignV1 {
    fn from(c: &Campaign) -> Self {
        CampaignV1 {
            id: c.id.0,
            application_id: c.application_id.0,
            created: c.created.into(),
            name: c.name.clone(),
            enabled: c.state == CampaignState::Enabled,
            start_time: c.start_time.map(Into::into),
            end_time: c.end_time.map(Into::into),
        }
    }
}
fn recurrence_code(r: RecurrencePolicy) -> u8 {
    match r {
        RecurrencePolicy::NoRecurrence => 0,
        RecurrencePolicy::OnExpiration => 1,
        RecurrencePolicy::OnCompletion => 2,
    }
}
impl From<&Achievement> for AchievementV1 {
    fn from(a: &Achievement) -> Self {
        let r = &a.rules;
        AchievementV1 {
            id: a.id.0,
            campaign_id: a.campaign_id.0,
            created: a.created.into(),
            name: a.name.clone(),
            title: a.title.clone(),
            description: a.description.clone(),
            target: r.target.into(),
            period: r.period.as_ref().map(ToString::to_string),
            recurrence: recurrence_code(r.recurrence),
            activation: match r.activation {
                ActivationPolicy::UserAction => 0,
                ActivationPolicy::FixedSchedule => 1,
            },
            fixed_start_date: r.fixed_start_date.map(Into::into),
            end_date: r.end_date.map(Into::into),
            allow_rollback_after_completion: r.allow_rollback_after_completion,
            end_progress_on_target: r.end_progress_on_target,
        }
    }
}
impl From<&CatalogRecord> for CatalogRecordV1 {
    fn from(r: &CatalogRecord) -> Self {
        match r {
            CatalogRecord::PutApplication(a) => CatalogRecordV1::PutApplication(a.into()),
            CatalogRecord::PutApiKey { hash, info } => {
                CatalogRecordV1::PutApiKey(api_key_v1(hash, info))
            }
            CatalogRecord::PutCampaign(c) => CatalogRecordV1::PutCampaign(c.into()),
            CatalogRecord::PutAchievement(a) => CatalogRecordV1::PutAchievement(a.into()),
            CatalogRecord::DeleteAchievement(id) => CatalogRecordV1::DeleteAchievement(id.0),
        }
    }
}
impl From<&CatalogState> for CatalogV1 {
    fn from(s: &CatalogState) -> Self {
        let mut api_keys: Vec<ApiKeyV1> = s
            .api_keys
            .iter()
            .map(|(hash, info)| api_key_v1(hash, info))
            .collect();
        api_keys.sort_by_key(|k| k.id);
        CatalogV1 {
            next_id: s.next_id,
            applications: s.applications.values().map(Into::into).collect(),
            api_keys,
            campaigns: s.campaigns.values().map(Into::into).collect(),
            achievements: s
                .achievements
                .values()
                .map(|e| ((&e.achievement).into(), e.has_progress()))
                .collect(),
        }
    }
}
// ---- conversions: disk → engine ----

impl ApplicationV1 {
    pub fn to_application(&self) -> Result<Application, ModelError> {
        Ok(Application {
            id: ApplicationId(self.id),
            created: self.created.to_time()?,
            name: self.name.clone(),
            timezone: self
                .timezone
                .parse::<Tz>()
                .map_err(|_| bad(format!("unknown time zone {}", self.timezone)))?,
            description: self.description.clone(),
        })
    }
}
impl ApiKeyV1 {
    pub fn to_record(&self) -> Result<CatalogRecord, ModelError> {
        Ok(CatalogRecord::PutApiKey {
            hash: self.hash,
            info: ApiKeyInfo {
                id: self.id,
                application_id: ApplicationId(self.application_id),
                name: self.name.clone(),
                created: self.created.to_time()?,
            },
        })
    }
}
impl CampaignV1 {
    pub fn to_campaign(&self) -> Result<Campaign, ModelError> {
        Ok(Campaign {
            id: CampaignId(self.id),
            application_id: ApplicationId(self.application_id),
            created: self.created.to_time()?,
            name: self.name.clone(),
            state: if self.enabled {
                CampaignState::Enabled
            } else {
                CampaignState::Disabled
            },
            start_time: opt_time(self.start_time)?,
            end_time: opt_time(self.end_time)?,
        })
    }
}
impl AchievementV1 {
    pub fn to_achievement(&self) -> Result<Achievement, ModelError> {
        self.to_achievement_with(None)
    }

    /// The achievement with the fields later versions added.
    pub fn to_achievement_with(
        &self,
        allowed_lateness_secs: Option<u64>,
    ) -> Result<Achievement, ModelError> {
        let draft = AchievementDraft {
            name: self.name.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            target: self.target.into(),
            period: self.period.clone(),
            recurrence_policy: match self.recurrence {
                0 => RecurrencePolicy::NoRecurrence,
                1 => RecurrencePolicy::OnExpiration,
                2 => RecurrencePolicy::OnCompletion,
                n => return Err(bad(format!("unknown recurrence policy {n}"))),
            },
            activation_policy: match self.activation {
                0 => ActivationPolicy::UserAction,
                1 => ActivationPolicy::FixedSchedule,
                n => return Err(bad(format!("unknown activation policy {n}"))),
            },
            fixed_start_date: opt_time(self.fixed_start_date)?,
            end_date: opt_time(self.end_date)?,
            allow_rollback_after_completion: self.allow_rollback_after_completion,
            end_progress_on_target: self.end_progress_on_target,
            allowed_lateness_secs,
        };
        let rules = draft.validate().map_err(|errors| {
            bad(format!(
                "stored achievement {} no longer validates: {}",
                self.id,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        Ok(Achievement {
            id: AchievementId(self.id),
            campaign_id: CampaignId(self.campaign_id),
            created: self.created.to_time()?,
            name: draft.name,
            title: draft.title,
            description: draft.description,
            rules,
        })
    }
}
impl CatalogRecordV1 {
    pub fn to_record(&self) -> Result<CatalogRecord, ModelError> {
        Ok(match self {
            CatalogRecordV1::PutApplication(a) => {
                CatalogRecord::PutApplication(a.to_application()?)
            }
            CatalogRecordV1::PutApiKey(k) => k.to_record()?,
            CatalogRecordV1::PutCampaign(c) => CatalogRecord::PutCampaign(c.to_campaign()?),
            CatalogRecordV1::PutAchievement(a) => {
                CatalogRecord::PutAchievement(a.to_achievement()?)
            }
            CatalogRecordV1::DeleteAchievement(id) => {
                CatalogRecord::DeleteAchievement(AchievementId(*id))
            }
        })
    }
}
impl CatalogV1 {
    pub fn to_state(&self) -> Result<CatalogState, ModelError> {
        CatalogV2::from(self.clone()).to_state()
    }
}
