//! The OpenAPI 3.1 document, served at `GET /openapi.json`: generated from
//! the handlers' `#[utoipa::path]` attributes and the request and response
//! types' `ToSchema` derives, so it changes with the code. A test holds it
//! against the routes actually registered (`routes::Routes`).
//!
//! Every operation also gets the error shape for `4XX` and `5XX` answers,
//! and the two key schemes (`Authorization: ManagementKey-v1 <key>`,
//! `Authorization: ApiKey-v1 <key>`).

pub mod enums;

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Content, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{admin, console, events, integration, management, metrics, preview, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "achievements-engine",
        description = "Customers' progress towards achievements, with Talon.One's Achievements API \
                       shapes. Management endpoints take `Authorization: ManagementKey-v1 <key>`; \
                       integration endpoints take `Authorization: ApiKey-v1 <key>`, a key of one \
                       application.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::healthz,
        super::readyz,
        metrics::scrape::metrics,
        serve,
        admin::take_snapshot,
        admin::list_snapshots,
        admin::cluster,
        management::create_application,
        management::list_applications,
        management::get_application,
        management::create_api_key,
        management::create_campaign,
        management::list_campaigns,
        management::get_campaign,
        management::update_campaign,
        management::create_achievement,
        management::list_achievements,
        management::get_achievement,
        management::update_achievement,
        management::delete_achievement,
        management::export_achievement,
        management::customer_progress,
        integration::post_event,
        integration::post_batch,
        integration::post_rollback,
        integration::customer_achievements,
        integration::customer_history,
        integration::delete_customer_data,
        events::achievement_events,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::delete_webhook,
        webhooks::list_deliveries,
        preview::period_preview,
        console::index,
        console::index_dir,
        console::asset,
    ),
    components(schemas(crate::http::error::ErrorBody)),
    modifiers(&Conventions),
    tags(
        (name = "management", description = "Applications, campaigns, achievements (management key)"),
        (name = "integration", description = "Progress events, rollbacks and customers' progress (an application's key)"),
        (name = "events", description = "The achievement event feed and its live stream"),
        (name = "webhooks", description = "Webhooks for achievement events (management key)"),
        (name = "operations", description = "Health, metrics, snapshots, the cluster, this document"),
    )
)]
struct ApiDoc;

/// Adds what every operation shares: the key schemes and the error shape.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let scheme = |description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                description,
            )))
        };
        components.add_security_scheme(
            "ManagementKey",
            scheme("`Authorization: ManagementKey-v1 <key>`"),
        );
        components.add_security_scheme(
            "ApiKey",
            scheme("`Authorization: ApiKey-v1 <key>`, a key of one application"),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorResponse",
                    )))),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let operations: [&mut Option<Operation>; 4] = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                let responses = &mut op.responses.responses;
                responses
                    .entry("4XX".into())
                    .or_insert_with(|| error("Bad input (400), a missing or wrong key (401), another application's key (403), an unknown id (404), a name taken (409), a cursor too old (410), a body too large (413), too many requests (429); `source` points at the field or parameter").into());
                responses
                    .entry("5XX".into())
                    .or_insert_with(|| error("Not ready (503, with Retry-After), or an internal error (500, details only in the log)").into());
            }
        }
    }
}

/// The document as JSON, built once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document is plain data and always serializes")
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}

#[cfg(test)]
mod tests;
