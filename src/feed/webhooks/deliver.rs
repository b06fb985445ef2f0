//! Webhook delivery: one thread with its own actix system (awc's client is
//! not `Send`) runs a loop per active webhook, fed by a channel for creates
//! and deletes, so HTTP workers never wait on a receiver.
//!
//! Owns: the delivery loop (the webhook's application and types, in feed
//! order, one entry at a time: at least once, in order), the attempt (a
//! signed POST with a 10 s limit through the address-guarded resolver, no
//! redirects followed), retries (exponential backoff, 1 s doubling to at
//! most 10 min, for up to `--webhook-retry-hours` from the first attempt,
//! then `gave_up` and the next entry), disabling on 410, the durable
//! position after each acknowledged or given-up entry, the records of recent
//! attempts (`Delivery`) and `WebhookStats`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_rt::task::JoinHandle;
use actix_web::http::header;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::address::{self, AddressRefused, GuardedResolver};
use super::{lock, Shared, Webhook, WebhookError, WebhookId};
use crate::feed::{Cursor, ReadError, Stored};

/// Attempts kept per webhook for `GET …/deliveries`.
pub const DELIVERIES_KEPT: usize = 100;
/// How often positions moved by idle reads (entries of other applications
/// or types passed over) are written.
const POSITIONS_FLUSH: Duration = Duration::from_secs(30);
/// How much of a receiver's answer is read (and dropped).
const ANSWER_LIMIT: usize = 64 * 1024;

/// How deliveries behave; `new` gives API.md's values.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Loopback and private targets may be contacted.
    pub allow_private: bool,
    /// How long an entry is retried, from its first attempt.
    pub retry_for: chrono::Duration,
    /// The wait after the first failed attempt; it doubles after each.
    pub first_retry: Duration,
    /// The longest wait between attempts.
    pub max_retry: Duration,
    /// How long a receiver has to connect and answer.
    pub timeout: Duration,
}

impl DeliveryConfig {
    /// API.md: 1 s doubling, at most 10 min apart, for `retry_hours`; 10 s
    /// to answer.
    pub fn new(retry_hours: u32, allow_private: bool) -> DeliveryConfig {
        DeliveryConfig {
            allow_private,
            retry_for: chrono::Duration::hours(i64::from(retry_hours)),
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(600),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What became of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The receiver answered 2xx.
    Delivered,
    /// It did not; the entry will be tried again.
    Failed,
    /// Retries are exhausted (or the entry left the feed's retention); the
    /// webhook moved on to the next entry.
    GaveUp,
    /// The receiver answered 410: the webhook is disabled.
    Disabled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::GaveUp,
        DeliveryStatus::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::GaveUp => "gave_up",
            DeliveryStatus::Disabled => "disabled",
        }
    }
}

/// One attempt (or one gap: entries skipped because the webhook fell behind
/// the feed's retention, with no `event_id` and attempt 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The entry's id (`Stored::id`, the `webhook-id` header).
    pub event_id: Option<String>,
    /// 1 for an entry's first attempt.
    pub attempt: u32,
    pub status: DeliveryStatus,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// Delivery counters and gauges, for metrics.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Attempts by `DeliveryStatus as usize`.
    by_status: [AtomicU64; 4],
    /// Webhooks waiting in backoff before their next attempt.
    retrying: AtomicU64,
    /// Per webhook delivering, when the feed stored the entry it is on.
    pending: Mutex<HashMap<WebhookId, DateTime<Utc>>>,
}

impl WebhookStats {
    /// Attempts recorded with `status` since the start.
    pub fn deliveries(&self, status: DeliveryStatus) -> u64 {
        self.by_status[status as usize].load(Ordering::Relaxed)
    }

    /// Webhooks currently waiting to retry (the retry queue's depth).
    pub fn retrying(&self) -> u64 {
        self.retrying.load(Ordering::Relaxed)
    }

    /// Seconds since the feed stored the oldest entry an active webhook has
    /// yet to deliver; 0 when every webhook is caught up.
    pub fn oldest_undelivered_secs(&self, now: DateTime<Utc>) -> f64 {
        lock(&self.pending)
            .values()
            .map(|written| (now - *written).num_milliseconds().max(0) as f64 / 1000.0)
            .fold(0.0, f64::max)
    }

    pub(super) fn count(&self, status: DeliveryStatus) {
        self.by_status[status as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn forget(&self, id: WebhookId) {
        lock(&self.pending).remove(&id);
    }

    fn delivering(&self, id: WebhookId, written: DateTime<Utc>) {
        lock(&self.pending).insert(id, written);
    }
}

/// Clears a webhook's pending entry when its loop ends (or is aborted).
struct PendingGuard<'a>(&'a WebhookStats, WebhookId);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}

/// Counts a webhook waiting in backoff for as long as it waits.
struct RetryingGuard<'a>(&'a WebhookStats);

impl<'a> RetryingGuard<'a> {
    fn new(stats: &'a WebhookStats) -> Self {
        stats.retrying.fetch_add(1, Ordering::Relaxed);
        RetryingGuard(stats)
    }
}

impl Drop for RetryingGuard<'_> {
    fn drop(&mut self) {
        self.0.retrying.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the registry tells the delivery thread.
#[derive(Debug)]
pub(super) enum Command {
    /// Deliver for this webhook (if active and not delivering already).
    Start(WebhookId),
    /// Stop delivering for it (deleted).
    Stop(WebhookId),
    /// This node delivers from now on (positions reloaded), or stops.
    Deliver(bool),
}

/// Starts the delivery thread; it ends when every command sender is gone.
pub(super) fn spawn(
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Result<(), WebhookError> {
    let tls = tls_config()?;
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || actix_rt::System::new().block_on(run(shared, commands, tls)))
        .map_err(|e| WebhookError::Start(e.to_string()))?;
    Ok(())
}

/// rustls on the ring provider with Mozilla's roots (webpki-roots).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, WebhookError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Start(format!("TLS setup: {e}")))?
        .with_root_certificates(actix_tls::connect::rustls_0_23::webpki_roots_cert_store())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn client(config: &DeliveryConfig, tls: Arc<rustls::ClientConfig>) -> awc::Client {
    let resolver = actix_tls::connect::Resolver::custom(GuardedResolver {
        allow_private: config.allow_private,
    });
    let connector = awc::Connector::new()
        .connector(actix_tls::connect::Connector::new(resolver).service())
        .rustls_0_23(tls)
        .timeout(config.timeout)
        // No `max_http_version`: it would rebuild (and drop) the TLS
        // connector; the config's ALPN already offers HTTP/1.1 only.
        .handshake_timeout(config.timeout);
    awc::Client::builder()
        .connector(connector)
        .timeout(config.timeout)
        // A redirect could lead anywhere (an IP literal skips the
        // resolver): a 3xx is an answer that is not 2xx, and is retried.
        .disable_redirects()
        .add_default_header((
            header::USER_AGENT,
            concat!("achievements-engine-webhooks/", env!("CARGO_PKG_VERSION")),
        ))
        .finish()
}

async fn run(
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    tls: Arc<rustls::ClientConfig>,
) {
    let client = client(&shared.config, tls);
    let mut running: HashMap<WebhookId, JoinHandle<()>> = HashMap::new();
    let start = |running: &mut HashMap<WebhookId, JoinHandle<()>>, id: WebhookId| {
        if running.contains_key(&id) || !shared.delivering.load(Ordering::Acquire) {
            return;
        }
        if let Some(hook) = shared.active(id) {
            let task = deliver_loop(shared.clone(), client.clone(), hook);
            running.insert(id, actix_rt::spawn(task));
        }
    };
    for id in shared.active_ids() {
        start(&mut running, id);
    }
    let flusher = actix_rt::spawn(flush_positions(shared.clone()));
    while let Some(command) = commands.recv().await {
        running.retain(|_, task| !task.is_finished());
        match command {
            Command::Start(id) => start(&mut running, id),
            Command::Stop(id) => {
                if let Some(task) = running.remove(&id) {
                    task.abort();
                }
            }
            Command::Deliver(true) => {
                let s = shared.clone();
                let reloaded = actix_rt::task::spawn_blocking(move || s.reload_positions()).await;
                if let Ok(Err(e)) = reloaded {
                    tracing::error!(error = %e, "cannot read the shared webhook positions; delivering from the last ones known here");
                }
                for id in shared.active_ids() {
                    start(&mut running, id);
                }
            }
            Command::Deliver(false) => {
                for (_, task) in running.drain() {
                    task.abort();
                }
            }
        }
    }
    for task in running.into_values() {
        task.abort();
    }
    flusher.abort();
    if shared.positions_dirty() {
        save_positions(&shared).await;
    }
}

/// Writes positions moved by idle reads now and then.
async fn flush_positions(shared: Arc<Shared>) {
    loop {
        actix_rt::time::sleep(POSITIONS_FLUSH).await;
        if shared.positions_dirty() {
            save_positions(&shared).await;
        }
    }
}

async fn save_positions(shared: &Arc<Shared>) {
    let s = shared.clone();
    match actix_rt::task::spawn_blocking(move || s.save_positions()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(
            error = %e,
            "could not persist webhook delivery positions; a restart may deliver some entries again"
        ),
        Err(e) => tracing::error!(error = %e, "writing webhook delivery positions panicked"),
    }
}

/// What delivering one entry ended with.
enum Outcome {
    /// Acknowledged or given up: go on with the next entry.
    Done,
    /// The receiver answered 410.
    Disabled,
}

/// Delivers a webhook's entries, in feed order, until it is disabled (or
/// the task is aborted because it was deleted).
async fn deliver_loop(shared: Arc<Shared>, client: awc::Client, hook: Webhook) {
    let id = hook.id;
    let _pending = PendingGuard(&shared.stats, id);
    let types = hook.filter();
    let Some(start) = shared.position(id) else {
        return;
    };
    let mut after = Some(Cursor(start));
    let mut head = shared.feed.watch();
    loop {
        // Anything stored after this read wakes the wait below.
        head.mark_unchanged();
        let page = match shared.feed.read(hook.application, after, 1, types) {
            Ok(page) => page,
            Err(ReadError::Gone) => {
                fell_behind(&shared, &hook, after);
                after = None;
                continue;
            }
        };
        let Some(entry) = page.entries.into_iter().next() else {
            shared.stats.forget(id);
            after = Some(page.next);
            shared.set_position(id, page.next.0);
            if head.changed().await.is_err() {
                return;
            }
            continue;
        };
        shared.stats.delivering(id, entry.written);
        match deliver_one(&shared, &client, &hook, &entry).await {
            Outcome::Done => {
                after = Some(Cursor(entry.seq));
                shared.set_position(id, entry.seq);
                save_positions(&shared).await;
            }
            Outcome::Disabled => {
                let s = shared.clone();
                if let Err(e) = actix_rt::task::spawn_blocking(move || s.disable(id)).await {
                    tracing::error!(error = %e, "disabling a webhook panicked");
                }
                tracing::warn!(
                    application = hook.application.0,
                    webhook = id.0,
                    "webhook disabled: its receiver answered 410 Gone"
                );
                return;
            }
        }
    }
}

/// The webhook's position is older than the feed keeps: what lay between is
/// lost to it. Recorded, and delivery goes on from the oldest entry kept.
fn fell_behind(shared: &Shared, hook: &Webhook, after: Option<Cursor>) {
    tracing::warn!(
        application = hook.application.0,
        webhook = hook.id.0,
        position = after.map_or(0, |c| c.0),
        "webhook fell behind the feed's retention; the entries in between were skipped"
    );
    shared.record(
        hook.id,
        Delivery {
            event_id: None,
            attempt: 0,
            status: DeliveryStatus::GaveUp,
            response_status: None,
            error: Some(
                "the webhook fell behind the feed's retention: entries between its position and the oldest kept entry were skipped"
                    .into(),
            ),
            at: shared.clock.now(),
        },
    );
}

/// Delivers one entry: attempts until it is acknowledged, the receiver
/// answers 410, or the retry window is over.
async fn deliver_one(
    shared: &Shared,
    client: &awc::Client,
    hook: &Webhook,
    entry: &Stored,
) -> Outcome {
    let config = &shared.config;
    let event_id = entry.id();
    let body = Bytes::from(entry.to_json());
    let first = shared.clock.now();
    let mut delay = config.first_retry;
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        let at = shared.clock.now();
        let answer = post(
            client,
            hook,
            &event_id,
            at.timestamp(),
            body.clone(),
            config,
        )
        .await;
        let (mut status, response_status, error) = match answer {
            Ok(code) if (200..300).contains(&code) => (DeliveryStatus::Delivered, Some(code), None),
            Ok(410) => (DeliveryStatus::Disabled, Some(410), None),
            Ok(code) => (DeliveryStatus::Failed, Some(code), None),
            Err(e) => (DeliveryStatus::Failed, None, Some(e)),
        };
        let next_at = shared.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
        if status == DeliveryStatus::Failed && next_at - first > config.retry_for {
            status = DeliveryStatus::GaveUp;
        }
        tracing::debug!(
            webhook = hook.id.0,
            event = %event_id,
            attempt,
            status = status.as_str(),
            response_status,
            error = error.as_deref().unwrap_or(""),
            "webhook attempt"
        );
        if status == DeliveryStatus::GaveUp {
            tracing::warn!(
                application = hook.application.0,
                webhook = hook.id.0,
                event = %event_id,
                attempts = attempt,
                "webhook delivery given up after the retry window; going on with the next entry"
            );
        }
        if matches!(status, DeliveryStatus::Delivered | DeliveryStatus::GaveUp) {
            // Done with the entry before the attempt is listed: whoever sees
            // it delivered sees nothing waiting for it either.
            shared.stats.forget(hook.id);
        }
        shared.record(
            hook.id,
            Delivery {
                event_id: Some(event_id.clone()),
                attempt,
                status,
                response_status,
                error,
                at,
            },
        );
        match status {
            DeliveryStatus::Delivered | DeliveryStatus::GaveUp => return Outcome::Done,
            DeliveryStatus::Disabled => return Outcome::Disabled,
            DeliveryStatus::Failed => {
                let _waiting = RetryingGuard::new(&shared.stats);
                actix_rt::time::sleep(delay).await;
                delay = (delay * 2).min(config.max_retry);
            }
        }
    }
}

/// One signed POST; the receiver's status, or why there is none.
async fn post(
    client: &awc::Client,
    hook: &Webhook,
    event_id: &str,
    timestamp: i64,
    body: Bytes,
    config: &DeliveryConfig,
) -> Result<u16, String> {
    // The resolver judges names; an IP literal never reaches it.
    if !config.allow_private {
        if let Some(why) = address::literal_refusal(&hook.url) {
            return Err(AddressRefused(why).to_string());
        }
    }
    let signature = hook.secret.sign(event_id, timestamp, &body);
    let sent = client
        .post(hook.url.as_str())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(("webhook-id", event_id))
        .insert_header(("webhook-timestamp", timestamp.to_string()))
        .insert_header(("webhook-signature", signature))
        .send_body(body)
        .await;
    match sent {
        Ok(mut answer) => {
            let status = answer.status().as_u16();
            // Read (and drop) the answer so the connection can be reused.
            let _ =
                actix_rt::time::timeout(config.timeout, answer.body().limit(ANSWER_LIMIT)).await;
            Ok(status)
        }
        Err(e) => Err(describe(e)),
    }
}

/// An attempt's error for the deliveries list: the policy's refusal as
/// itself, anything else as awc words it.
fn describe(e: awc::error::SendRequestError) -> String {
    use awc::error::{ConnectError, SendRequestError};
    match &e {
        SendRequestError::Connect(ConnectError::Resolver(inner))
            if inner.downcast_ref::<AddressRefused>().is_some() =>
        {
            inner.to_string()
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
