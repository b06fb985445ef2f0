//! Webhook routes (management key): create, list, delete, and the recent
//! delivery attempts of one webhook (API.md "Achievement events").
//!
//! Owns: the request and answer shapes. A webhook's secret appears in the
//! 201 answer to its creation only; lists never show it. Validation and
//! the address policy live in `feed::webhooks`; files are written on a
//! blocking thread, never on an HTTP worker.

use super::routes::Routes;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::Management;
use super::error::{ApiError, Source};
use super::json::{parse_body, path_id, Time, BODY_LIMIT};
use super::AppState;
use crate::domain::{ApplicationId, EntryType};
use crate::feed::webhooks::{Delivery, NewWebhook, Webhook, WebhookError, WebhookId};

pub fn configure(r: &mut Routes) {
    let hooks = "/v1/applications/{applicationId}/webhooks";
    let hook = "/v1/applications/{applicationId}/webhooks/{webhookId}";
    r.post(hooks, create_webhook)
        .get(hooks, list_webhooks)
        .delete(hook, delete_webhook)
        .get(&format!("{hook}/deliveries"), list_deliveries);
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewWebhook)]
struct NewWebhookBody {
    url: String,
    #[serde(default)]
    types: Option<Vec<String>>,
    #[serde(default)]
    secret: Option<String>,
}

fn types_of(hook: &Webhook) -> Vec<&'static str> {
    hook.types.iter().map(|t: &EntryType| t.as_str()).collect()
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CreatedWebhook)]
struct CreatedDto<'a> {
    id: u64,
    url: &'a str,
    #[schema(value_type = Vec<crate::http::openapi::enums::EventTypeName>)]
    types: Vec<&'static str>,
    /// Shown here only.
    secret: &'a str,
    created: Time,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Webhook)]
struct WebhookDto<'a> {
    id: u64,
    url: &'a str,
    #[schema(value_type = Vec<crate::http::openapi::enums::EventTypeName>)]
    types: Vec<&'static str>,
    created: Time,
    disabled: bool,
}

impl<'a> From<&'a Webhook> for WebhookDto<'a> {
    fn from(h: &'a Webhook) -> Self {
        WebhookDto {
            id: h.id.0,
            url: h.url.as_str(),
            types: types_of(h),
            created: Time(h.created),
            disabled: h.disabled,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookDelivery)]
struct DeliveryDto<'a> {
    /// `null` for a gap (entries skipped past the feed's retention).
    event_id: Option<&'a str>,
    attempt: u32,
    #[schema(value_type = crate::http::openapi::enums::DeliveryStatusName)]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    at: Time,
}

impl<'a> From<&'a Delivery> for DeliveryDto<'a> {
    fn from(d: &'a Delivery) -> Self {
        DeliveryDto {
            event_id: d.event_id.as_deref(),
            attempt: d.attempt,
            status: d.status.as_str(),
            response_status: d.response_status,
            error: d.error.as_deref(),
            at: Time(d.at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DataList)]
struct Data<T> {
    data: Vec<T>,
}

/// The application named in the path; 404 unless it exists.
fn application(state: &AppState, req: &HttpRequest) -> Result<ApplicationId, ApiError> {
    let app = ApplicationId(path_id(
        req.match_info().get("applicationId").unwrap_or(""),
        "applicationId",
    )?);
    state.engine.catalog.application(app)?;
    Ok(app)
}

fn webhook_id(req: &HttpRequest) -> Result<WebhookId, ApiError> {
    path_id(req.match_info().get("webhookId").unwrap_or(""), "webhookId").map(WebhookId)
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "webhook not found",
        Some(Source::Parameter("webhookId".into())),
    )
}

/// A file could not be written: logged, 500 to the client.
fn internal(e: WebhookError) -> ApiError {
    tracing::error!(error = %e, "webhook registry");
    ApiError::internal()
}

fn blocking_failed(e: actix_web::error::BlockingError) -> ApiError {
    tracing::error!(error = %e, "webhook registry task");
    ApiError::internal()
}

#[utoipa::path(post, path = "/v1/applications/{applicationId}/webhooks", tag = "webhooks", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id")), request_body = NewWebhookBody, responses((status = 201, description = "The webhook and its secret, shown only here", body = CreatedDto)))]
async fn create_webhook(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let app = application(&state, &req)?;
    let body: NewWebhookBody = parse_body(&req, body, BODY_LIMIT).await?;
    let new = NewWebhook::parse(&body.url, body.types.as_deref(), body.secret.as_deref())
        .map_err(|errors| ApiError::fields(&errors))?;
    state
        .webhooks
        .check_url(&new.url)
        .await
        .map_err(|why| ApiError::pointer("/url", why))?;
    let webhooks = state.webhooks.clone();
    let hook = web::block(move || webhooks.create(app, new))
        .await
        .map_err(blocking_failed)?
        .map_err(internal)?;
    Ok(HttpResponse::Created().json(CreatedDto {
        id: hook.id.0,
        url: hook.url.as_str(),
        types: types_of(&hook),
        secret: hook.secret.expose(),
        created: Time(hook.created),
    }))
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}/webhooks", tag = "webhooks", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id")), responses((status = 200, description = "The application's webhooks (without secrets)", body = Data<WebhookDto>)))]
async fn list_webhooks(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let app = application(&state, &req)?;
    let hooks = state.webhooks.list(app);
    Ok(HttpResponse::Ok().json(Data {
        data: hooks.iter().map(WebhookDto::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/applications/{applicationId}/webhooks/{webhookId}", tag = "webhooks", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("webhookId" = u64, Path, description = "The webhook's id")), responses((status = 204, description = "Deleted")))]
async fn delete_webhook(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let app = application(&state, &req)?;
    let id = webhook_id(&req)?;
    let webhooks = state.webhooks.clone();
    let deleted = web::block(move || webhooks.delete(app, id))
        .await
        .map_err(blocking_failed)?
        .map_err(internal)?;
    if !deleted {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}/webhooks/{webhookId}/deliveries", tag = "webhooks", security(("ManagementKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("webhookId" = u64, Path, description = "The webhook's id")), responses((status = 200, description = "Recent attempts, newest first", body = Data<DeliveryDto>)))]
async fn list_deliveries(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let app = application(&state, &req)?;
    let id = webhook_id(&req)?;
    // In a cluster the delivering node's record is read from the shared
    // store (blocking).
    let webhooks = state.webhooks.clone();
    let deliveries = web::block(move || webhooks.deliveries(app, id))
        .await
        .map_err(blocking_failed)?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(Data {
        data: deliveries.iter().map(DeliveryDto::from).collect(),
    }))
}
