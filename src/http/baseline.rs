//! The bare baseline for the HTTP benchmarks: an actix-web app that serves
//! `POST /v1/progress_events` and `POST /v1/progress_events/batch` the way the
//! engine's handlers read them (body size limits, the same strict JSON
//! decoding into the same request types, the `Authorization: ApiKey-v1 …`
//! header must be present) and answers a fixed result without any engine:
//! `{"outcome":"applied","effects":[]}` per event, counts for a batch.
//!
//! The engine's single-event throughput is compared against this in the same
//! run (`benches/http.rs`, `scripts/load.sh … baseline`); the example
//! `baseline` is a thin `main` around [`start`].

use std::net::SocketAddr;

use actix_web::http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use actix_web::{web, App, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::integration::{decode_batch, decode_event};
use super::json::{read_body, Query, BATCH_BODY_LIMIT, BODY_LIMIT};

/// The fixed answer to a single event.
const APPLIED: &str = r#"{"outcome":"applied","effects":[]}"#;

/// Registers the baseline's two routes (and a `/readyz` that is always ready).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/progress_events", web::post().to(post_event))
        .route("/v1/progress_events/batch", web::post().to(post_batch))
        .route(
            "/readyz",
            web::get().to(|| async { json(r#"{"status":"ready"}"#.to_string()) }),
        );
}

/// Binds the baseline on `listen` with `workers` HTTP workers; the server
/// still has to be awaited (or spawned) inside an actix system.
pub fn start(
    listen: SocketAddr,
    workers: usize,
) -> std::io::Result<(SocketAddr, actix_web::dev::Server)> {
    let server = actix_web::HttpServer::new(|| {
        App::new()
            .configure(configure)
            .default_service(web::to(super::not_found))
    })
    .workers(workers)
    .disable_signals()
    .bind(listen)?;
    let addr = server.addrs()[0];
    Ok((addr, server.run()))
}

/// An integration key must be present (its value is not checked).
fn authorized(req: &HttpRequest) -> Result<(), ApiError> {
    let present = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("ApiKey-v1 "))
        .is_some_and(|k| !k.trim().is_empty());
    if present {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

fn json(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(body)
}

async fn post_event(req: HttpRequest, body: web::Payload) -> Result<HttpResponse, ApiError> {
    authorized(&req)?;
    let bytes = read_body(body, BODY_LIMIT).await?;
    let _event = decode_event(&bytes)?;
    Ok(json(APPLIED.to_string()))
}

async fn post_batch(req: HttpRequest, body: web::Payload) -> Result<HttpResponse, ApiError> {
    authorized(&req)?;
    let with_results = match Query::from_request(&req)?.get("results") {
        None | Some("all") => true,
        Some("none") => false,
        Some(_) => {
            return Err(ApiError::parameter(
                "results",
                "results must be all or none",
            ))
        }
    };
    let bytes = read_body(body, BATCH_BODY_LIMIT).await?;
    let events = decode_batch(&bytes)?;
    let n = events.len();
    let mut out = format!(r#"{{"applied":{n},"duplicates":0,"rejected":0"#);
    if with_results {
        out.reserve(n * (APPLIED.len() + 1) + 12);
        out.push_str(r#","results":["#);
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            out.push_str(APPLIED);
        }
        out.push(']');
    }
    out.push('}');
    Ok(json(out))
}
