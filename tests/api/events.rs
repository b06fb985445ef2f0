//! Progress events, rollbacks and reads through the integration API.

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn an_event_opens_and_completes_an_iteration() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    app.achievement(
        application,
        campaign,
        json!({"name": "coffee", "target": 0.3, "period": "1W"}),
    )
    .await;
    let first = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementName": "coffee", "delta": 0.1}),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementName": "coffee", "delta": 0.2}),
        )
        .await
        .json();
    assert_eq!(second["outcome"], "applied");
    assert_eq!(second["effects"][0]["props"]["value"], json!(0.3));
    assert_eq!(second["effects"][0]["props"]["isJustCompleted"], true);
}
