//! Scraping: the engine's and the store's own counters are read when
//! `/metrics` is asked for (nothing on the hot path pays for them), mirrored
//! into the registry, and everything is rendered as text.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use prometheus::{Counter, Encoder as _, Gauge, GaugeVec, IntCounter, TextEncoder};

use super::Metrics;
use crate::cluster::OwnerStats;
use crate::engine::Engine;
use crate::feed::webhooks::Webhooks;
use crate::feed::Feed;
use crate::http::AppState;
use crate::persist::store::Store;

impl Metrics {
    /// Reads the engine's and store's counters, then renders every metric in
    /// the text exposition format.
    pub fn render(
        &self,
        engine: &Engine,
        store: Option<&Store>,
        feed: Option<(&Feed, &Webhooks)>,
        cluster: Option<OwnerStats>,
    ) -> Result<String, String> {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.collect_engine(engine);
        if let Some(stats) = cluster {
            self.cluster.collect(stats);
        }
        if let Some((feed, webhooks)) = feed {
            self.feed.collect(feed);
            self.feed.collect_webhooks(webhooks, engine.now());
        }
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
        self.frozen.set(stats.frozen.load(Ordering::Relaxed));
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

/// Sets a counter mirrored from a monotonic atomic to `value`.
pub(super) fn set_int_counter(c: &IntCounter, value: u64) {
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

fn set_gauge(g: &GaugeVec, value: f64) {
    let g: Gauge = g.with_label_values::<&str>(&[]);
    g.set(value);
}

/// `GET /metrics`: no authentication (see API.md, "Operations").
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.get().cloned();
    let engine = state.engine.clone();
    let metrics = state.metrics.clone();
    let (feed, webhooks) = (state.feed.clone(), state.webhooks.clone());
    let cluster = state
        .cluster
        .as_ref()
        .and_then(|c| c.node())
        .map(|n| n.stats());
    // Gathering takes a lock and walks every series: keep it off the worker.
    let rendered = web::block(move || {
        metrics.render(&engine, store.as_deref(), Some((&feed, &webhooks)), cluster)
    })
    .await;
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
