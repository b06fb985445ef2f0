//! The request middleware: a tracing span per request and the latency
//! histogram, labelled by route pattern.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument as _;

use crate::http::AppState;

/// Methods outside the usual set share one label value, so that made-up
/// methods cannot grow the number of series.
pub(super) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: a tracing span per request (method, route pattern, path,
/// status, latency) and the latency histogram. Routes are labelled by their
/// pattern (`/v1/customer_profiles/{integrationId}/achievements`), never by
/// the path, so ids do not create series; unknown paths are `unmatched`.
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().clone();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        path = %req.path(),
        status = tracing::field::Empty,
        micros = tracing::field::Empty,
    );
    let result = next.call(req).instrument(span.clone()).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    let elapsed = started.elapsed();
    span.record("status", status.as_u16());
    span.record("micros", elapsed.as_micros() as u64);
    if let Some(m) = metrics {
        m.request(&route, &method, status, elapsed.as_secs_f64());
    }
    result
}
