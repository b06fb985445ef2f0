//! The request middleware: a request id (taken from `x-request-id` or made
//! here, and returned in the same header), a tracing span and one log line
//! per request, and the latency histogram, labelled by route pattern.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
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

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's request id when it is a sensible one (1–128 characters of
/// letters, digits and `-_.:`), so that a trace spans services; else a new
/// random 64-bit id in hex.
fn request_id(req: &ServiceRequest) -> HeaderValue {
    let given = req.headers().get(&REQUEST_ID).filter(|v| {
        let b = v.as_bytes();
        (1..=128).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
    });
    match given {
        Some(v) => v.clone(),
        None => HeaderValue::from_str(&format!("{:016x}", rand::random::<u64>()))
            .expect("hex digits are a valid header value"),
    }
}

/// Middleware: a request id, a tracing span per request (method, route
/// pattern, path, request id) that handlers' logs nest in, one log line at
/// the end (target `http`: status and latency), the `x-request-id` response
/// header, and the latency histogram. Routes are labelled by their
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
    let id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        path = %req.path(),
        request_id = %id.to_str().unwrap_or_default(),
    );
    let mut result = next.call(req).instrument(span.clone()).await;
    // Errors are answered as responses further in (handlers, extractors,
    // the header limit), so an `Err` here is actix's own and rare.
    let status = match &mut result {
        Ok(res) => {
            res.headers_mut().insert(REQUEST_ID, id);
            res.status()
        }
        Err(e) => e.as_response_error().status_code(),
    };
    let elapsed = started.elapsed();
    tracing::info!(
        target: "http",
        parent: &span,
        status = status.as_u16(),
        micros = elapsed.as_micros() as u64,
        "request"
    );
    if let Some(m) = metrics {
        m.request(&route, &method, status, elapsed.as_secs_f64());
    }
    result
}
