//! The actix-web front: routes, request/response shapes, errors and auth.
//!
//! Thin: handlers decode and validate input into domain types, make one call
//! into the engine and render its answer. No business rule lives here.

pub mod admin;
pub mod auth;
#[cfg(any(test, feature = "testing"))]
pub mod baseline;
pub mod console;
pub mod dto;
pub mod error;
pub mod events;
pub mod export;
pub mod integration;
pub mod json;
pub mod management;
pub mod metrics;
pub mod openapi;
pub mod preview;
pub mod routes;
pub mod server;
pub mod webhooks;

use actix_web::{web, HttpRequest, HttpResponse};

use std::sync::{Arc, OnceLock};

use crate::engine::Engine;
use crate::feed::Feed;
use crate::persist::store::Store;
use error::{ApiError, Source};
use routes::Routes;

/// What every handler can reach.
pub struct AppState {
    pub engine: Engine,
    pub management_key_hash: [u8; 32],
    /// Set once the restore finished.
    pub store: Arc<OnceLock<Arc<Store>>>,
    pub metrics: Arc<metrics::Metrics>,
    /// The achievement event feed.
    pub feed: Arc<Feed>,
    /// Webhooks: registry, deliveries and their stats.
    pub webhooks: Arc<crate::feed::webhooks::Webhooks>,
    /// The cluster node, in cluster mode.
    pub cluster: Option<Arc<crate::cluster::Service>>,
}

/// Registers every route on an actix-web app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(&mut Routes::new(cfg));
}

/// Registers every route and lists them (`Routes::listed`).
pub fn register(r: &mut Routes) {
    // Ingestion first: actix tries routes in this order, and each route
    // with a path parameter before a match costs a regex search (the
    // management routes before it took about 1.7 % of the server's time
    // under single events, in `regex_automata`). No two groups share a
    // path, so the order changes no answer.
    integration::configure(r);
    r.get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics::metrics)
        .get("/openapi.json", openapi::serve);
    admin::configure(r);
    management::configure(r);
    events::configure(r);
    webhooks::configure(r);
    preview::configure(r);
    console::configure(r);
}

/// The answer of `/healthz` and `/readyz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok`, `ready` or `restoring`.
    status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process serves", body = Status)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Restored and ready", body = Status), (status = 503, description = "Still restoring", body = Status)))]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.engine.is_ready() {
        HttpResponse::Ok().json(Status { status: "ready" })
    } else {
        HttpResponse::ServiceUnavailable().json(Status {
            status: "restoring",
        })
    }
}

/// Unknown paths and methods get the same error shape as everything else.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        format!("no route for {} {}", req.method(), req.path()),
        Some(Source::Parameter("path".into())),
    )
    .error_response()
}
