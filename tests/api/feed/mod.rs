//! The achievement event feed over HTTP: every entry type (expiry with no
//! event at all), pages and cursors, the `type` filter, who may read,
//! erasure, the live stream (SSE) and its resumption.

mod restarts;
mod stream;
mod webhooks;

use std::time::Duration;

use achievements_engine::clock::Clock;
use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

pub fn events_path(application: u64, query: &str) -> String {
    format!("/v1/applications/{application}/achievement_events{query}")
}

/// Every entry of an application, following `next` with pages of `limit`.
pub async fn all_entries(
    app: &TestApp,
    key: Auth<'_>,
    application: u64,
    query: &str,
    limit: u32,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let sep = if query.is_empty() { "?" } else { "&" };
        let q = format!("{query}{sep}limit={limit}{after}");
        let a = app
            .raw("GET", &events_path(application, &q), clone_auth(&key), None)
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let page = a.json();
        let data = page["data"].as_array().expect("data").clone();
        assert!(data.len() <= limit as usize);
        out.extend(data);
        let next = page["next"].as_str().expect("next").to_string();
        after = format!("&after={next}");
        if !page["hasMore"].as_bool().expect("hasMore") {
            return out;
        }
    }
}

fn clone_auth<'a>(a: &Auth<'a>) -> Auth<'a> {
    match a {
        Auth::None => Auth::None,
        Auth::Management => Auth::Management,
        Auth::Integration(k) => Auth::Integration(k),
        Auth::Raw(r) => Auth::Raw(r),
    }
}

/// (type, integrationId, progressTrackerId) of entries.
pub fn summary(entries: &[Value]) -> Vec<(String, String, u64)> {
    entries
        .iter()
        .map(|e| {
            (
                e["type"].as_str().expect("type").to_string(),
                e["integrationId"]
                    .as_str()
                    .expect("integrationId")
                    .to_string(),
                e["progressTrackerId"].as_u64().expect("progressTrackerId"),
            )
        })
        .collect()
}

/// Polls until the application's feed has `n` entries (the feed stores an
/// entry right after its change is durable; expiries wait for a timer).
pub async fn wait_for(app: &TestApp, application: u64, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let all = all_entries(app, Auth::Management, application, "", 1000).await;
        if all.len() >= n {
            return all;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the feed did not reach {n} entries");
}

fn ev(customer: &str, achievement: u64, delta: u32, id: &str) -> Value {
    json!({"integrationId": customer, "achievementId": achievement, "delta": delta, "eventId": id})
}

#[actix_web::test]
async fn every_kind_of_entry_is_told_once_with_its_fields() {
    let clock = Clock::manual(now_s());
    let seed = Seeded::on(
        spawn_app_with_clock(clock.clone(), |_| {}).await,
        "UTC",
        json!({}),
    )
    .await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let daily = seed
        .achievement_id(json!({"name": "daily", "target": 2, "period": "1D",
            "recurrencePolicy": "on_expiration", "allowRollbackAfterCompletion": true}))
        .await;
    let jane1 = applied(&app.event(key, ev("jane", daily, 1, "j1")).await);
    applied(&app.event(key, ev("jane", daily, 1, "j2")).await);
    applied(&app.event(key, ev("bob", daily, 1, "b1")).await);
    applied(
        &app.rollback(
            key,
            json!({"integrationId": "jane", "achievementId": daily, "eventId": "j2"}),
        )
        .await,
    );
    let started_at = now_s();
    let entries = wait_for(app, seed.application, 4).await;
    let jane_tracker = jane1["effects"][0]["props"]["progressTrackerId"]
        .as_u64()
        .unwrap();
    let bob_tracker = entries[2]["progressTrackerId"].as_u64().unwrap();
    assert_eq!(
        summary(&entries),
        vec![
            ("achievement.started".into(), "jane".into(), jane_tracker),
            ("achievement.completed".into(), "jane".into(), jane_tracker),
            ("achievement.started".into(), "bob".into(), bob_tracker),
            (
                "achievement.completion_rolled_back".into(),
                "jane".into(),
                jane_tracker
            ),
        ]
    );
    let completed = &entries[1];
    assert_eq!(completed["eventId"], "j2");
    assert_eq!(completed["progress"], json!(2));
    assert_eq!(completed["target"], json!(2));
    assert_eq!(completed["achievementId"], json!(daily));
    assert_eq!(completed["achievementName"], "daily");
    assert_eq!(completed["applicationId"], json!(seed.application));
    assert_eq!(completed["campaignId"], json!(seed.campaign));
    assert!(completed["completionDate"].is_string());
    assert!(completed["endDate"].is_string());
    assert_eq!(entries[3]["progress"], json!(1));
    assert!(entries[3].get("completionDate").is_none());
    let ids: std::collections::BTreeSet<_> = entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 4, "ids are unique");
    for e in &entries {
        assert_utc_date(&e["created"]);
        assert_eq!(
            keys_of(e)
                .difference(&set(&["endDate", "completionDate", "eventId"]))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            set(&[
                "id",
                "type",
                "created",
                "applicationId",
                "campaignId",
                "achievementId",
                "achievementName",
                "integrationId",
                "progressTrackerId",
                "progress",
                "target",
                "startDate"
            ])
        );
    }

    // A day later, with no event at all, both iterations expire on time.
    clock.advance(chrono::Duration::days(1) + chrono::Duration::seconds(1));
    let entries = wait_for(app, seed.application, 6).await;
    let expired: Vec<_> = entries[4..].to_vec();
    let mut who: Vec<_> = expired
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["integrationId"].as_str().unwrap(),
            )
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        vec![
            ("achievement.expired", "bob"),
            ("achievement.expired", "jane")
        ]
    );
    for e in &expired {
        assert!(e.get("eventId").is_none(), "an expiry has no event: {e}");
        // Created at the period's end, a day after the start.
        let created = chrono::DateTime::parse_from_rfc3339(e["created"].as_str().unwrap()).unwrap();
        assert!(
            created.with_timezone(&chrono::Utc)
                >= started_at + chrono::Duration::days(1) - chrono::Duration::seconds(5)
        );
    }
    // Nothing more comes of waiting: each expiry is told once.
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        all_entries(app, Auth::Management, seed.application, "", 1000)
            .await
            .len(),
        6
    );
    // The next event opens a new iteration and tells only its start.
    applied(&app.event(key, ev("bob", daily, 1, "b2")).await);
    let entries = wait_for(app, seed.application, 7).await;
    assert_eq!(entries.len(), 7);
    assert_eq!(entries[6]["type"], "achievement.started");
}

#[actix_web::test]
async fn pages_follow_next_without_gaps_or_repeats_and_filter_by_type() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "two", "target": 2, "period": "1W", "recurrencePolicy": "on_completion"}))
        .await;
    // 7 customers × (started, completed, started) = 21 entries.
    for c in 0..7 {
        applied(
            &app.event(key, ev(&format!("c{c}"), ach, 3, &format!("e{c}")))
                .await,
        );
    }
    let all = wait_for(app, seed.application, 21).await;
    assert_eq!(all.len(), 21);
    for limit in [1, 2, 5, 20, 1000] {
        let paged = all_entries(app, Auth::Management, seed.application, "", limit).await;
        assert_eq!(paged, all, "limit {limit}");
    }
    let completed = all_entries(
        app,
        Auth::Integration(key),
        seed.application,
        "?type=achievement.completed",
        3,
    )
    .await;
    assert_eq!(completed.len(), 7);
    assert!(completed
        .iter()
        .all(|e| e["type"] == "achievement.completed"));
    let both = all_entries(
        app,
        Auth::Management,
        seed.application,
        "?type=achievement.completed,achievement.started",
        4,
    )
    .await;
    assert_eq!(both, all);

    // Reading from a cursor again gives the same entries; a cursor at the
    // end gives nothing until something new happens, then exactly that.
    let first = app
        .mgmt("GET", &events_path(seed.application, "?limit=5"), None)
        .await
        .json();
    let again = app
        .mgmt(
            "GET",
            &events_path(
                seed.application,
                &format!("?after={}", first["next"].as_str().unwrap()),
            ),
            None,
        )
        .await
        .json();
    assert_eq!(again["data"].as_array().unwrap()[..], all[5..]);
    let end = again["next"].as_str().unwrap().to_string();
    let empty = app
        .mgmt(
            "GET",
            &events_path(seed.application, &format!("?after={end}")),
            None,
        )
        .await
        .json();
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["hasMore"], json!(false));
    applied(&app.event(key, ev("late", ach, 1, "x")).await);
    wait_for(app, seed.application, 22).await;
    let after_end = app
        .mgmt(
            "GET",
            &events_path(
                seed.application,
                &format!("?after={}", empty["next"].as_str().unwrap()),
            ),
            None,
        )
        .await
        .json();
    assert_eq!(
        summary(after_end["data"].as_array().unwrap())[..],
        [(
            "achievement.started".to_string(),
            "late".to_string(),
            after_end["data"][0]["progressTrackerId"].as_u64().unwrap()
        )]
    );
}

#[actix_web::test]
async fn only_management_or_the_applications_own_key_may_read() {
    let seed = seeded("UTC").await;
    let app = &seed.app;
    let (other, other_key) = app.application("UTC").await;
    let path = events_path(seed.application, "");
    assert_eq!(
        app.raw("GET", &path, Auth::Integration(&seed.key), None)
            .await
            .status,
        200
    );
    assert_eq!(
        app.raw("GET", &path, Auth::Management, None).await.status,
        200
    );
    assert_error(
        &app.raw("GET", &path, Auth::Integration(&other_key), None)
            .await,
        403,
        None,
    );
    assert_error(&app.raw("GET", &path, Auth::None, None).await, 401, None);
    assert_error(
        &app.raw("GET", &path, Auth::Integration("nope"), None).await,
        401,
        None,
    );
    assert_eq!(
        app.raw(
            "GET",
            &events_path(other, ""),
            Auth::Integration(&other_key),
            None
        )
        .await
        .status,
        200
    );
    assert_error(
        &app.raw("GET", &events_path(999_999, ""), Auth::Management, None)
            .await,
        404,
        None,
    );
    for (query, parameter) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=x", "limit"),
        ("?after=bogus", "after"),
        ("?after=1_zz", "after"),
        ("?type=achievement.won", "type"),
    ] {
        assert_parameter(
            &app.raw(
                "GET",
                &events_path(seed.application, query),
                Auth::Management,
                None,
            )
            .await,
            400,
            parameter,
        );
    }
    assert_parameter(
        &app.raw(
            "GET",
            "/v1/applications/abc/achievement_events",
            Auth::Management,
            None,
        )
        .await,
        400,
        "applicationId",
    );
}

#[actix_web::test]
async fn an_erased_customers_entries_leave_the_feed() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "one", "target": 1, "period": "1W"}))
        .await;
    for c in ["keep", "erase"] {
        applied(&app.event(key, ev(c, ach, 1, c)).await);
    }
    wait_for(app, seed.application, 4).await;
    let a = app
        .integ(key, "DELETE", "/v1/customer_data/erase", None)
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    for _ in 0..100 {
        let all = all_entries(app, Auth::Management, seed.application, "", 100).await;
        if all.len() == 2 {
            assert!(all.iter().all(|e| e["integrationId"] == "keep"), "{all:?}");
            // Starting again tells a new start.
            applied(&app.event(key, ev("erase", ach, 1, "again")).await);
            let all = wait_for(app, seed.application, 4).await;
            assert_eq!(
                all.iter().filter(|e| e["integrationId"] == "erase").count(),
                2
            );
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the erased customer's entries stayed");
}

#[actix_web::test]
async fn a_cursor_older_than_the_retention_gets_410_never_a_silent_skip() {
    let clock = Clock::manual(now_s());
    let app = spawn_app_with_clock(clock.clone(), |s| s.feed_retention_secs = 3600).await;
    let seed = Seeded::on(app, "UTC", json!({})).await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "one", "target": 1, "period": "1W"}))
        .await;
    applied(&app.event(key, ev("old", ach, 1, "o")).await);
    let first = wait_for(app, seed.application, 2).await;
    let page = app
        .mgmt("GET", &events_path(seed.application, "?limit=1"), None)
        .await
        .json();
    let old_cursor = page["next"].as_str().unwrap().to_string();
    assert_eq!(first.len(), 2);

    // Two hours later the old entries are past the retention (applied by
    // the writer at its next group).
    clock.advance(chrono::Duration::hours(2));
    applied(&app.event(key, ev("new", ach, 1, "n")).await);
    let mut kept = Vec::new();
    for _ in 0..100 {
        kept = all_entries(app, Auth::Management, seed.application, "", 100).await;
        if kept.iter().all(|e| e["integrationId"] == "new") && kept.len() == 2 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        summary(&kept)
            .iter()
            .map(|r| r.1.as_str())
            .collect::<Vec<_>>(),
        ["new", "new"]
    );
    let gone = app
        .mgmt(
            "GET",
            &events_path(seed.application, &format!("?after={old_cursor}")),
            None,
        )
        .await;
    assert_parameter(&gone, 410, "after");
    assert!(
        gone.json()["message"]
            .as_str()
            .unwrap()
            .contains("retention"),
        "{}",
        gone.text
    );
    // The stream refuses it the same way, before it starts.
    let url = format!("{}{}", app.base, events_path(seed.application, ""));
    let res = app
        .client
        .get(&url)
        .insert_header(("Authorization", format!("ApiKey-v1 {key}")))
        .insert_header(("Accept", "text/event-stream"))
        .insert_header(("Last-Event-ID", old_cursor.clone()))
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status().as_u16(), 410);
}
