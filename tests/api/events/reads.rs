//! Reads: a customer's achievements and one achievement's history, their
//! filters and pages, and customer ids that need percent-encoding.

use chrono::Duration;
use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

/// The names in a list answer, sorted.
fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect();
    n.sort();
    n
}

#[actix_web::test]
async fn customer_achievements_filters_and_pages() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let c1 = app.campaign(application, json!({})).await;
    let c2 = app.campaign(application, json!({"name": "second"})).await;
    let done = app
        .achievement(
            application,
            c1,
            json!({"name": "done", "period": "1D", "target": 1}),
        )
        .await;
    let going = app
        .achievement(
            application,
            c1,
            json!({"name": "going", "period": "1D", "target": 5}),
        )
        .await;
    let idle = app
        .achievement(application, c2, json!({"name": "idle", "period": "1D"}))
        .await;
    let soon = app
        .achievement(
            application,
            c2,
            json!({"name": "soon", "period": "1D", "recurrencePolicy": "on_expiration",
                   "activationPolicy": "fixed_schedule",
                   "fixedStartDate": rfc(now_s() + Duration::hours(1))}),
        )
        .await;
    app.achievement(
        application,
        c2,
        json!({"name": "gone", "period": "1D", "endDate": rfc(now_s() - Duration::hours(1))}),
    )
    .await;
    for (name, d) in [("done", 1), ("going", 2)] {
        applied(
            &app.event(
                &key,
                json!({"integrationId": "c", "achievementName": name, "delta": d}),
            )
            .await,
        );
    }
    // Before the schedule starts, progress is outside it.
    let early = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "soon", "delta": 1}),
        )
        .await;
    assert_rejected(&early, "outside_schedule");

    let all = app.list(&key, "c", "").await;
    assert_eq!(all["totalResultSize"], 3, "{all}");
    assert_eq!(names(&all), ["done", "going", "idle"]);
    let active = app.list(&key, "c", "?achievementStatus=active").await;
    assert_eq!(names(&active), ["done", "going", "idle"]);
    let scheduled = app.list(&key, "c", "?achievementStatus=scheduled").await;
    assert_eq!(scheduled["totalResultSize"], 1, "{scheduled}");
    assert_eq!(scheduled["data"][0]["id"], id_of(&soon));
    assert_eq!(scheduled["data"][0]["status"], "scheduled");
    assert!(scheduled["data"][0].get("currentProgress").is_none());

    let by_c1 = app.list(&key, "c", &format!("?campaignIds={c1}")).await;
    assert_eq!(names(&by_c1), ["done", "going"]);
    let by_c2 = app.list(&key, "c", &format!("?campaignIds={c2}")).await;
    assert_eq!(names(&by_c2), ["idle"]);
    let by_both = app
        .list(&key, "c", &format!("?campaignIds={c1},{c2}"))
        .await;
    assert_eq!(by_both["totalResultSize"], 3);
    let by_ids = app
        .list(
            &key,
            "c",
            &format!("?achievementIds={},{}", id_of(&done), id_of(&idle)),
        )
        .await;
    assert_eq!(names(&by_ids), ["done", "idle"]);
    let combined = app
        .list(
            &key,
            "c",
            &format!(
                "?achievementIds={},{}&campaignIds={c1}",
                id_of(&done),
                id_of(&idle)
            ),
        )
        .await;
    assert_eq!(names(&combined), ["done"]);

    let completed = app
        .list(&key, "c", "?currentProgressStatus=completed")
        .await;
    assert_eq!(names(&completed), ["done"]);
    assert_eq!(
        completed["data"][0]["currentProgress"]["status"],
        "completed"
    );
    assert!(completed["data"][0]["currentProgress"]["completionDate"].is_string());
    let inprogress = app
        .list(&key, "c", "?currentProgressStatus=inprogress")
        .await;
    assert_eq!(names(&inprogress), ["going"]);
    assert_eq!(
        inprogress["data"][0]["currentProgress"]["progress"],
        json!(2)
    );
    assert_eq!(inprogress["data"][0]["id"], id_of(&going));
    let not_started = app
        .list(&key, "c", "?currentProgressStatus=not_started")
        .await;
    assert_eq!(names(&not_started), ["idle"]);
    assert!(not_started["data"][0].get("currentProgress").is_none());

    // Pages.
    let mut seen = Vec::new();
    for skip in 0..3 {
        let page = app
            .list(&key, "c", &format!("?pageSize=1&skip={skip}"))
            .await;
        assert_eq!(page["totalResultSize"], 3, "{page}");
        assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
        seen.push(page["data"][0]["name"].as_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["done", "going", "idle"]);
    let page = app.list(&key, "c", "?pageSize=2").await;
    assert_eq!(page["totalResultSize"], 3);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let page = app.list(&key, "c", "?pageSize=2&skip=2").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let page = app.list(&key, "c", "?skip=10").await;
    assert_eq!(page["totalResultSize"], 3);
    assert_eq!(page["data"], json!([]));
    let page = app
        .list(&key, "c", "?pageSize=1&currentProgressStatus=not_started")
        .await;
    assert_eq!(page["totalResultSize"], 1);

    // Bad parameters.
    for (query, parameter) in [
        ("?pageSize=0", "pageSize"),
        ("?pageSize=1001", "pageSize"),
        ("?pageSize=abc", "pageSize"),
        ("?skip=-1", "skip"),
        ("?achievementStatus=bogus", "achievementStatus"),
        ("?currentProgressStatus=expired", "currentProgressStatus"),
        ("?currentProgressStatus=bogus", "currentProgressStatus"),
        ("?campaignIds=abc", "campaignIds"),
        ("?achievementIds=1,x", "achievementIds"),
    ] {
        let a = app
            .integ(
                &key,
                "GET",
                &format!("/v1/customer_profiles/c/achievements{query}"),
                None,
            )
            .await;
        assert_error(&a, 400, None);
        assert_eq!(
            a.json()["errors"][0]["source"]["parameter"],
            parameter,
            "{query}: {}",
            a.text
        );
    }
}

#[actix_web::test]
async fn history_filters_and_pages() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "laps", "target": 1, "recurrencePolicy": "on_completion"}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let base = now_s() - Duration::seconds(60);
    let at = |s: i64| base + Duration::seconds(s);
    for (s, d) in [
        (0, json!(1)),
        (10, json!(1)),
        (20, json!(1)),
        (30, json!(0.5)),
    ] {
        applied(
            &app.event(
                &key,
                json!({"integrationId": "c", "achievementId": id, "delta": d,
                       "timestamp": rfc(at(s))}),
            )
            .await,
        );
    }
    let h = app.history(&key, "c", id, "").await;
    assert_eq!(h["totalResultSize"], 4, "{h}");
    let starts: Vec<_> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["startDate"].clone())
        .collect();
    assert_eq!(
        starts,
        [at(30), at(20), at(10), at(0)]
            .map(|t| json!(rfc(t)))
            .to_vec(),
        "newest first: {h}"
    );
    let q = |query: String| {
        let app = &app;
        let key = &key;
        async move { app.history(key, "c", id, &query).await }
    };
    let completed = q("?progressStatus=completed".into()).await;
    assert_eq!(completed["totalResultSize"], 3, "{completed}");
    let inprogress = q("?progressStatus=inprogress".into()).await;
    assert_eq!(inprogress["totalResultSize"], 1);
    assert_eq!(inprogress["data"][0]["progress"], json!(0.5));
    let expired = q("?progressStatus=expired".into()).await;
    assert_eq!(expired["totalResultSize"], 0);
    let from = q(format!("?startDate={}", rfc(at(15)))).await;
    assert_eq!(from["totalResultSize"], 2, "{from}");
    let to = q(format!("?endDate={}", rfc(at(15)))).await;
    assert_eq!(to["totalResultSize"], 2, "{to}");
    let window = q(format!("?startDate={}&endDate={}", rfc(at(5)), rfc(at(25)))).await;
    assert_eq!(window["totalResultSize"], 2, "{window}");
    let page = q("?pageSize=1".into()).await;
    assert_eq!(page["totalResultSize"], 4);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["startDate"], rfc(at(30)));
    let page = q("?pageSize=2&skip=3".into()).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["startDate"], rfc(at(0)));
    for (query, parameter) in [
        ("?progressStatus=bogus", "progressStatus"),
        ("?progressStatus=not_started", "progressStatus"),
        ("?startDate=yesterday", "startDate"),
        ("?endDate=2024-13-01T00:00:00Z", "endDate"),
        ("?pageSize=0", "pageSize"),
    ] {
        let a = app
            .integ(
                &key,
                "GET",
                &format!("/v1/customer_profiles/c/achievements/{id}{query}"),
                None,
            )
            .await;
        assert_error(&a, 400, None);
        assert_eq!(
            a.json()["errors"][0]["source"]["parameter"],
            parameter,
            "{query}: {}",
            a.text
        );
    }
}

/// Integration ids are arbitrary strings (e-mail addresses with `+` are
/// common); a client percent-encodes them in the path and must find the
/// progress it wrote through the body.
#[actix_web::test]
async fn customer_ids_with_special_characters_round_trip() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "chars", "period": "1D", "target": 10}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let mut wrong = Vec::new();
    for (customer, encoded) in [
        ("user one", "user%20one"),
        ("müller", "m%C3%BCller"),
        ("jane+promo@example.com", "jane%2Bpromo%40example.com"),
        ("a+b", "a%2Bb"),
        ("a/b", "a%2Fb"),
        ("50%", "50%25"),
        ("q?x=1", "q%3Fx%3D1"),
    ] {
        applied(
            &app.event(
                &key,
                json!({"integrationId": customer, "achievementId": id, "delta": 2}),
            )
            .await,
        );
        let list = app.list(&key, encoded, "").await;
        let h = app.history(&key, encoded, id, "").await;
        if list["data"][0]["currentProgress"]["progress"] != json!(2)
            || h["totalResultSize"] != json!(1)
        {
            wrong.push(format!("{customer:?} read as /{encoded}/"));
        }
    }
    assert!(wrong.is_empty(), "progress not found for {wrong:?}");
}
