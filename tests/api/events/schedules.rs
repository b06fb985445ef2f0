//! When an achievement takes progress: the campaign's state and bounds, the
//! achievement's schedule (fixed start, end date) and fixed-schedule windows.

use achievements_engine::clock::Clock;
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn events_are_rejected_when_the_campaign_is_not_running() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let disabled = app
        .campaign(application, json!({"state": "disabled"}))
        .await;
    let later = app
        .campaign(
            application,
            json!({"startTime": rfc(now_s() + Duration::hours(1))}),
        )
        .await;
    let over = app
        .campaign(
            application,
            json!({"startTime": rfc(now_s() - Duration::hours(2)),
                   "endTime": rfc(now_s() - Duration::hours(1))}),
        )
        .await;
    for (campaign, name) in [(disabled, "off"), (later, "later"), (over, "over")] {
        app.achievement(application, campaign, json!({"name": name, "period": "1D"}))
            .await;
        let a = app
            .event(
                &key,
                json!({"integrationId": "c", "achievementName": name, "delta": 1}),
            )
            .await;
        assert_rejected(&a, "campaign_not_running");
    }
    // Enabling the campaign lets events in.
    let put = app
        .mgmt(
            "PUT",
            &format!("/v1/applications/{application}/campaigns/{disabled}"),
            Some(json!({"state": "enabled"})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementName": "off", "delta": 1}),
        )
        .await,
    );
}

#[actix_web::test]
async fn events_outside_the_schedule_are_rejected() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.clone());
    let anchor = now_s() - Duration::hours(1);
    seed.achievement(
        json!({"name": "fixed", "period": "1D", "recurrencePolicy": "on_expiration",
               "activationPolicy": "fixed_schedule", "fixedStartDate": rfc(anchor)}),
    )
    .await;
    let before = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "fixed", "delta": 1,
                   "timestamp": rfc(anchor - Duration::seconds(1))}),
        )
        .await;
    assert_rejected(&before, "outside_schedule");
    let at_anchor = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementName": "fixed", "delta": 1,
                   "timestamp": rfc(anchor)}),
        )
        .await,
    );
    assert_eq!(at_anchor["effects"][0]["props"]["startDate"], rfc(anchor));

    // endDate shortly ahead: at and after it is outside (within the clock skew).
    let end = now_s() + Duration::seconds(90);
    let ending = seed
        .achievement(json!({"name": "ending", "period": "1D", "endDate": rfc(end)}))
        .await;
    for t in [end, end + Duration::seconds(30)] {
        let a = app
            .event(
                &key,
                json!({"integrationId": "c", "achievementName": "ending", "delta": 1,
                       "timestamp": rfc(t)}),
            )
            .await;
        assert_rejected(&a, "outside_schedule");
    }
    assert_eq!(app.progress(&key, "c", id_of(&ending)).await, None);
    // Just before it is fine, and the period is cut at endDate.
    let ok = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementName": "ending", "delta": 1}),
        )
        .await,
    );
    assert_eq!(ok["effects"][0]["props"]["endDate"], rfc(end), "{ok}");

    // endDate already passed: an event without a timestamp is outside.
    seed.achievement(
        json!({"name": "ended", "period": "1D", "endDate": rfc(now_s() - Duration::seconds(60))}),
    )
    .await;
    let a = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "ended", "delta": 1}),
        )
        .await;
    assert_rejected(&a, "outside_schedule");
}

#[actix_web::test]
async fn fixed_schedule_windows_follow_the_anchor() {
    // Time stands still unless moved: windows are exact, nothing sleeps.
    let anchor = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
    let clock = Clock::manual(anchor + Duration::seconds(13));
    let app = spawn_app_with_clock(clock.clone(), |_| {}).await;
    let seed = Seeded::on(app, "UTC", json!({})).await;
    let id = seed
        .achievement_id(json!({"name": "windows", "period": "4s", "target": 10,
                               "recurrencePolicy": "on_expiration",
                               "activationPolicy": "fixed_schedule",
                               "fixedStartDate": rfc(anchor)}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let period = Duration::seconds(4);
    // Now is 13 s after the anchor: window 3, [12 s, 16 s).
    let window_end = anchor + period * 4;
    let t = clock.now();
    let r = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 1, "timestamp": rfc(t)}),
        )
        .await,
    );
    // The customer's start is their first progress; the end is the window's.
    assert_eq!(r["effects"][0]["props"]["startDate"], rfc(t), "{r}");
    assert_eq!(r["effects"][0]["props"]["endDate"], rfc(window_end), "{r}");
    // An event dated in a window that is already over lands there (its own
    // time decides; no lateness bound is set), and that window is expired.
    let old = applied(
        &app.event(
            &key,
            json!({"integrationId": "d", "achievementId": id, "delta": 1,
                   "timestamp": rfc(anchor + Duration::seconds(1))}),
        )
        .await,
    );
    assert_eq!(
        old["effects"][0]["props"]["endDate"],
        rfc(anchor + period),
        "{old}"
    );
    let h = app.history(&key, "d", id, "").await;
    assert_eq!(h["data"][0]["status"], "expired", "{h}");
    // Past the window's end: expired as of now, and the next event opens
    // the window that contains it, computed from the anchor.
    clock.set(window_end + Duration::seconds(5));
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["data"][0]["status"], "expired", "{h}");
    let r = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 1}),
        )
        .await,
    );
    assert_eq!(
        r["effects"][0]["props"]["endDate"],
        rfc(anchor + period * 6),
        "{r}"
    );
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["totalResultSize"], 2, "{h}");
    assert_eq!(h["data"][0]["status"], "inprogress");
    assert_eq!(h["data"][1]["status"], "expired");
    assert_eq!(h["data"][1]["endDate"], rfc(window_end));
    assert_eq!(h["data"][1]["startDate"], rfc(t));
}
