//! Integration API routes: progress events (single and batch), rollbacks, a
//! customer's achievements and history, and the erasure of a customer's
//! data. Every route needs an integration key and sees only its own
//! application's data; a customer's history may also be read with the
//! management key (for the web console's customer lookup).

use super::routes::Routes;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{Integration, Reader};
use super::dto::{EventResultDto, ProgressDto, StatusEntryDto, Total};
use super::error::ApiError;
use super::json::{parse_body, Num, Query, Time, BATCH_BODY_LIMIT, BODY_LIMIT};
use super::metrics::EventKind;
use super::AppState;
use crate::domain::achievement::check_amount;
use crate::domain::{
    AchievementId, ApplicationId, CustomerId, DefinitionStatus, EventId, EventResult, Increase,
    Outcome, ProgressStatus,
};
use crate::engine::catalog::NotVisible;
use crate::engine::{AchievementEntry, EngineError, EventInput};

/// The most events one batch may carry.
pub const MAX_BATCH: usize = 10_000;

pub fn configure(r: &mut Routes) {
    r.post("/v1/progress_events", post_event)
        .post("/v1/progress_events/batch", post_batch)
        .post("/v1/progress_rollbacks", post_rollback)
        .get(
            "/v1/customer_profiles/{integrationId}/achievements",
            customer_achievements,
        )
        .get(
            "/v1/customer_profiles/{integrationId}/achievements/{achievementId}",
            customer_history,
        )
        .delete("/v1/customer_data/{integrationId}", delete_customer_data);
}

/// A progress event as the integration API receives it (`POST
/// /v1/progress_events`, and each item of a batch).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProgressEvent {
    integration_id: String,
    #[serde(default)]
    achievement_id: Option<u64>,
    #[serde(default)]
    achievement_name: Option<String>,
    delta: Num,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    timestamp: Option<Time>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ProgressRollback)]
struct RollbackBody {
    integration_id: String,
    #[serde(default)]
    achievement_id: Option<u64>,
    #[serde(default)]
    achievement_name: Option<String>,
    event_id: String,
}

/// Finds the achievement an event addresses, within the key's application.
fn resolve(
    state: &AppState,
    app: ApplicationId,
    id: Option<u64>,
    name: Option<&str>,
) -> Result<Arc<AchievementEntry>, ApiError> {
    let catalog = &state.engine.catalog;
    let by_id = match id {
        Some(id) => match catalog.achievement_for(app, AchievementId(id)) {
            Ok(e) => Some(e),
            Err(NotVisible::OtherApplication) => {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::FORBIDDEN,
                    "this key may not access that achievement",
                    Some(super::error::Source::Pointer("/achievementId".into())),
                ))
            }
            Err(NotVisible::Missing) => return Err(not_found("/achievementId")),
        },
        None => None,
    };
    let by_name = match name {
        Some(n) => Some(
            catalog
                .achievement_by_name(app, n)
                .ok_or_else(|| not_found("/achievementName"))?,
        ),
        None => None,
    };
    match (by_id, by_name) {
        (Some(a), Some(b)) if a.achievement.id != b.achievement.id => Err(ApiError::pointer(
            "/achievementName",
            "achievementId and achievementName name different achievements",
        )),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(ApiError::pointer(
            "/achievementId",
            "either achievementId or achievementName is required",
        )),
    }
}

/// Decodes the body of `POST /v1/progress_events` into the handler's request
/// type, with the handler's errors (used by the bare baseline server).
pub fn decode_event(bytes: &[u8]) -> Result<ProgressEvent, ApiError> {
    super::json::decode(bytes)
}

/// Decodes the body of `POST /v1/progress_events/batch` into the handler's
/// request type and checks its size, with the handler's errors (used by the
/// bare baseline server).
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<ProgressEvent>, ApiError> {
    let batch: Batch = super::json::decode(bytes)?;
    check_batch_size(&batch)?;
    Ok(batch.events)
}

fn check_batch_size(batch: &Batch) -> Result<(), ApiError> {
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::pointer(
            "/events",
            format!("a batch holds at most {MAX_BATCH} events"),
        ));
    }
    Ok(())
}

fn not_found(pointer: &str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "achievement not found in this application",
        Some(super::error::Source::Pointer(pointer.into())),
    )
}

fn customer(raw: &str) -> Result<CustomerId, ApiError> {
    CustomerId::parse(raw, "/integrationId").map_err(|e| ApiError::pointer(e.pointer, e.message))
}

fn event_id(raw: Option<&str>) -> Result<Option<EventId>, ApiError> {
    raw.map(|r| EventId::parse(r, "/eventId").map_err(|e| ApiError::pointer(e.pointer, e.message)))
        .transpose()
}

fn to_input(
    state: &AppState,
    app: ApplicationId,
    ev: ProgressEvent,
) -> Result<EventInput, ApiError> {
    check_amount("/delta", ev.delta.0).map_err(|e| ApiError::pointer(e.pointer, e.message))?;
    let customer = customer(&ev.integration_id)?;
    let event_id = event_id(ev.event_id.as_deref())?;
    let entry = resolve(
        state,
        app,
        ev.achievement_id,
        ev.achievement_name.as_deref(),
    )?;
    Ok(EventInput {
        customer,
        entry,
        increase: Increase {
            delta: ev.delta.0,
            at: ev.timestamp.map(|t| t.0),
            event_id,
        },
    })
}

/// Counts an event's result in the metrics (errors other than a rejection
/// of the event itself, such as 429 or 503, are not events handled).
fn count(state: &AppState, kind: EventKind, result: &Result<EventResult, EngineError>) {
    match result {
        Ok(r) => state.metrics.event(kind, r),
        Err(EngineError::Invalid(_)) => state.metrics.invalid_event(kind),
        Err(_) => {}
    }
}

#[utoipa::path(post, path = "/v1/progress_events", tag = "integration", security(("ApiKey" = [])), request_body = ProgressEvent, responses((status = 200, description = "Applied, a duplicate, or rejected with a reason", body = crate::http::dto::EventResultDto), (status = 429, description = "Too many events in flight; retry after Retry-After", body = crate::http::error::ErrorBody)))]
async fn post_event(
    Integration(app): Integration,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ev: ProgressEvent = parse_body(&req, body, BODY_LIMIT).await?;
    let input = to_input(&state, app, ev)?;
    let entry = input.entry.clone();
    let result = state.engine.increase(input).await;
    count(&state, EventKind::Increase, &result);
    let result = result?;
    Ok(HttpResponse::Ok().json(EventResultDto::new(&result, &entry)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProgressEventBatch)]
struct Batch {
    events: Vec<ProgressEvent>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BatchResult)]
struct BatchAnswer {
    applied: usize,
    duplicates: usize,
    rejected: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<Vec<BatchItem>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum BatchItem {
    Result(EventResultDto),
    /// An event that can never apply in the state it met (overflow, too
    /// many iterations): rejected, with the error that says why.
    Error {
        #[schema(value_type = crate::http::openapi::enums::RejectedName)]
        outcome: &'static str,
        error: BatchError,
    },
}

#[derive(Serialize, utoipa::ToSchema)]
struct BatchError {
    message: String,
    source: super::error::Source,
}

#[utoipa::path(post, path = "/v1/progress_events/batch", tag = "integration", security(("ApiKey" = [])), params(("results" = Option<String>, Query, description = "`none`: counts only; `all` (default): one result per event, in order")), request_body = Batch, responses((status = 200, description = "Counts, and a result per event", body = BatchAnswer), (status = 429, description = "Too many events in flight; retry after Retry-After", body = crate::http::error::ErrorBody)))]
async fn post_batch(
    Integration(app): Integration,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let query = Query::from_request(&req)?;
    let with_results = match query.get("results") {
        None | Some("all") => true,
        Some("none") => false,
        Some(_) => {
            return Err(ApiError::parameter(
                "results",
                "results must be all or none",
            ))
        }
    };
    let batch: Batch = parse_body(&req, body, BATCH_BODY_LIMIT).await?;
    check_batch_size(&batch)?;
    let inputs = batch
        .events
        .into_iter()
        .enumerate()
        .map(|(i, ev)| to_input(&state, app, ev).map_err(|e| e.nested(&format!("/events/{i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let entries: Vec<_> = inputs.iter().map(|i| i.entry.clone()).collect();
    let results = state.engine.increase_batch(inputs).await?;
    let mut answer = BatchAnswer {
        applied: 0,
        duplicates: 0,
        rejected: 0,
        results: None,
    };
    let mut items = Vec::with_capacity(if with_results { results.len() } else { 0 });
    for (i, (result, entry)) in results.into_iter().zip(&entries).enumerate() {
        count(&state, EventKind::Increase, &result);
        match result {
            Ok(r) => {
                match r.outcome {
                    Outcome::Applied => answer.applied += 1,
                    Outcome::Duplicate => answer.duplicates += 1,
                    Outcome::Rejected => answer.rejected += 1,
                }
                if with_results {
                    items.push(BatchItem::Result(EventResultDto::new(&r, entry)));
                }
            }
            Err(EngineError::Invalid(errors)) => {
                answer.rejected += 1;
                if with_results {
                    let first = errors.first();
                    items.push(BatchItem::Error {
                        outcome: Outcome::Rejected.as_str(),
                        error: BatchError {
                            message: first.map(|e| e.message.clone()).unwrap_or_default(),
                            source: super::error::Source::Pointer(format!(
                                "/events/{i}{}",
                                first.map(|e| e.pointer.as_str()).unwrap_or("")
                            )),
                        },
                    });
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
    if with_results {
        answer.results = Some(items);
    }
    Ok(HttpResponse::Ok().json(answer))
}

#[utoipa::path(post, path = "/v1/progress_rollbacks", tag = "integration", security(("ApiKey" = [])), request_body = RollbackBody, responses((status = 200, description = "Applied, a duplicate, or rejected with a reason", body = crate::http::dto::EventResultDto)))]
async fn post_rollback(
    Integration(app): Integration,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let b: RollbackBody = parse_body(&req, body, BODY_LIMIT).await?;
    let customer = customer(&b.integration_id)?;
    let event_id = event_id(Some(&b.event_id))?
        .ok_or_else(|| ApiError::pointer("/eventId", "eventId is required"))?;
    let entry = resolve(&state, app, b.achievement_id, b.achievement_name.as_deref())?;
    let result = state
        .engine
        .rollback(customer, entry.clone(), event_id)
        .await;
    count(&state, EventKind::Rollback, &result);
    let result = result?;
    Ok(HttpResponse::Ok().json(EventResultDto::new(&result, &entry)))
}

fn path_customer(req: &HttpRequest) -> Result<CustomerId, ApiError> {
    let raw = super::json::path_text(req, "integrationId")?;
    CustomerId::parse(&raw, "integrationId")
        .map_err(|e| ApiError::parameter("integrationId", e.message))
}

/// Talon.One's `deleteCustomerData`: the customer's progress, history and
/// remembered event ids in the key's application are erased, durably. An
/// unknown customer is erased too (204): erasure is idempotent.
#[utoipa::path(delete, path = "/v1/customer_data/{integrationId}", tag = "integration", security(("ApiKey" = [])), params(("integrationId" = String, Path, description = "The customer's integration id")), responses((status = 204, description = "The customer's progress, history and remembered event ids in this application are gone")))]
async fn delete_customer_data(
    Integration(app): Integration,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let customer = path_customer(&req)?;
    let erased = state.engine.erase_customer(app, customer).await?;
    tracing::info!(application = %app, pairs = erased, "customer data erased");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/v1/customer_profiles/{integrationId}/achievements", tag = "integration", security(("ApiKey" = [])), params(("integrationId" = String, Path, description = "The customer's integration id"), ("campaignIds" = Option<String>, Query, description = "Comma-separated campaign ids"), ("achievementIds" = Option<String>, Query, description = "Comma-separated achievement ids"), ("achievementStatus" = Option<String>, Query, description = "`active` (default) or `scheduled`"), ("currentProgressStatus" = Option<String>, Query, description = "`inprogress`, `completed` or `not_started`"), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Items per page (default 1000)"), ("skip" = Option<u32>, Query, description = "Items to skip (default 0)")), responses((status = 200, description = "The application's achievements with the customer's current progress", body = crate::http::dto::Total<crate::http::dto::StatusEntryDto>)))]
async fn customer_achievements(
    Integration(app): Integration,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let customer = path_customer(&req)?;
    let query = Query::from_request(&req)?;
    let page = query.page(1000, 1000)?;
    let campaigns = query.id_list("campaignIds")?;
    let achievements = query.id_list("achievementIds")?;
    let wanted_status = match query.get("achievementStatus") {
        None | Some("active") => DefinitionStatus::InProgress,
        Some("scheduled") => DefinitionStatus::NotStarted,
        Some(_) => {
            return Err(ApiError::parameter(
                "achievementStatus",
                "achievementStatus must be active or scheduled",
            ))
        }
    };
    let progress_filter = match query.get("currentProgressStatus") {
        None => None,
        Some(s @ ("inprogress" | "completed" | "not_started")) => ProgressStatus::parse(s),
        Some(_) => {
            return Err(ApiError::parameter(
                "currentProgressStatus",
                "currentProgressStatus must be inprogress, completed or not_started",
            ))
        }
    };
    let now = state.engine.now();
    let entries: Vec<_> = state
        .engine
        .catalog
        .achievements_of_app(app)
        .into_iter()
        .filter(|e| {
            campaigns
                .as_ref()
                .is_none_or(|c| c.contains(&e.achievement.campaign_id.0))
        })
        .filter(|e| {
            achievements
                .as_ref()
                .is_none_or(|a| a.contains(&e.achievement.id.0))
        })
        .filter(|e| e.achievement.rules.definition_status(e.tz, now) == wanted_status)
        .collect();
    let progress = state
        .engine
        .customer_progress(app, &customer, &entries)
        .await?;
    let rows: Vec<StatusEntryDto> = entries
        .iter()
        .zip(&progress)
        .filter(|(_, its)| {
            let status = its.first().map_or(ProgressStatus::NotStarted, |i| i.status);
            progress_filter.is_none_or(|f| f == status)
        })
        .map(|(e, its)| StatusEntryDto {
            definition: e.as_ref().into(),
            status: if wanted_status == DefinitionStatus::NotStarted {
                "scheduled"
            } else {
                "active"
            },
            current_progress: its.first().map(ProgressDto::from),
        })
        .collect();
    let total = rows.len();
    let (data, _) = page.cut(rows);
    Ok(HttpResponse::Ok().json(Total {
        total_result_size: total,
        data,
    }))
}

/// A customer's iterations of one achievement. Also open to the management
/// key (the web console looks customers up with it), which reads any
/// application's achievement.
#[utoipa::path(get, path = "/v1/customer_profiles/{integrationId}/achievements/{achievementId}", tag = "integration", security(("ApiKey" = []), ("ManagementKey" = [])), params(("integrationId" = String, Path, description = "The customer's integration id"), ("achievementId" = u64, Path, description = "The achievement's id"), ("progressStatus" = Option<String>, Query, description = "`inprogress`, `completed` or `expired`"), ("startDate" = Option<String>, Query, format = DateTime, description = "Iterations that started at or after this"), ("endDate" = Option<String>, Query, format = DateTime, description = "Iterations that started before this"), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Items per page (default 1000)"), ("skip" = Option<u32>, Query, description = "Items to skip (default 0)")), responses((status = 200, description = "The customer's iterations, newest first", body = crate::http::dto::Total<crate::http::dto::ProgressDto>)))]
async fn customer_history(
    reader: Reader,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let customer = path_customer(&req)?;
    let id = AchievementId(super::json::path_id(
        req.match_info().get("achievementId").unwrap_or(""),
        "achievementId",
    )?);
    let app = match reader {
        Reader::Integration(own) => own,
        Reader::Management => {
            let owner = state
                .engine
                .catalog
                .read()
                .achievements
                .get(&id)
                .map(|e| e.application_id);
            owner.ok_or_else(|| EngineError::not_found("achievement", "achievementId"))?
        }
    };
    // An integration key of another application gets the 403 it always got.
    let entry = match state.engine.catalog.achievement_for(app, id) {
        Ok(e) => e,
        Err(NotVisible::OtherApplication) => {
            return Err(ApiError::forbidden("achievement", "achievementId"))
        }
        Err(NotVisible::Missing) => {
            return Err(EngineError::not_found("achievement", "achievementId").into())
        }
    };
    let query = Query::from_request(&req)?;
    let page = query.page(1000, 1000)?;
    let status = match query.get("progressStatus") {
        None => None,
        Some(s @ ("inprogress" | "completed" | "expired")) => ProgressStatus::parse(s),
        Some(_) => {
            return Err(ApiError::parameter(
                "progressStatus",
                "progressStatus must be inprogress, completed or expired",
            ))
        }
    };
    let (from, to) = (query.time("startDate")?, query.time("endDate")?);
    let mut progress = state
        .engine
        .customer_progress(app, &customer, std::slice::from_ref(&entry))
        .await?;
    let iterations = progress.pop().unwrap_or_default();
    let rows: Vec<ProgressDto> = iterations
        .iter()
        .filter(|i| status.is_none_or(|s| s == i.status))
        .filter(|i| from.is_none_or(|f| i.start >= f))
        .filter(|i| to.is_none_or(|t| i.start <= t))
        .map(ProgressDto::from)
        .collect();
    let total = rows.len();
    let (data, _) = page.cut(rows);
    Ok(HttpResponse::Ok().json(Total {
        total_result_size: total,
        data,
    }))
}
