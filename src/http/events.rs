//! Achievement events over HTTP: a page of the feed by cursor, or a live
//! stream of it (Server-Sent Events).
//!
//! Owns: `GET /v1/applications/{applicationId}/achievement_events` (JSON or
//! `text/event-stream` by `Accept`), its parameters and the stream's
//! backpressure: a stream reads the stored feed at its reader's pace
//! through a small buffer, so ingestion never waits for it and it holds
//! little memory; a reader that takes nothing for `STALL` while the buffer
//! is full is cut off (the connection ends) and resumes with
//! `Last-Event-ID`.

use super::routes::Routes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use super::auth::Reader;
use super::error::ApiError;
use super::json::{path_id, Query};
use super::AppState;
use crate::domain::{ApplicationId, EntryType};
use crate::feed::event::AchievementEvent;
use crate::feed::{Cursor, Feed, ReadError, Types};

/// A comment at least this often keeps an idle stream open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Chunks a stream may have waiting for its reader.
const STREAM_BUFFER: usize = 16;
/// How long a full buffer may wait for its reader before the stream is cut.
pub const STALL: Duration = Duration::from_secs(10);
/// Entries per chunk of a stream.
const STREAM_PAGE: usize = 100;

pub fn configure(r: &mut Routes) {
    r.get(
        "/v1/applications/{applicationId}/achievement_events",
        achievement_events,
    );
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AchievementEventPage)]
struct PageDto<'a> {
    data: Vec<AchievementEvent<'a>>,
    next: String,
    has_more: bool,
}

fn gone(e: ReadError, parameter: &str) -> ApiError {
    ApiError::gone(e.to_string(), parameter)
}

fn cursor(raw: &str, parameter: &str) -> Result<Cursor, ApiError> {
    Cursor::parse(raw.trim()).ok_or_else(|| {
        ApiError::parameter(
            parameter,
            format!(
                "{parameter} must be a cursor given by this feed (a `next` or an event's id line)"
            ),
        )
    })
}

fn types(q: &Query) -> Result<Types, ApiError> {
    let mut types = Types::all();
    for name in q.get("type").unwrap_or("").split(',').map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let t = EntryType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EntryType::ALL.iter().map(|t| t.as_str()).collect();
            ApiError::parameter("type", format!("type must be among {}", known.join(", ")))
        })?;
        types = types.with(t);
    }
    Ok(types)
}

fn wants_stream(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

#[utoipa::path(get, path = "/v1/applications/{applicationId}/achievement_events", tag = "events", security(("ManagementKey" = []), ("ApiKey" = [])), params(("applicationId" = u64, Path, description = "The application's id"), ("after" = Option<String>, Query, description = "A cursor (`next`, or an entry's SSE id); absent: the oldest kept"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries per page (default 100)"), ("type" = Option<String>, Query, description = "Comma-separated entry types"), ("Last-Event-ID" = Option<String>, Header, description = "SSE: resume after this cursor")), responses((status = 200, description = "A page of entries, or with `Accept: text/event-stream` a live stream of them", content((crate::http::events::PageDto = "application/json"), (String = "text/event-stream"))), (status = 410, description = "The cursor is older than the feed keeps", body = crate::http::error::ErrorBody)))]
async fn achievement_events(
    reader: Reader,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let app = ApplicationId(path_id(
        req.match_info().get("applicationId").unwrap_or(""),
        "applicationId",
    )?);
    reader.check(app)?;
    state.engine.catalog.application(app)?;
    let q = Query::from_request(&req)?;
    let types = types(&q)?;
    if wants_stream(&req) {
        let last_event_id = req
            .headers()
            .get("Last-Event-ID")
            .map(|v| v.to_str().unwrap_or(""));
        let after = match (last_event_id, q.get("after")) {
            (Some(id), _) => Some(cursor(id, "Last-Event-ID")?),
            (None, Some(a)) => Some(cursor(a, "after")?),
            (None, None) => None,
        };
        // A cursor too old is refused before the stream starts.
        state.feed.read(app, after, 1, types).map_err(|e| {
            gone(
                e,
                if last_event_id.is_some() {
                    "Last-Event-ID"
                } else {
                    "after"
                },
            )
        })?;
        return Ok(stream(state.feed.clone(), app, after, types));
    }
    let after = q.get("after").map(|a| cursor(a, "after")).transpose()?;
    let limit = q.number("limit", 100, 1, 1000)? as usize;
    let page = state
        .feed
        .read(app, after, limit, types)
        .map_err(|e| gone(e, "after"))?;
    let body = PageDto {
        data: page
            .entries
            .iter()
            .map(|s| AchievementEvent::from(s.as_ref()))
            .collect(),
        next: page.next.to_string(),
        has_more: page.has_more,
    };
    Ok(HttpResponse::Ok().json(body))
}

/// One Server-Sent Event per entry.
fn sse_chunk(entries: &[Arc<crate::feed::Stored>]) -> Bytes {
    let mut out = Vec::with_capacity(entries.len() * 512);
    for s in entries {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(Cursor(s.seq).to_string().as_bytes());
        out.extend_from_slice(b"\nevent: ");
        out.extend_from_slice(s.entry.transition.kind.as_str().as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&s.to_json());
        out.extend_from_slice(b"\n\n");
    }
    Bytes::from(out)
}

fn stream(
    feed: Arc<Feed>,
    app: ApplicationId,
    after: Option<Cursor>,
    types: Types,
) -> HttpResponse {
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    feed.stats.streams_open.fetch_add(1, Ordering::Relaxed);
    actix_web::rt::spawn(feed_stream(feed, app, after, types, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, actix_web::Error>(chunk), rx))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// Feeds one stream until its reader leaves, stops taking what it is sent
/// (cut off after `STALL`), or its cursor leaves the retention.
async fn feed_stream(
    feed: Arc<Feed>,
    app: ApplicationId,
    mut after: Option<Cursor>,
    types: Types,
    tx: mpsc::Sender<Bytes>,
) {
    let mut head = feed.watch();
    // Tells the reader the stream is open (and flushes the headers).
    let mut pending = Some(Bytes::from_static(b": open\n\n"));
    loop {
        if let Some(chunk) = pending.take() {
            match tokio::time::timeout(STALL, tx.send(chunk)).await {
                Ok(Ok(())) => {}
                // The reader left.
                Ok(Err(_)) => break,
                Err(_) => {
                    feed.stats.streams_cut.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        application = app.0,
                        "an event stream reader took nothing for {STALL:?} and was cut off; it can resume with Last-Event-ID"
                    );
                    break;
                }
            }
        }
        let page = match feed.read(app, after, STREAM_PAGE, types) {
            Ok(page) => page,
            Err(e) => {
                let body = serde_json::json!({"message": e.to_string(), "StatusCode": 410});
                let _ = tx.try_send(Bytes::from(format!("event: error\ndata: {body}\n\n")));
                break;
            }
        };
        after = Some(page.next);
        if !page.entries.is_empty() {
            pending = Some(sse_chunk(&page.entries));
            continue;
        }
        // Caught up: wait for more, or keep the connection alive.
        head.mark_unchanged();
        if feed.head() > page.next.0 {
            continue;
        }
        tokio::select! {
            changed = head.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep(KEEP_ALIVE) => {
                pending = Some(Bytes::from_static(b": keep-alive\n\n"));
            }
            _ = tx.closed() => break,
        }
    }
    feed.stats.streams_open.fetch_sub(1, Ordering::Relaxed);
}
