//! Creating and listing achievements: every field, defaults, every valid
//! policy combination, unique names, statuses, pages and exact targets.

use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn an_achievement_is_created_with_every_field() {
    let seed = seeded("UTC").await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let a = create(
        app,
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
    assert_utc_date(&v["created"]);
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
    let seed = seeded("UTC").await;
    let v = seed
        .achievement(json!({"name": "ach", "target": 0.3, "period": "1D"}))
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
    let seed = seeded("Europe/Berlin").await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
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
        let a = create(app, application, campaign, sent.clone()).await;
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
    let seed = seeded("UTC").await;
    let not_started = seed
        .achievement(body(
            json!({"name": "later", "activationPolicy": "fixed_schedule", "fixedStartDate": FUTURE,
                   "period": "1M"}),
        ))
        .await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    assert_eq!(not_started["status"], "not_started");
    let expired = seed
        .achievement(body(json!({"name": "gone", "endDate": PAST})))
        .await;
    assert_eq!(expired["status"], "expired");
    let expired_window = seed
        .achievement(body(
            json!({"name": "window", "activationPolicy": "fixed_schedule",
                   "fixedStartDate": "2001-01-01T00:00:00Z", "period": "1D"}),
        ))
        .await;
    assert_eq!(expired_window["status"], "expired");
    let running = seed
        .achievement(body(
            json!({"name": "now", "activationPolicy": "fixed_schedule", "fixedStartDate": PAST,
                   "endDate": FUTURE, "recurrencePolicy": "on_expiration"}),
        ))
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
    let seed = seeded("UTC").await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let other = app.campaign(application, json!({})).await;
    let ids = three_titled(&seed).await;
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
async fn targets_are_exact_decimals() {
    let seed = seeded("UTC").await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
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
