//! Response shapes, named and laid out as Talon.One's v1 models (camelCase,
//! RFC 3339 in UTC, decimals as JSON numbers).

use serde::Serialize;

use super::json::{Num, Time};
use crate::domain::catalog::{ApiKeyInfo, Application, Campaign};
use crate::domain::{Effect, EventResult, Iteration, ProgressStatus};
use crate::engine::AchievementEntry;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Application)]
pub struct ApplicationDto {
    pub id: u64,
    pub created: Time,
    pub name: String,
    pub timezone: String,
    pub description: String,
}

impl From<&Application> for ApplicationDto {
    fn from(a: &Application) -> Self {
        ApplicationDto {
            id: a.id.0,
            created: Time(a.created),
            name: a.name.clone(),
            timezone: a.timezone.name().to_string(),
            description: a.description.clone(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKey)]
pub struct ApiKeyDto {
    pub id: u64,
    pub name: String,
    pub key: String,
    pub created: Time,
    pub application_id: u64,
}

impl ApiKeyDto {
    pub fn new(info: &ApiKeyInfo, key: String) -> Self {
        ApiKeyDto {
            id: info.id,
            name: info.name.clone(),
            key,
            created: Time(info.created),
            application_id: info.application_id.0,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Campaign)]
pub struct CampaignDto {
    pub id: u64,
    pub application_id: u64,
    pub created: Time,
    pub name: String,
    #[schema(value_type = crate::http::openapi::enums::CampaignStateName)]
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
}

impl From<&Campaign> for CampaignDto {
    fn from(c: &Campaign) -> Self {
        CampaignDto {
            id: c.id.0,
            application_id: c.application_id.0,
            created: Time(c.created),
            name: c.name.clone(),
            state: c.state.as_str(),
            start_time: c.start_time.map(Time),
            end_time: c.end_time.map(Time),
        }
    }
}

/// The definition fields shared by several models.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AchievementDefinition)]
pub struct DefinitionDto {
    pub id: u64,
    pub created: Time,
    pub name: String,
    pub title: String,
    pub description: String,
    pub target: Num,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    #[schema(value_type = crate::http::openapi::enums::RecurrencePolicyName)]
    pub recurrence_policy: &'static str,
    #[schema(value_type = crate::http::openapi::enums::ActivationPolicyName)]
    pub activation_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_start_date: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<Time>,
    pub allow_rollback_after_completion: bool,
    pub end_progress_on_target: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_lateness_seconds: Option<u64>,
    pub campaign_id: u64,
}

impl From<&AchievementEntry> for DefinitionDto {
    fn from(e: &AchievementEntry) -> Self {
        let a = &e.achievement;
        let r = &a.rules;
        DefinitionDto {
            id: a.id.0,
            created: Time(a.created),
            name: a.name.clone(),
            title: a.title.clone(),
            description: a.description.clone(),
            target: Num(r.target),
            period: r.period.as_ref().map(ToString::to_string),
            recurrence_policy: r.recurrence.as_str(),
            activation_policy: r.activation.as_str(),
            fixed_start_date: r.fixed_start_date.map(Time),
            end_date: r.end_date.map(Time),
            allow_rollback_after_completion: r.allow_rollback_after_completion,
            end_progress_on_target: r.end_progress_on_target,
            allowed_lateness_seconds: r.allowed_lateness_secs,
            campaign_id: a.campaign_id.0,
        }
    }
}

/// Talon.One's `Achievement`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Achievement)]
pub struct AchievementDto {
    #[serde(flatten)]
    pub definition: DefinitionDto,
    pub user_id: u64,
    pub has_progress: bool,
    #[schema(value_type = crate::http::openapi::enums::AchievementStatusName)]
    pub status: &'static str,
}

impl AchievementDto {
    pub fn new(e: &AchievementEntry, now: chrono::DateTime<chrono::Utc>) -> Self {
        AchievementDto {
            definition: e.into(),
            user_id: 0,
            has_progress: e.has_progress(),
            status: e.achievement.rules.definition_status(e.tz, now).as_str(),
        }
    }
}

/// Talon.One's `AchievementProgress`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AchievementProgress)]
pub struct ProgressDto {
    pub progress_tracker_id: u64,
    #[schema(value_type = crate::http::openapi::enums::ProgressStatusName)]
    pub status: &'static str,
    pub progress: Num,
    pub start_date: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_date: Option<Time>,
}

impl From<&Iteration> for ProgressDto {
    fn from(i: &Iteration) -> Self {
        ProgressDto {
            progress_tracker_id: i.id.0,
            status: i.status.as_str(),
            progress: Num(i.progress),
            start_date: Time(i.start),
            end_date: i.end.map(|e| Time(e.reported)),
            completion_date: i.completion.map(Time),
        }
    }
}

/// Talon.One's `AchievementStatusEntry`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AchievementStatusEntry)]
pub struct StatusEntryDto {
    #[serde(flatten)]
    pub definition: DefinitionDto,
    #[schema(value_type = crate::http::openapi::enums::EntryStatusName)]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_progress: Option<ProgressDto>,
}

/// Talon.One's `AchievementProgressWithDefinition`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AchievementProgressWithDefinition)]
pub struct ProgressWithDefinitionDto {
    #[schema(value_type = crate::http::openapi::enums::ProgressStatusName)]
    pub status: &'static str,
    pub progress: Num,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_tracker_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_date: Option<Time>,
    pub achievement_id: u64,
    pub name: String,
    pub title: String,
    pub description: String,
    pub campaign_id: u64,
    pub target: Num,
    #[schema(value_type = crate::http::openapi::enums::RecurrencePolicyName)]
    pub achievement_recurrence_policy: &'static str,
    #[schema(value_type = crate::http::openapi::enums::ActivationPolicyName)]
    pub achievement_activation_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achievement_fixed_start_date: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achievement_end_date: Option<Time>,
    pub achievement_allow_rollback_after_completion: bool,
}

impl ProgressWithDefinitionDto {
    pub fn new(e: &AchievementEntry, current: Option<&Iteration>) -> Self {
        let a = &e.achievement;
        let r = &a.rules;
        ProgressWithDefinitionDto {
            status: current
                .map_or(ProgressStatus::NotStarted, |i| i.status)
                .as_str(),
            progress: Num(current.map_or(rust_decimal::Decimal::ZERO, |i| i.progress)),
            progress_tracker_id: current.map(|i| i.id.0),
            start_date: current.map(|i| Time(i.start)),
            end_date: current.and_then(|i| i.end).map(|e| Time(e.reported)),
            completion_date: current.and_then(|i| i.completion).map(Time),
            achievement_id: a.id.0,
            name: a.name.clone(),
            title: a.title.clone(),
            description: a.description.clone(),
            campaign_id: a.campaign_id.0,
            target: Num(r.target),
            achievement_recurrence_policy: r.recurrence.as_str(),
            achievement_activation_policy: r.activation.as_str(),
            achievement_fixed_start_date: r.fixed_start_date.map(Time),
            achievement_end_date: r.end_date.map(Time),
            achievement_allow_rollback_after_completion: r.allow_rollback_after_completion,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Effect)]
pub struct EffectDto {
    #[schema(value_type = crate::http::openapi::enums::EffectTypeName)]
    pub effect_type: &'static str,
    pub props: EffectProps,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged, rename_all = "camelCase")]
pub enum EffectProps {
    #[serde(rename_all = "camelCase")]
    Start {
        achievement_id: u64,
        achievement_name: String,
        progress_tracker_id: u64,
        target: Num,
        start_date: Time,
        #[serde(skip_serializing_if = "Option::is_none")]
        end_date: Option<Time>,
    },
    #[serde(rename_all = "camelCase")]
    Increase {
        achievement_id: u64,
        achievement_name: String,
        progress_tracker_id: u64,
        delta: Num,
        value: Num,
        target: Num,
        is_just_completed: bool,
    },
    #[serde(rename_all = "camelCase")]
    Rollback {
        achievement_id: u64,
        achievement_name: String,
        progress_tracker_id: u64,
        decrease_progress_by: Num,
        current_progress: Num,
        target: Num,
    },
}

impl EffectDto {
    pub fn new(e: &Effect, entry: &AchievementEntry) -> Self {
        let achievement_id = entry.achievement.id.0;
        let achievement_name = entry.achievement.name.clone();
        let props = match e {
            Effect::Start {
                tracker,
                target,
                start,
                end,
            } => EffectProps::Start {
                achievement_id,
                achievement_name,
                progress_tracker_id: tracker.0,
                target: Num(*target),
                start_date: Time(*start),
                end_date: end.map(Time),
            },
            Effect::Increase {
                tracker,
                delta,
                value,
                target,
                just_completed,
            } => EffectProps::Increase {
                achievement_id,
                achievement_name,
                progress_tracker_id: tracker.0,
                delta: Num(*delta),
                value: Num(*value),
                target: Num(*target),
                is_just_completed: *just_completed,
            },
            Effect::Rollback {
                tracker,
                decrease_by,
                current,
                target,
            } => EffectProps::Rollback {
                achievement_id,
                achievement_name,
                progress_tracker_id: tracker.0,
                decrease_progress_by: Num(*decrease_by),
                current_progress: Num(*current),
                target: Num(*target),
            },
        };
        EffectDto {
            effect_type: e.effect_type(),
            props,
        }
    }
}

/// The answer to one event or rollback.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EventResult)]
pub struct EventResultDto {
    #[schema(value_type = crate::http::openapi::enums::OutcomeName)]
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::http::openapi::enums::ReasonName>)]
    pub reason: Option<&'static str>,
    pub effects: Vec<EffectDto>,
}

impl EventResultDto {
    pub fn new(r: &EventResult, entry: &AchievementEntry) -> Self {
        EventResultDto {
            outcome: r.outcome.as_str(),
            reason: r.reason.map(|r| r.as_str()),
            effects: r.effects.iter().map(|e| EffectDto::new(e, entry)).collect(),
        }
    }
}

/// `{hasMore, data}` (management lists).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HasMore<T> {
    pub has_more: bool,
    pub data: Vec<T>,
}

/// `{totalResultSize, data}` (integration lists).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Total<T> {
    pub total_result_size: usize,
    pub data: Vec<T>,
}
