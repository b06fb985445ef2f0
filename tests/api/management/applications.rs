//! Applications: creation and its defaults, validation, reading by id, pages,
//! and the length limits of text fields.

use std::collections::HashSet;

use serde_json::json;

use crate::common::*;
use crate::helpers::*;

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
    assert_utc_date(&v["created"]);
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
    let seed = Seeded::on(app, "UTC", json!({})).await;
    refused(
        &seed,
        json!({"description": "d".repeat(10_001)}),
        "/description",
    )
    .await;
}
