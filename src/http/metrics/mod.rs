//! Prometheus metrics (`GET /metrics`, text format 0.0.4) and the request
//! middleware that times every route and opens its tracing span.
//!
//! Owns: the metric definitions and what the hot path records (this file);
//! reading the engine's and store's counters and rendering (`scrape`); the
//! request middleware (`requests`).
//!
//! Event outcomes and request latencies are counted as they happen; the
//! engine's and the store's own counters (live pairs, actors, queue depths,
//! WAL, snapshots, restore) are read when scraped, so nothing on the hot path
//! pays for them. Every metric lives in one custom `Registry`; see
//! docs/OPERATIONS.md ("Metrics") for the list.

use std::sync::Mutex;

use actix_web::http::{Method, StatusCode};
use prometheus::{
    CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::domain::{EventResult, Outcome};

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
    frozen: IntGauge,
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
    feed: feed::FeedMetrics,
    cluster: cluster::ClusterMetrics,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: T) -> T {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique and valid");
    c
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
                "(Customer, achievement) pairs with progress held in memory, frozen or not",
            ),
            frozen: int_gauge(
                "achv_frozen_pairs",
                "Pairs held frozen: idle for a while, kept compact until their next event",
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
            feed: feed::FeedMetrics::new(&r),
            cluster: cluster::ClusterMetrics::new(&r),
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
}

mod cluster;
mod feed;
mod requests;
pub mod scrape;

use requests::method_label;
pub use requests::track_requests;
pub use scrape::metrics;
#[cfg(test)]
use scrape::set_int_counter;

#[cfg(test)]
mod tests;
