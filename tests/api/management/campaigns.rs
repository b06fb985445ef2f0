//! Campaigns: create, read, list and update, their state and time bounds,
//! and campaigns looked up under the wrong application.

use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn a_campaign_is_created_read_listed_and_updated() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let a = app
        .mgmt(
            "POST",
            &format!("/v1/applications/{application}/campaigns"),
            Some(json!({"name": "Summer"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let created = a.json();
    let id = id_of(&created);
    assert_eq!(created["applicationId"], application);
    assert_eq!(created["name"], "Summer");
    assert_eq!(created["state"], "enabled");
    assert_utc_date(&created["created"]);
    assert!(
        created.get("startTime").is_none_or(Value::is_null),
        "{created}"
    );
    assert!(
        created.get("endTime").is_none_or(Value::is_null),
        "{created}"
    );

    let got = app.mgmt("GET", &campaign_path(application, id), None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json(), created);

    let list = app
        .mgmt(
            "GET",
            &format!("/v1/applications/{application}/campaigns"),
            None,
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.json(), json!({"hasMore": false, "data": [created]}));

    let put = app
        .mgmt(
            "PUT",
            &campaign_path(application, id),
            Some(json!({
                "name": "Winter",
                "state": "disabled",
                "startTime": "2030-01-01T01:00:00+01:00",
                "endTime": "2030-02-01T00:00:00Z"
            })),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let updated = put.json();
    assert_eq!(updated["id"], id);
    assert_eq!(updated["name"], "Winter");
    assert_eq!(updated["state"], "disabled");
    assert_eq!(updated["startTime"], "2030-01-01T00:00:00Z");
    assert_eq!(updated["endTime"], "2030-02-01T00:00:00Z");
    assert_eq!(updated["created"], created["created"]);
    let got = app
        .mgmt("GET", &campaign_path(application, id), None)
        .await
        .json();
    assert_eq!(got, updated);

    // A partial PUT keeps the rest; null clears a bound.
    let put = app
        .mgmt(
            "PUT",
            &campaign_path(application, id),
            Some(json!({"state": "enabled", "endTime": null})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let v = put.json();
    assert_eq!(v["name"], "Winter");
    assert_eq!(v["state"], "enabled");
    assert_eq!(v["startTime"], "2030-01-01T00:00:00Z");
    assert!(v.get("endTime").is_none_or(Value::is_null), "{v}");
}

#[actix_web::test]
async fn a_campaign_with_bounds_reports_them_in_utc() {
    let app = spawn_app().await;
    let (application, _) = app.application("Europe/Berlin").await;
    let a = app
        .mgmt(
            "POST",
            &format!("/v1/applications/{application}/campaigns"),
            Some(json!({
                "name": "c",
                "state": "disabled",
                "startTime": "2024-03-31T03:00:00+02:00",
                "endTime": "2024-04-30T00:00:00Z"
            })),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let v = a.json();
    assert_eq!(v["state"], "disabled");
    assert_eq!(v["startTime"], "2024-03-31T01:00:00Z");
    assert_eq!(v["endTime"], "2024-04-30T00:00:00Z");
}

#[actix_web::test]
async fn a_campaign_state_must_be_enabled_or_disabled() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let path = format!("/v1/applications/{application}/campaigns");
    for state in [json!("running"), json!("Enabled"), json!(true), json!("")] {
        let a = app
            .mgmt("POST", &path, Some(json!({"name": "c", "state": state})))
            .await;
        assert_error(&a, 400, Some("/state"));
    }
    let id = app.campaign(application, json!({})).await;
    let a = app
        .mgmt(
            "PUT",
            &campaign_path(application, id),
            Some(json!({"state": "paused"})),
        )
        .await;
    assert_error(&a, 400, Some("/state"));
    let got = app
        .mgmt("GET", &campaign_path(application, id), None)
        .await
        .json();
    assert_eq!(got["state"], "enabled");
}

#[actix_web::test]
async fn a_campaign_needs_a_name() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let path = format!("/v1/applications/{application}/campaigns");
    let a = app.mgmt("POST", &path, Some(json!({}))).await;
    assert_error(&a, 400, Some("/name"));
    let a = app.mgmt("POST", &path, Some(json!({"name": ""}))).await;
    assert_error(&a, 400, Some("/name"));
}

#[actix_web::test]
async fn a_campaign_end_must_follow_its_start() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let path = format!("/v1/applications/{application}/campaigns");
    for end in ["2030-01-01T00:00:00Z", "2029-12-31T23:59:59Z"] {
        let a = app
            .mgmt(
                "POST",
                &path,
                Some(json!({"name": "c", "startTime": "2030-01-01T00:00:00Z", "endTime": end})),
            )
            .await;
        assert_error(&a, 400, Some("/endTime"));
    }
    let id = app
        .campaign(application, json!({"startTime": "2030-01-01T00:00:00Z"}))
        .await;
    let a = app
        .mgmt(
            "PUT",
            &campaign_path(application, id),
            Some(json!({"endTime": "2029-01-01T00:00:00Z"})),
        )
        .await;
    assert_error(&a, 400, Some("/endTime"));
    let a = app
        .mgmt(
            "POST",
            &path,
            Some(json!({"name": "c", "startTime": "yesterday"})),
        )
        .await;
    assert_error(&a, 400, Some("/startTime"));
}

#[actix_web::test]
async fn an_unknown_campaign_is_404() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let a = app
        .mgmt("GET", &campaign_path(application, 999_999), None)
        .await;
    assert_parameter(&a, 404, "campaignId");
    let a = app
        .mgmt(
            "PUT",
            &campaign_path(application, 999_999),
            Some(json!({"state": "disabled"})),
        )
        .await;
    assert_parameter(&a, 404, "campaignId");
    let a = create(&app, application, 999_999, body(json!({}))).await;
    assert_parameter(&a, 404, "campaignId");
    let a = app
        .mgmt("GET", &achievements_path(application, 999_999), None)
        .await;
    assert_parameter(&a, 404, "campaignId");
    let a = app
        .mgmt(
            "GET",
            &format!("/v1/applications/{application}/campaigns/x"),
            None,
        )
        .await;
    assert_parameter(&a, 400, "campaignId");
}

#[actix_web::test]
async fn a_campaign_is_not_found_under_another_application() {
    let app = spawn_app().await;
    let (a1, _) = app.application("UTC").await;
    let (a2, _) = app.application("UTC").await;
    let campaign = app.campaign(a1, json!({})).await;
    let ach = app.achievement(a1, campaign, body(json!({}))).await;
    let a = app.mgmt("GET", &campaign_path(a2, campaign), None).await;
    assert_error(&a, 404, None);
    let a = app
        .mgmt(
            "PUT",
            &campaign_path(a2, campaign),
            Some(json!({"state": "disabled"})),
        )
        .await;
    assert_error(&a, 404, None);
    let a = create(&app, a2, campaign, body(json!({"name": "other"}))).await;
    assert_error(&a, 404, None);
    let a = app
        .mgmt("GET", &achievement_path(a2, campaign, id_of(&ach)), None)
        .await;
    assert_error(&a, 404, None);
    let a = app
        .mgmt("DELETE", &achievement_path(a2, campaign, id_of(&ach)), None)
        .await;
    assert_error(&a, 404, None);
    let list = app
        .mgmt("GET", &format!("/v1/applications/{a2}/campaigns"), None)
        .await
        .json();
    assert_eq!(list["data"], json!([]));
    // Still there, unchanged, under its own application.
    let a = app.mgmt("GET", &campaign_path(a1, campaign), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["state"], "enabled");
}

#[actix_web::test]
async fn a_campaign_put_refuses_unknown_fields() {
    let seed = seeded("UTC").await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let a = app
        .mgmt(
            "PUT",
            &campaign_path(application, campaign),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_error(&a, 400, Some("/status"));
    let a = app
        .mgmt(
            "PUT",
            &campaign_path(application, campaign),
            Some(json!({"name": ""})),
        )
        .await;
    assert_error(&a, 400, Some("/name"));
}
