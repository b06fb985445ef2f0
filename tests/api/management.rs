//! The management API through real HTTP: authentication, applications, keys,
//! campaigns, achievements (validation, editing rule, deletion), the CSV
//! export and a customer's progress across an application's achievements.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::*;
use achievements_engine::clock::Clock;

const FUTURE: &str = "2999-01-01T00:00:00Z";
const PAST: &str = "2000-01-01T00:00:00Z";

fn achievements_path(application: u64, campaign: u64) -> String {
    format!("/v1/applications/{application}/campaigns/{campaign}/achievements")
}

fn achievement_path(application: u64, campaign: u64, id: u64) -> String {
    format!("/v1/applications/{application}/campaigns/{campaign}/achievements/{id}")
}

fn campaign_path(application: u64, campaign: u64) -> String {
    format!("/v1/applications/{application}/campaigns/{campaign}")
}

/// A valid body (a one-time user-action achievement over one day) with
/// `fields` merged in; a `null` in `fields` removes the key.
fn body(fields: Value) -> Value {
    let mut b = json!({
        "name": "ach",
        "title": "Achievement",
        "description": "",
        "target": 5,
        "period": "1D"
    });
    let obj = b.as_object_mut().expect("object");
    for (k, v) in fields.as_object().expect("object") {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    b
}

/// POSTs an achievement and returns the raw answer.
async fn create(app: &TestApp, application: u64, campaign: u64, body: Value) -> Answer {
    app.mgmt(
        "POST",
        &achievements_path(application, campaign),
        Some(body),
    )
    .await
}

fn id_of(v: &Value) -> u64 {
    v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
}

fn assert_rfc3339_utc(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    assert!(s.ends_with('Z'), "not UTC: {s}");
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
}

fn assert_parameter(a: &Answer, status: u16, parameter: &str) {
    assert_error(a, status, None);
    let v = a.json();
    assert!(
        v["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|e| e["source"]["parameter"] == parameter),
        "no error names parameter {parameter}: {}",
        a.text
    );
}

/// A GET with the management key and an optional Accept header.
async fn get_with_accept(app: &TestApp, path: &str, accept: Option<&str>) -> Answer {
    let mut req = app
        .client
        .get(format!("{}{}", app.base, path))
        .insert_header((
            "Authorization",
            format!("ManagementKey-v1 {}", app.management_key),
        ));
    if let Some(a) = accept {
        req = req.insert_header(("Accept", a));
    }
    let mut res = req.send().await.expect("request sent");
    Answer::read(&mut res).await
}

async fn disable(app: &TestApp, application: u64, campaign: u64) {
    let a = app
        .mgmt(
            "PUT",
            &campaign_path(application, campaign),
            Some(json!({"state": "disabled"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["state"], "disabled");
}

// ---------------------------------------------------------------- auth

#[actix_web::test]
async fn management_routes_refuse_missing_or_wrong_credentials() {
    let app = spawn_app().await;
    let (_, integration_key) = app.application("UTC").await;
    let wrong_scheme = format!("ApiKey-v1 {}", app.management_key);
    let integration_as_management = format!("ManagementKey-v1 {integration_key}");
    let cases: Vec<(&str, Auth<'_>)> = vec![
        ("no header", Auth::None),
        ("wrong key", Auth::Raw("ManagementKey-v1 not-the-key")),
        ("bearer", Auth::Raw("Bearer x")),
        ("empty key", Auth::Raw("ManagementKey-v1 ")),
        ("scheme only", Auth::Raw("ManagementKey-v1")),
        ("integration key", Auth::Integration(&integration_key)),
        (
            "management key, integration scheme",
            Auth::Raw(&wrong_scheme),
        ),
        (
            "integration key, management scheme",
            Auth::Raw(&integration_as_management),
        ),
    ];
    for (what, auth) in cases {
        let a = app.raw("GET", "/v1/applications", auth, None).await;
        assert_eq!(a.status, 401, "{what}: {}", a.text);
        assert_parameter(&a, 401, "Authorization");
        assert!(
            !a.text.contains(&app.management_key),
            "{what}: leaks the key"
        );
    }
}

#[actix_web::test]
async fn a_write_without_credentials_is_refused_before_the_body_is_read() {
    let app = spawn_app().await;
    let a = app
        .raw(
            "POST",
            "/v1/applications",
            Auth::None,
            Some(r#"{"name": "x"}"#),
        )
        .await;
    assert_error(&a, 401, None);
    // Nothing was created.
    let list = app.mgmt("GET", "/v1/applications", None).await.json();
    assert_eq!(list["data"], json!([]));
    // Even a malformed body gets 401, not 400.
    let a = app
        .raw("POST", "/v1/applications", Auth::Raw("Bearer x"), Some("{"))
        .await;
    assert_error(&a, 401, None);
}

#[actix_web::test]
async fn the_management_key_works() {
    let app = spawn_app().await;
    let a = app.mgmt("GET", "/v1/applications", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json(), json!({"hasMore": false, "data": []}));
    // Extra spaces around the key are tolerated.
    let spaced = format!("ManagementKey-v1   {}  ", app.management_key);
    let a = app
        .raw("GET", "/v1/applications", Auth::Raw(&spaced), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

// -------------------------------------------------------- applications

#[actix_web::test]
async fn creating_an_application_returns_it() {
    let app = spawn_app().await;
    let a = app
        .mgmt(
            "POST",
            "/v1/applications",
            Some(json!({"name": "Shop", "timezone": "Europe/Berlin", "description": "main shop"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(a.content_type.starts_with("application/json"));
    let v = a.json();
    assert!(v["id"].as_u64().is_some(), "{v}");
    assert_rfc3339_utc(&v["created"]);
    assert_eq!(v["name"], "Shop");
    assert_eq!(v["timezone"], "Europe/Berlin");
    assert_eq!(v["description"], "main shop");
    let keys: HashSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "created", "name", "timezone", "description"])
    );
}

#[actix_web::test]
async fn an_application_defaults_to_utc_and_an_empty_description() {
    let app = spawn_app().await;
    let a = app
        .mgmt("POST", "/v1/applications", Some(json!({"name": "Shop"})))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let v = a.json();
    assert_eq!(v["timezone"], "UTC");
    assert_eq!(v["description"], "");
}

#[actix_web::test]
async fn two_applications_get_different_ids() {
    let app = spawn_app().await;
    let (a, _) = app.application("UTC").await;
    let (b, _) = app.application("UTC").await;
    assert_ne!(a, b);
}

#[actix_web::test]
async fn an_unknown_timezone_is_refused() {
    let app = spawn_app().await;
    for tz in ["Mars/Olympus_Mons", "", "utc+1", "Europe/berlin"] {
        let a = app
            .mgmt(
                "POST",
                "/v1/applications",
                Some(json!({"name": "Shop", "timezone": tz})),
            )
            .await;
        assert_error(&a, 400, Some("/timezone"));
    }
    let list = app.mgmt("GET", "/v1/applications", None).await.json();
    assert_eq!(list["data"], json!([]), "nothing was created");
}

#[actix_web::test]
async fn an_application_needs_a_name() {
    let app = spawn_app().await;
    let a = app
        .mgmt("POST", "/v1/applications", Some(json!({"timezone": "UTC"})))
        .await;
    assert_error(&a, 400, Some("/name"));
    let a = app
        .mgmt("POST", "/v1/applications", Some(json!({"name": "  "})))
        .await;
    assert_error(&a, 400, Some("/name"));
    let a = app
        .mgmt("POST", "/v1/applications", Some(json!({"name": 5})))
        .await;
    assert_error(&a, 400, Some("/name"));
}

#[actix_web::test]
async fn an_unknown_field_is_refused() {
    let app = spawn_app().await;
    let a = app
        .mgmt(
            "POST",
            "/v1/applications",
            Some(json!({"name": "Shop", "colour": "red"})),
        )
        .await;
    assert_error(&a, 400, Some("/colour"));
}

#[actix_web::test]
async fn malformed_json_is_refused() {
    let app = spawn_app().await;
    for text in [
        r#"{"name": "#,
        "not json",
        "",
        r#"{"name": "a"} trailing"#,
        "[]",
    ] {
        let a = app
            .raw("POST", "/v1/applications", Auth::Management, Some(text))
            .await;
        assert_error(&a, 400, None);
    }
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_refused() {
    let app = spawn_app().await;
    let url = format!("{}/v1/applications", app.base);
    let mut res = app
        .client
        .post(url)
        .insert_header((
            "Authorization",
            format!("ManagementKey-v1 {}", app.management_key),
        ))
        .insert_header(("Content-Type", "text/plain"))
        .send_body(r#"{"name": "Shop"}"#)
        .await
        .expect("sent");
    let status = res.status().as_u16();
    let bytes = res.body().await.expect("body");
    let v: Value = serde_json::from_slice(&bytes).expect("JSON error body");
    assert_eq!(status, 415);
    assert_eq!(v["StatusCode"], 415);
}

#[actix_web::test]
async fn an_application_can_be_read_by_id() {
    let app = spawn_app().await;
    let created = app
        .mgmt(
            "POST",
            "/v1/applications",
            Some(json!({"name": "Shop", "timezone": "America/New_York"})),
        )
        .await
        .json();
    let id = id_of(&created);
    let a = app
        .mgmt("GET", &format!("/v1/applications/{id}"), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json(), created);
}

#[actix_web::test]
async fn an_unknown_application_is_404() {
    let app = spawn_app().await;
    let a = app.mgmt("GET", "/v1/applications/999999", None).await;
    assert_parameter(&a, 404, "applicationId");
    let a = app
        .mgmt(
            "POST",
            "/v1/applications/999999/campaigns",
            Some(json!({"name": "c"})),
        )
        .await;
    assert_error(&a, 404, None);
    let a = app
        .mgmt("GET", "/v1/applications/999999/campaigns", None)
        .await;
    assert_error(&a, 404, None);
    let a = app
        .mgmt(
            "POST",
            "/v1/applications/999999/api_keys",
            Some(json!({"name": "k"})),
        )
        .await;
    assert_error(&a, 404, None);
}

#[actix_web::test]
async fn a_non_numeric_application_id_is_400() {
    let app = spawn_app().await;
    for id in ["abc", "-1", "1.5", "18446744073709551616"] {
        let a = app
            .mgmt("GET", &format!("/v1/applications/{id}"), None)
            .await;
        assert_parameter(&a, 400, "applicationId");
    }
}

#[actix_web::test]
async fn applications_are_listed_in_pages() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let v = app
            .mgmt("POST", "/v1/applications", Some(json!({"name": name})))
            .await
            .json();
        ids.push(id_of(&v));
    }
    let all = app.mgmt("GET", "/v1/applications", None).await.json();
    assert_eq!(all["hasMore"], false);
    let listed: Vec<u64> = all["data"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(listed, ids);

    let first = app
        .mgmt("GET", "/v1/applications?pageSize=2", None)
        .await
        .json();
    assert_eq!(first["hasMore"], true);
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    assert_eq!(id_of(&first["data"][0]), ids[0]);

    let second = app
        .mgmt("GET", "/v1/applications?pageSize=2&skip=2", None)
        .await
        .json();
    assert_eq!(second["hasMore"], false);
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(id_of(&second["data"][0]), ids[2]);

    let exact = app
        .mgmt("GET", "/v1/applications?pageSize=3", None)
        .await
        .json();
    assert_eq!(exact["hasMore"], false);

    let beyond = app
        .mgmt("GET", "/v1/applications?skip=10", None)
        .await
        .json();
    assert_eq!(beyond, json!({"hasMore": false, "data": []}));

    let max = app
        .mgmt("GET", "/v1/applications?pageSize=1000", None)
        .await;
    assert_eq!(max.status, 200, "{}", max.text);
}

#[actix_web::test]
async fn a_page_size_out_of_range_is_400() {
    let app = spawn_app().await;
    for q in ["pageSize=0", "pageSize=1001", "pageSize=abc", "pageSize=-1"] {
        let a = app
            .mgmt("GET", &format!("/v1/applications?{q}"), None)
            .await;
        assert_parameter(&a, 400, "pageSize");
    }
    let a = app.mgmt("GET", "/v1/applications?skip=-1", None).await;
    assert_parameter(&a, 400, "skip");
}

// ------------------------------------------------------------ api keys

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
    assert_rfc3339_utc(&v["created"]);
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

// ----------------------------------------------------------- campaigns

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
    assert_rfc3339_utc(&created["created"]);
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

// -------------------------------------------------------- achievements

#[actix_web::test]
async fn an_achievement_is_created_with_every_field() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = create(
        &app,
        application,
        campaign,
        json!({
            "name": "coffee_lover",
            "title": "Coffee lover",
            "description": "Buy 10 coffees in a week",
            "target": 10,
            "period": "1W",
            "recurrencePolicy": "on_expiration",
            "activationPolicy": "user_action",
            "endDate": "2999-01-01T01:00:00+01:00",
            "allowRollbackAfterCompletion": true,
            "endProgressOnTarget": true
        }),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let mut v = a.json();
    assert!(v["id"].as_u64().is_some(), "{v}");
    assert_rfc3339_utc(&v["created"]);
    let obj = v.as_object_mut().unwrap();
    obj.remove("id");
    obj.remove("created");
    assert_eq!(
        v,
        json!({
            "name": "coffee_lover",
            "title": "Coffee lover",
            "description": "Buy 10 coffees in a week",
            "target": 10,
            "period": "1W",
            "recurrencePolicy": "on_expiration",
            "activationPolicy": "user_action",
            "endDate": "2999-01-01T00:00:00Z",
            "allowRollbackAfterCompletion": true,
            "endProgressOnTarget": true,
            "campaignId": campaign,
            "userId": 0,
            "hasProgress": false,
            "status": "inprogress"
        })
    );
}

#[actix_web::test]
async fn an_achievement_gets_default_policies() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let v = app
        .achievement(
            application,
            campaign,
            json!({"name": "ach", "target": 0.3, "period": "1D"}),
        )
        .await;
    assert_eq!(v["recurrencePolicy"], "no_recurrence");
    assert_eq!(v["activationPolicy"], "user_action");
    assert_eq!(v["allowRollbackAfterCompletion"], false);
    assert_eq!(v["endProgressOnTarget"], false);
    assert_eq!(v["target"], json!(0.3));
    assert_eq!(v["description"], "");
    assert!(v.get("fixedStartDate").is_none_or(Value::is_null), "{v}");
    assert!(v.get("endDate").is_none_or(Value::is_null), "{v}");
}

#[actix_web::test]
async fn every_valid_policy_combination_is_accepted() {
    let app = spawn_app().await;
    let (application, _) = app.application("Europe/Berlin").await;
    let campaign = app.campaign(application, json!({})).await;
    let start = "2023-10-10T00:00:00Z";
    // One-time fixed windows must still be open for status `inprogress`.
    let recent = (chrono::Utc::now() - chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cases = [
        json!({"recurrencePolicy": "no_recurrence", "activationPolicy": "user_action", "period": "1D"}),
        json!({"recurrencePolicy": "no_recurrence", "activationPolicy": "user_action", "period": "3M_U", "endDate": FUTURE}),
        json!({"recurrencePolicy": "on_expiration", "activationPolicy": "user_action", "period": "1W_U"}),
        json!({"recurrencePolicy": "on_expiration", "activationPolicy": "user_action", "period": "1.5h"}),
        json!({"recurrencePolicy": "on_completion", "activationPolicy": "user_action", "period": null}),
        json!({"recurrencePolicy": "on_completion", "activationPolicy": "user_action", "period": "1D_D"}),
        json!({"recurrencePolicy": "no_recurrence", "activationPolicy": "fixed_schedule", "fixedStartDate": recent, "period": "1M"}),
        json!({"recurrencePolicy": "no_recurrence", "activationPolicy": "fixed_schedule", "fixedStartDate": start, "period": null, "endDate": FUTURE}),
        json!({"recurrencePolicy": "no_recurrence", "activationPolicy": "fixed_schedule", "fixedStartDate": recent, "period": "1Y", "endDate": FUTURE}),
        json!({"recurrencePolicy": "on_expiration", "activationPolicy": "fixed_schedule", "fixedStartDate": start, "period": "2Y"}),
        json!({"recurrencePolicy": "on_completion", "activationPolicy": "fixed_schedule", "fixedStartDate": start, "period": null}),
        json!({"recurrencePolicy": "on_completion", "activationPolicy": "fixed_schedule", "fixedStartDate": start, "period": "1W"}),
        json!({"recurrencePolicy": "no_recurrence", "period": "1D", "endProgressOnTarget": true, "allowRollbackAfterCompletion": true}),
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut fields = case.clone();
        fields["name"] = json!(format!("ach{i}"));
        let sent = body(fields);
        let a = create(&app, application, campaign, sent.clone()).await;
        assert_eq!(a.status, 201, "case {i} {case}: {}", a.text);
        let v = a.json();
        for key in [
            "id",
            "created",
            "name",
            "title",
            "description",
            "target",
            "recurrencePolicy",
            "activationPolicy",
            "allowRollbackAfterCompletion",
            "endProgressOnTarget",
            "campaignId",
            "userId",
            "hasProgress",
            "status",
        ] {
            assert!(
                v.get(key).is_some_and(|x| !x.is_null()),
                "case {i}: {key} missing in {v}"
            );
        }
        for key in [
            "name",
            "period",
            "recurrencePolicy",
            "activationPolicy",
            "fixedStartDate",
            "endDate",
        ] {
            if let Some(expected) = sent.get(key) {
                assert_eq!(v[key], *expected, "case {i}: {key} in {v}");
            } else if key.ends_with("Policy") {
                assert!(v[key].is_string(), "case {i}: {key} in {v}");
            } else {
                assert!(
                    v.get(key).is_none_or(Value::is_null),
                    "case {i}: {key} in {v}"
                );
            }
        }
        assert_eq!(v["userId"], 0);
        assert_eq!(v["hasProgress"], false);
        assert_eq!(v["campaignId"], campaign);
        assert_eq!(v["status"], "inprogress", "case {i}");
        // And it reads back the same.
        let got = app
            .mgmt(
                "GET",
                &achievement_path(application, campaign, id_of(&v)),
                None,
            )
            .await;
        assert_eq!(got.status, 200, "{}", got.text);
        assert_eq!(got.json(), v, "case {i}");
    }
}

/// Sends `fields` merged into a valid body and expects 400 at `pointer`.
async fn refused(app: &TestApp, application: u64, campaign: u64, fields: Value, pointer: &str) {
    let sent = body(fields);
    let a = create(app, application, campaign, sent.clone()).await;
    assert_eq!(a.status, 400, "{sent} was accepted: {}", a.text);
    assert_error(&a, 400, Some(pointer));
    let message = a.json()["message"].as_str().unwrap().to_string();
    let field = pointer.trim_start_matches('/');
    assert!(
        message.contains(field) || a.text.contains(&format!("\"{pointer}\"")),
        "message does not name {field}: {message}"
    );
}

#[actix_web::test]
async fn a_missing_period_is_refused_where_it_is_required() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let start = "2023-10-10T00:00:00Z";
    for fields in [
        json!({"period": null}),
        json!({"period": null, "recurrencePolicy": "no_recurrence", "activationPolicy": "user_action"}),
        json!({"period": null, "recurrencePolicy": "on_expiration", "activationPolicy": "user_action"}),
        json!({"period": null, "recurrencePolicy": "on_expiration", "activationPolicy": "fixed_schedule", "fixedStartDate": start}),
        json!({"period": null, "recurrencePolicy": "on_expiration", "activationPolicy": "fixed_schedule", "fixedStartDate": start, "endDate": FUTURE}),
    ] {
        refused(&app, application, campaign, fields, "/period").await;
    }
}

#[actix_web::test]
async fn a_malformed_period_is_refused() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    for period in [
        json!("3X"),
        json!("0D"),
        json!("1.5M"),
        json!("1.5Y"),
        json!("1d"),
        json!("D"),
        json!(""),
        json!("-1D"),
        json!("1h_U"),
        json!("1W_D"),
        json!("1D_X"),
        json!("1 D"),
        json!(5),
    ] {
        refused(
            &app,
            application,
            campaign,
            json!({"period": period}),
            "/period",
        )
        .await;
    }
}

#[actix_web::test]
async fn fixed_start_date_goes_only_with_fixed_schedule() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    refused(
        &app,
        application,
        campaign,
        json!({"fixedStartDate": "2023-10-10T00:00:00Z"}),
        "/fixedStartDate",
    )
    .await;
    refused(
        &app,
        application,
        campaign,
        json!({"activationPolicy": "user_action", "recurrencePolicy": "on_completion", "period": null, "fixedStartDate": "2023-10-10T00:00:00Z"}),
        "/fixedStartDate",
    )
    .await;
    for recurrence in ["no_recurrence", "on_expiration", "on_completion"] {
        refused(
            &app,
            application,
            campaign,
            json!({"activationPolicy": "fixed_schedule", "recurrencePolicy": recurrence}),
            "/fixedStartDate",
        )
        .await;
    }
    refused(
        &app,
        application,
        campaign,
        json!({"activationPolicy": "fixed_schedule", "fixedStartDate": "10/10/2023"}),
        "/fixedStartDate",
    )
    .await;
}

#[actix_web::test]
async fn a_one_time_fixed_schedule_needs_a_period_or_an_end_date() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    refused(
        &app,
        application,
        campaign,
        json!({"activationPolicy": "fixed_schedule", "recurrencePolicy": "no_recurrence",
               "fixedStartDate": "2023-10-10T00:00:00Z", "period": null}),
        "/endDate",
    )
    .await;
}

#[actix_web::test]
async fn an_end_date_must_follow_the_fixed_start_date() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    for end in ["2023-10-10T00:00:00Z", "2023-10-09T00:00:00Z"] {
        refused(
            &app,
            application,
            campaign,
            json!({"activationPolicy": "fixed_schedule", "fixedStartDate": "2023-10-10T00:00:00Z",
                   "endDate": end}),
            "/endDate",
        )
        .await;
    }
    refused(
        &app,
        application,
        campaign,
        json!({"endDate": "tomorrow"}),
        "/endDate",
    )
    .await;
}

#[actix_web::test]
async fn on_completion_refuses_end_progress_on_target_and_rollback_after_completion() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    refused(
        &app,
        application,
        campaign,
        json!({"recurrencePolicy": "on_completion", "endProgressOnTarget": true}),
        "/endProgressOnTarget",
    )
    .await;
    refused(
        &app,
        application,
        campaign,
        json!({"recurrencePolicy": "on_completion", "allowRollbackAfterCompletion": true}),
        "/allowRollbackAfterCompletion",
    )
    .await;
    // false is fine.
    let a = create(
        &app,
        application,
        campaign,
        body(
            json!({"recurrencePolicy": "on_completion", "endProgressOnTarget": false,
                    "allowRollbackAfterCompletion": false}),
        ),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
}

#[actix_web::test]
async fn a_target_must_be_a_positive_number() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    for target in [
        json!(0),
        json!(-1),
        json!(-0.5),
        json!("5"),
        json!(true),
        json!([5]),
    ] {
        refused(
            &app,
            application,
            campaign,
            json!({"target": target}),
            "/target",
        )
        .await;
    }
    // A tiny positive decimal is fine and exact.
    let v = app
        .achievement(
            application,
            campaign,
            body(json!({"name": "tiny", "target": 0.0001})),
        )
        .await;
    assert_eq!(v["target"], json!(0.0001));
}

#[actix_web::test]
async fn an_achievement_name_must_match_the_pattern() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let too_long = format!("a{}", "b".repeat(1000));
    for name in [
        "1abc",
        "a",
        "a b",
        "",
        "_ab",
        "ab-c",
        "café",
        "ab\n",
        too_long.as_str(),
    ] {
        refused(&app, application, campaign, json!({"name": name}), "/name").await;
    }
    refused(&app, application, campaign, json!({"name": 5}), "/name").await;
    // Two characters, underscores and digits, and exactly 1000 characters are fine.
    let longest = format!("a{}", "b".repeat(999));
    for name in ["ab", "a_1", "A9_z", longest.as_str()] {
        let a = create(&app, application, campaign, body(json!({"name": name}))).await;
        assert_eq!(a.status, 201, "{name}: {}", a.text);
        assert_eq!(a.json()["name"], name);
    }
}

#[actix_web::test]
async fn required_achievement_fields_are_named_when_missing() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    for field in ["name", "title", "description", "target"] {
        let mut b = body(json!({}));
        b.as_object_mut().unwrap().remove(field);
        let a = create(&app, application, campaign, b).await;
        assert_error(&a, 400, Some(&format!("/{field}")));
    }
    refused(&app, application, campaign, json!({"title": ""}), "/title").await;
    refused(
        &app,
        application,
        campaign,
        json!({"title": "t".repeat(1001)}),
        "/title",
    )
    .await;
    refused(
        &app,
        application,
        campaign,
        json!({"recurrencePolicy": "weekly"}),
        "/recurrencePolicy",
    )
    .await;
    refused(
        &app,
        application,
        campaign,
        json!({"activationPolicy": "manual"}),
        "/activationPolicy",
    )
    .await;
    refused(
        &app,
        application,
        campaign,
        json!({"colour": "red"}),
        "/colour",
    )
    .await;
    // Nothing was created by any of these.
    let list = app
        .mgmt("GET", &achievements_path(application, campaign), None)
        .await
        .json();
    assert_eq!(list["data"], json!([]));
}

#[actix_web::test]
async fn an_achievement_name_is_unique_within_its_application() {
    let app = spawn_app().await;
    let (a1, _) = app.application("UTC").await;
    let (a2, _) = app.application("UTC").await;
    let c1 = app.campaign(a1, json!({})).await;
    let c1b = app.campaign(a1, json!({})).await;
    let c2 = app.campaign(a2, json!({})).await;
    app.achievement(a1, c1, body(json!({"name": "coffee"})))
        .await;

    let same_campaign = create(&app, a1, c1, body(json!({"name": "coffee"}))).await;
    assert_error(&same_campaign, 409, Some("/name"));
    let other_campaign = create(&app, a1, c1b, body(json!({"name": "coffee"}))).await;
    assert_error(&other_campaign, 409, Some("/name"));
    // Names are case-sensitive.
    let other_case = create(&app, a1, c1b, body(json!({"name": "Coffee"}))).await;
    assert_eq!(other_case.status, 201, "{}", other_case.text);
    let other_app = create(&app, a2, c2, body(json!({"name": "coffee"}))).await;
    assert_eq!(other_app.status, 201, "{}", other_app.text);

    let list = app
        .mgmt("GET", &achievements_path(a1, c1b), None)
        .await
        .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn an_achievement_status_follows_its_dates() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let not_started = app
        .achievement(
            application,
            campaign,
            body(
                json!({"name": "later", "activationPolicy": "fixed_schedule",
                        "fixedStartDate": FUTURE, "period": "1M"}),
            ),
        )
        .await;
    assert_eq!(not_started["status"], "not_started");
    let expired = app
        .achievement(
            application,
            campaign,
            body(json!({"name": "gone", "endDate": PAST})),
        )
        .await;
    assert_eq!(expired["status"], "expired");
    let expired_window = app
        .achievement(
            application,
            campaign,
            body(
                json!({"name": "window", "activationPolicy": "fixed_schedule",
                        "fixedStartDate": "2001-01-01T00:00:00Z", "period": "1D"}),
            ),
        )
        .await;
    assert_eq!(expired_window["status"], "expired");
    let running = app
        .achievement(
            application,
            campaign,
            body(json!({"name": "now", "activationPolicy": "fixed_schedule",
                        "fixedStartDate": PAST, "endDate": FUTURE, "recurrencePolicy": "on_expiration"})),
        )
        .await;
    assert_eq!(running["status"], "inprogress");
    // The same statuses in the list.
    let list = app
        .mgmt("GET", &achievements_path(application, campaign), None)
        .await
        .json();
    let statuses: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["not_started", "expired", "expired", "inprogress"]
    );
}

#[actix_web::test]
async fn achievements_are_listed_in_pages_and_filtered_by_title() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let other = app.campaign(application, json!({})).await;
    let mut ids = Vec::new();
    for (name, title) in [("a1", "Coffee lover"), ("a2", "Tea lover"), ("a3", "Cake")] {
        let v = app
            .achievement(
                application,
                campaign,
                body(json!({"name": name, "title": title})),
            )
            .await;
        ids.push(id_of(&v));
    }
    app.achievement(
        application,
        other,
        body(json!({"name": "elsewhere", "title": "Coffee elsewhere"})),
    )
    .await;
    let path = achievements_path(application, campaign);
    let ids_of =
        |v: &Value| -> Vec<u64> { v["data"].as_array().unwrap().iter().map(id_of).collect() };

    let all = app.mgmt("GET", &path, None).await.json();
    assert_eq!(ids_of(&all), ids);
    assert_eq!(all["hasMore"], false);

    let page = app
        .mgmt("GET", &format!("{path}?pageSize=2"), None)
        .await
        .json();
    assert_eq!(ids_of(&page), ids[..2]);
    assert_eq!(page["hasMore"], true);
    let page = app
        .mgmt("GET", &format!("{path}?pageSize=2&skip=2"), None)
        .await
        .json();
    assert_eq!(ids_of(&page), ids[2..]);
    assert_eq!(page["hasMore"], false);
    let page = app.mgmt("GET", &format!("{path}?pageSize=50"), None).await;
    assert_eq!(page.status, 200, "{}", page.text);

    let lovers = app
        .mgmt("GET", &format!("{path}?title=lover"), None)
        .await
        .json();
    assert_eq!(ids_of(&lovers), ids[..2]);
    let coffee = app
        .mgmt("GET", &format!("{path}?title=Coffee%20lover"), None)
        .await
        .json();
    assert_eq!(ids_of(&coffee), [ids[0]]);
    let lovers_page = app
        .mgmt("GET", &format!("{path}?title=lover&pageSize=1"), None)
        .await
        .json();
    assert_eq!(ids_of(&lovers_page), [ids[0]]);
    assert_eq!(lovers_page["hasMore"], true);
    let none = app
        .mgmt("GET", &format!("{path}?title=pizza"), None)
        .await
        .json();
    assert_eq!(none, json!({"hasMore": false, "data": []}));

    for q in ["pageSize=51", "pageSize=0", "pageSize=x"] {
        let a = app.mgmt("GET", &format!("{path}?{q}"), None).await;
        assert_parameter(&a, 400, "pageSize");
    }
}

#[actix_web::test]
async fn an_achievement_is_read_updated_and_deleted() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app
        .campaign(application, json!({"state": "disabled"}))
        .await;
    let created = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
    let path = achievement_path(application, campaign, id_of(&created));

    let got = app.mgmt("GET", &path, None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json(), created);

    let put = app
        .mgmt(
            "PUT",
            &path,
            Some(json!({"title": "Coffee", "description": "Drink", "target": 7})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let updated = put.json();
    assert_eq!(updated["title"], "Coffee");
    assert_eq!(updated["description"], "Drink");
    assert_eq!(updated["target"], json!(7));
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["created"], created["created"]);
    assert_eq!(updated["name"], "coffee");
    assert_eq!(updated["period"], "1D");
    assert_eq!(app.mgmt("GET", &path, None).await.json(), updated);

    // An empty PUT changes nothing.
    let put = app.mgmt("PUT", &path, Some(json!({}))).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json(), updated);

    let del = app.mgmt("DELETE", &path, None).await;
    assert_eq!(del.status, 204, "{}", del.text);
    assert_eq!(del.text, "");
    assert_error(&app.mgmt("GET", &path, None).await, 404, None);
    assert_error(
        &app.mgmt("PUT", &path, Some(json!({"title": "x"}))).await,
        404,
        None,
    );
    assert_error(&app.mgmt("DELETE", &path, None).await, 404, None);
    assert_error(
        &app.mgmt("GET", &format!("{path}/export"), None).await,
        404,
        None,
    );
    let list = app
        .mgmt("GET", &achievements_path(application, campaign), None)
        .await
        .json();
    assert_eq!(list["data"], json!([]));
    // Its name is free again.
    let again = create(&app, application, campaign, body(json!({"name": "coffee"}))).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_ne!(again.json()["id"], created["id"]);
}

#[actix_web::test]
async fn an_unknown_achievement_is_404() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let other = app.campaign(application, json!({})).await;
    let path = achievement_path(application, campaign, 999_999);
    assert_parameter(&app.mgmt("GET", &path, None).await, 404, "achievementId");
    assert_parameter(&app.mgmt("DELETE", &path, None).await, 404, "achievementId");
    // An achievement is only found under its own campaign.
    let v = app
        .achievement(application, campaign, body(json!({})))
        .await;
    let wrong = achievement_path(application, other, id_of(&v));
    assert_error(&app.mgmt("GET", &wrong, None).await, 404, None);
    assert_error(&app.mgmt("DELETE", &wrong, None).await, 404, None);
    assert_error(
        &app.mgmt("PUT", &wrong, Some(json!({"title": "x"}))).await,
        404,
        None,
    );
    let ok = app
        .mgmt(
            "GET",
            &achievement_path(application, campaign, id_of(&v)),
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["title"], "Achievement");
}

// ----------------------------------------------------------- editing

#[actix_web::test]
async fn a_running_campaign_allows_only_title_and_description_changes() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let created = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
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
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let created = app
        .achievement(
            application,
            campaign,
            body(json!({"name": "coffee", "target": 5, "period": "1.5h", "endDate": FUTURE})),
        )
        .await;
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
    let (application, _) = app.application("UTC").await;
    let campaign = app
        .campaign(application, json!({"state": "disabled"}))
        .await;
    let created = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
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
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let created = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
    let id = id_of(&created);
    let path = achievement_path(application, campaign, id);
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementId": id, "delta": 1}),
        )
        .await;
    assert_eq!(e.status, 200, "{}", e.text);
    assert_eq!(e.json()["outcome"], "applied", "{}", e.text);
    disable(&app, application, campaign).await;

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
    let (application, _) = app.application("UTC").await;
    let campaign = app
        .campaign(application, json!({"state": "disabled"}))
        .await;
    let created = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
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

// ------------------------------------------------------------ deletion

#[actix_web::test]
async fn deleting_an_achievement_removes_its_progress() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let first = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
    let first_id = id_of(&first);
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementName": "coffee", "delta": 3}),
        )
        .await;
    assert_eq!(e.json()["outcome"], "applied", "{}", e.text);
    let progress_path = format!("/v1/applications/{application}/achievement_progress/c1");
    let before = app.mgmt("GET", &progress_path, None).await.json();
    assert_eq!(before["data"][0]["status"], "inprogress");
    assert_eq!(before["data"][0]["progress"], json!(3));

    let del = app
        .mgmt(
            "DELETE",
            &achievement_path(application, campaign, first_id),
            None,
        )
        .await;
    assert_eq!(del.status, 204, "{}", del.text);
    let gone = app.mgmt("GET", &progress_path, None).await.json();
    assert_eq!(gone, json!({"hasMore": false, "data": []}));
    // Events for the deleted achievement find nothing.
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementId": first_id, "delta": 1}),
        )
        .await;
    assert_error(&e, 404, None);

    let second = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
    let second_id = id_of(&second);
    assert_eq!(second["hasProgress"], false);
    let after = app.mgmt("GET", &progress_path, None).await.json();
    assert_eq!(after["data"].as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after["data"][0]["achievementId"], second_id);
    assert_eq!(after["data"][0]["status"], "not_started");
    assert_eq!(after["data"][0]["progress"], json!(0));
    let export = app
        .mgmt(
            "GET",
            &format!(
                "{}/export",
                achievement_path(application, campaign, second_id)
            ),
            None,
        )
        .await;
    assert_eq!(export.text.lines().count(), 1, "{}", export.text);
    // The customer starts from zero in the new one.
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementName": "coffee", "delta": 1}),
        )
        .await
        .json();
    assert_eq!(e["outcome"], "applied");
    let increase = e["effects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["effectType"] == "increaseAchievementProgress")
        .expect("increase effect")
        .clone();
    assert_eq!(increase["props"]["value"], json!(1));
    assert_eq!(increase["props"]["achievementId"], second_id);
    let history = app
        .integ(
            &key,
            "GET",
            &format!("/v1/customer_profiles/c1/achievements/{second_id}"),
            None,
        )
        .await
        .json();
    assert_eq!(history["data"].as_array().unwrap().len(), 1, "{history}");
}

// ---------------------------------------------------------- CSV export

const CSV_HEADER: &str =
    "profileIntegrationID,title,target,progress,status,startDate,endDate,completionDate";

#[actix_web::test]
async fn the_export_has_one_row_per_iteration() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let v = app
        .achievement(
            application,
            campaign,
            body(json!({"name": "coffee", "title": "Coffee", "target": 2,
                        "recurrencePolicy": "on_completion", "period": null})),
        )
        .await;
    let id = id_of(&v);
    let e = app
        .event(
            &key,
            json!({"integrationId": "doe, jane", "achievementId": id, "delta": 5}),
        )
        .await;
    assert_eq!(e.json()["outcome"], "applied", "{}", e.text);

    let a = app
        .mgmt(
            "GET",
            &format!("{}/export", achievement_path(application, campaign, id)),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.content_type.starts_with("text/csv"), "{}", a.content_type);
    let lines: Vec<&str> = a.text.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines.len(), 4, "{}", a.text);
    let rows = &lines[1..];
    for row in rows {
        assert!(row.starts_with("\"doe, jane\",Coffee,2,"), "{row}");
    }
    let cells = |row: &str| -> Vec<String> {
        row.trim_start_matches("\"doe, jane\",")
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let mut completed = 0;
    let mut inprogress = 0;
    for row in rows {
        let c = cells(row);
        assert_eq!(c.len(), 7, "{row}");
        // title,target,progress,status,startDate,endDate,completionDate
        match c[3].as_str() {
            "completed" => {
                completed += 1;
                assert_eq!(c[2], "2", "{row}");
                chrono::DateTime::parse_from_rfc3339(&c[4]).expect("startDate");
                assert_eq!(c[5], "", "no period, no endDate: {row}");
                chrono::DateTime::parse_from_rfc3339(&c[6]).expect("completionDate");
            }
            "inprogress" => {
                inprogress += 1;
                assert_eq!(c[2], "1", "{row}");
                chrono::DateTime::parse_from_rfc3339(&c[4]).expect("startDate");
                assert!(
                    row.ends_with(",,"),
                    "empty endDate and completionDate: {row}"
                );
            }
            other => panic!("unexpected status {other}: {row}"),
        }
    }
    assert_eq!((completed, inprogress), (2, 1));
}

#[actix_web::test]
async fn the_export_is_csv_when_the_client_asks_for_application_csv() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let v = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
    let id = id_of(&v);
    app.event(
        &key,
        json!({"integrationId": "c1", "achievementId": id, "delta": 1}),
    )
    .await;
    let path = format!("{}/export", achievement_path(application, campaign, id));
    for accept in [Some("application/csv"), Some("text/csv"), Some("*/*"), None] {
        let a = get_with_accept(&app, &path, accept).await;
        assert_eq!(a.status, 200, "{accept:?}: {}", a.text);
        assert!(
            a.content_type.starts_with("text/csv"),
            "{accept:?}: {}",
            a.content_type
        );
        let lines: Vec<&str> = a.text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.len(), 2, "{}", a.text);
        // One day from the first progress; no completion.
        let c: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(&c[..5], ["c1", "Achievement", "5", "1", "inprogress"]);
        let start = chrono::DateTime::parse_from_rfc3339(c[5]).expect("start");
        let end = chrono::DateTime::parse_from_rfc3339(c[6]).expect("end");
        assert_eq!(end - start, chrono::Duration::days(1));
        assert_eq!(c[7], "");
    }
}

#[actix_web::test]
async fn an_export_without_progress_is_the_header_only() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let v = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
    let a = app
        .mgmt(
            "GET",
            &format!(
                "{}/export",
                achievement_path(application, campaign, id_of(&v))
            ),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.text, format!("{CSV_HEADER}\n"));
}

#[actix_web::test]
async fn the_export_quotes_cells_that_need_it() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let v = app
        .achievement(
            application,
            campaign,
            body(json!({"name": "coffee", "title": "Say \"hi\", please"})),
        )
        .await;
    let id = id_of(&v);
    app.event(
        &key,
        json!({"integrationId": "q\"uote", "achievementId": id, "delta": 1}),
    )
    .await;
    let a = app
        .mgmt(
            "GET",
            &format!("{}/export", achievement_path(application, campaign, id)),
            None,
        )
        .await;
    let lines: Vec<&str> = a.text.lines().collect();
    assert_eq!(lines.len(), 2, "{}", a.text);
    assert!(
        lines[1].starts_with("\"q\"\"uote\",\"Say \"\"hi\"\", please\",5,1,inprogress,"),
        "{}",
        lines[1]
    );
}

#[actix_web::test]
async fn an_export_of_thousands_of_customers_has_a_row_each() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let v = app
        .achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
    let id = id_of(&v);
    let events: Vec<Value> = (0..3000)
        .map(|i| json!({"integrationId": format!("customer-{i}"), "achievementId": id, "delta": 1}))
        .collect();
    let b = app
        .integ(
            &key,
            "POST",
            "/v1/progress_events/batch?results=none",
            Some(json!({ "events": events })),
        )
        .await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(b.json()["applied"], 3000, "{}", b.text);

    let a = app
        .mgmt(
            "GET",
            &format!("{}/export", achievement_path(application, campaign, id)),
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    let lines: Vec<&str> = a.text.lines().collect();
    assert_eq!(lines.len(), 3001);
    assert_eq!(lines[0], CSV_HEADER);
    let customers: HashSet<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(customers.len(), 3000);
    assert!(customers.contains("customer-0") && customers.contains("customer-2999"));
}

// ------------------------------------------------ achievement_progress

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
    assert_rfc3339_utc(&c["startDate"]);
    assert_rfc3339_utc(&c["endDate"]);
    assert_rfc3339_utc(&c["completionDate"]);
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
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    app.achievement(
        application,
        campaign,
        body(
            json!({"name": "coffee", "target": 2, "recurrencePolicy": "on_completion",
                    "period": null}),
        ),
    )
    .await;
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
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let mut ids = Vec::new();
    for (name, title) in [("a1", "Coffee lover"), ("a2", "Tea lover"), ("a3", "Cake")] {
        let v = app
            .achievement(
                application,
                campaign,
                body(json!({"name": name, "title": title})),
            )
            .await;
        ids.push(id_of(&v));
    }
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

// ------------------------------------------------------------- routing

#[actix_web::test]
async fn an_unknown_route_is_404_in_the_error_shape() {
    let app = spawn_app().await;
    for (method, path) in [
        ("GET", "/v1/nothing"),
        ("GET", "/"),
        ("POST", "/v1/applications/1/whatever"),
        ("GET", "/v2/applications"),
    ] {
        let a = app.mgmt(method, path, None).await;
        assert_error(&a, 404, None);
    }
    let a = app.raw("GET", "/v1/nothing", Auth::None, None).await;
    assert_error(&a, 404, None);
}

#[actix_web::test]
async fn a_wrong_method_gets_the_error_shape() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    for (method, path) in [
        ("DELETE", "/v1/applications".to_string()),
        ("PATCH", format!("/v1/applications/{application}")),
        ("PUT", format!("/v1/applications/{application}/api_keys")),
    ] {
        let a = app.mgmt(method, &path, None).await;
        assert!(
            a.status == 404 || a.status == 405,
            "{method} {path}: {} {}",
            a.status,
            a.text
        );
        assert_error(&a, a.status, None);
    }
}

// ------------------------------------------------------- more edges

#[actix_web::test]
async fn a_customer_id_with_reserved_characters_is_found_through_the_path() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    app.achievement(application, campaign, body(json!({"name": "coffee"})))
        .await;
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
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let v = app
        .achievement(
            application,
            campaign,
            body(json!({"name": "quick", "period": "1s"})),
        )
        .await;
    let id = id_of(&v);
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

#[actix_web::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let a = app
        .mgmt(
            "POST",
            "/v1/applications",
            Some(json!({"name": "x", "description": "d".repeat(300 * 1024)})),
        )
        .await;
    assert_error(&a, 413, None);
}

#[actix_web::test]
async fn text_fields_have_length_limits() {
    let app = spawn_app().await;
    let a = app
        .mgmt(
            "POST",
            "/v1/applications",
            Some(json!({"name": "x", "description": "d".repeat(10_001)})),
        )
        .await;
    assert_error(&a, 400, Some("/description"));
    let a = app
        .mgmt(
            "POST",
            "/v1/applications",
            Some(json!({"name": "n".repeat(1001)})),
        )
        .await;
    assert_error(&a, 400, Some("/name"));
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    refused(
        &app,
        application,
        campaign,
        json!({"description": "d".repeat(10_001)}),
        "/description",
    )
    .await;
}

#[actix_web::test]
async fn targets_are_exact_decimals() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let path = achievements_path(application, campaign);
    let a = app
        .raw(
            "POST",
            &path,
            Auth::Management,
            Some(r#"{"name": "sci", "title": "t", "description": "", "target": 1e2, "period": "1D"}"#),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["target"], json!(100));
    let a = app
        .raw(
            "POST",
            &path,
            Auth::Management,
            Some(r#"{"name": "trail", "title": "t", "description": "", "target": 2.50, "period": "1D"}"#),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["target"], json!(2.5));
    let a = app
        .raw(
            "POST",
            &path,
            Auth::Management,
            Some(r#"{"name": "fine", "title": "t", "description": "", "target": 0.123456789012345678901234567, "period": "1D"}"#),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(
        a.text.contains("0.123456789012345678901234567"),
        "{}",
        a.text
    );
    for target in ["1e40", "0.00000000000000000000000000000001"] {
        let a = app
            .raw(
                "POST",
                &path,
                Auth::Management,
                Some(&format!(
                    r#"{{"name": "big", "title": "t", "description": "", "target": {target}, "period": "1D"}}"#
                )),
            )
            .await;
        assert_error(&a, 400, Some("/target"));
    }
}

#[actix_web::test]
async fn an_equivalent_period_spelling_is_not_a_change() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let v = app
        .achievement(
            application,
            campaign,
            body(json!({"name": "coffee", "period": "1.5h"})),
        )
        .await;
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

#[actix_web::test]
async fn a_campaign_put_refuses_unknown_fields() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
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

#[actix_web::test]
async fn an_exact_multiple_of_the_target_completes_iterations_without_opening_one() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let v = app
        .achievement(
            application,
            campaign,
            body(
                json!({"name": "coffee", "target": 2, "recurrencePolicy": "on_completion",
                        "period": "1W"}),
            ),
        )
        .await;
    let id = id_of(&v);
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementId": id, "delta": 4}),
        )
        .await;
    assert_eq!(e.json()["outcome"], "applied", "{}", e.text);
    disable(&app, application, campaign).await;
    let got = app
        .mgmt("GET", &achievement_path(application, campaign, id), None)
        .await
        .json();
    assert_eq!(got["hasProgress"], true, "{got}");
    let put = app
        .mgmt(
            "PUT",
            &achievement_path(application, campaign, id),
            Some(json!({"target": 3})),
        )
        .await;
    assert_error(&put, 400, Some("/target"));
    let export = app
        .mgmt(
            "GET",
            &format!("{}/export", achievement_path(application, campaign, id)),
            None,
        )
        .await;
    let lines: Vec<&str> = export.text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", export.text);
    for row in &lines[1..] {
        let c: Vec<&str> = row.split(',').collect();
        assert_eq!(
            &c[..5],
            ["c1", "Achievement", "2", "2", "completed"],
            "{row}"
        );
        let start = chrono::DateTime::parse_from_rfc3339(c[5]).expect("start");
        let end = chrono::DateTime::parse_from_rfc3339(c[6]).expect("end");
        assert_eq!(end - start, chrono::Duration::weeks(1), "{row}");
        chrono::DateTime::parse_from_rfc3339(c[7]).expect("completion");
    }
}
