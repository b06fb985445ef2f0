//! Progress events, rollbacks and reads through the integration API.

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn an_event_opens_and_completes_an_iteration() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    app.achievement(
        application,
        campaign,
        json!({"name": "coffee", "target": 0.3, "period": "1W"}),
    )
    .await;
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

// ---------------------------------------------------------------------------
// Helpers local to these tests.
// ---------------------------------------------------------------------------

use std::collections::{BTreeSet, HashMap, HashSet};

use achievements_engine::clock::Clock;
use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, TimeZone, Utc};
use serde_json::Value;

/// Now, cut to whole seconds (so the server echoes our timestamps verbatim).
fn now_s() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// RFC 3339 in UTC with a `Z`, as the server renders whole seconds.
fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `t` plus whole calendar days in `tz` (local wall time kept).
fn plus_local_days<Z: TimeZone>(t: DateTime<Utc>, tz: &Z, days: i64) -> DateTime<Utc> {
    let local = t.with_timezone(tz).naive_local() + Duration::days(days);
    tz.from_local_datetime(&local)
        .earliest()
        .expect("local time exists")
        .with_timezone(&Utc)
}

fn id_of(v: &Value) -> u64 {
    v["id"].as_u64().expect("id")
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect::<BTreeSet<_>>()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn assert_utc_date(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a date string: {v}"));
    assert!(s.ends_with('Z'), "{s} does not end in Z");
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s} is not RFC 3339: {e}"));
}

/// A 200 answer with outcome `rejected` and the given reason.
fn assert_rejected(a: &Answer, reason: &str) {
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["outcome"], "rejected", "{}", a.text);
    assert_eq!(v["reason"], reason, "{}", a.text);
    assert_eq!(v["effects"], json!([]), "{}", a.text);
}

/// A 200 answer with outcome `applied`; returns its body.
fn applied(a: &Answer) -> Value {
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["outcome"], "applied", "{}", a.text);
    assert!(v.get("reason").is_none(), "{}", a.text);
    v
}

fn effect_types(v: &Value) -> Vec<String> {
    v["effects"]
        .as_array()
        .expect("effects")
        .iter()
        .map(|e| e["effectType"].as_str().expect("effectType").to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// The user journey.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn full_journey_with_every_policy_combination() {
    let berlin = chrono_tz::Europe::Berlin;
    let app = spawn_app().await;
    let (application, key) = app.application("Europe/Berlin").await;
    let got = app
        .mgmt("GET", &format!("/v1/applications/{application}"), None)
        .await;
    assert_eq!(got.json()["timezone"], "Europe/Berlin", "{}", got.text);
    let campaign = app.campaign(application, json!({})).await;

    let anchor = now_s() - Duration::seconds(3600);
    let t0 = now_s() - Duration::seconds(60);
    // (name, recurrence, activation, period)
    let combos = [
        ("nr_ua", "no_recurrence", "user_action", Some("1W")),
        ("oe_ua", "on_expiration", "user_action", Some("1D")),
        ("oc_ua", "on_completion", "user_action", None),
        ("nr_fs", "no_recurrence", "fixed_schedule", Some("1D")),
        ("oe_fs", "on_expiration", "fixed_schedule", Some("1D")),
        ("oc_fs", "on_completion", "fixed_schedule", Some("1D")),
    ];
    let mut ids = HashMap::new();
    for (name, rec, act, period) in combos {
        let mut fields = json!({
            "name": name,
            "title": format!("Title {name}"),
            "description": format!("Description of {name}"),
            "target": 10,
            "recurrencePolicy": rec,
            "activationPolicy": act,
        });
        if let Some(p) = period {
            fields["period"] = json!(p);
        }
        if act == "fixed_schedule" {
            fields["fixedStartDate"] = json!(rfc(anchor));
        }
        let created = app.achievement(application, campaign, fields).await;
        ids.insert(name, id_of(&created));
    }
    let expected_end = |name: &str| -> Option<String> {
        match name {
            "nr_ua" => Some(rfc(plus_local_days(t0, &berlin, 7))),
            "oe_ua" => Some(rfc(plus_local_days(t0, &berlin, 1))),
            "oc_ua" => None,
            _ => Some(rfc(plus_local_days(anchor, &berlin, 1))),
        }
    };

    let mut trackers = HashMap::new();
    for (name, ..) in combos {
        let id = ids[name];
        // By id.
        let first = applied(
            &app.event(
                &key,
                json!({"integrationId": "c1", "achievementId": id, "delta": 3,
                       "eventId": format!("{name}-1"), "timestamp": rfc(t0)}),
            )
            .await,
        );
        assert_eq!(
            effect_types(&first),
            ["startAchievementProgress", "increaseAchievementProgress"],
            "{name}: {first}"
        );
        let start = &first["effects"][0]["props"];
        assert_eq!(start["achievementId"], id, "{name}");
        assert_eq!(start["achievementName"], name);
        assert_eq!(start["target"], json!(10));
        assert_eq!(start["startDate"], rfc(t0), "{name}");
        match expected_end(name) {
            Some(end) => assert_eq!(start["endDate"], end, "{name}: {first}"),
            None => assert!(start.get("endDate").is_none(), "{name}: {first}"),
        }
        let tracker = start["progressTrackerId"].as_u64().expect("tracker id");
        let inc = &first["effects"][1]["props"];
        assert_eq!(inc["progressTrackerId"], tracker);
        assert_eq!(inc["delta"], json!(3));
        assert_eq!(inc["value"], json!(3));
        assert_eq!(inc["isJustCompleted"], false);
        // By name.
        let second = applied(
            &app.event(
                &key,
                json!({"integrationId": "c1", "achievementName": name, "delta": 4,
                       "eventId": format!("{name}-2"),
                       "timestamp": rfc(t0 + Duration::seconds(10))}),
            )
            .await,
        );
        assert_eq!(
            effect_types(&second),
            ["increaseAchievementProgress"],
            "{name}: {second}"
        );
        let inc = &second["effects"][0]["props"];
        assert_eq!(inc["achievementId"], id);
        assert_eq!(inc["achievementName"], name);
        assert_eq!(inc["progressTrackerId"], tracker);
        assert_eq!(inc["delta"], json!(4));
        assert_eq!(inc["value"], json!(7));
        assert_eq!(inc["target"], json!(10));
        assert_eq!(inc["isJustCompleted"], false);
        trackers.insert(name, tracker);
    }

    // oc_ua: 7 + 5 completes the first iteration and carries 2 into a second.
    let t2 = t0 + Duration::seconds(20);
    let third = applied(
        &app.event(
            &key,
            json!({"integrationId": "c1", "achievementName": "oc_ua", "delta": 5,
                   "timestamp": rfc(t2)}),
        )
        .await,
    );
    assert_eq!(
        effect_types(&third),
        [
            "increaseAchievementProgress",
            "startAchievementProgress",
            "increaseAchievementProgress"
        ],
        "{third}"
    );
    assert_eq!(third["effects"][0]["props"]["value"], json!(10));
    assert_eq!(third["effects"][0]["props"]["delta"], json!(3));
    assert_eq!(third["effects"][0]["props"]["isJustCompleted"], true);
    let second_tracker = third["effects"][1]["props"]["progressTrackerId"].clone();
    assert_ne!(second_tracker, trackers["oc_ua"]);
    assert_eq!(third["effects"][1]["props"]["startDate"], rfc(t2));
    assert_eq!(third["effects"][2]["props"]["delta"], json!(2));
    assert_eq!(third["effects"][2]["props"]["value"], json!(2));
    assert_eq!(third["effects"][2]["props"]["isJustCompleted"], false);

    // The customer's achievements.
    let list = app.list(&key, "c1", "").await;
    assert_eq!(list["totalResultSize"], 6, "{list}");
    let data = list["data"].as_array().expect("data");
    assert_eq!(data.len(), 6);
    for (name, rec, act, period) in combos {
        let e = data
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {list}"));
        assert_eq!(e["id"], ids[name]);
        assert_eq!(e["title"], format!("Title {name}"));
        assert_eq!(e["description"], format!("Description of {name}"));
        assert_eq!(e["target"], json!(10));
        assert_eq!(e["recurrencePolicy"], rec);
        assert_eq!(e["activationPolicy"], act);
        assert_eq!(e["campaignId"], campaign);
        assert_eq!(e["allowRollbackAfterCompletion"], false);
        assert_eq!(e["endProgressOnTarget"], false);
        match period {
            Some(p) => assert_eq!(e["period"], p),
            None => assert!(e.get("period").is_none_or(Value::is_null), "{e}"),
        }
        if act == "fixed_schedule" {
            assert_eq!(e["fixedStartDate"], rfc(anchor));
        }
        assert_eq!(e["status"], "active", "{e}");
        let cp = &e["currentProgress"];
        assert_eq!(cp["status"], "inprogress", "{e}");
        if name == "oc_ua" {
            assert_eq!(cp["progress"], json!(2));
            assert_eq!(cp["progressTrackerId"], second_tracker);
            assert_eq!(cp["startDate"], rfc(t2));
        } else {
            assert_eq!(cp["progress"], json!(7), "{e}");
            assert_eq!(cp["progressTrackerId"], trackers[name]);
            assert_eq!(cp["startDate"], rfc(t0));
        }
        match expected_end(name) {
            Some(end) => assert_eq!(cp["endDate"], end, "{name}: {e}"),
            None => assert!(cp.get("endDate").is_none(), "{e}"),
        }
        assert!(cp.get("completionDate").is_none(), "{e}");
    }

    // History, newest first.
    let h = app.history(&key, "c1", ids["oc_ua"], "").await;
    assert_eq!(h["totalResultSize"], 2, "{h}");
    assert_eq!(h["data"][0]["status"], "inprogress");
    assert_eq!(h["data"][0]["progress"], json!(2));
    assert_eq!(h["data"][0]["progressTrackerId"], second_tracker);
    assert_eq!(h["data"][0]["startDate"], rfc(t2));
    assert_eq!(h["data"][1]["status"], "completed");
    assert_eq!(h["data"][1]["progress"], json!(10));
    assert_eq!(h["data"][1]["progressTrackerId"], trackers["oc_ua"]);
    assert_eq!(h["data"][1]["startDate"], rfc(t0));
    assert_eq!(h["data"][1]["completionDate"], rfc(t2));
    let h = app.history(&key, "c1", ids["nr_ua"], "").await;
    assert_eq!(h["totalResultSize"], 1, "{h}");
    assert_eq!(h["data"][0]["progress"], json!(7));

    // Another customer has nothing.
    let other = app.list(&key, "nobody", "").await;
    assert_eq!(other["totalResultSize"], 6, "{other}");
    for e in other["data"].as_array().expect("data") {
        assert!(e.get("currentProgress").is_none(), "{e}");
    }
    let h = app.history(&key, "nobody", ids["oc_ua"], "").await;
    assert_eq!(h["totalResultSize"], 0, "{h}");
    assert_eq!(h["data"], json!([]));

    // Export.
    let export = app
        .mgmt(
            "GET",
            &format!(
                "/v1/applications/{application}/campaigns/{campaign}/achievements/{}/export",
                ids["oc_ua"]
            ),
            None,
        )
        .await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert!(
        export.content_type.starts_with("text/csv"),
        "{}",
        export.content_type
    );
    let lines: Vec<&str> = export.text.lines().collect();
    assert_eq!(
        lines[0],
        "profileIntegrationID,title,target,progress,status,startDate,endDate,completionDate"
    );
    assert_eq!(lines.len(), 3, "{}", export.text);
    assert!(
        lines.contains(&format!("c1,Title oc_ua,10,2,inprogress,{},,", rfc(t2)).as_str()),
        "{}",
        export.text
    );
    assert!(
        lines
            .contains(&format!("c1,Title oc_ua,10,10,completed,{},,{}", rfc(t0), rfc(t2)).as_str()),
        "{}",
        export.text
    );
}

#[actix_web::test]
async fn effects_have_talon_one_shapes() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "shape", "target": 5, "period": "1D",
                   "recurrencePolicy": "on_expiration", "allowRollbackAfterCompletion": true}),
        )
        .await;
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

// ---------------------------------------------------------------------------
// Rejections.
// ---------------------------------------------------------------------------

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
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let anchor = now_s() - Duration::hours(1);
    app.achievement(
        application,
        campaign,
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
    let ending = app
        .achievement(
            application,
            campaign,
            json!({"name": "ending", "period": "1D", "endDate": rfc(end)}),
        )
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
    app.achievement(
        application,
        campaign,
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
async fn future_and_late_timestamps_are_rejected() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "timely", "period": "1D", "target": 100,
                   "recurrencePolicy": "on_expiration"}),
        )
        .await;
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
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "quick", "period": "2s", "target": 5}),
        )
        .await;
    let id = id_of(&a);
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
async fn rollback_rejections() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "strict", "period": "1D", "target": 5}),
        )
        .await;
    let id = id_of(&a);
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

// ---------------------------------------------------------------------------
// Duplicates and rollback after completion.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn duplicates_return_the_original_effects_and_change_nothing() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "dup", "period": "1D", "target": 10,
                   "recurrencePolicy": "on_expiration"}),
        )
        .await;
    let id = id_of(&a);
    let body = json!({"integrationId": "c", "achievementId": id, "delta": 3, "eventId": "e1"});
    let original = applied(&app.event(&key, body.clone()).await);
    let again = app.event(&key, body.clone()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let again = again.json();
    assert_eq!(again["outcome"], "duplicate", "{again}");
    assert_eq!(again["effects"], original["effects"]);
    // Same id with a different delta and addressed by name: still a duplicate.
    let other = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "dup", "delta": 5, "eventId": "e1"}),
        )
        .await
        .json();
    assert_eq!(other["outcome"], "duplicate", "{other}");
    assert_eq!(other["effects"], original["effects"]);
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(3)));
    // The same event id for another customer is a different event.
    applied(
        &app.event(
            &key,
            json!({"integrationId": "c2", "achievementId": id, "delta": 3, "eventId": "e1"}),
        )
        .await,
    );
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(3)));
    assert_eq!(app.progress(&key, "c2", id).await, Some(json!(3)));
    // In a batch too.
    let b = app
        .batch(&key, "", json!({"events": [body.clone(), body]}))
        .await;
    assert_eq!(b.status, 200, "{}", b.text);
    let b = b.json();
    assert_eq!(b["applied"], 0, "{b}");
    assert_eq!(b["duplicates"], 2, "{b}");
    assert_eq!(b["results"][0]["effects"], original["effects"]);
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(3)));
}

#[actix_web::test]
async fn rollback_after_completion_reopens_the_iteration_when_allowed() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "lenient", "period": "1D", "target": 5,
                   "allowRollbackAfterCompletion": true}),
        )
        .await;
    let id = id_of(&a);
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

// ---------------------------------------------------------------------------
// on_completion overshoot and exact decimals.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn on_completion_overshoot_opens_iterations_over_http() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "repeat", "target": 6, "recurrencePolicy": "on_completion"}),
        )
        .await;
    let id = id_of(&a);
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
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "tenths", "target": 0.3, "period": "1D"}),
        )
        .await;
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
    app.achievement(
        application,
        campaign,
        json!({"name": "tiny", "target": 1, "period": "1D"}),
    )
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

// ---------------------------------------------------------------------------
// Batches.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn batch_reports_counts_and_results_in_order() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "batched", "period": "1D", "target": 100,
                   "recurrencePolicy": "on_expiration"}),
        )
        .await;
    let id = id_of(&a);
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
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "batched", "period": "1D", "target": 100}),
        )
        .await;
    let id = id_of(&a);
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

// ---------------------------------------------------------------------------
// Bad input.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn malformed_events_get_400_with_a_pointer() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "strict", "period": "1D", "target": 100}),
        )
        .await;
    let id = id_of(&a);
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

// ---------------------------------------------------------------------------
// Authentication and tenancy.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn integration_keys_are_required_and_scoped() {
    let app = spawn_app().await;
    let (app_a, key_a) = app.application("UTC").await;
    let (app_b, key_b) = app.application("UTC").await;
    let camp_a = app.campaign(app_a, json!({})).await;
    let camp_b = app.campaign(app_b, json!({})).await;
    let ach_a = app
        .achievement(app_a, camp_a, json!({"name": "same", "period": "1D"}))
        .await;
    // Names are unique per application only.
    let ach_b = app
        .achievement(app_b, camp_b, json!({"name": "same", "period": "1D"}))
        .await;
    let ev = json!({"integrationId": "c", "achievementName": "same", "delta": 1});
    let history_a = format!("/v1/customer_profiles/c/achievements/{}", id_of(&ach_a));
    let paths = [
        ("POST", "/v1/progress_events", Some(ev.to_string())),
        (
            "POST",
            "/v1/progress_events/batch",
            Some(json!({"events": [ev.clone()]}).to_string()),
        ),
        (
            "POST",
            "/v1/progress_rollbacks",
            Some(
                json!({"integrationId": "c", "achievementName": "same", "eventId": "x"})
                    .to_string(),
            ),
        ),
        ("GET", "/v1/customer_profiles/c/achievements", None),
        ("GET", history_a.as_str(), None),
    ];
    let mgmt = format!("ManagementKey-v1 {}", app.management_key);
    let bearer = format!("Bearer {key_a}");
    for (method, path, body) in &paths {
        for auth in [
            Auth::None,
            Auth::Raw("ApiKey-v1 not-a-key"),
            Auth::Raw("ApiKey-v1 "),
            Auth::Raw(&mgmt),
            Auth::Raw(&bearer),
        ] {
            let a = app.raw(method, path, auth, body.as_deref()).await;
            assert_error(&a, 401, None);
        }
    }
    // Nothing was applied by the refused requests.
    assert_eq!(app.progress(&key_a, "c", id_of(&ach_a)).await, None);

    applied(&app.event(&key_a, ev.clone()).await);
    applied(&app.event(&key_a, ev.clone()).await);
    applied(&app.event(&key_b, ev.clone()).await);
    assert_eq!(
        app.progress(&key_a, "c", id_of(&ach_a)).await,
        Some(json!(2))
    );
    assert_eq!(
        app.progress(&key_b, "c", id_of(&ach_b)).await,
        Some(json!(1))
    );

    let list_b = app.list(&key_b, "c", "").await;
    assert_eq!(list_b["totalResultSize"], 1, "{list_b}");
    assert_eq!(list_b["data"][0]["id"], id_of(&ach_b));
    // Filtering B's list by A's achievement finds nothing.
    let filtered = app
        .list(&key_b, "c", &format!("?achievementIds={}", id_of(&ach_a)))
        .await;
    assert_eq!(filtered["totalResultSize"], 0, "{filtered}");

    let a = app
        .integ(
            &key_b,
            "GET",
            &format!("/v1/customer_profiles/c/achievements/{}", id_of(&ach_a)),
            None,
        )
        .await;
    assert_error(&a, 403, None);
    let a = app
        .integ(
            &key_a,
            "GET",
            "/v1/customer_profiles/c/achievements/999999",
            None,
        )
        .await;
    assert_error(&a, 404, None);
    let a = app
        .integ(
            &key_a,
            "GET",
            "/v1/customer_profiles/c/achievements/abc",
            None,
        )
        .await;
    assert_error(&a, 400, None);
    assert_eq!(
        a.json()["errors"][0]["source"]["parameter"],
        "achievementId"
    );
}

// ---------------------------------------------------------------------------
// Filters and pagination.
// ---------------------------------------------------------------------------

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect();
    n.sort();
    n
}

#[actix_web::test]
async fn customer_achievements_filters_and_pages() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let c1 = app.campaign(application, json!({})).await;
    let c2 = app.campaign(application, json!({"name": "second"})).await;
    let done = app
        .achievement(
            application,
            c1,
            json!({"name": "done", "period": "1D", "target": 1}),
        )
        .await;
    let going = app
        .achievement(
            application,
            c1,
            json!({"name": "going", "period": "1D", "target": 5}),
        )
        .await;
    let idle = app
        .achievement(application, c2, json!({"name": "idle", "period": "1D"}))
        .await;
    let soon = app
        .achievement(
            application,
            c2,
            json!({"name": "soon", "period": "1D", "recurrencePolicy": "on_expiration",
                   "activationPolicy": "fixed_schedule",
                   "fixedStartDate": rfc(now_s() + Duration::hours(1))}),
        )
        .await;
    app.achievement(
        application,
        c2,
        json!({"name": "gone", "period": "1D", "endDate": rfc(now_s() - Duration::hours(1))}),
    )
    .await;
    for (name, d) in [("done", 1), ("going", 2)] {
        applied(
            &app.event(
                &key,
                json!({"integrationId": "c", "achievementName": name, "delta": d}),
            )
            .await,
        );
    }
    // Before the schedule starts, progress is outside it.
    let early = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "soon", "delta": 1}),
        )
        .await;
    assert_rejected(&early, "outside_schedule");

    let all = app.list(&key, "c", "").await;
    assert_eq!(all["totalResultSize"], 3, "{all}");
    assert_eq!(names(&all), ["done", "going", "idle"]);
    let active = app.list(&key, "c", "?achievementStatus=active").await;
    assert_eq!(names(&active), ["done", "going", "idle"]);
    let scheduled = app.list(&key, "c", "?achievementStatus=scheduled").await;
    assert_eq!(scheduled["totalResultSize"], 1, "{scheduled}");
    assert_eq!(scheduled["data"][0]["id"], id_of(&soon));
    assert_eq!(scheduled["data"][0]["status"], "scheduled");
    assert!(scheduled["data"][0].get("currentProgress").is_none());

    let by_c1 = app.list(&key, "c", &format!("?campaignIds={c1}")).await;
    assert_eq!(names(&by_c1), ["done", "going"]);
    let by_c2 = app.list(&key, "c", &format!("?campaignIds={c2}")).await;
    assert_eq!(names(&by_c2), ["idle"]);
    let by_both = app
        .list(&key, "c", &format!("?campaignIds={c1},{c2}"))
        .await;
    assert_eq!(by_both["totalResultSize"], 3);
    let by_ids = app
        .list(
            &key,
            "c",
            &format!("?achievementIds={},{}", id_of(&done), id_of(&idle)),
        )
        .await;
    assert_eq!(names(&by_ids), ["done", "idle"]);
    let combined = app
        .list(
            &key,
            "c",
            &format!(
                "?achievementIds={},{}&campaignIds={c1}",
                id_of(&done),
                id_of(&idle)
            ),
        )
        .await;
    assert_eq!(names(&combined), ["done"]);

    let completed = app
        .list(&key, "c", "?currentProgressStatus=completed")
        .await;
    assert_eq!(names(&completed), ["done"]);
    assert_eq!(
        completed["data"][0]["currentProgress"]["status"],
        "completed"
    );
    assert!(completed["data"][0]["currentProgress"]["completionDate"].is_string());
    let inprogress = app
        .list(&key, "c", "?currentProgressStatus=inprogress")
        .await;
    assert_eq!(names(&inprogress), ["going"]);
    assert_eq!(
        inprogress["data"][0]["currentProgress"]["progress"],
        json!(2)
    );
    assert_eq!(inprogress["data"][0]["id"], id_of(&going));
    let not_started = app
        .list(&key, "c", "?currentProgressStatus=not_started")
        .await;
    assert_eq!(names(&not_started), ["idle"]);
    assert!(not_started["data"][0].get("currentProgress").is_none());

    // Pages.
    let mut seen = Vec::new();
    for skip in 0..3 {
        let page = app
            .list(&key, "c", &format!("?pageSize=1&skip={skip}"))
            .await;
        assert_eq!(page["totalResultSize"], 3, "{page}");
        assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
        seen.push(page["data"][0]["name"].as_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["done", "going", "idle"]);
    let page = app.list(&key, "c", "?pageSize=2").await;
    assert_eq!(page["totalResultSize"], 3);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let page = app.list(&key, "c", "?pageSize=2&skip=2").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let page = app.list(&key, "c", "?skip=10").await;
    assert_eq!(page["totalResultSize"], 3);
    assert_eq!(page["data"], json!([]));
    let page = app
        .list(&key, "c", "?pageSize=1&currentProgressStatus=not_started")
        .await;
    assert_eq!(page["totalResultSize"], 1);

    // Bad parameters.
    for (query, parameter) in [
        ("?pageSize=0", "pageSize"),
        ("?pageSize=1001", "pageSize"),
        ("?pageSize=abc", "pageSize"),
        ("?skip=-1", "skip"),
        ("?achievementStatus=bogus", "achievementStatus"),
        ("?currentProgressStatus=expired", "currentProgressStatus"),
        ("?currentProgressStatus=bogus", "currentProgressStatus"),
        ("?campaignIds=abc", "campaignIds"),
        ("?achievementIds=1,x", "achievementIds"),
    ] {
        let a = app
            .integ(
                &key,
                "GET",
                &format!("/v1/customer_profiles/c/achievements{query}"),
                None,
            )
            .await;
        assert_error(&a, 400, None);
        assert_eq!(
            a.json()["errors"][0]["source"]["parameter"],
            parameter,
            "{query}: {}",
            a.text
        );
    }
}

#[actix_web::test]
async fn history_filters_and_pages() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "laps", "target": 1, "recurrencePolicy": "on_completion"}),
        )
        .await;
    let id = id_of(&a);
    let base = now_s() - Duration::seconds(60);
    let at = |s: i64| base + Duration::seconds(s);
    for (s, d) in [
        (0, json!(1)),
        (10, json!(1)),
        (20, json!(1)),
        (30, json!(0.5)),
    ] {
        applied(
            &app.event(
                &key,
                json!({"integrationId": "c", "achievementId": id, "delta": d,
                       "timestamp": rfc(at(s))}),
            )
            .await,
        );
    }
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["totalResultSize"], 4, "{h}");
    let starts: Vec<_> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["startDate"].clone())
        .collect();
    assert_eq!(
        starts,
        [at(30), at(20), at(10), at(0)]
            .map(|t| json!(rfc(t)))
            .to_vec(),
        "newest first: {h}"
    );
    let q = |query: String| {
        let app = &app;
        let key = &key;
        async move { app.history(key, "c", id, &query).await }
    };
    let completed = q("?progressStatus=completed".into()).await;
    assert_eq!(completed["totalResultSize"], 3, "{completed}");
    let inprogress = q("?progressStatus=inprogress".into()).await;
    assert_eq!(inprogress["totalResultSize"], 1);
    assert_eq!(inprogress["data"][0]["progress"], json!(0.5));
    let expired = q("?progressStatus=expired".into()).await;
    assert_eq!(expired["totalResultSize"], 0);
    let from = q(format!("?startDate={}", rfc(at(15)))).await;
    assert_eq!(from["totalResultSize"], 2, "{from}");
    let to = q(format!("?endDate={}", rfc(at(15)))).await;
    assert_eq!(to["totalResultSize"], 2, "{to}");
    let window = q(format!("?startDate={}&endDate={}", rfc(at(5)), rfc(at(25)))).await;
    assert_eq!(window["totalResultSize"], 2, "{window}");
    let page = q("?pageSize=1".into()).await;
    assert_eq!(page["totalResultSize"], 4);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["startDate"], rfc(at(30)));
    let page = q("?pageSize=2&skip=3".into()).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["startDate"], rfc(at(0)));
    for (query, parameter) in [
        ("?progressStatus=bogus", "progressStatus"),
        ("?progressStatus=not_started", "progressStatus"),
        ("?startDate=yesterday", "startDate"),
        ("?endDate=2024-13-01T00:00:00Z", "endDate"),
        ("?pageSize=0", "pageSize"),
    ] {
        let a = app
            .integ(
                &key,
                "GET",
                &format!("/v1/customer_profiles/c/achievements/{id}{query}"),
                None,
            )
            .await;
        assert_error(&a, 400, None);
        assert_eq!(
            a.json()["errors"][0]["source"]["parameter"],
            parameter,
            "{query}: {}",
            a.text
        );
    }
}

// ---------------------------------------------------------------------------
// Time passing.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn expiry_shows_without_any_further_event() {
    let clock = Clock::manual(now_s());
    let app = spawn_app_with_clock(clock.clone(), |_| {}).await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "brief", "period": "2s", "target": 5,
                   "recurrencePolicy": "on_expiration"}),
        )
        .await;
    let id = id_of(&a);
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

// ---------------------------------------------------------------------------
// Concurrency.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn concurrent_events_and_retries_are_counted_exactly_once() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "busy", "period": "1D", "target": 1_000_000,
                   "recurrencePolicy": "on_expiration"}),
        )
        .await;
    let id = id_of(&a);
    const TASKS: usize = 8;
    const PER_TASK: usize = 100;
    const CUSTOMERS: usize = 5;
    let event_of = |task: usize, j: usize| -> (String, String) {
        (
            format!("cust{}", (task + j) % CUSTOMERS),
            format!("t{task}-e{j}"),
        )
    };
    let (app_ref, key_ref) = (&app, &key);
    let tasks = (0..TASKS).map(|task| async move {
        let mut answers = Vec::new();
        // Own events, interleaved with retries of the next task's events
        // (20 % of them), which that task sends concurrently.
        for j in 0..PER_TASK {
            let mut sends = vec![event_of(task, j)];
            if j % 5 == 0 {
                sends.push(event_of((task + 1) % TASKS, j));
            }
            for (customer, event_id) in sends {
                let a = app_ref
                    .event(
                        key_ref,
                        json!({"integrationId": customer, "achievementId": id,
                               "delta": 1, "eventId": event_id}),
                    )
                    .await;
                assert_eq!(a.status, 200, "{}", a.text);
                let v = a.json();
                answers.push((
                    customer,
                    event_id,
                    v["outcome"].as_str().unwrap().to_string(),
                ));
            }
        }
        answers
    });
    let answers: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(answers.len(), TASKS * PER_TASK * 6 / 5);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut applied_ids = HashSet::new();
    let mut per_customer: HashMap<String, usize> = HashMap::new();
    for (customer, event_id, outcome) in &answers {
        *counts.entry(outcome.as_str()).or_default() += 1;
        if outcome == "applied" {
            assert!(
                applied_ids.insert(event_id.clone()),
                "{event_id} applied twice"
            );
            *per_customer.entry(customer.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        counts.get("applied").copied(),
        Some(TASKS * PER_TASK),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("duplicate").copied(),
        Some(TASKS * PER_TASK / 5),
        "{counts:?}"
    );
    assert_eq!(counts.get("rejected"), None, "{counts:?}");
    let distinct: HashSet<_> = answers.iter().map(|(_, e, _)| e.clone()).collect();
    assert_eq!(applied_ids, distinct);
    for c in 0..CUSTOMERS {
        let customer = format!("cust{c}");
        let expected = per_customer.get(&customer).copied().unwrap_or(0);
        assert_eq!(expected, TASKS * PER_TASK / CUSTOMERS);
        assert_eq!(
            app.progress(&key, &customer, id).await,
            Some(json!(expected)),
            "{customer}"
        );
        let h = app.history(&key, &customer, id, "").await;
        assert_eq!(h["totalResultSize"], 1, "one iteration for {customer}: {h}");
    }
}

// ---------------------------------------------------------------------------
// More edges.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn end_progress_on_target_clips_and_rollback_takes_back_what_was_added() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "capped", "period": "1D", "target": 5,
                   "endProgressOnTarget": true, "allowRollbackAfterCompletion": true}),
        )
        .await;
    let id = id_of(&a);
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
async fn rejected_events_are_not_remembered_as_seen() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "retry", "period": "1D", "target": 10}),
        )
        .await;
    let id = id_of(&a);
    let early = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 1, "eventId": "e",
                   "timestamp": rfc(now_s() + Duration::minutes(10))}),
        )
        .await;
    assert_rejected(&early, "future_timestamp");
    // The same event id, now with a good timestamp, applies.
    applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 1, "eventId": "e"}),
        )
        .await,
    );
    // A rollback of it works, and an unknown rollback leaves no trace either.
    applied(
        &app.rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "e"}),
        )
        .await,
    );
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(0)));
}

#[actix_web::test]
async fn on_completion_rollbacks_and_late_events() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "loop", "target": 3, "recurrencePolicy": "on_completion"}),
        )
        .await;
    let id = id_of(&a);
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

#[actix_web::test]
async fn fixed_schedule_windows_follow_the_anchor() {
    // Time stands still unless moved: windows are exact, nothing sleeps.
    let anchor = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
    let clock = Clock::manual(anchor + Duration::seconds(13));
    let app = spawn_app_with_clock(clock.clone(), |_| {}).await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "windows", "period": "4s", "target": 10,
                   "recurrencePolicy": "on_expiration", "activationPolicy": "fixed_schedule",
                   "fixedStartDate": rfc(anchor)}),
        )
        .await;
    let id = id_of(&a);
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

/// Integration ids are arbitrary strings (e-mail addresses with `+` are
/// common); a client percent-encodes them in the path and must find the
/// progress it wrote through the body.
#[actix_web::test]
async fn customer_ids_with_special_characters_round_trip() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "chars", "period": "1D", "target": 10}),
        )
        .await;
    let id = id_of(&a);
    let mut wrong = Vec::new();
    for (customer, encoded) in [
        ("user one", "user%20one"),
        ("müller", "m%C3%BCller"),
        ("jane+promo@example.com", "jane%2Bpromo%40example.com"),
        ("a+b", "a%2Bb"),
        ("a/b", "a%2Fb"),
        ("50%", "50%25"),
        ("q?x=1", "q%3Fx%3D1"),
    ] {
        applied(
            &app.event(
                &key,
                json!({"integrationId": customer, "achievementId": id, "delta": 2}),
            )
            .await,
        );
        let list = app.list(&key, encoded, "").await;
        let h = app.history(&key, encoded, id, "").await;
        if list["data"][0]["currentProgress"]["progress"] != json!(2)
            || h["totalResultSize"] != json!(1)
        {
            wrong.push(format!("{customer:?} read as /{encoded}/"));
        }
    }
    assert!(wrong.is_empty(), "progress not found for {wrong:?}");
}

#[actix_web::test]
async fn transport_level_refusals() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "tt", "period": "1D", "target": 10}),
        )
        .await;
    let id = id_of(&a);
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
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    app.achievement(
        application,
        campaign,
        json!({"name": "busy", "target": 1000000, "period": "1D", "recurrencePolicy": "on_expiration"}),
    )
    .await;
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
