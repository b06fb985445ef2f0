//! The achievement event feed's metrics: entries written by type, the
//! writer's queue and lag, what is kept, live streams, webhook deliveries;
//! read from the feed's and the webhooks' counters when scraped.

use std::sync::atomic::Ordering;

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::register;
use super::scrape::set_int_counter;
use crate::domain::EntryType;
use crate::feed::webhooks::{DeliveryStatus, Webhooks};
use crate::feed::Feed;

pub struct FeedMetrics {
    entries: IntCounterVec,
    erasures: IntCounter,
    kept: IntGauge,
    head: IntGauge,
    queue: IntGauge,
    lag_ms: IntGauge,
    streams: IntGauge,
    streams_cut: IntCounter,
    deliveries: IntCounterVec,
    retrying: IntGauge,
    oldest_undelivered: Gauge,
}

impl FeedMetrics {
    pub fn new(r: &Registry) -> FeedMetrics {
        let gauge = |name: &str, help: &str| {
            register(
                r,
                IntGauge::with_opts(Opts::new(name, help)).expect("valid metric"),
            )
        };
        let counter = |name: &str, help: &str| {
            register(
                r,
                IntCounter::with_opts(Opts::new(name, help)).expect("valid metric"),
            )
        };
        FeedMetrics {
            entries: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "achv_feed_entries_total",
                        "Achievement events stored in the feed, by type",
                    ),
                    &["type"],
                )
                .expect("valid metric"),
            ),
            erasures: counter(
                "achv_feed_erasures_total",
                "Customer erasures applied to the feed",
            ),
            kept: gauge(
                "achv_feed_entries",
                "Achievement events kept (within the retention)",
            ),
            head: gauge("achv_feed_head", "The feed's last sequence number"),
            queue: gauge(
                "achv_feed_queue",
                "Engine messages waiting for the feed writer",
            ),
            lag_ms: gauge(
                "achv_feed_lag_milliseconds",
                "Age of the oldest message waiting for the feed writer (0 when none waits)",
            ),
            streams: gauge("achv_feed_streams", "Live event streams (SSE) open"),
            streams_cut: counter(
                "achv_feed_streams_cut_total",
                "Live event streams cut off because their reader fell behind",
            ),
            deliveries: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "achv_webhook_deliveries_total",
                        "Webhook delivery attempts, by outcome (delivered, failed, gave_up, disabled)",
                    ),
                    &["status"],
                )
                .expect("valid metric"),
            ),
            retrying: gauge(
                "achv_webhook_retrying",
                "Webhooks waiting in backoff before their next attempt (the retry queue)",
            ),
            oldest_undelivered: register(
                r,
                Gauge::with_opts(Opts::new(
                    "achv_webhook_oldest_undelivered_seconds",
                    "Age of the oldest entry an active webhook has not delivered yet (0 when caught up)",
                ))
                .expect("valid metric"),
            ),
        }
    }

    pub fn collect_webhooks(&self, webhooks: &Webhooks, now: chrono::DateTime<chrono::Utc>) {
        let s = webhooks.stats();
        for status in DeliveryStatus::ALL {
            set_int_counter(
                &self.deliveries.with_label_values(&[status.as_str()]),
                s.deliveries(status),
            );
        }
        self.retrying.set(s.retrying() as i64);
        self.oldest_undelivered.set(s.oldest_undelivered_secs(now));
    }

    pub fn collect(&self, feed: &Feed) {
        let s = &feed.stats;
        for t in EntryType::ALL {
            set_int_counter(
                &self.entries.with_label_values(&[t.as_str()]),
                s.written[t as usize].load(Ordering::Relaxed),
            );
        }
        set_int_counter(&self.erasures, s.erasures.load(Ordering::Relaxed));
        self.kept.set(s.kept.load(Ordering::Relaxed) as i64);
        self.head.set(feed.head() as i64);
        self.queue.set(s.queued.load(Ordering::Relaxed) as i64);
        let oldest = s.oldest_queued_ms.load(Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.lag_ms.set(if oldest == 0 {
            0
        } else {
            now.saturating_sub(oldest) as i64
        });
        self.streams
            .set(s.streams_open.load(Ordering::Relaxed) as i64);
        set_int_counter(&self.streams_cut, s.streams_cut.load(Ordering::Relaxed));
    }
}
