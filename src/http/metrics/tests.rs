use super::*;
use crate::domain::Reason;
use crate::engine::Engine;
use crate::persist::store::Store;
use prometheus::{Encoder as _, TextEncoder};

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
    let text = m
        .render(&engine, Some(&store), None, None)
        .expect("renders");
    assert_eq!(parse(&text, "achv_restore_pairs"), Some(4.0), "{text}");
    assert_eq!(parse(&text, "achv_pairs"), Some(4.0), "{text}");
    // Restored pairs load frozen; shards tell how many at their next tick.
    let frozen = parse(&text, "achv_frozen_pairs").expect("the gauge is there");
    assert!(frozen == 0.0 || frozen == 4.0, "{text}");
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
    let text = m
        .render(&engine, Some(&store), None, None)
        .expect("renders");
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
