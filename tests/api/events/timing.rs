//! Event time and time passing: future and late timestamps, one-time
//! achievements after their period, and expiry without any further event.

use achievements_engine::clock::Clock;
use chrono::{DateTime, Duration};
use serde_json::json;

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn future_and_late_timestamps_are_rejected() {
    let seed = seeded("UTC").await;
    let a = seed
        .achievement(json!({"name": "timely", "period": "1D", "target": 100,
                            "recurrencePolicy": "on_expiration"}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let future = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "timely", "delta": 1,
                   "timestamp": rfc(now_s() + Duration::minutes(10))}),
        )
        .await;
    assert_rejected(&future, "future_timestamp");
    assert_eq!(app.progress(&key, "c", id_of(&a)).await, None);

    let t = now_s() - Duration::seconds(60);
    applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementName": "timely", "delta": 1,
                   "timestamp": rfc(t)}),
        )
        .await,
    );
    let late = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "timely", "delta": 1,
                   "timestamp": rfc(t - Duration::minutes(10))}),
        )
        .await;
    assert_rejected(&late, "late");
    // Same instant as the start, and later ones, land.
    applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementName": "timely", "delta": 1,
                   "timestamp": rfc(t)}),
        )
        .await,
    );
    // Timestamps with an offset are understood.
    applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementName": "timely", "delta": 1,
                   "timestamp": (t + Duration::seconds(5))
                       .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
                       .to_rfc3339()}),
        )
        .await,
    );
    assert_eq!(app.progress(&key, "c", id_of(&a)).await, Some(json!(3)));
}

#[actix_web::test]
async fn one_time_achievements_refuse_progress_after_their_period() {
    let clock = Clock::manual(now_s());
    let app = spawn_app_with_clock(clock.clone(), |_| {}).await;
    let seed = Seeded::on(app, "UTC", json!({})).await;
    let id = seed
        .achievement_id(json!({"name": "quick", "period": "2s", "target": 5}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    applied(
        &app.event(
            &key,
            json!({"integrationId": "done", "achievementId": id, "delta": 5}),
        )
        .await,
    );
    applied(
        &app.event(
            &key,
            json!({"integrationId": "partial", "achievementId": id, "delta": 2, "eventId": "p1"}),
        )
        .await,
    );
    clock.advance(Duration::milliseconds(2500));
    let done = app
        .event(
            &key,
            json!({"integrationId": "done", "achievementId": id, "delta": 1}),
        )
        .await;
    assert_rejected(&done, "already_completed");
    let partial = app
        .event(
            &key,
            json!({"integrationId": "partial", "achievementName": "quick", "delta": 1}),
        )
        .await;
    assert_rejected(&partial, "expired");
    let rb = app
        .rollback(
            &key,
            json!({"integrationId": "partial", "achievementId": id, "eventId": "p1"}),
        )
        .await;
    assert_rejected(&rb, "period_ended");
    let h = app.history(&key, "partial", id, "").await;
    assert_eq!(h["totalResultSize"], 1, "{h}");
    assert_eq!(h["data"][0]["status"], "expired");
    assert_eq!(h["data"][0]["progress"], json!(2));
    let h = app.history(&key, "done", id, "").await;
    assert_eq!(h["data"][0]["status"], "completed", "{h}");
    assert_eq!(h["data"][0]["progress"], json!(5));
}

#[actix_web::test]
async fn expiry_shows_without_any_further_event() {
    let clock = Clock::manual(now_s());
    let app = spawn_app_with_clock(clock.clone(), |_| {}).await;
    let seed = Seeded::on(app, "UTC", json!({})).await;
    let id = seed
        .achievement_id(json!({"name": "brief", "period": "2s", "target": 5,
                               "recurrencePolicy": "on_expiration"}))
        .await;
    let (app, key, application, campaign) =
        (&seed.app, seed.key.clone(), seed.application, seed.campaign);
    let first = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 2}),
        )
        .await,
    );
    let start =
        DateTime::parse_from_rfc3339(first["effects"][0]["props"]["startDate"].as_str().unwrap())
            .unwrap();
    let end =
        DateTime::parse_from_rfc3339(first["effects"][0]["props"]["endDate"].as_str().unwrap())
            .unwrap();
    assert_eq!(end - start, Duration::seconds(2));
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["data"][0]["status"], "inprogress", "{h}");

    clock.advance(Duration::milliseconds(2500));
    // The shard's timer records the expiry on its own (within a tick).
    let mut fired = false;
    for _ in 0..30 {
        let m = app.raw("GET", "/metrics", Auth::None, None).await.text;
        if m.contains("achv_expiries_total 1") {
            fired = true;
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(fired, "no expiry recorded by the timer");
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["totalResultSize"], 1, "{h}");
    assert_eq!(h["data"][0]["status"], "expired", "{h}");
    assert_eq!(h["data"][0]["progress"], json!(2));
    let h = app.history(&key, "c", id, "?progressStatus=expired").await;
    assert_eq!(h["totalResultSize"], 1, "{h}");
    let list = app.list(&key, "c", "").await;
    assert_eq!(
        list["data"][0]["currentProgress"]["status"], "expired",
        "{list}"
    );
    let export = app
        .mgmt(
            "GET",
            &format!(
                "/v1/applications/{application}/campaigns/{campaign}/achievements/{id}/export"
            ),
            None,
        )
        .await;
    assert!(export.text.contains(",expired,"), "{}", export.text);

    // on_expiration: the next event opens a new iteration.
    let next = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 1}),
        )
        .await,
    );
    assert_eq!(
        effect_types(&next),
        ["startAchievementProgress", "increaseAchievementProgress"]
    );
    assert_eq!(next["effects"][1]["props"]["value"], json!(1));
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["totalResultSize"], 2, "{h}");
    assert_eq!(h["data"][0]["status"], "inprogress");
    assert_eq!(h["data"][1]["status"], "expired");
}
