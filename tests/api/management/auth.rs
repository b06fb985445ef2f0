//! Authentication, routing and transport-level errors of the management API:
//! missing or wrong credentials, malformed or non-JSON bodies, bodies over the
//! limit, unknown routes and wrong methods.

use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

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
