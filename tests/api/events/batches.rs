//! `POST /v1/progress_events/batch`: counts and results in order, and bad
//! batches refused whole.

use chrono::Duration;
use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn batch_reports_counts_and_results_in_order() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "batched", "period": "1D", "target": 100,
                               "recurrencePolicy": "on_expiration"}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let events = json!({"events": [
        {"integrationId": "a", "achievementId": id, "delta": 1, "eventId": "x"},
        {"integrationId": "b", "achievementName": "batched", "delta": 2},
        {"integrationId": "a", "achievementId": id, "delta": 1, "eventId": "x"},
        {"integrationId": "a", "achievementId": id, "delta": 1,
         "timestamp": rfc(now_s() + Duration::minutes(10))},
        {"integrationId": "a", "achievementId": id, "delta": 4},
    ]});
    let r = app.batch(&key, "", events).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = r.json();
    assert_eq!(r["applied"], 3, "{r}");
    assert_eq!(r["duplicates"], 1, "{r}");
    assert_eq!(r["rejected"], 1, "{r}");
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    let outcomes: Vec<_> = results.iter().map(|x| x["outcome"].clone()).collect();
    assert_eq!(
        outcomes,
        [
            json!("applied"),
            json!("applied"),
            json!("duplicate"),
            json!("rejected"),
            json!("applied")
        ],
        "{r}"
    );
    assert_eq!(results[0]["effects"], results[2]["effects"]);
    assert_eq!(results[3]["reason"], "future_timestamp");
    assert_eq!(
        effect_types(&results[1]),
        ["startAchievementProgress", "increaseAchievementProgress"]
    );
    assert_eq!(results[1]["effects"][1]["props"]["value"], json!(2));
    assert_eq!(results[4]["effects"][0]["props"]["value"], json!(5));
    assert_eq!(app.progress(&key, "a", id).await, Some(json!(5)));
    assert_eq!(app.progress(&key, "b", id).await, Some(json!(2)));

    // Counts only.
    let r = app
        .batch(
            &key,
            "?results=none",
            json!({"events": [
                {"integrationId": "a", "achievementId": id, "delta": 1},
                {"integrationId": "a", "achievementId": id, "delta": 1, "eventId": "x"},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = r.json();
    assert_eq!(
        r,
        json!({"applied": 1, "duplicates": 1, "rejected": 0}),
        "{r}"
    );
    let r = app
        .batch(
            &key,
            "?results=all",
            json!({"events": [{"integrationId": "a", "achievementId": id, "delta": 1}]}),
        )
        .await
        .json();
    assert_eq!(r["results"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(app.progress(&key, "a", id).await, Some(json!(7)));

    // An empty batch is fine.
    let r = app.batch(&key, "", json!({"events": []})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"applied": 0, "duplicates": 0, "rejected": 0, "results": []})
    );
}

#[actix_web::test]
async fn bad_batches_are_refused_whole() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "batched", "period": "1D", "target": 100}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let ev = |d: i64| json!({"integrationId": "a", "achievementId": id, "delta": d});

    let bad = app
        .batch(&key, "", json!({"events": [ev(1), ev(1), ev(-1), ev(1)]}))
        .await;
    assert_error(&bad, 400, Some("/events/2/delta"));
    assert_eq!(app.progress(&key, "a", id).await, None);
    let bad = app
        .batch(
            &key,
            "",
            json!({"events": [ev(1), {"integrationId": "a", "delta": 1}]}),
        )
        .await;
    assert_error(&bad, 400, Some("/events/1/achievementId"));
    let bad = app
        .batch(
            &key,
            "",
            json!({"events": [ev(1), {"integrationId": "a", "achievementId": id}]}),
        )
        .await;
    assert_error(&bad, 400, Some("/events/1/delta"));
    let bad = app
        .batch(
            &key,
            "",
            json!({"events": [ev(1), ev(1), ev(1), {"integrationId": "a", "achievementId": id + 1000, "delta": 1}]}),
        )
        .await;
    assert_error(&bad, 404, Some("/events/3/achievementId"));
    assert_eq!(app.progress(&key, "a", id).await, None);

    let bad = app
        .batch(&key, "?results=bogus", json!({"events": [ev(1)]}))
        .await;
    assert_error(&bad, 400, None);
    assert_eq!(bad.json()["errors"][0]["source"]["parameter"], "results");
    assert_eq!(app.progress(&key, "a", id).await, None);

    let bad = app.batch(&key, "", json!({"evnts": []})).await;
    assert_error(&bad, 400, Some("/evnts"));
    let bad = app.batch(&key, "", json!([ev(1)])).await;
    assert_error(&bad, 400, None);

    let many: Vec<Value> = (0..10_001).map(|_| ev(1)).collect();
    let bad = app.batch(&key, "", json!({ "events": many })).await;
    assert_error(&bad, 400, Some("/events"));
    assert_eq!(app.progress(&key, "a", id).await, None);

    // 10 000 is allowed.
    let max: Vec<Value> = (0..10_000).map(|_| ev(1)).collect();
    let ok = app
        .batch(&key, "?results=none", json!({ "events": max }))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["applied"], 10_000);
    assert_eq!(app.progress(&key, "a", id).await, Some(json!(10000)));
    app.healthy().await;
}
