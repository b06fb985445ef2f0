//! A customer's progress across an application's achievements
//! (`achievement_progress`): every achievement listed, the current iteration,
//! filters and pages, encoded customer ids, and expiry without a timer.

use achievements_engine::clock::Clock;
use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn a_customers_progress_lists_every_achievement_of_the_application() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let (other_app, _) = app.application("UTC").await;
    let c1 = app.campaign(application, json!({})).await;
    let c2 = app.campaign(application, json!({})).await;
    let oc = app.campaign(other_app, json!({})).await;
    let coffee = app
        .achievement(
            application,
            c1,
            body(json!({"name": "coffee", "title": "Coffee", "description": "drink", "target": 2})),
        )
        .await;
    let tea = app
        .achievement(
            application,
            c2,
            body(
                json!({"name": "tea", "title": "Tea", "recurrencePolicy": "on_completion",
                       "period": null}),
            ),
        )
        .await;
    app.achievement(other_app, oc, body(json!({"name": "elsewhere"})))
        .await;
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementName": "coffee", "delta": 2}),
        )
        .await;
    assert_eq!(e.json()["outcome"], "applied", "{}", e.text);

    let path = format!("/v1/applications/{application}/achievement_progress/c1");
    let a = app.mgmt("GET", &path, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["hasMore"], false);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{v}");

    let c = &data[0];
    assert_eq!(c["achievementId"], coffee["id"]);
    assert_eq!(c["name"], "coffee");
    assert_eq!(c["title"], "Coffee");
    assert_eq!(c["description"], "drink");
    assert_eq!(c["campaignId"], c1);
    assert_eq!(c["target"], json!(2));
    assert_eq!(c["status"], "completed");
    assert_eq!(c["progress"], json!(2));
    assert!(c["progressTrackerId"].as_u64().is_some(), "{c}");
    assert_utc_date(&c["startDate"]);
    assert_utc_date(&c["endDate"]);
    assert_utc_date(&c["completionDate"]);
    assert_eq!(c["achievementRecurrencePolicy"], "no_recurrence");
    assert_eq!(c["achievementActivationPolicy"], "user_action");
    assert_eq!(c["achievementAllowRollbackAfterCompletion"], false);

    let t = &data[1];
    assert_eq!(t["achievementId"], tea["id"]);
    assert_eq!(t["status"], "not_started");
    assert_eq!(t["progress"], json!(0));
    assert_eq!(t["campaignId"], c2);
    assert_eq!(t["achievementRecurrencePolicy"], "on_completion");
    assert!(t.get("completionDate").is_none_or(Value::is_null), "{t}");

    // A customer nobody has heard of: everything not started.
    let nobody = app
        .mgmt(
            "GET",
            &format!("/v1/applications/{application}/achievement_progress/nobody"),
            None,
        )
        .await
        .json();
    let statuses: Vec<(&Value, &Value)> = nobody["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (&d["status"], &d["progress"]))
        .collect();
    assert_eq!(
        statuses,
        [
            (&json!("not_started"), &json!(0)),
            (&json!("not_started"), &json!(0))
        ]
    );
}

#[actix_web::test]
async fn a_customers_progress_shows_the_current_iteration() {
    let seed = seeded("UTC").await;
    seed.achievement(body(
        json!({"name": "coffee", "target": 2, "recurrencePolicy": "on_completion", "period": null}),
    ))
    .await;
    let (app, key, application) = (&seed.app, seed.key.clone(), seed.application);
    app.event(
        &key,
        json!({"integrationId": "c1", "achievementName": "coffee", "delta": 5}),
    )
    .await;
    let v = app
        .mgmt(
            "GET",
            &format!("/v1/applications/{application}/achievement_progress/c1"),
            None,
        )
        .await
        .json();
    assert_eq!(v["data"][0]["status"], "inprogress", "{v}");
    assert_eq!(v["data"][0]["progress"], json!(1), "{v}");
}

#[actix_web::test]
async fn a_customers_progress_can_be_filtered_and_paged() {
    let seed = seeded("UTC").await;
    let (app, application) = (&seed.app, seed.application);
    let ids = three_titled(&seed).await;
    let base = format!("/v1/applications/{application}/achievement_progress/c1");
    let ids_of = |v: &Value| -> Vec<u64> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["achievementId"].as_u64().unwrap())
            .collect()
    };
    let one = app
        .mgmt("GET", &format!("{base}?achievementId={}", ids[1]), None)
        .await
        .json();
    assert_eq!(ids_of(&one), [ids[1]]);
    let lovers = app
        .mgmt("GET", &format!("{base}?title=lover"), None)
        .await
        .json();
    assert_eq!(ids_of(&lovers), ids[..2]);
    let both = app
        .mgmt(
            "GET",
            &format!("{base}?title=lover&achievementId={}", ids[2]),
            None,
        )
        .await
        .json();
    assert_eq!(both, json!({"hasMore": false, "data": []}));
    let unknown = app
        .mgmt("GET", &format!("{base}?achievementId=999999"), None)
        .await;
    assert_eq!(unknown.status, 200, "{}", unknown.text);
    assert_eq!(unknown.json()["data"], json!([]));

    let page = app
        .mgmt("GET", &format!("{base}?pageSize=1"), None)
        .await
        .json();
    assert_eq!(ids_of(&page), [ids[0]]);
    assert_eq!(page["hasMore"], true);
    let page = app
        .mgmt("GET", &format!("{base}?pageSize=2&skip=1"), None)
        .await
        .json();
    assert_eq!(ids_of(&page), ids[1..]);
    assert_eq!(page["hasMore"], false);
    let page = app.mgmt("GET", &format!("{base}?pageSize=50"), None).await;
    assert_eq!(page.status, 200, "{}", page.text);

    for q in ["pageSize=0", "pageSize=51"] {
        let a = app.mgmt("GET", &format!("{base}?{q}"), None).await;
        assert_parameter(&a, 400, "pageSize");
    }
    let a = app
        .mgmt("GET", &format!("{base}?achievementId=abc"), None)
        .await;
    assert_parameter(&a, 400, "achievementId");
    let a = app
        .mgmt(
            "GET",
            "/v1/applications/999999/achievement_progress/c1",
            None,
        )
        .await;
    assert_parameter(&a, 404, "applicationId");
}

#[actix_web::test]
async fn a_customer_id_with_reserved_characters_is_found_through_the_path() {
    let seed = seeded("UTC").await;
    seed.achievement(body(json!({"name": "coffee"}))).await;
    let (app, key, application) = (&seed.app, seed.key.clone(), seed.application);
    let mut failures = Vec::new();
    for (customer, encoded) in [
        ("doe, jane", "doe%2C%20jane"),
        ("john+tag@example.com", "john%2Btag%40example.com"),
        ("a/b", "a%2Fb"),
        ("50%", "50%25"),
    ] {
        let e = app
            .event(
                &key,
                json!({"integrationId": customer, "achievementName": "coffee", "delta": 1}),
            )
            .await;
        assert_eq!(e.json()["outcome"], "applied", "{}", e.text);
        let a = app
            .mgmt(
                "GET",
                &format!("/v1/applications/{application}/achievement_progress/{encoded}"),
                None,
            )
            .await;
        let found = a.status == 200
            && a.json()["data"][0]["status"] == "inprogress"
            && a.json()["data"][0]["progress"] == json!(1);
        if !found {
            failures.push(format!("{customer} as {encoded}: {} {}", a.status, a.text));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[actix_web::test]
async fn an_ended_iteration_shows_as_expired_without_waiting_for_a_timer() {
    let clock = Clock::manual(chrono::Utc::now());
    let app = spawn_app_with_clock(clock.clone(), |_| {}).await;
    let seed = Seeded::on(app, "UTC", json!({})).await;
    let id = seed
        .achievement_id(body(json!({"name": "quick", "period": "1s"})))
        .await;
    let (app, key, application, campaign) =
        (&seed.app, seed.key.clone(), seed.application, seed.campaign);
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementId": id, "delta": 1}),
        )
        .await;
    assert_eq!(e.json()["outcome"], "applied", "{}", e.text);
    clock.advance(chrono::Duration::milliseconds(1500));
    let p = app
        .mgmt(
            "GET",
            &format!("/v1/applications/{application}/achievement_progress/c1"),
            None,
        )
        .await
        .json();
    assert_eq!(p["data"][0]["status"], "expired", "{p}");
    assert_eq!(p["data"][0]["progress"], json!(1), "{p}");
    let export = app
        .mgmt(
            "GET",
            &format!("{}/export", achievement_path(application, campaign, id)),
            None,
        )
        .await;
    let lines: Vec<&str> = export.text.lines().collect();
    assert_eq!(lines.len(), 2, "{}", export.text);
    assert!(
        lines[1].starts_with("c1,Achievement,5,1,expired,"),
        "{}",
        lines[1]
    );
}
