//! The user journey: every recurrence and activation policy, from the first
//! event through the customer's list, history and the CSV export.

use std::collections::HashMap;

use chrono::Duration;
use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

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
