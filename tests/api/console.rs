//! What the web console needs from the server: its page over real HTTP, and
//! a customer's history read with the management key (the console has no
//! integration key).

use serde_json::json;

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn the_console_page_is_served_without_a_key() {
    let app = spawn_app().await;
    for (path, content_type) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let a = app.raw("GET", path, Auth::None, None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert!(
            a.content_type.starts_with(content_type),
            "{path}: {}",
            a.content_type
        );
    }
    let missing = app
        .raw("GET", "/console/missing.png", Auth::None, None)
        .await;
    assert_parameter(&missing, 404, "file");
}

#[actix_web::test]
async fn the_management_key_reads_any_customers_history() {
    let seed = seeded("Europe/Berlin").await;
    let app = &seed.app;
    let id = seed
        .achievement_id(json!({"name": "two", "target": 2, "period": "1W"}))
        .await;
    for _ in 0..2 {
        applied(
            &app.event(
                &seed.key,
                json!({"integrationId": "c/1", "achievementId": id, "delta": 1}),
            )
            .await,
        );
    }
    let path = format!("/v1/customer_profiles/c%2F1/achievements/{id}");
    let by_key = app.integ(&seed.key, "GET", &path, None).await;
    let by_management = app.mgmt("GET", &path, None).await;
    assert_eq!(by_management.status, 200, "{}", by_management.text);
    assert_eq!(by_management.json(), by_key.json());
    let v = by_management.json();
    assert_eq!(v["totalResultSize"], 1, "{v}");
    assert_eq!(v["data"][0]["status"], "completed", "{v}");
    assert_eq!(v["data"][0]["progress"], 2, "{v}");
    // Its filters work as for integration keys.
    let filtered = app
        .mgmt("GET", &format!("{path}?progressStatus=inprogress"), None)
        .await;
    assert_eq!(filtered.json()["totalResultSize"], 0, "{}", filtered.text);

    // Another application's key still may not read it; unknown ids are 404
    // for both kinds of key; a wrong management key is 401.
    let (_, other_key) = app.application("UTC").await;
    assert_error(&app.integ(&other_key, "GET", &path, None).await, 403, None);
    for a in [
        app.mgmt("GET", "/v1/customer_profiles/c/achievements/999999", None)
            .await,
        app.integ(
            &seed.key,
            "GET",
            "/v1/customer_profiles/c/achievements/999999",
            None,
        )
        .await,
    ] {
        assert_parameter(&a, 404, "achievementId");
    }
    let wrong = app
        .raw("GET", &path, Auth::Raw("ManagementKey-v1 wrong"), None)
        .await;
    assert_parameter(&wrong, 401, "Authorization");
}
