//! Prometheus metrics (`GET /metrics`, text format 0.0.4) and the request
//! middleware that times every route and opens its tracing span.
//!
//! Event outcomes and request latencies are counted as they happen; the
//! engine's and the store's own counters (live pairs, actors, queue depths,
//! WAL, snapshots, restore) are read when scraped, so nothing on the hot path
//! pays for them. Every metric lives in one custom `Registry`; see
//! docs/OPERATIONS.md ("Metrics") for the list.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use prometheus::{
    Counter, CounterVec, Encoder as _, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tracing::Instrument as _;

use super::AppState;
use crate::domain::{EventResult, Outcome};
use crate::engine::Engine;
use crate::persist::store::Store;

/// Latency buckets, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// What an event counter counts: an increase or a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Increase,
    Rollback,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Increase => "increase",
            EventKind::Rollback => "rollback",
        }
    }
}

/// The process's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    /// Serialises scrapes: counters mirrored from atomics are set, then
    /// gathered, without another scrape in between.
    scrape: Mutex<()>,
    events: IntCounterVec,
    requests: HistogramVec,
    ready: IntGauge,
    pairs: IntGauge,
    actors: IntGauge,
    passivations: IntCounter,
    panics: IntCounter,
    expiries: IntCounter,
    erased: IntCounter,
    overloaded: IntCounter,
    queue_depth: IntGaugeVec,
    queue_capacity: IntGauge,
    wal_bytes: IntCounterVec,
    wal_fsyncs: IntCounterVec,
    wal_fsync_seconds: CounterVec,
    wal_errors: IntCounterVec,
    wal_durable_lsn: IntGaugeVec,
    snapshots: IntCounter,
    snapshot_failures: IntCounter,
    // Label-less vectors: absent from the output until there is a value
    // (no snapshot yet, restore not finished), rather than a misleading 0.
    snapshot_age: GaugeVec,
    snapshot_timestamp: GaugeVec,
    snapshot_size: GaugeVec,
    snapshot_pairs: GaugeVec,
    snapshot_duration: GaugeVec,
    restore_duration: GaugeVec,
    restore_pairs: GaugeVec,
    restore_records: GaugeVec,
    restore_skipped: GaugeVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: T) -> T {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique and valid");
    c
}

/// Sets a counter mirrored from a monotonic atomic to `value`.
fn set_int_counter(c: &IntCounter, value: u64) {
    let now = c.get();
    if value < now {
        c.reset();
        c.inc_by(value);
    } else if value > now {
        c.inc_by(value - now);
    }
}

fn set_counter(c: &Counter, value: f64) {
    let now = c.get();
    if value < now {
        c.reset();
        c.inc_by(value);
    } else if value > now {
        c.inc_by(value - now);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let int_counter = |name: &str, help: &str| {
            register(
                &r,
                IntCounter::with_opts(Opts::new(name, help)).expect("valid metric"),
            )
        };
        let int_counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let int_gauge = |name: &str, help: &str| {
            register(
                &r,
                IntGauge::with_opts(Opts::new(name, help)).expect("valid metric"),
            )
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        Metrics {
            events: int_counter_vec(
                "achv_events_total",
                "Progress events and rollbacks handled, by kind, outcome and reason",
                &["kind", "outcome", "reason"],
            ),
            requests: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "achv_http_request_duration_seconds",
                        "HTTP request latency until the response head, by route pattern, method and status",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route", "method", "status"],
                )
                .expect("valid metric"),
            ),
            ready: int_gauge(
                "achv_ready",
                "1 once the state is restored and events are accepted, else 0",
            ),
            pairs: int_gauge(
                "achv_pairs",
                "Live (customer, achievement) pairs held in memory",
            ),
            actors: int_gauge("achv_active_actors", "Pair actors currently active"),
            passivations: int_counter(
                "achv_passivations_total",
                "Pair actors stopped after sitting idle",
            ),
            panics: int_counter(
                "achv_pair_panics_total",
                "Pair handlers that panicked (the pair keeps its last state)",
            ),
            expiries: int_counter(
                "achv_expiries_total",
                "In-progress iterations that expired when their period ended",
            ),
            erased: int_counter(
                "achv_erased_pairs_total",
                "Pairs erased with their customer's data (deleteCustomerData)",
            ),
            overloaded: int_counter(
                "achv_overloaded_total",
                "Requests refused with 429 because a shard queue was full",
            ),
            queue_depth: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "achv_queue_depth",
                        "Events admitted and not yet answered, per shard",
                    ),
                    &["shard"],
                )
                .expect("valid metric"),
            ),
            queue_capacity: int_gauge(
                "achv_queue_capacity",
                "Events a shard admits in flight before answering 429",
            ),
            wal_bytes: int_counter_vec(
                "achv_wal_bytes_total",
                "Bytes made durable in the write-ahead log",
                &["log"],
            ),
            wal_fsyncs: int_counter_vec(
                "achv_wal_fsyncs_total",
                "Write-ahead log group commits (one write and fdatasync each)",
                &["log"],
            ),
            wal_fsync_seconds: register(
                &r,
                CounterVec::new(
                    Opts::new(
                        "achv_wal_fsync_seconds_total",
                        "Time spent writing and syncing write-ahead log groups",
                    ),
                    &["log"],
                )
                .expect("valid metric"),
            ),
            wal_errors: int_counter_vec(
                "achv_wal_errors_total",
                "Write-ahead log writes that failed",
                &["log"],
            ),
            wal_durable_lsn: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "achv_wal_durable_lsn",
                        "The highest log sequence number known durable",
                    ),
                    &["log"],
                )
                .expect("valid metric"),
            ),
            snapshots: int_counter(
                "achv_snapshots_total",
                "Snapshots written by this process",
            ),
            snapshot_failures: int_counter(
                "achv_snapshot_failures_total",
                "Snapshot attempts that failed",
            ),
            snapshot_age: gauge_vec(
                "achv_snapshot_age_seconds",
                "Seconds since the newest snapshot (taken or restored from) was created",
                &[],
            ),
            snapshot_timestamp: gauge_vec(
                "achv_snapshot_timestamp_seconds",
                "Creation time of the newest snapshot, in Unix seconds",
                &[],
            ),
            snapshot_size: gauge_vec(
                "achv_snapshot_size_bytes",
                "Size of the newest snapshot file",
                &[],
            ),
            snapshot_pairs: gauge_vec(
                "achv_snapshot_pairs",
                "Pairs in the newest snapshot",
                &[],
            ),
            snapshot_duration: gauge_vec(
                "achv_snapshot_duration_seconds",
                "How long the newest snapshot this process took took to write",
                &[],
            ),
            restore_duration: gauge_vec(
                "achv_restore_duration_seconds",
                "How long the startup restore took",
                &[],
            ),
            restore_pairs: gauge_vec(
                "achv_restore_pairs",
                "Pairs loaded from the snapshot at startup",
                &[],
            ),
            restore_records: gauge_vec(
                "achv_restore_replayed_records",
                "Log records replayed at startup, by log kind",
                &["log"],
            ),
            restore_skipped: gauge_vec(
                "achv_restore_skipped_snapshots",
                "Snapshots skipped at startup because they failed their checks",
                &[],
            ),
            registry: r,
            scrape: Mutex::new(()),
        }
    }

    /// Counts one event (or rollback) result.
    pub fn event(&self, kind: EventKind, result: &EventResult) {
        self.events
            .with_label_values(&[
                kind.as_str(),
                result.outcome.as_str(),
                result.reason.map_or("", |r| r.as_str()),
            ])
            .inc();
    }

    /// Counts an event refused as invalid in the state it met (overflow, too
    /// many iterations): outcome `rejected`, reason `invalid`.
    pub fn invalid_event(&self, kind: EventKind) {
        self.events
            .with_label_values(&[kind.as_str(), Outcome::Rejected.as_str(), "invalid"])
            .inc();
    }

    /// Observes one request's latency.
    pub fn request(&self, route: &str, method: &Method, status: StatusCode, seconds: f64) {
        self.requests
            .with_label_values(&[route, method_label(method), status.as_str()])
            .observe(seconds);
    }

    /// Reads the engine's and store's counters, then renders every metric in
    /// the text exposition format.
    pub fn render(&self, engine: &Engine, store: Option<&Store>) -> Result<String, String> {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.collect_engine(engine);
        if let Some(store) = store {
            self.collect_store(store, engine.now());
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| e.to_string())?;
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    fn collect_engine(&self, engine: &Engine) {
        let stats = engine.stats();
        self.ready.set(i64::from(engine.is_ready()));
        self.pairs.set(stats.pairs.load(Ordering::Relaxed));
        self.actors.set(stats.actors.load(Ordering::Relaxed));
        set_int_counter(
            &self.passivations,
            stats.passivations.load(Ordering::Relaxed),
        );
        set_int_counter(&self.panics, stats.panics.load(Ordering::Relaxed));
        set_int_counter(&self.expiries, stats.expiries.load(Ordering::Relaxed));
        set_int_counter(&self.erased, stats.erased.load(Ordering::Relaxed));
        set_int_counter(&self.overloaded, stats.overloaded.load(Ordering::Relaxed));
        for (i, depth) in engine.shared().inflight().into_iter().enumerate() {
            self.queue_depth
                .with_label_values(&[&format!("{i:03}")])
                .set(depth as i64);
        }
        self.queue_capacity
            .set(engine.shared().queue_capacity as i64);
    }

    fn collect_store(&self, store: &Store, now: chrono::DateTime<chrono::Utc>) {
        for (name, wal) in store.named_wals() {
            let s = &wal.stats;
            let labels = [name.as_str()];
            set_int_counter(
                &self.wal_bytes.with_label_values(&labels),
                s.bytes.load(Ordering::Relaxed),
            );
            set_int_counter(
                &self.wal_fsyncs.with_label_values(&labels),
                s.fsyncs.load(Ordering::Relaxed),
            );
            set_counter(
                &self.wal_fsync_seconds.with_label_values(&labels),
                s.fsync_micros.load(Ordering::Relaxed) as f64 / 1e6,
            );
            set_int_counter(
                &self.wal_errors.with_label_values(&labels),
                s.errors.load(Ordering::Relaxed),
            );
            self.wal_durable_lsn
                .with_label_values(&labels)
                .set(s.durable_lsn.load(Ordering::Relaxed) as i64);
        }
        let (taken, failed) = store.snapshot_counts();
        set_int_counter(&self.snapshots, taken);
        set_int_counter(&self.snapshot_failures, failed);
        if let Some(last) = store.last_snapshot() {
            let age = (now - last.created).num_milliseconds().max(0) as f64 / 1e3;
            let created = last.created.timestamp_millis() as f64 / 1e3;
            set_gauge(&self.snapshot_age, age);
            set_gauge(&self.snapshot_timestamp, created);
            set_gauge(&self.snapshot_size, last.bytes as f64);
            set_gauge(&self.snapshot_pairs, last.pairs as f64);
            if let Some(d) = last.duration {
                set_gauge(&self.snapshot_duration, d.as_secs_f64());
            }
        }
        let report = store.restore_report();
        set_gauge(&self.restore_duration, report.duration.as_secs_f64());
        set_gauge(&self.restore_pairs, report.pairs as f64);
        set_gauge(&self.restore_skipped, report.skipped_snapshots.len() as f64);
        self.restore_records
            .with_label_values(&["catalog"])
            .set(report.catalog_records as f64);
        self.restore_records
            .with_label_values(&["pairs"])
            .set(report.pair_records as f64);
    }
}

fn set_gauge(g: &GaugeVec, value: f64) {
    let g: Gauge = g.with_label_values::<&str>(&[]);
    g.set(value);
}

/// Methods outside the usual set share one label value, so that made-up
/// methods cannot grow the number of series.
fn method_label(method: &Method) -> &'static str {
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

/// `GET /metrics`: no authentication (see API.md, "Operations").
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.get().cloned();
    let engine = state.engine.clone();
    let metrics = state.metrics.clone();
    // Gathering takes a lock and walks every series: keep it off the worker.
    let rendered = web::block(move || metrics.render(&engine, store.as_deref())).await;
    match rendered {
        Ok(Ok(text)) => HttpResponse::Ok()
            .content_type(prometheus::TEXT_FORMAT)
            .body(text),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot encode metrics");
            HttpResponse::InternalServerError().finish()
        }
        Err(_) => HttpResponse::InternalServerError().finish(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Reason;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn events_and_requests_are_exposed_with_their_labels() {
        let m = Metrics::new();
        m.event(EventKind::Increase, &EventResult::applied(Vec::new()));
        m.event(EventKind::Increase, &EventResult::applied(Vec::new()));
        m.event(
            EventKind::Rollback,
            &EventResult::rejected(Reason::UnknownEvent),
        );
        m.invalid_event(EventKind::Increase);
        m.request("/v1/progress_events", &Method::POST, StatusCode::OK, 0.002);
        m.request(
            "unmatched",
            &Method::from_bytes(b"BREW").expect("method"),
            StatusCode::NOT_FOUND,
            0.0001,
        );
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .expect("encodes");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(line(
            &text,
            r#"achv_events_total{kind="increase",outcome="applied",reason=""} 2"#
        )
        .is_some());
        assert!(line(
            &text,
            r#"achv_events_total{kind="rollback",outcome="rejected",reason="unknown_event"} 1"#
        )
        .is_some());
        assert!(line(
            &text,
            r#"achv_events_total{kind="increase",outcome="rejected",reason="invalid"} 1"#
        )
        .is_some());
        assert!(line(
            &text,
            r#"achv_http_request_duration_seconds_count{method="POST",route="/v1/progress_events",status="200"} 1"#
        )
        .is_some());
        assert!(line(
            &text,
            r#"achv_http_request_duration_seconds_count{method="other",route="unmatched",status="404"} 1"#
        )
        .is_some());
        // No snapshot and no restore yet: those families are left out.
        assert!(!text.contains("achv_snapshot_age_seconds"));
        assert!(!text.contains("achv_restore_duration_seconds"));
    }

    /// A restore from the golden snapshot shows in the restore and snapshot
    /// figures; a snapshot taken afterwards replaces them.
    #[actix_rt::test]
    async fn restore_and_snapshot_figures_come_from_the_store() {
        use crate::engine::{Catalog, EngineConfig};
        let dir = tempfile::tempdir().expect("temp dir");
        let golden =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v3.snap");
        std::fs::copy(&golden, dir.path().join("snapshot-000000000001.snap")).expect("copy");
        let engine = Engine::start(
            EngineConfig {
                arbiters: 2,
                ..EngineConfig::default()
            },
            Catalog::default(),
        );
        let (e, d) = (engine.clone(), dir.path().to_path_buf());
        let (store, _) = actix_rt::task::spawn_blocking(move || Store::restore(&e, &d, 3))
            .await
            .expect("restore thread")
            .expect("restore succeeds");
        let store = std::sync::Arc::new(store);
        let m = Metrics::new();
        let parse = |text: &str, name: &str| -> Option<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        };
        let text = m.render(&engine, Some(&store)).expect("renders");
        assert_eq!(parse(&text, "achv_restore_pairs"), Some(4.0), "{text}");
        assert_eq!(parse(&text, "achv_pairs"), Some(4.0), "{text}");
        assert_eq!(parse(&text, "achv_restore_skipped_snapshots"), Some(0.0));
        assert!(parse(&text, "achv_restore_duration_seconds").is_some());
        // The restored snapshot counts as the newest one, but was not taken
        // (nor timed) by this process.
        assert_eq!(parse(&text, "achv_snapshot_pairs"), Some(4.0));
        let golden_bytes = std::fs::metadata(&golden).expect("golden").len() as f64;
        assert_eq!(parse(&text, "achv_snapshot_size_bytes"), Some(golden_bytes));
        assert!(parse(&text, "achv_snapshot_age_seconds").is_some_and(|a| a > 0.0));
        assert_eq!(parse(&text, "achv_snapshot_duration_seconds"), None);
        assert_eq!(parse(&text, "achv_snapshots_total"), Some(0.0));

        let (e, s) = (engine.clone(), store.clone());
        let info = actix_rt::task::spawn_blocking(move || s.snapshot(&e))
            .await
            .expect("snapshot thread")
            .expect("snapshot succeeds");
        let text = m.render(&engine, Some(&store)).expect("renders");
        assert_eq!(parse(&text, "achv_snapshots_total"), Some(1.0), "{text}");
        assert_eq!(parse(&text, "achv_snapshot_failures_total"), Some(0.0));
        assert_eq!(
            parse(&text, "achv_snapshot_size_bytes"),
            Some(info.bytes as f64)
        );
        assert!(parse(&text, "achv_snapshot_duration_seconds").is_some());
        assert!(parse(&text, "achv_snapshot_age_seconds").is_some_and(|a| a < 60.0));
    }

    #[test]
    fn mirrored_counters_follow_their_source() {
        let c = IntCounter::new("c", "c").expect("valid");
        set_int_counter(&c, 5);
        assert_eq!(c.get(), 5);
        set_int_counter(&c, 7);
        assert_eq!(c.get(), 7);
        set_int_counter(&c, 3);
        assert_eq!(c.get(), 3);
    }
}
