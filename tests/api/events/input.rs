//! Bad input and transport: malformed events and rollbacks get a 400 with a
//! pointer, oversized bodies 413, wrong content types and methods, and a full
//! queue 429 with Retry-After.

use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn malformed_events_get_400_with_a_pointer() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "strict", "period": "1D", "target": 100}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let long_customer = "c".repeat(1001);
    let long_event = "e".repeat(129);
    let cases: Vec<(String, &str)> = vec![
        (
            r#"{"integrationId": "c", "achievementId": "#.to_string(),
            "",
        ),
        (
            format!(
                r#"{{"integrationId": "c", "achievementId": {id}, "delta": 1, "colour": "red"}}"#
            ),
            "/colour",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": {id}, "delta": "5"}}"#),
            "/delta",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": {id}, "delta": 0}}"#),
            "/delta",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": {id}, "delta": -1}}"#),
            "/delta",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": {id}, "delta": null}}"#),
            "/delta",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": {id}}}"#),
            "/delta",
        ),
        (
            format!(r#"{{"achievementId": {id}, "delta": 1}}"#),
            "/integrationId",
        ),
        (
            format!(r#"{{"integrationId": "", "achievementId": {id}, "delta": 1}}"#),
            "/integrationId",
        ),
        (
            format!(r#"{{"integrationId": 7, "achievementId": {id}, "delta": 1}}"#),
            "/integrationId",
        ),
        (
            format!(r#"{{"integrationId": "{long_customer}", "achievementId": {id}, "delta": 1}}"#),
            "/integrationId",
        ),
        (
            format!(
                r#"{{"integrationId": "c", "achievementId": {id}, "delta": 1, "eventId": "{long_event}"}}"#
            ),
            "/eventId",
        ),
        (
            format!(
                r#"{{"integrationId": "c", "achievementId": {id}, "delta": 1, "eventId": ""}}"#
            ),
            "/eventId",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": {id}, "delta": 1e400}}"#),
            "/delta",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": {id}, "delta": 1e30}}"#),
            "/delta",
        ),
        (
            format!(
                r#"{{"integrationId": "c", "achievementId": {id}, "delta": 1, "timestamp": "yesterday"}}"#
            ),
            "/timestamp",
        ),
        (
            format!(
                r#"{{"integrationId": "c", "achievementId": {id}, "delta": 1, "timestamp": "2024-01-01 10:00:00"}}"#
            ),
            "/timestamp",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": "{id}", "delta": 1}}"#),
            "/achievementId",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": -{id}, "delta": 1}}"#),
            "/achievementId",
        ),
        (
            r#"{"integrationId": "c", "delta": 1}"#.to_string(),
            "/achievementId",
        ),
        (
            format!(
                r#"{{"integrationId": "c", "achievementId": {id}, "achievementName": "other", "delta": 1}}"#
            ),
            "/achievementName",
        ),
        (
            format!(r#"[{{"integrationId": "c", "achievementId": {id}, "delta": 1}}]"#),
            "",
        ),
        (
            format!(r#"{{"integrationId": "c", "achievementId": {id}, "delta": 1}} trailing"#),
            "",
        ),
        (String::new(), ""),
    ];
    for (body, pointer) in &cases {
        let a = app
            .raw(
                "POST",
                "/v1/progress_events",
                Auth::Integration(&key),
                Some(body),
            )
            .await;
        // "achievementName": "other" names no achievement: 404 is acceptable too.
        if body.contains(r#""achievementName": "other""#) {
            assert!(a.status == 400 || a.status == 404, "{body}: {}", a.text);
            continue;
        }
        // A syntax error points wherever the parser stopped; only check the shape.
        let pointer = (!pointer.is_empty()).then_some(*pointer);
        assert_error(&a, 400, pointer);
        app.healthy().await;
    }
    assert_eq!(app.progress(&key, "c", id).await, None);

    // Unknown achievement: 404; by name too.
    let a = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementId": id + 1000, "delta": 1}),
        )
        .await;
    assert_error(&a, 404, Some("/achievementId"));
    let a = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "missing", "delta": 1}),
        )
        .await;
    assert_error(&a, 404, Some("/achievementName"));

    // Another application's achievement, by id: 403; by name it is not found.
    let (other_app, other_key) = app.application("UTC").await;
    let other_campaign = app.campaign(other_app, json!({})).await;
    let theirs = app
        .achievement(
            other_app,
            other_campaign,
            json!({"name": "theirs", "period": "1D"}),
        )
        .await;
    let a = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementId": id_of(&theirs), "delta": 1}),
        )
        .await;
    assert_error(&a, 403, None);
    let a = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "theirs", "delta": 1}),
        )
        .await;
    assert_error(&a, 404, Some("/achievementName"));
    let a = app
        .rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id_of(&theirs), "eventId": "x"}),
        )
        .await;
    assert_error(&a, 403, None);
    assert_eq!(app.progress(&other_key, "c", id_of(&theirs)).await, None);

    // Too large.
    let huge = format!(
        r#"{{"integrationId": "c", "achievementId": {id}, "delta": 1, "eventId": "{}"}}"#,
        "x".repeat(300 * 1024)
    );
    let a = app
        .raw(
            "POST",
            "/v1/progress_events",
            Auth::Integration(&key),
            Some(&huge),
        )
        .await;
    assert_error(&a, 413, None);
    app.healthy().await;

    // Rollback bodies are checked as strictly.
    let a = app
        .rollback(&key, json!({"integrationId": "c", "achievementId": id}))
        .await;
    assert_error(&a, 400, Some("/eventId"));
    let a = app
        .rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "x", "delta": 1}),
        )
        .await;
    assert_error(&a, 400, Some("/delta"));
    let a = app
        .rollback(&key, json!({"integrationId": "c", "eventId": "x"}))
        .await;
    assert_error(&a, 400, Some("/achievementId"));

    // Still serving.
    app.healthy().await;
    applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 1}),
        )
        .await,
    );
}

#[actix_web::test]
async fn transport_level_refusals() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "tt", "period": "1D", "target": 10}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    // A batch body over its 8 MiB limit.
    let padding = "x".repeat(990);
    let events: Vec<Value> = (0..9_000)
        .map(
            |i| json!({"integrationId": format!("c{i}{padding}"), "achievementId": id, "delta": 1}),
        )
        .collect();
    let body = json!({ "events": events }).to_string();
    assert!(body.len() > 8 * 1024 * 1024);
    let r = app
        .raw(
            "POST",
            "/v1/progress_events/batch",
            Auth::Integration(&key),
            Some(&body),
        )
        .await;
    assert_error(&r, 413, None);
    app.healthy().await;
    // Not JSON.
    let url = format!("{}/v1/progress_events", app.base);
    let mut res = app
        .client
        .post(url)
        .insert_header(("Authorization", format!("ApiKey-v1 {key}")))
        .insert_header(("Content-Type", "text/plain"))
        .send_body(json!({"integrationId": "c", "achievementId": id, "delta": 1}).to_string())
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 415);
    let _ = res.body().await;
    // Wrong method.
    let r = app
        .raw("GET", "/v1/progress_events", Auth::Integration(&key), None)
        .await;
    assert!(r.status == 404 || r.status == 405, "{}", r.status);
    app.healthy().await;
    assert_eq!(app.progress(&key, "c", id).await, None);
}

#[actix_web::test]
async fn a_full_queue_answers_429_with_retry_after_and_loses_nothing_accepted() {
    let app = spawn_app_with(|s| s.queue_capacity = 1).await;
    let seed = Seeded::on(app, "UTC", json!({})).await;
    seed.achievement(
        json!({"name": "busy", "target": 1000000, "period": "1D", "recurrencePolicy": "on_expiration"}),
    )
    .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let sends = (0..64).map(|i| {
        app.event(
            &key,
            json!({"integrationId": format!("c{}", i % 2), "achievementName": "busy", "delta": 1}),
        )
    });
    let answers = futures_util::future::join_all(sends).await;
    let accepted = answers.iter().filter(|a| a.status == 200).count();
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(accepted + refused.len(), 64, "only 200 or 429");
    assert!(
        !refused.is_empty(),
        "64 concurrent writes must overflow a queue of 1"
    );
    assert!(accepted > 0);
    for a in &refused {
        assert_error(a, 429, None);
        assert_eq!(a.retry_after.as_deref(), Some("1"));
    }
    let mut total = 0u64;
    for c in ["c0", "c1"] {
        let h = app
            .integ(
                &key,
                "GET",
                &format!("/v1/customer_profiles/{c}/achievements"),
                None,
            )
            .await
            .json();
        total += h["data"][0]["currentProgress"]["progress"]
            .as_u64()
            .unwrap_or(0);
    }
    assert_eq!(total, accepted as u64, "every accepted event counted once");
}
