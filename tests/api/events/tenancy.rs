//! Integration keys: required on every integration route and scoped to their
//! own application.

use serde_json::json;

use crate::common::*;
use crate::helpers::*;

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
            // The management key may read a customer's history (for the web
            // console: tests/api/console.rs), nothing else here.
            if *path == history_a && matches!(auth, Auth::Raw(v) if v == mgmt) {
                continue;
            }
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
