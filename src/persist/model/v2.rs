//! On-disk types of version 2: achievements with `allowedLatenessSeconds`
//! (`AchievementV2`, in the catalog's log records and snapshots from version
//! 2 on) and the customer erasure record. Everything else reuses version 1.

use serde::{Deserialize, Serialize};

use super::v1::{
    AchievementV1, ApiKeyV1, ApplicationV1, CampaignV1, CatalogRecordV1, CatalogV1,
    PairRecordRefV1, PairRecordV1,
};
use super::{bad, ModelError};
use crate::domain::{Achievement, AchievementId, ApplicationId, CustomerId};
use crate::engine::catalog::{CatalogRecord, CatalogState};
use crate::engine::log::{Erasure, Record};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AchievementV2 {
    pub v1: AchievementV1,
    pub allowed_lateness_secs: Option<u64>,
}

/// A change of the catalog in the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum CatalogRecordV2 {
    PutApplication(ApplicationV1),
    PutApiKey(ApiKeyV1),
    PutCampaign(CampaignV1),
    PutAchievement(AchievementV2),
    DeleteAchievement(u64),
}

/// The catalog in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CatalogV2 {
    pub next_id: u64,
    pub applications: Vec<ApplicationV1>,
    pub api_keys: Vec<ApiKeyV1>,
    pub campaigns: Vec<CampaignV1>,
    /// Each with whether customers have progress in it.
    pub achievements: Vec<(AchievementV2, bool)>,
}

/// A customer's data erased from one application (`deleteCustomerData`):
/// the pairs it removed, so replay removes exactly those.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EraseV2 {
    pub application: u64,
    pub customer: String,
    pub achievements: Vec<u64>,
}

/// A record of a shard's log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ShardRecordV2 {
    Pair(PairRecordV1),
    Erase(EraseV2),
}

/// The borrowed twin of [`ShardRecordV2`] for the hot path: same bytes.
#[derive(Debug, Clone, Serialize)]
pub enum ShardRecordRefV2<'a> {
    Pair(PairRecordRefV1<'a>),
    Erase(&'a EraseV2),
}

// ---- conversions ----

impl From<&Achievement> for AchievementV2 {
    fn from(a: &Achievement) -> Self {
        AchievementV2 {
            v1: a.into(),
            allowed_lateness_secs: a.rules.allowed_lateness_secs,
        }
    }
}

impl From<AchievementV1> for AchievementV2 {
    fn from(v1: AchievementV1) -> Self {
        AchievementV2 {
            v1,
            allowed_lateness_secs: None,
        }
    }
}

impl AchievementV2 {
    pub fn to_achievement(&self) -> Result<Achievement, ModelError> {
        self.v1.to_achievement_with(self.allowed_lateness_secs)
    }
}

impl From<&CatalogRecord> for CatalogRecordV2 {
    fn from(r: &CatalogRecord) -> Self {
        match r {
            CatalogRecord::PutAchievement(a) => CatalogRecordV2::PutAchievement(a.into()),
            other => CatalogRecordV1::from(other).into(),
        }
    }
}

impl From<CatalogRecordV1> for CatalogRecordV2 {
    fn from(r: CatalogRecordV1) -> Self {
        match r {
            CatalogRecordV1::PutApplication(a) => CatalogRecordV2::PutApplication(a),
            CatalogRecordV1::PutApiKey(k) => CatalogRecordV2::PutApiKey(k),
            CatalogRecordV1::PutCampaign(c) => CatalogRecordV2::PutCampaign(c),
            CatalogRecordV1::PutAchievement(a) => CatalogRecordV2::PutAchievement(a.into()),
            CatalogRecordV1::DeleteAchievement(id) => CatalogRecordV2::DeleteAchievement(id),
        }
    }
}

impl CatalogRecordV2 {
    pub fn to_record(&self) -> Result<CatalogRecord, ModelError> {
        Ok(match self {
            CatalogRecordV2::PutApplication(a) => {
                CatalogRecord::PutApplication(a.to_application()?)
            }
            CatalogRecordV2::PutApiKey(k) => k.to_record()?,
            CatalogRecordV2::PutCampaign(c) => CatalogRecord::PutCampaign(c.to_campaign()?),
            CatalogRecordV2::PutAchievement(a) => {
                CatalogRecord::PutAchievement(a.to_achievement()?)
            }
            CatalogRecordV2::DeleteAchievement(id) => {
                CatalogRecord::DeleteAchievement(AchievementId(*id))
            }
        })
    }
}

impl From<&CatalogState> for CatalogV2 {
    fn from(s: &CatalogState) -> Self {
        let mut catalog = CatalogV2::from(CatalogV1::from(s));
        catalog.achievements = s
            .achievements
            .values()
            .map(|e| ((&e.achievement).into(), e.has_progress()))
            .collect();
        catalog
    }
}

impl From<CatalogV1> for CatalogV2 {
    fn from(c: CatalogV1) -> Self {
        CatalogV2 {
            next_id: c.next_id,
            applications: c.applications,
            api_keys: c.api_keys,
            campaigns: c.campaigns,
            achievements: c
                .achievements
                .into_iter()
                .map(|(a, p)| (a.into(), p))
                .collect(),
        }
    }
}

impl CatalogV2 {
    pub fn to_state(&self) -> Result<CatalogState, ModelError> {
        let mut state = CatalogState::default();
        for a in &self.applications {
            state.apply(&CatalogRecord::PutApplication(a.to_application()?));
        }
        for k in &self.api_keys {
            state.apply(&k.to_record()?);
        }
        for c in &self.campaigns {
            state.apply(&CatalogRecord::PutCampaign(c.to_campaign()?));
        }
        for (a, has_progress) in &self.achievements {
            state.insert_achievement(a.to_achievement()?, *has_progress);
        }
        state.next_id = state.next_id.max(self.next_id);
        Ok(state)
    }
}

impl From<&Erasure> for EraseV2 {
    fn from(e: &Erasure) -> Self {
        EraseV2 {
            application: e.application.0,
            customer: e.customer.as_str().to_string(),
            achievements: e.achievements.iter().map(|a| a.0).collect(),
        }
    }
}

impl EraseV2 {
    pub fn to_erasure(&self) -> Result<Erasure, ModelError> {
        Ok(Erasure {
            application: ApplicationId(self.application),
            customer: CustomerId::parse(&self.customer, "/integrationId")
                .map_err(|e| bad(e.message))?,
            achievements: self
                .achievements
                .iter()
                .copied()
                .map(AchievementId)
                .collect(),
        })
    }
}

impl ShardRecordV2 {
    pub fn to_record(&self) -> Result<Record, ModelError> {
        Ok(match self {
            ShardRecordV2::Pair(p) => Record::Pair(p.to_change()?),
            ShardRecordV2::Erase(e) => Record::Erase(e.to_erasure()?),
        })
    }
}
