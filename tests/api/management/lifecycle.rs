//! One achievement read, updated and deleted; unknown achievements; deletion
//! removes the achievement's progress.

use serde_json::json;

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn an_achievement_is_read_updated_and_deleted() {
    let app = spawn_app().await;
    let seed = Seeded::on(app, "UTC", json!({"state": "disabled"})).await;
    let created = seed.achievement(body(json!({"name": "coffee"}))).await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
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
    let again = create(app, application, campaign, body(json!({"name": "coffee"}))).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_ne!(again.json()["id"], created["id"]);
}

#[actix_web::test]
async fn an_unknown_achievement_is_404() {
    let seed = seeded("UTC").await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let other = app.campaign(application, json!({})).await;
    let path = achievement_path(application, campaign, 999_999);
    assert_parameter(&app.mgmt("GET", &path, None).await, 404, "achievementId");
    assert_parameter(&app.mgmt("DELETE", &path, None).await, 404, "achievementId");
    // An achievement is only found under its own campaign.
    let v = seed.achievement(body(json!({}))).await;
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

#[actix_web::test]
async fn deleting_an_achievement_removes_its_progress() {
    let seed = seeded("UTC").await;
    let first_id = seed.achievement_id(body(json!({"name": "coffee"}))).await;
    let (app, key, application, campaign) =
        (&seed.app, seed.key.clone(), seed.application, seed.campaign);
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

    let second = seed.achievement(body(json!({"name": "coffee"}))).await;
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
