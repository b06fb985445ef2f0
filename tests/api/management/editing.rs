//! The editing rule: while the campaign runs or once there is progress only
//! title and description change; equal values are not a change; a name never
//! changes.

use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn a_running_campaign_allows_only_title_and_description_changes() {
    let seed = seeded("UTC").await;
    let created = seed.achievement(body(json!({"name": "coffee"}))).await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let path = achievement_path(application, campaign, id_of(&created));

    let put = app
        .mgmt(
            "PUT",
            &path,
            Some(json!({"title": "New title", "description": "New description"})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["title"], "New title");
    assert_eq!(put.json()["description"], "New description");

    for (field, value) in [
        ("target", json!(10)),
        ("period", json!("2D")),
        ("period", json!(null)),
        ("recurrencePolicy", json!("on_expiration")),
        ("activationPolicy", json!("fixed_schedule")),
        ("fixedStartDate", json!("2023-10-10T00:00:00Z")),
        ("endDate", json!(FUTURE)),
        ("allowRollbackAfterCompletion", json!(true)),
        ("endProgressOnTarget", json!(true)),
    ] {
        let a = app.mgmt("PUT", &path, Some(json!({ field: value }))).await;
        assert_error(&a, 400, Some(&format!("/{field}")));
        assert!(
            a.json()["message"].as_str().unwrap().contains(field),
            "{}",
            a.text
        );
    }
    // A refused PUT changes nothing, not even its title.
    let a = app
        .mgmt("PUT", &path, Some(json!({"title": "Sneaky", "target": 10})))
        .await;
    assert_error(&a, 400, Some("/target"));
    let got = app.mgmt("GET", &path, None).await.json();
    assert_eq!(got["title"], "New title");
    assert_eq!(got["target"], json!(5));
    // Several locked fields are all named.
    let a = app
        .mgmt("PUT", &path, Some(json!({"target": 10, "period": "2D"})))
        .await;
    assert_error(&a, 400, Some("/target"));
    assert_error(&a, 400, Some("/period"));
}

#[actix_web::test]
async fn putting_the_current_values_is_not_a_change() {
    let seed = seeded("UTC").await;
    let created = seed
        .achievement(body(
            json!({"name": "coffee", "target": 5, "period": "1.5h", "endDate": FUTURE}),
        ))
        .await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let path = achievement_path(application, campaign, id_of(&created));
    // Every field as it is, with the target spelled 5.0 and the same instant
    // written in another offset.
    let put = app
        .mgmt(
            "PUT",
            &path,
            Some(json!({
                "name": "coffee",
                "title": "Achievement",
                "description": "",
                "target": 5.0,
                "period": "1.5h",
                "recurrencePolicy": "no_recurrence",
                "activationPolicy": "user_action",
                "endDate": "2999-01-01T01:00:00+01:00",
                "allowRollbackAfterCompletion": false,
                "endProgressOnTarget": false
            })),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json(), created);
    // The whole Achievement as returned, minus the read-only fields.
    let mut whole = created.clone();
    for k in [
        "id",
        "created",
        "campaignId",
        "userId",
        "hasProgress",
        "status",
    ] {
        whole.as_object_mut().unwrap().remove(k);
    }
    let put = app.mgmt("PUT", &path, Some(whole)).await;
    assert_eq!(put.status, 200, "{}", put.text);
}

#[actix_web::test]
async fn a_stopped_campaign_without_progress_allows_rule_changes_that_stay_valid() {
    let app = spawn_app().await;
    let seed = Seeded::on(app, "UTC", json!({"state": "disabled"})).await;
    let created = seed.achievement(body(json!({"name": "coffee"}))).await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let path = achievement_path(application, campaign, id_of(&created));

    let put = app.mgmt("PUT", &path, Some(json!({"target": 10}))).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["target"], json!(10));

    // The merged definition is validated again.
    let a = app.mgmt("PUT", &path, Some(json!({"period": null}))).await;
    assert_error(&a, 400, Some("/period"));
    let a = app.mgmt("PUT", &path, Some(json!({"period": "1X"}))).await;
    assert_error(&a, 400, Some("/period"));
    let a = app.mgmt("PUT", &path, Some(json!({"target": 0}))).await;
    assert_error(&a, 400, Some("/target"));
    let a = app
        .mgmt(
            "PUT",
            &path,
            Some(json!({"activationPolicy": "fixed_schedule"})),
        )
        .await;
    assert_error(&a, 400, Some("/fixedStartDate"));
    let a = app
        .mgmt(
            "PUT",
            &path,
            Some(json!({"recurrencePolicy": "on_completion", "endProgressOnTarget": true})),
        )
        .await;
    assert_error(&a, 400, Some("/endProgressOnTarget"));
    assert_eq!(app.mgmt("GET", &path, None).await.json()["period"], "1D");

    // A valid change of several rules at once.
    let put = app
        .mgmt(
            "PUT",
            &path,
            Some(json!({"recurrencePolicy": "on_completion", "period": null,
                        "activationPolicy": "fixed_schedule", "fixedStartDate": PAST})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let v = put.json();
    assert_eq!(v["recurrencePolicy"], "on_completion");
    assert_eq!(v["activationPolicy"], "fixed_schedule");
    assert_eq!(v["fixedStartDate"], PAST);
    assert!(v.get("period").is_none_or(Value::is_null), "{v}");
    assert_eq!(v["hasProgress"], false);
}

#[actix_web::test]
async fn a_campaign_outside_its_time_bounds_is_not_running() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    for bounds in [json!({"startTime": FUTURE}), json!({"endTime": PAST})] {
        let campaign = app.campaign(application, bounds.clone()).await;
        let v = app
            .achievement(
                application,
                campaign,
                body(json!({"name": format!("a{campaign}")})),
            )
            .await;
        let path = achievement_path(application, campaign, id_of(&v));
        let put = app.mgmt("PUT", &path, Some(json!({"target": 9}))).await;
        assert_eq!(put.status, 200, "{bounds}: {}", put.text);
        assert_eq!(put.json()["target"], json!(9));
    }
    // Inside its bounds it is running.
    let campaign = app
        .campaign(application, json!({"startTime": PAST, "endTime": FUTURE}))
        .await;
    let v = app
        .achievement(application, campaign, body(json!({"name": "inside"})))
        .await;
    let path = achievement_path(application, campaign, id_of(&v));
    let put = app.mgmt("PUT", &path, Some(json!({"target": 9}))).await;
    assert_error(&put, 400, Some("/target"));
}

#[actix_web::test]
async fn progress_locks_the_rules_even_after_the_campaign_stops() {
    let seed = seeded("UTC").await;
    let id = seed.achievement_id(body(json!({"name": "coffee"}))).await;
    let (app, key, application, campaign) =
        (&seed.app, seed.key.clone(), seed.application, seed.campaign);
    let path = achievement_path(application, campaign, id);
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementId": id, "delta": 1}),
        )
        .await;
    assert_eq!(e.status, 200, "{}", e.text);
    assert_eq!(e.json()["outcome"], "applied", "{}", e.text);
    disable(app, application, campaign).await;

    let got = app.mgmt("GET", &path, None).await.json();
    assert_eq!(got["hasProgress"], true);
    let list = app
        .mgmt("GET", &achievements_path(application, campaign), None)
        .await
        .json();
    assert_eq!(list["data"][0]["hasProgress"], true);

    let a = app.mgmt("PUT", &path, Some(json!({"target": 10}))).await;
    assert_error(&a, 400, Some("/target"));
    let a = app.mgmt("PUT", &path, Some(json!({"period": "2D"}))).await;
    assert_error(&a, 400, Some("/period"));
    let put = app
        .mgmt("PUT", &path, Some(json!({"title": "Renamed", "target": 5})))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["title"], "Renamed");
    assert_eq!(put.json()["hasProgress"], true);
}

#[actix_web::test]
async fn a_name_never_changes() {
    let app = spawn_app().await;
    let seed = Seeded::on(app, "UTC", json!({"state": "disabled"})).await;
    let created = seed.achievement(body(json!({"name": "coffee"}))).await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let path = achievement_path(application, campaign, id_of(&created));
    for name in [json!("tea"), json!("Coffee"), json!("")] {
        let a = app.mgmt("PUT", &path, Some(json!({"name": name}))).await;
        assert_error(&a, 400, Some("/name"));
    }
    let put = app
        .mgmt("PUT", &path, Some(json!({"name": "coffee", "target": 8})))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["name"], "coffee");
    // A PUT with an unknown field is refused as on create.
    let a = app.mgmt("PUT", &path, Some(json!({"colour": "red"}))).await;
    assert_error(&a, 400, Some("/colour"));
}

#[actix_web::test]
async fn an_equivalent_period_spelling_is_not_a_change() {
    let seed = seeded("UTC").await;
    let v = seed
        .achievement(body(json!({"name": "coffee", "period": "1.5h"})))
        .await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let path = achievement_path(application, campaign, id_of(&v));
    let put = app
        .mgmt("PUT", &path, Some(json!({"period": "1.50h"})))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["period"], "1.5h");
    // An empty title is refused on PUT too.
    let put = app.mgmt("PUT", &path, Some(json!({"title": ""}))).await;
    assert_error(&put, 400, Some("/title"));
    let put = app.mgmt("PUT", &path, Some(json!({"title": null}))).await;
    assert!(put.status == 200 || put.status == 400, "{}", put.text);
    assert_eq!(
        app.mgmt("GET", &path, None).await.json()["title"],
        "Achievement"
    );
}
