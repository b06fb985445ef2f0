//! Progress rollbacks: what is refused, rollback after completion when
//! allowed, clipped progress, and on_completion iterations.

use chrono::Duration;
use serde_json::json;

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn rollback_rejections() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "strict", "period": "1D", "target": 5}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let unknown = app
        .rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "never"}),
        )
        .await;
    assert_rejected(&unknown, "unknown_event");

    for (e, d) in [("e1", 1), ("e2", 1)] {
        applied(
            &app.event(
                &key,
                json!({"integrationId": "c", "achievementId": id, "delta": d, "eventId": e}),
            )
            .await,
        );
    }
    let unknown = app
        .rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "never"}),
        )
        .await;
    assert_rejected(&unknown, "unknown_event");
    // Event ids belong to one customer.
    let other = app
        .rollback(
            &key,
            json!({"integrationId": "someone_else", "achievementId": id, "eventId": "e1"}),
        )
        .await;
    assert_rejected(&other, "unknown_event");

    let first = applied(
        &app.rollback(
            &key,
            json!({"integrationId": "c", "achievementName": "strict", "eventId": "e1"}),
        )
        .await,
    );
    assert_eq!(
        first["effects"][0]["props"]["currentProgress"],
        json!(1),
        "{first}"
    );
    let again = app
        .rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "e1"}),
        )
        .await;
    assert_rejected(&again, "already_rolled_back");
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(1)));

    // Completed, allowRollbackAfterCompletion false.
    let done = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 4, "eventId": "e3"}),
        )
        .await,
    );
    assert_eq!(done["effects"][0]["props"]["isJustCompleted"], true);
    for e in ["e3", "e2"] {
        let refused = app
            .rollback(
                &key,
                json!({"integrationId": "c", "achievementId": id, "eventId": e}),
            )
            .await;
        assert_rejected(&refused, "rollback_not_allowed");
    }
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["data"][0]["status"], "completed");
    assert_eq!(h["data"][0]["progress"], json!(5));
}

#[actix_web::test]
async fn rollback_after_completion_reopens_the_iteration_when_allowed() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "lenient", "period": "1D", "target": 5,
                               "allowRollbackAfterCompletion": true}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let send = |e: &str, d: i64| json!({"integrationId": "c", "achievementId": id, "delta": d, "eventId": e});
    applied(&app.event(&key, send("r1", 3)).await);
    let done = applied(&app.event(&key, send("r2", 2)).await);
    assert_eq!(done["effects"][0]["props"]["isJustCompleted"], true);
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["data"][0]["status"], "completed", "{h}");
    assert!(h["data"][0]["completionDate"].is_string(), "{h}");

    let rb = applied(
        &app.rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "r2"}),
        )
        .await,
    );
    let props = &rb["effects"][0]["props"];
    assert_eq!(props["decreaseProgressBy"], json!(2));
    assert_eq!(props["currentProgress"], json!(3));
    assert_eq!(props["target"], json!(5));
    assert_eq!(
        props["progressTrackerId"],
        done["effects"][0]["props"]["progressTrackerId"]
    );
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["totalResultSize"], 1, "{h}");
    assert_eq!(h["data"][0]["status"], "inprogress", "{h}");
    assert_eq!(h["data"][0]["progress"], json!(3));
    assert!(h["data"][0].get("completionDate").is_none(), "{h}");
    let list = app
        .list(&key, "c", "?currentProgressStatus=inprogress")
        .await;
    assert_eq!(list["totalResultSize"], 1, "{list}");

    // A retry of the rolled-back event is still a duplicate, not re-applied.
    let retry = app.event(&key, send("r2", 2)).await.json();
    assert_eq!(retry["outcome"], "duplicate", "{retry}");
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(3)));
    // New progress completes it again.
    let again = applied(&app.event(&key, send("r3", 2)).await);
    assert_eq!(again["effects"][0]["props"]["isJustCompleted"], true);
    assert_eq!(again["effects"][0]["props"]["value"], json!(5));
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["data"][0]["status"], "completed");
}

#[actix_web::test]
async fn end_progress_on_target_clips_and_rollback_takes_back_what_was_added() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "capped", "period": "1D", "target": 5,
                               "endProgressOnTarget": true, "allowRollbackAfterCompletion": true}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let send = |e: &str, d: i64| json!({"integrationId": "c", "achievementId": id, "delta": d, "eventId": e});
    applied(&app.event(&key, send("a", 3)).await);
    let r = applied(&app.event(&key, send("b", 4)).await);
    let inc = &r["effects"][0]["props"];
    assert_eq!(inc["delta"], json!(2), "{r}");
    assert_eq!(inc["value"], json!(5), "{r}");
    assert_eq!(inc["isJustCompleted"], true, "{r}");
    let r = applied(&app.event(&key, send("c", 1)).await);
    let inc = &r["effects"][0]["props"];
    assert_eq!(inc["delta"], json!(0), "{r}");
    assert_eq!(inc["value"], json!(5), "{r}");
    assert_eq!(inc["isJustCompleted"], false, "{r}");
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(5)));
    // Rolling back "b" subtracts the 2 it added, not the 4 it asked for.
    let rb = applied(
        &app.rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "b"}),
        )
        .await,
    );
    assert_eq!(
        rb["effects"][0]["props"]["decreaseProgressBy"],
        json!(2),
        "{rb}"
    );
    assert_eq!(
        rb["effects"][0]["props"]["currentProgress"],
        json!(3),
        "{rb}"
    );
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["data"][0]["status"], "inprogress", "{h}");
    assert_eq!(h["data"][0]["progress"], json!(3));
}

#[actix_web::test]
async fn on_completion_rollbacks_and_late_events() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "loop", "target": 3, "recurrencePolicy": "on_completion"}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let base = now_s() - Duration::seconds(60);
    let send = |e: &str, d: i64, s: i64| {
        json!({"integrationId": "c", "achievementId": id, "delta": d, "eventId": e,
               "timestamp": rfc(base + Duration::seconds(s))})
    };
    applied(&app.event(&key, send("a", 1, 0)).await);
    // Rolling back progress that did not complete is fine.
    applied(
        &app.rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "a"}),
        )
        .await,
    );
    let done = applied(&app.event(&key, send("b", 3, 10)).await);
    // It lands in the open iteration (progress 0 after the rollback).
    assert_eq!(
        effect_types(&done),
        ["increaseAchievementProgress"],
        "{done}"
    );
    assert_eq!(
        done["effects"][0]["props"]["isJustCompleted"], true,
        "{done}"
    );
    // An event that completed an iteration cannot be taken back.
    let rb = app
        .rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "b"}),
        )
        .await;
    assert_rejected(&rb, "rollback_not_allowed");
    // Before the completion is late: the completed iteration is closed.
    let late = app.event(&key, send("c", 1, 5)).await;
    assert_rejected(&late, "late");
    let next = applied(&app.event(&key, send("d", 1, 20)).await);
    assert_eq!(
        effect_types(&next),
        ["startAchievementProgress", "increaseAchievementProgress"],
        "{next}"
    );
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["totalResultSize"], 2, "{h}");
    assert_eq!(h["data"][1]["progress"], json!(3));
    assert_eq!(h["data"][0]["progress"], json!(1));

    // Too many completions in one event: a 400 naming delta, nothing changes.
    let big = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 100_000}),
        )
        .await;
    assert_error(&big, 400, Some("/delta"));
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["totalResultSize"], 2, "{h}");
    // In a batch it is a rejected entry among applied ones.
    let b = app
        .batch(
            &key,
            "",
            json!({"events": [
                {"integrationId": "c", "achievementId": id, "delta": 100_000},
                {"integrationId": "c", "achievementId": id, "delta": 1},
            ]}),
        )
        .await;
    assert_eq!(b.status, 200, "{}", b.text);
    let b = b.json();
    assert_eq!(b["applied"], 1, "{b}");
    assert_eq!(b["rejected"], 1, "{b}");
    assert_eq!(b["results"][0]["outcome"], "rejected", "{b}");
    assert_eq!(b["results"][1]["outcome"], "applied", "{b}");
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(2)));
}
