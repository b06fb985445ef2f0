//! The actix-web front: routes, request/response shapes and errors.
//!
//! Thin: handlers validate input into domain types, call the engine and render
//! its answer. No business rule lives here.

use actix_web::{web, HttpResponse};

/// Registers every route on an actix-web app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
