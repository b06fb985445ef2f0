//! A cluster node's metrics: partitions owned and serving, takeovers and
//! their duration, and how far the node is behind its partitions' logs;
//! read from the node's counters when scraped.

use prometheus::{IntCounter, IntGauge, Opts, Registry};

use super::register;
use super::scrape::set_int_counter;
use crate::cluster::OwnerStats;

pub struct ClusterMetrics {
    owned: IntGauge,
    serving: IntGauge,
    takeovers: IntCounter,
    takeover_ms_total: IntCounter,
    last_takeover_ms: IntGauge,
    lag: IntGauge,
}

impl ClusterMetrics {
    pub fn new(r: &Registry) -> ClusterMetrics {
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
        ClusterMetrics {
            owned: gauge(
                "achv_cluster_owned_partitions",
                "Partitions whose lease this node holds",
            ),
            serving: gauge(
                "achv_cluster_serving_partitions",
                "Owned partitions caught up with their log and serving",
            ),
            takeovers: counter(
                "achv_cluster_takeovers_total",
                "Partitions this node took over (snapshot loaded, log replayed)",
            ),
            takeover_ms_total: counter(
                "achv_cluster_takeover_milliseconds_total",
                "Time spent taking partitions over, from lease to serving",
            ),
            last_takeover_ms: gauge(
                "achv_cluster_last_takeover_milliseconds",
                "Duration of the latest takeover, from lease to serving",
            ),
            lag: gauge(
                "achv_cluster_log_lag_records",
                "Records stored in owned partitions' logs and not yet applied here",
            ),
        }
    }

    pub fn collect(&self, s: OwnerStats) {
        self.owned.set(s.owned as i64);
        self.serving.set(s.serving as i64);
        set_int_counter(&self.takeovers, s.takeovers);
        set_int_counter(&self.takeover_ms_total, s.takeover_ms_total);
        self.last_takeover_ms.set(s.last_takeover_ms as i64);
        self.lag.set(s.lag as i64);
    }
}
