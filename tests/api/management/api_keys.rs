//! Integration API keys: shown once, working for their own application only,
//! created with or without a body.

use std::collections::HashSet;

use serde_json::json;

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn an_api_key_is_shown_once_and_works_for_its_application() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let a = app
        .mgmt(
            "POST",
            &format!("/v1/applications/{application}/api_keys"),
            Some(json!({"name": "pos"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let v = a.json();
    assert!(v["id"].as_u64().is_some(), "{v}");
    assert_eq!(v["name"], "pos");
    assert_utc_date(&v["created"]);
    let key = v["key"].as_str().expect("key").to_string();
    assert!(key.len() >= 20, "key too short: {key}");

    let campaign = app.campaign(application, json!({})).await;
    app.achievement(
        application,
        campaign,
        json!({"name": "coffee", "period": "1D"}),
    )
    .await;
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementName": "coffee", "delta": 1}),
        )
        .await;
    assert_eq!(e.status, 200, "{}", e.text);
    assert_eq!(e.json()["outcome"], "applied");
}

#[actix_web::test]
async fn an_api_key_cannot_reach_another_application() {
    let app = spawn_app().await;
    let (a1, _) = app.application("UTC").await;
    let (_, key2) = app.application("UTC").await;
    let campaign = app.campaign(a1, json!({})).await;
    let ach = app
        .achievement(a1, campaign, json!({"name": "coffee", "period": "1D"}))
        .await;
    // By name: the name is resolved in the key's own application.
    let e = app
        .event(
            &key2,
            json!({"integrationId": "c1", "achievementName": "coffee", "delta": 1}),
        )
        .await;
    assert_error(&e, 404, None);
    // By id: forbidden.
    let e = app
        .event(
            &key2,
            json!({"integrationId": "c1", "achievementId": id_of(&ach), "delta": 1}),
        )
        .await;
    assert_error(&e, 403, None);
}

#[actix_web::test]
async fn an_api_key_can_be_created_without_a_body() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let path = format!("/v1/applications/{application}/api_keys");
    let none = app.raw("POST", &path, Auth::Management, None).await;
    assert_eq!(none.status, 201, "{}", none.text);
    let empty = app.raw("POST", &path, Auth::Management, Some("")).await;
    assert_eq!(empty.status, 201, "{}", empty.text);
    let object = app.mgmt("POST", &path, Some(json!({}))).await;
    assert_eq!(object.status, 201, "{}", object.text);
    let keys: HashSet<String> = [&none, &empty, &object]
        .iter()
        .map(|a| a.json()["key"].as_str().expect("key").to_string())
        .collect();
    assert_eq!(keys.len(), 3, "every key is different");
    for k in &keys {
        let r = app
            .integ(k, "GET", "/v1/customer_profiles/c1/achievements", None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

#[actix_web::test]
async fn an_api_key_body_with_an_unknown_field_is_refused() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let a = app
        .mgmt(
            "POST",
            &format!("/v1/applications/{application}/api_keys"),
            Some(json!({"nmae": "typo"})),
        )
        .await;
    assert_error(&a, 400, Some("/nmae"));
}
