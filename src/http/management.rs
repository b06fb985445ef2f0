//! Management API routes: applications, integration keys, campaigns,
//! achievements (Talon.One v1 paths), CSV export and a customer's progress.
//! Every route needs the management key.

use super::routes::Routes;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono_tz::Tz;
use serde::Deserialize;

use super::auth::Management;
use super::dto::{
    AchievementDto, ApiKeyDto, ApplicationDto, CampaignDto, HasMore, ProgressWithDefinitionDto,
};
use super::error::ApiError;
use super::json::{self, nullable, parse_body, path_id, Num, Query, Seconds, Time, BODY_LIMIT};
use super::AppState;
use crate::domain::catalog::{CampaignPatch, CampaignState};
use crate::domain::{
    AchievementDraft, AchievementId, AchievementPatch, ActivationPolicy, ApplicationId, CampaignId,
    CustomerId, RecurrencePolicy,
};
use crate::engine::AchievementEntry;

pub fn configure(r: &mut Routes) {
    let app = "/v1/applications/{applicationId}";
    let campaign = "/v1/applications/{applicationId}/campaigns/{campaignId}";
    let achievement =
        "/v1/applications/{applicationId}/campaigns/{campaignId}/achievements/{achievementId}";
    r.post("/v1/applications", create_application)
        .get("/v1/applications", list_applications)
        .get(app, get_application)
        .post(&format!("{app}/api_keys"), create_api_key)
        .post(&format!("{app}/campaigns"), create_campaign)
        .get(&format!("{app}/campaigns"), list_campaigns)
        .get(campaign, get_campaign)
        .put(campaign, update_campaign)
        .post(&format!("{campaign}/achievements"), create_achievement)
        .get(&format!("{campaign}/achievements"), list_achievements)
        .get(achievement, get_achievement)
        .put(achievement, update_achievement)
        .delete(achievement, delete_achievement)
        .get(&format!("{achievement}/export"), export_achievement)
        .get(
            &format!("{app}/achievement_progress/{{integrationId}}"),
            customer_progress,
        );
}

fn app_id(req: &HttpRequest) -> Result<ApplicationId, ApiError> {
    path_id(
        req.match_info().get("applicationId").unwrap_or(""),
        "applicationId",
    )
    .map(ApplicationId)
}

fn campaign_id(req: &HttpRequest) -> Result<CampaignId, ApiError> {
    path_id(
        req.match_info().get("campaignId").unwrap_or(""),
        "campaignId",
    )
    .map(CampaignId)
}

fn achievement_id(req: &HttpRequest) -> Result<AchievementId, ApiError> {
    path_id(
        req.match_info().get("achievementId").unwrap_or(""),
        "achievementId",
    )
    .map(AchievementId)
}

fn parse_tz(name: &str) -> Result<Tz, ApiError> {
    name.parse::<Tz>().map_err(|_| {
        ApiError::pointer(
            "/timezone",
            format!("'{name}' is not an IANA time zone name (such as Europe/Berlin)"),
        )
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewApplication {
    name: String,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[utoipa::path(post, path = "/v1/applications", tag = "management", security(("ManagementKey" = [])), request_body = NewApplication, responses((status = 201, description = "The application", body = crate::http::dto::ApplicationDto)))]
async fn create_application(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let new: NewApplication = parse_body(&req, body, BODY_LIMIT).await?;
    let tz = parse_tz(new.timezone.as_deref().unwrap_or("UTC"))?;
    let app = state
        .engine
        .create_application(new.name, tz, new.description.unwrap_or_default())
        .await?;
    Ok(HttpResponse::Created().json(ApplicationDto::from(&app)))
}

#[utoipa::path(get, path = "/v1/applications", tag = "management", security(("ManagementKey" = [])), params(("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Items per page (default 1000)"), ("skip" = Option<u32>, Query, description = "Items to skip (default 0)")), responses((status = 200, description = "A page of applications", body = crate::http::dto::HasMore<crate::http::dto::ApplicationDto>)))]
async fn list_applications(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let page = Query::from_request(&req)?.page(1000, 1000)?;
    let apps = state.engine.catalog.applications();
    let (data, has_more) = page.cut(apps.iter().map(ApplicationDto::from).collect());
    Ok(HttpResponse::Ok().json(HasMore { has_more, data }))
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id")), responses((status = 200, description = "The application", body = crate::http::dto::ApplicationDto)))]
async fn get_application(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let app = state.engine.catalog.application(app_id(&req)?)?;
    Ok(HttpResponse::Ok().json(ApplicationDto::from(&app)))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    #[serde(default)]
    name: Option<String>,
}

#[utoipa::path(post, path = "/v1/applications/{applicationId}/api_keys", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id")), request_body = NewApiKey, responses((status = 201, description = "The key, shown only here", body = crate::http::dto::ApiKeyDto)))]
async fn create_api_key(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let app = app_id(&req)?;
    let bytes = json::read_body(body, BODY_LIMIT).await?;
    let new: NewApiKey = if bytes.iter().all(u8::is_ascii_whitespace) {
        NewApiKey::default()
    } else {
        json::decode(&bytes)?
    };
    let (info, key) = state
        .engine
        .create_api_key(app, new.name.unwrap_or_default())
        .await?;
    tracing::info!(application = %app, key_id = info.id, "integration key created");
    Ok(HttpResponse::Created().json(ApiKeyDto::new(&info, key)))
}

#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = CampaignStateInput)]
enum StateDto {
    Enabled,
    Disabled,
}

impl From<StateDto> for CampaignState {
    fn from(s: StateDto) -> Self {
        match s {
            StateDto::Enabled => CampaignState::Enabled,
            StateDto::Disabled => CampaignState::Disabled,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CampaignBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    state: Option<StateDto>,
    #[serde(default, deserialize_with = "nullable")]
    start_time: Option<Option<Time>>,
    #[serde(default, deserialize_with = "nullable")]
    end_time: Option<Option<Time>>,
}

impl From<CampaignBody> for CampaignPatch {
    fn from(b: CampaignBody) -> Self {
        CampaignPatch {
            name: b.name,
            state: b.state.map(Into::into),
            start_time: b.start_time.map(|t| t.map(|t| t.0)),
            end_time: b.end_time.map(|t| t.map(|t| t.0)),
        }
    }
}

#[utoipa::path(post, path = "/v1/applications/{applicationId}/campaigns", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id")), request_body(content = CampaignBody, description = "`name` is required"), responses((status = 201, description = "The campaign", body = crate::http::dto::CampaignDto)))]
async fn create_campaign(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let app = app_id(&req)?;
    let body: CampaignBody = parse_body(&req, body, BODY_LIMIT).await?;
    if body.name.is_none() {
        return Err(ApiError::pointer("/name", "missing field `name`"));
    }
    let campaign = state.engine.create_campaign(app, body.into()).await?;
    Ok(HttpResponse::Created().json(CampaignDto::from(&campaign)))
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}/campaigns", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Items per page (default 1000)"), ("skip" = Option<u32>, Query, description = "Items to skip (default 0)")), responses((status = 200, description = "A page of campaigns", body = crate::http::dto::HasMore<crate::http::dto::CampaignDto>)))]
async fn list_campaigns(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let page = Query::from_request(&req)?.page(1000, 1000)?;
    let campaigns = state.engine.catalog.campaigns(app_id(&req)?)?;
    let (data, has_more) = page.cut(campaigns.iter().map(CampaignDto::from).collect());
    Ok(HttpResponse::Ok().json(HasMore { has_more, data }))
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}/campaigns/{campaignId}", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("campaignId" = u64, Path, description = "The campaign's id")), responses((status = 200, description = "The campaign", body = crate::http::dto::CampaignDto)))]
async fn get_campaign(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let campaign = state
        .engine
        .catalog
        .campaign(app_id(&req)?, campaign_id(&req)?)?;
    Ok(HttpResponse::Ok().json(CampaignDto::from(&campaign)))
}

#[utoipa::path(put, path = "/v1/applications/{applicationId}/campaigns/{campaignId}", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("campaignId" = u64, Path, description = "The campaign's id")), request_body(content = CampaignBody, description = "The fields to change"), responses((status = 200, description = "The campaign", body = crate::http::dto::CampaignDto)))]
async fn update_campaign(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (app, id) = (app_id(&req)?, campaign_id(&req)?);
    let body: CampaignBody = parse_body(&req, body, BODY_LIMIT).await?;
    let campaign = state.engine.update_campaign(app, id, body.into()).await?;
    Ok(HttpResponse::Ok().json(CampaignDto::from(&campaign)))
}

#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RecurrencePolicyInput)]
enum RecurrenceDto {
    NoRecurrence,
    OnExpiration,
    OnCompletion,
}

impl From<RecurrenceDto> for RecurrencePolicy {
    fn from(r: RecurrenceDto) -> Self {
        match r {
            RecurrenceDto::NoRecurrence => RecurrencePolicy::NoRecurrence,
            RecurrenceDto::OnExpiration => RecurrencePolicy::OnExpiration,
            RecurrenceDto::OnCompletion => RecurrencePolicy::OnCompletion,
        }
    }
}

#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ActivationPolicyInput)]
enum ActivationDto {
    UserAction,
    FixedSchedule,
}

impl From<ActivationDto> for ActivationPolicy {
    fn from(a: ActivationDto) -> Self {
        match a {
            ActivationDto::UserAction => ActivationPolicy::UserAction,
            ActivationDto::FixedSchedule => ActivationPolicy::FixedSchedule,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateAchievement {
    /// Unique in the application.
    #[schema(pattern = r"^[a-zA-Z]\w+$")]
    name: String,
    title: String,
    description: String,
    /// Greater than 0.
    target: Num,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    recurrence_policy: Option<RecurrenceDto>,
    #[serde(default)]
    activation_policy: Option<ActivationDto>,
    #[serde(default)]
    fixed_start_date: Option<Time>,
    #[serde(default)]
    end_date: Option<Time>,
    #[serde(default)]
    allow_rollback_after_completion: Option<bool>,
    #[serde(default)]
    end_progress_on_target: Option<bool>,
    #[serde(default)]
    allowed_lateness_seconds: Option<Seconds>,
}

#[utoipa::path(post, path = "/v1/applications/{applicationId}/campaigns/{campaignId}/achievements", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("campaignId" = u64, Path, description = "The campaign's id")), request_body = CreateAchievement, responses((status = 201, description = "The achievement", body = crate::http::dto::AchievementDto), (status = 409, description = "The name is taken in this application", body = crate::http::error::ErrorBody)))]
async fn create_achievement(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (app, campaign) = (app_id(&req)?, campaign_id(&req)?);
    let b: CreateAchievement = parse_body(&req, body, BODY_LIMIT).await?;
    let draft = AchievementDraft {
        name: b.name,
        title: b.title,
        description: b.description,
        target: b.target.0,
        period: b.period,
        recurrence_policy: b.recurrence_policy.map(Into::into).unwrap_or_default(),
        activation_policy: b.activation_policy.map(Into::into).unwrap_or_default(),
        fixed_start_date: b.fixed_start_date.map(|t| t.0),
        end_date: b.end_date.map(|t| t.0),
        allow_rollback_after_completion: b.allow_rollback_after_completion.unwrap_or(false),
        end_progress_on_target: b.end_progress_on_target.unwrap_or(false),
        allowed_lateness_secs: b.allowed_lateness_seconds.map(|s| s.0),
    };
    let entry = state
        .engine
        .create_achievement(app, campaign, draft)
        .await?;
    let now = state.engine.now();
    tracing::info!(application = %app, achievement = %entry.achievement.id, "achievement created");
    Ok(HttpResponse::Created().json(AchievementDto::new(&entry, now)))
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}/campaigns/{campaignId}/achievements", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("campaignId" = u64, Path, description = "The campaign's id"), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 50, description = "Items per page (default 50)"), ("skip" = Option<u32>, Query, description = "Items to skip (default 0)"), ("title" = Option<String>, Query, description = "Only achievements whose title contains this (any case)")), responses((status = 200, description = "A page of achievements", body = crate::http::dto::HasMore<crate::http::dto::AchievementDto>)))]
async fn list_achievements(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = Query::from_request(&req)?;
    let page = query.page(50, 50)?;
    let title = query.get("title").map(str::to_lowercase);
    let entries = state
        .engine
        .catalog
        .achievements_of_campaign(app_id(&req)?, campaign_id(&req)?)?;
    let now = state.engine.now();
    let matching: Vec<AchievementDto> = entries
        .iter()
        .filter(|e| {
            title
                .as_deref()
                .is_none_or(|t| e.achievement.title.to_lowercase().contains(t))
        })
        .map(|e| AchievementDto::new(e, now))
        .collect();
    let (data, has_more) = page.cut(matching);
    Ok(HttpResponse::Ok().json(HasMore { has_more, data }))
}

fn entry_of(state: &AppState, req: &HttpRequest) -> Result<Arc<AchievementEntry>, ApiError> {
    Ok(state
        .engine
        .catalog
        .achievement(app_id(req)?, campaign_id(req)?, achievement_id(req)?)?)
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}/campaigns/{campaignId}/achievements/{achievementId}", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("campaignId" = u64, Path, description = "The campaign's id"), ("achievementId" = u64, Path, description = "The achievement's id")), responses((status = 200, description = "The achievement", body = crate::http::dto::AchievementDto)))]
async fn get_achievement(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let entry = entry_of(&state, &req)?;
    Ok(HttpResponse::Ok().json(AchievementDto::new(&entry, state.engine.now())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateAchievement {
    #[serde(default)]
    #[schema(pattern = r"^[a-zA-Z]\w+$")]
    name: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    target: Option<Num>,
    #[serde(default, deserialize_with = "nullable")]
    period: Option<Option<String>>,
    #[serde(default)]
    recurrence_policy: Option<RecurrenceDto>,
    #[serde(default)]
    activation_policy: Option<ActivationDto>,
    #[serde(default, deserialize_with = "nullable")]
    fixed_start_date: Option<Option<Time>>,
    #[serde(default, deserialize_with = "nullable")]
    end_date: Option<Option<Time>>,
    #[serde(default)]
    allow_rollback_after_completion: Option<bool>,
    #[serde(default)]
    end_progress_on_target: Option<bool>,
    /// `null` removes the bound.
    #[serde(default, deserialize_with = "nullable")]
    allowed_lateness_seconds: Option<Option<Seconds>>,
}

#[utoipa::path(put, path = "/v1/applications/{applicationId}/campaigns/{campaignId}/achievements/{achievementId}", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("campaignId" = u64, Path, description = "The campaign's id"), ("achievementId" = u64, Path, description = "The achievement's id")), request_body(content = UpdateAchievement, description = "The fields to change; once customers have progress only title, description and allowedLatenessSeconds may change"), responses((status = 200, description = "The achievement", body = crate::http::dto::AchievementDto), (status = 409, description = "The name is taken in this application", body = crate::http::error::ErrorBody)))]
async fn update_achievement(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (app, campaign, id) = (app_id(&req)?, campaign_id(&req)?, achievement_id(&req)?);
    let b: UpdateAchievement = parse_body(&req, body, BODY_LIMIT).await?;
    let patch = AchievementPatch {
        name: b.name,
        title: b.title,
        description: b.description,
        target: b.target.map(|n| n.0),
        period: b.period,
        recurrence_policy: b.recurrence_policy.map(Into::into),
        activation_policy: b.activation_policy.map(Into::into),
        fixed_start_date: b.fixed_start_date.map(|t| t.map(|t| t.0)),
        end_date: b.end_date.map(|t| t.map(|t| t.0)),
        allow_rollback_after_completion: b.allow_rollback_after_completion,
        end_progress_on_target: b.end_progress_on_target,
        allowed_lateness_secs: b.allowed_lateness_seconds.map(|s| s.map(|s| s.0)),
    };
    let entry = state
        .engine
        .update_achievement(app, campaign, id, &patch)
        .await?;
    Ok(HttpResponse::Ok().json(AchievementDto::new(&entry, state.engine.now())))
}

#[utoipa::path(delete, path = "/v1/applications/{applicationId}/campaigns/{campaignId}/achievements/{achievementId}", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("campaignId" = u64, Path, description = "The campaign's id"), ("achievementId" = u64, Path, description = "The achievement's id")), responses((status = 204, description = "Deleted, with every customer's progress in it")))]
async fn delete_achievement(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (app, campaign, id) = (app_id(&req)?, campaign_id(&req)?, achievement_id(&req)?);
    let removed = state.engine.delete_achievement(app, campaign, id).await?;
    tracing::info!(application = %app, achievement = %id, pairs = removed, "achievement deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}/campaigns/{campaignId}/achievements/{achievementId}/export", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("campaignId" = u64, Path, description = "The campaign's id"), ("achievementId" = u64, Path, description = "The achievement's id")), responses((status = 200, description = "One row per iteration: profileIntegrationID,title,target,progress,status,startDate,endDate,completionDate", content_type = "text/csv", body = String)))]
async fn export_achievement(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let entry = entry_of(&state, &req)?;
    let stream = super::export::csv_stream(state.engine.clone(), entry).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"achievement_progress.csv\"",
        ))
        .streaming(stream))
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}/achievement_progress/{integrationId}", tag = "management", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("integrationId" = String, Path, description = "The customer's integration id"), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 50, description = "Items per page (default 50)"), ("skip" = Option<u32>, Query, description = "Items to skip (default 0)"), ("achievementId" = Option<u64>, Query, description = "Only this achievement"), ("title" = Option<String>, Query, description = "Only achievements whose title contains this (any case)")), responses((status = 200, description = "The customer's current progress per achievement", body = crate::http::dto::HasMore<crate::http::dto::ProgressWithDefinitionDto>)))]
async fn customer_progress(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let app = app_id(&req)?;
    state.engine.catalog.application(app)?;
    let raw = json::path_text(&req, "integrationId")?;
    let customer = CustomerId::parse(&raw, "integrationId")
        .map_err(|e| ApiError::parameter("integrationId", e.message))?;
    let query = Query::from_request(&req)?;
    let page = query.page(50, 50)?;
    let only = query.number("achievementId", 0, 0, u64::MAX)?;
    let title = query.get("title").map(str::to_lowercase);
    let entries: Vec<_> = state
        .engine
        .catalog
        .achievements_of_app(app)
        .into_iter()
        .filter(|e| only == 0 || e.achievement.id.0 == only)
        .filter(|e| {
            title
                .as_deref()
                .is_none_or(|t| e.achievement.title.to_lowercase().contains(t))
        })
        .collect();
    let progress = state
        .engine
        .customer_progress(app, &customer, &entries)
        .await?;
    let rows: Vec<_> = entries
        .iter()
        .zip(&progress)
        .map(|(e, iterations)| ProgressWithDefinitionDto::new(e, iterations.first()))
        .collect();
    let (data, has_more) = page.cut(rows);
    Ok(HttpResponse::Ok().json(HasMore { has_more, data }))
}
