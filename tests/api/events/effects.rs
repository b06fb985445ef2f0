//! Single progress events and the effects they answer with: the effect
//! shapes, on_completion overshoot across iterations and exact decimals.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn an_event_opens_and_completes_an_iteration() {
    let seed = seeded("UTC").await;
    seed.achievement(json!({"name": "coffee", "target": 0.3, "period": "1W"}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let first = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementName": "coffee", "delta": 0.1}),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementName": "coffee", "delta": 0.2}),
        )
        .await
        .json();
    assert_eq!(second["outcome"], "applied");
    assert_eq!(second["effects"][0]["props"]["value"], json!(0.3));
    assert_eq!(second["effects"][0]["props"]["isJustCompleted"], true);
}

#[actix_web::test]
async fn effects_have_talon_one_shapes() {
    let seed = seeded("UTC").await;
    let a = seed
        .achievement(json!({"name": "shape", "target": 5, "period": "1D",
                            "recurrencePolicy": "on_expiration",
                            "allowRollbackAfterCompletion": true}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let r = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementName": "shape", "delta": 2, "eventId": "e1"}),
        )
        .await,
    );
    assert_eq!(keys_of(&r), set(&["outcome", "effects"]), "{r}");
    let start = &r["effects"][0];
    assert_eq!(keys_of(start), set(&["effectType", "props"]));
    assert_eq!(start["effectType"], "startAchievementProgress");
    assert_eq!(
        keys_of(&start["props"]),
        set(&[
            "achievementId",
            "achievementName",
            "progressTrackerId",
            "target",
            "startDate",
            "endDate"
        ]),
        "{r}"
    );
    assert_eq!(start["props"]["achievementId"], id_of(&a));
    assert!(start["props"]["progressTrackerId"].is_u64());
    assert_utc_date(&start["props"]["startDate"]);
    assert_utc_date(&start["props"]["endDate"]);
    let s = DateTime::parse_from_rfc3339(start["props"]["startDate"].as_str().unwrap()).unwrap();
    let e = DateTime::parse_from_rfc3339(start["props"]["endDate"].as_str().unwrap()).unwrap();
    assert_eq!(e - s, Duration::days(1));
    assert!((Utc::now() - s.with_timezone(&Utc)).num_seconds().abs() < 30);
    let inc = &r["effects"][1];
    assert_eq!(inc["effectType"], "increaseAchievementProgress");
    assert_eq!(
        keys_of(&inc["props"]),
        set(&[
            "achievementId",
            "achievementName",
            "progressTrackerId",
            "delta",
            "value",
            "target",
            "isJustCompleted"
        ]),
        "{r}"
    );
    assert!(inc["props"]["isJustCompleted"].is_boolean());
    let rb = applied(
        &app.rollback(
            &key,
            json!({"integrationId": "c", "achievementName": "shape", "eventId": "e1"}),
        )
        .await,
    );
    assert_eq!(rb["effects"].as_array().unwrap().len(), 1, "{rb}");
    let eff = &rb["effects"][0];
    assert_eq!(eff["effectType"], "rollbackIncreasedAchievementProgress");
    assert_eq!(
        keys_of(&eff["props"]),
        set(&[
            "achievementId",
            "achievementName",
            "progressTrackerId",
            "decreaseProgressBy",
            "currentProgress",
            "target"
        ]),
        "{rb}"
    );
    assert_eq!(eff["props"]["achievementId"], id_of(&a));
    assert_eq!(eff["props"]["achievementName"], "shape");
    assert_eq!(
        eff["props"]["progressTrackerId"],
        start["props"]["progressTrackerId"]
    );
    assert_eq!(eff["props"]["decreaseProgressBy"], json!(2));
    assert_eq!(eff["props"]["currentProgress"], json!(0));
    assert_eq!(eff["props"]["target"], json!(5));
    // A rejection carries a reason and no effects.
    let rej = app
        .rollback(
            &key,
            json!({"integrationId": "c", "achievementName": "shape", "eventId": "e1"}),
        )
        .await;
    assert_rejected(&rej, "already_rolled_back");
    assert_eq!(keys_of(&rej.json()), set(&["outcome", "reason", "effects"]));
}

#[actix_web::test]
async fn on_completion_overshoot_opens_iterations_over_http() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "repeat", "target": 6, "recurrencePolicy": "on_completion"}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let r = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 13}),
        )
        .await,
    );
    assert_eq!(
        effect_types(&r),
        [
            "startAchievementProgress",
            "increaseAchievementProgress",
            "startAchievementProgress",
            "increaseAchievementProgress",
            "startAchievementProgress",
            "increaseAchievementProgress"
        ],
        "{r}"
    );
    let p = |i: usize| r["effects"][i]["props"].clone();
    let trackers: Vec<Value> = [0, 2, 4]
        .iter()
        .map(|&i| p(i)["progressTrackerId"].clone())
        .collect();
    assert_eq!(
        trackers.iter().collect::<HashSet<_>>().len(),
        3,
        "distinct trackers: {r}"
    );
    for (k, (delta, value, done)) in [(6, 6, true), (6, 6, true), (1, 1, false)]
        .into_iter()
        .enumerate()
    {
        let inc = p(2 * k + 1);
        assert_eq!(inc["progressTrackerId"], trackers[k], "{r}");
        assert_eq!(inc["delta"], json!(delta), "{r}");
        assert_eq!(inc["value"], json!(value), "{r}");
        assert_eq!(inc["isJustCompleted"], done, "{r}");
        assert_eq!(inc["target"], json!(6));
        assert!(p(2 * k).get("endDate").is_none(), "{r}");
    }
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["totalResultSize"], 3, "{h}");
    let statuses: Vec<_> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["status"].clone(), i["progress"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            (json!("inprogress"), json!(1)),
            (json!("completed"), json!(6)),
            (json!("completed"), json!(6)),
        ],
        "{h}"
    );
    assert_eq!(h["data"][0]["progressTrackerId"], trackers[2]);
    assert_eq!(h["data"][2]["progressTrackerId"], trackers[0]);
    assert!(h["data"][0].get("completionDate").is_none());
    assert!(h["data"][1]["completionDate"].is_string());

    // From 0, delta 12 completes two and opens none.
    let r = applied(
        &app.event(
            &key,
            json!({"integrationId": "d", "achievementId": id, "delta": 12}),
        )
        .await,
    );
    assert_eq!(
        effect_types(&r),
        [
            "startAchievementProgress",
            "increaseAchievementProgress",
            "startAchievementProgress",
            "increaseAchievementProgress"
        ],
        "{r}"
    );
    let h = app.history(&key, "d", id, "").await;
    assert_eq!(h["totalResultSize"], 2, "{h}");
    assert_eq!(h["data"][0]["status"], "completed");
    assert_eq!(h["data"][1]["status"], "completed");
    let list = app.list(&key, "d", "").await;
    assert_eq!(list["data"][0]["currentProgress"]["status"], "completed");
}

#[actix_web::test]
async fn decimals_are_exact() {
    let seed = seeded("UTC").await;
    let a = seed
        .achievement(json!({"name": "tenths", "target": 0.3, "period": "1D"}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    assert_eq!(a["target"], json!(0.3));
    let id = id_of(&a);
    let one = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 0.1}),
        )
        .await,
    );
    assert_eq!(one["effects"][1]["props"]["isJustCompleted"], false);
    let two = applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 0.2}),
        )
        .await,
    );
    assert_eq!(two["effects"][0]["props"]["value"], json!(0.3), "{two}");
    assert_eq!(two["effects"][0]["props"]["delta"], json!(0.2), "{two}");
    assert_eq!(two["effects"][0]["props"]["isJustCompleted"], true);
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["data"][0]["status"], "completed");
    assert_eq!(h["data"][0]["progress"], json!(0.3));

    // Very small and very precise amounts are kept digit for digit. The
    // bodies are written as text so no binary float is involved.
    seed.achievement(json!({"name": "tiny", "target": 1, "period": "1D"}))
        .await;
    let send = |delta: &str| {
        format!(r#"{{"integrationId": "c", "achievementName": "tiny", "delta": {delta}}}"#)
    };
    let r = app
        .raw(
            "POST",
            "/v1/progress_events",
            Auth::Integration(&key),
            Some(&send("0.0000001")),
        )
        .await;
    let r = applied(&r);
    assert_eq!(r["effects"][1]["props"]["delta"].to_string(), "0.0000001");
    assert_eq!(r["effects"][1]["props"]["value"].to_string(), "0.0000001");
    let r = app
        .raw(
            "POST",
            "/v1/progress_events",
            Auth::Integration(&key),
            Some(&send("0.1234567890123456789")),
        )
        .await;
    let r = applied(&r);
    assert_eq!(
        r["effects"][0]["props"]["value"].to_string(),
        "0.1234568890123456789",
        "{r}"
    );
    let list = app.list(&key, "c", "").await;
    let tiny = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "tiny")
        .expect("tiny listed")
        .clone();
    assert_eq!(
        tiny["currentProgress"]["progress"].to_string(),
        "0.1234568890123456789"
    );
    // Scientific notation is read exactly too.
    let r = app
        .raw(
            "POST",
            "/v1/progress_events",
            Auth::Integration(&key),
            Some(&send("1e-7")),
        )
        .await;
    let r = applied(&r);
    assert_eq!(
        r["effects"][0]["props"]["value"].to_string(),
        "0.1234569890123456789",
        "{r}"
    );
}
