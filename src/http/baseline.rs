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
//!
//! With a log file ([`start_durable`]) the baseline also makes each request
//! durable before answering it: the body is appended to the file and the
//! answer waits for an `fdatasync` that covers it, one writer thread syncing
//! whatever arrived meanwhile as one group. That is the least a server that
//! answers only what is on disk pays on this machine, with nothing of the
//! engine behind it (`scripts/load.sh … baseline-durable`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;

use tokio::sync::oneshot;

use actix_web::http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use actix_web::{web, App, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::integration::{decode_batch, decode_event};
use super::json::{read_body, Query, BATCH_BODY_LIMIT, BODY_LIMIT};

/// The fixed answer to a single event.
const APPLIED: &str = r#"{"outcome":"applied","effects":[]}"#;

/// Registers the baseline's two routes (and a `/readyz` that is always ready).
/// Its handlers take the log (`Option<GroupCommit>`) from the app's data,
/// which `serve` provides.
fn configure(cfg: &mut web::ServiceConfig) {
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
    serve(listen, workers, None)
}

/// The baseline that answers each request only once its body is durable in
/// `log` (appended, then covered by an `fdatasync`).
pub fn start_durable(
    listen: SocketAddr,
    workers: usize,
    log: &Path,
) -> std::io::Result<(SocketAddr, actix_web::dev::Server)> {
    serve(listen, workers, Some(GroupCommit::open(log)?))
}

fn serve(
    listen: SocketAddr,
    workers: usize,
    log: Option<GroupCommit>,
) -> std::io::Result<(SocketAddr, actix_web::dev::Server)> {
    let log = web::Data::new(log);
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(log.clone())
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

/// One file, appended to by one thread: each request's bytes are answered
/// once an `fdatasync` after their write has returned. Requests that arrive
/// while a sync runs go to the file together and share the next one.
pub struct GroupCommit {
    requests: mpsc::Sender<(Vec<u8>, oneshot::Sender<io::Result<()>>)>,
}

impl GroupCommit {
    /// Opens (or creates) `path` for appending and starts its writer.
    pub fn open(path: &Path) -> io::Result<GroupCommit> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (requests, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("baseline-log".into())
            .spawn(move || write_groups(file, queue))?;
        Ok(GroupCommit { requests })
    }

    /// Appends `bytes`; returns once they are on disk.
    pub async fn append(&self, bytes: Vec<u8>) -> io::Result<()> {
        let (done, durable) = oneshot::channel();
        let gone = || io::Error::other("the log's writer has stopped");
        self.requests.send((bytes, done)).map_err(|_| gone())?;
        durable.await.map_err(|_| gone())?
    }
}

fn write_groups(mut file: File, queue: mpsc::Receiver<(Vec<u8>, oneshot::Sender<io::Result<()>>)>) {
    let mut buffer = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter());
        buffer.clear();
        for (bytes, _) in &group {
            buffer.extend_from_slice(bytes);
        }
        let written = file.write_all(&buffer).and_then(|()| file.sync_data());
        for (_, done) in group {
            let answer = match &written {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = done.send(answer);
        }
    }
}

/// Makes `bytes` durable first when the baseline has a log.
async fn durable(log: &web::Data<Option<GroupCommit>>, bytes: &[u8]) -> Result<(), ApiError> {
    if let Some(log) = log.as_ref() {
        log.append(bytes.to_vec()).await.map_err(|e| {
            tracing::error!(error = %e, "the baseline's log failed");
            ApiError::internal()
        })?;
    }
    Ok(())
}

async fn post_event(
    req: HttpRequest,
    body: web::Payload,
    log: web::Data<Option<GroupCommit>>,
) -> Result<HttpResponse, ApiError> {
    authorized(&req)?;
    let bytes = read_body(body, BODY_LIMIT).await?;
    let _event = decode_event(&bytes)?;
    durable(&log, &bytes).await?;
    Ok(json(APPLIED.to_string()))
}

async fn post_batch(
    req: HttpRequest,
    body: web::Payload,
    log: web::Data<Option<GroupCommit>>,
) -> Result<HttpResponse, ApiError> {
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
    durable(&log, &bytes).await?;
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

#[cfg(test)]
mod tests {
    use super::GroupCommit;

    #[actix_rt::test]
    async fn appends_are_in_the_file_when_answered() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("baseline.log");
        let log = GroupCommit::open(&path).expect("log opens");
        let appends = (0..50u8).map(|i| {
            let (log, path) = (&log, &path);
            async move {
                log.append(vec![b'a' + i % 26; 3]).await.expect("durable");
                // Answered: the bytes are in the file already.
                let file = std::fs::read(path).expect("log readable");
                assert!(file.windows(3).any(|w| w == [b'a' + i % 26; 3]));
            }
        });
        futures_util::future::join_all(appends).await;
        assert_eq!(std::fs::read(&path).expect("log readable").len(), 150);
    }
}
