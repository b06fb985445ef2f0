//! `GET /metrics`: Prometheus text with exact event counters, route latency
//! histograms, live pairs, WAL and snapshot figures.

use std::collections::BTreeMap;

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::json;

use crate::helpers::*;

/// One sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format (comments skipped; label values here
/// hold no escaped quotes or commas).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {l}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closing brace");
                    let labels = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once('=').expect("label=value");
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
            };
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

/// The value of the sample with this name and (at least) these labels;
/// None if there is no such sample.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// The sum over every sample with this name.
fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

async fn scrape(app: &TestApp) -> (Answer, Vec<Sample>) {
    let m = app.raw("GET", "/metrics", Auth::None, None).await;
    assert_eq!(m.status, 200, "{}", m.text);
    let samples = parse(&m.text);
    (m, samples)
}

#[actix_web::test]
async fn metrics_count_events_requests_pairs_wal_and_snapshots() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "metered", "period": "1D", "target": 100,
                   "recurrencePolicy": "on_expiration"}),
        )
        .await;
    let id = a["id"].as_u64().expect("id");
    let outcome = |a: &Answer| {
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()["outcome"].as_str().expect("outcome").to_string()
    };

    // Single events: two applied (two customers → two pairs), one duplicate,
    // one rejected for its future timestamp.
    let e1 = json!({"integrationId": "c1", "achievementId": id, "delta": 1, "eventId": "e1"});
    assert_eq!(outcome(&app.event(&key, e1.clone()).await), "applied");
    assert_eq!(outcome(&app.event(&key, e1.clone()).await), "duplicate");
    let e2 = json!({"integrationId": "c2", "achievementId": id, "delta": 1, "eventId": "e2"});
    assert_eq!(outcome(&app.event(&key, e2).await), "applied");
    let future = (Utc::now() + Duration::minutes(10)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let late = json!({"integrationId": "c1", "achievementId": id, "delta": 1,
                      "timestamp": future});
    let rejected = app.event(&key, late).await;
    assert_eq!(outcome(&rejected), "rejected");
    assert_eq!(rejected.json()["reason"], "future_timestamp");

    // A batch: one applied, one duplicate.
    let e3 = json!({"integrationId": "c1", "achievementId": id, "delta": 2, "eventId": "e3"});
    let b = app
        .integ(
            &key,
            "POST",
            "/v1/progress_events/batch",
            Some(json!({"events": [e3, e1]})),
        )
        .await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(b.json()["applied"], 1, "{}", b.text);
    assert_eq!(b.json()["duplicates"], 1, "{}", b.text);

    // Rollbacks: one applied, one of an unknown event.
    let rollback =
        |event: &str| json!({"integrationId": "c1", "achievementId": id, "eventId": event});
    let rb = app
        .integ(&key, "POST", "/v1/progress_rollbacks", Some(rollback("e3")))
        .await;
    assert_eq!(outcome(&rb), "applied");
    let rb = app
        .integ(
            &key,
            "POST",
            "/v1/progress_rollbacks",
            Some(rollback("never")),
        )
        .await;
    assert_eq!(outcome(&rb), "rejected");

    // A read through a route with ids in its path, and an unknown path.
    let read = app
        .integ(
            &key,
            "GET",
            &format!("/v1/customer_profiles/c1/achievements/{id}"),
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    let missing = app.raw("GET", "/no/such/path", Auth::None, None).await;
    assert_eq!(missing.status, 404);

    // Before any snapshot, the snapshot figures are absent, not 0.
    let (_, before) = scrape(&app).await;
    assert_eq!(value(&before, "achv_snapshot_size_bytes", &[]), None);
    assert_eq!(value(&before, "achv_snapshots_total", &[]), Some(0.0));

    let snap = app.mgmt("POST", "/v1/admin/snapshots", None).await;
    assert_eq!(snap.status, 201, "{}", snap.text);
    let snap = snap.json();

    let (m, s) = scrape(&app).await;
    assert_eq!(m.content_type, "text/plain; version=0.0.4");
    let events = |kind: &str, outcome: &str, reason: &str| {
        value(
            &s,
            "achv_events_total",
            &[("kind", kind), ("outcome", outcome), ("reason", reason)],
        )
    };
    assert_eq!(events("increase", "applied", ""), Some(3.0), "{}", m.text);
    assert_eq!(events("increase", "duplicate", ""), Some(2.0), "{}", m.text);
    assert_eq!(
        events("increase", "rejected", "future_timestamp"),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(events("rollback", "applied", ""), Some(1.0), "{}", m.text);
    assert_eq!(
        events("rollback", "rejected", "unknown_event"),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(sum(&s, "achv_events_total"), 8.0, "{}", m.text);

    // Latency per route pattern: ids never appear in labels.
    let count = |route: &str, method: &str, status: &str| {
        value(
            &s,
            "achv_http_request_duration_seconds_count",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(
        count("/v1/progress_events", "POST", "200"),
        Some(4.0),
        "{}",
        m.text
    );
    assert_eq!(count("/v1/progress_events/batch", "POST", "200"), Some(1.0));
    assert_eq!(count("/v1/progress_rollbacks", "POST", "200"), Some(2.0));
    assert_eq!(
        count(
            "/v1/customer_profiles/{integrationId}/achievements/{achievementId}",
            "GET",
            "200"
        ),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(count("unmatched", "GET", "404"), Some(1.0), "{}", m.text);
    assert_eq!(count("/v1/admin/snapshots", "POST", "201"), Some(1.0));
    assert!(
        !m.text.contains("/customer_profiles/c1"),
        "a path leaked into a label"
    );
    assert!(
        value(
            &s,
            "achv_http_request_duration_seconds_bucket",
            &[("route", "/v1/progress_events"), ("le", "+Inf")]
        ) == Some(4.0)
    );

    // Engine state.
    assert_eq!(value(&s, "achv_pairs", &[]), Some(2.0), "{}", m.text);
    assert_eq!(value(&s, "achv_ready", &[]), Some(1.0));
    assert!(value(&s, "achv_active_actors", &[]).is_some());
    assert_eq!(value(&s, "achv_overloaded_total", &[]), Some(0.0));
    assert_eq!(value(&s, "achv_pair_panics_total", &[]), Some(0.0));
    assert!(value(&s, "achv_passivations_total", &[]).is_some());
    assert_eq!(
        value(&s, "achv_queue_depth", &[("shard", "000")]),
        Some(0.0)
    );
    assert_eq!(sum(&s, "achv_queue_depth"), 0.0);

    // Logs.
    assert!(sum(&s, "achv_wal_bytes_total") > 0.0, "{}", m.text);
    assert!(value(&s, "achv_wal_bytes_total", &[("log", "catalog")]).unwrap_or(0.0) > 0.0);
    assert!(sum(&s, "achv_wal_fsyncs_total") > 0.0);
    assert!(value(&s, "achv_wal_fsync_seconds_total", &[("log", "catalog")]).is_some());
    assert_eq!(sum(&s, "achv_wal_errors_total"), 0.0);
    assert!(value(&s, "achv_wal_bytes_total", &[("log", "shard-000")]).is_some());

    // Snapshot and restore.
    assert_eq!(value(&s, "achv_snapshots_total", &[]), Some(1.0));
    assert_eq!(value(&s, "achv_snapshot_failures_total", &[]), Some(0.0));
    let size = value(&s, "achv_snapshot_size_bytes", &[]).expect("snapshot size");
    assert!(size > 0.0);
    assert_eq!(Some(size), snap["bytes"].as_f64(), "{snap}");
    assert_eq!(value(&s, "achv_snapshot_pairs", &[]), Some(2.0));
    let age = value(&s, "achv_snapshot_age_seconds", &[]).expect("snapshot age");
    assert!((0.0..60.0).contains(&age), "age {age}");
    assert!(value(&s, "achv_snapshot_duration_seconds", &[]).is_some());
    assert!(value(&s, "achv_restore_duration_seconds", &[]).is_some());
    assert_eq!(value(&s, "achv_restore_pairs", &[]), Some(0.0));

    // /metrics needs no key, and is itself timed.
    let (_, again) = scrape(&app).await;
    assert!(value(
        &again,
        "achv_http_request_duration_seconds_count",
        &[("route", "/metrics"), ("method", "GET"), ("status", "200")]
    )
    .is_some());
}

#[actix_web::test]
async fn feed_metrics_count_entries_by_type_and_what_is_kept() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let id = seed
        .achievement_id(json!({"name": "once", "target": 1, "period": "1W"}))
        .await;
    for c in ["a", "b", "c"] {
        let e = json!({"integrationId": c, "achievementId": id, "delta": 1});
        assert_eq!(app.event(key, e).await.status, 200);
    }
    crate::feed::wait_for(app, seed.application, 6).await;
    let (_, samples) = scrape(app).await;
    let entries = |t: &str| value(&samples, "achv_feed_entries_total", &[("type", t)]);
    assert_eq!(entries("achievement.started"), Some(3.0));
    assert_eq!(entries("achievement.completed"), Some(3.0));
    assert_eq!(entries("achievement.expired"), Some(0.0));
    assert_eq!(value(&samples, "achv_feed_entries", &[]), Some(6.0));
    assert_eq!(value(&samples, "achv_feed_head", &[]), Some(6.0));
    assert_eq!(value(&samples, "achv_feed_queue", &[]), Some(0.0));
    assert_eq!(
        value(&samples, "achv_feed_lag_milliseconds", &[]),
        Some(0.0)
    );
    assert_eq!(value(&samples, "achv_feed_streams", &[]), Some(0.0));
}
