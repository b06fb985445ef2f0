//! Event time over HTTP (SPEC §3 as amended): events dated in the past build
//! the iterations they belong to, as if they had arrived then, so history
//! can be imported; `allowedLatenessSeconds` bounds how long an ended period
//! still takes events.

use chrono::Duration;
use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

/// `"2023-10-10 09:30:45"` (UTC) as the server renders it.
fn z(s: &str) -> String {
    format!("{}Z", s.replace(' ', "T"))
}

fn event(customer: &str, achievement: u64, delta: u32, at: &str) -> Value {
    json!({"integrationId": customer, "achievementId": achievement, "delta": delta,
           "timestamp": at})
}

/// (status, progress, startDate, endDate, completionDate) of each iteration
/// in a history answer, newest first.
fn rows(h: &Value) -> Vec<(String, Value, String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    h["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {h}"))
        .iter()
        .map(|i| {
            (
                text(&i["status"]),
                i["progress"].clone(),
                text(&i["startDate"]),
                text(&i["endDate"]),
                text(&i["completionDate"]),
            )
        })
        .collect()
}

fn row(
    status: &str,
    progress: u32,
    start: &str,
    end: &str,
    completion: &str,
) -> (String, Value, String, String, String) {
    let date = |s: &str| if s.is_empty() { String::new() } else { z(s) };
    (
        status.into(),
        json!(progress),
        date(start),
        date(end),
        date(completion),
    )
}

#[actix_web::test]
async fn spec_worked_examples_replayed_with_their_2023_dates() {
    // SPEC §4, every row: (recurrence, activation, period, fixedStartDate,
    // first progress, endDate).
    let table = [
        (
            "no_recurrence",
            "user_action",
            "1D",
            None,
            "2023-10-10 09:30:45",
            "2023-10-11 09:30:45",
        ),
        (
            "no_recurrence",
            "user_action",
            "1W",
            None,
            "2023-10-10 09:30:45",
            "2023-10-17 09:30:45",
        ),
        (
            "no_recurrence",
            "user_action",
            "1M",
            None,
            "2023-10-10 09:30:45",
            "2023-11-10 09:30:45",
        ),
        (
            "no_recurrence",
            "user_action",
            "1Y",
            None,
            "2023-10-10 09:30:45",
            "2024-10-10 09:30:45",
        ),
        (
            "no_recurrence",
            "fixed_schedule",
            "1M",
            Some("2023-10-10 00:00:00"),
            "2023-10-18 10:20:00",
            "2023-11-10 00:00:00",
        ),
        (
            "on_expiration",
            "user_action",
            "3M_U",
            None,
            "2023-10-10 09:30:45",
            "2024-01-31 23:59:59",
        ),
        (
            "on_expiration",
            "fixed_schedule",
            "2Y",
            Some("2023-01-01 00:00:00"),
            "2023-08-12 14:15:02",
            "2025-01-01 00:00:00",
        ),
    ];
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    for (i, (recurrence, activation, period, anchor, first, end)) in table.into_iter().enumerate() {
        let mut fields = json!({"name": format!("row{i}"), "target": 10, "period": period,
                                "recurrencePolicy": recurrence, "activationPolicy": activation});
        if let Some(a) = anchor {
            fields["fixedStartDate"] = json!(z(a));
        }
        let id = app.achievement(application, campaign, fields).await["id"]
            .as_u64()
            .expect("id");
        let r = applied(&app.event(&key, event("ada", id, 1, &z(first))).await);
        let start = &r["effects"][0];
        assert_eq!(start["effectType"], "startAchievementProgress", "{r}");
        assert_eq!(start["props"]["startDate"], z(first), "row {i}: {r}");
        assert_eq!(start["props"]["endDate"], z(end), "row {i}: {r}");
        assert_eq!(r["effects"][1]["props"]["value"], json!(1), "{r}");
        // Read now: the period is over, so the iteration is expired.
        let h = app.history(&key, "ada", id, "").await;
        assert_eq!(
            rows(&h),
            vec![row("expired", 1, first, end, "")],
            "row {i}: {h}"
        );
    }
}

#[actix_web::test]
async fn an_imported_history_builds_completed_and_expired_iterations() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let weekly = app
        .achievement(
            application,
            campaign,
            json!({"name": "weekly", "target": 3, "period": "1W",
                   "recurrencePolicy": "on_expiration"}),
        )
        .await["id"]
        .as_u64()
        .expect("id");
    // A year of a till's history in one batch, in order.
    let events = json!({"events": [
        event("bea", weekly, 2, "2023-01-02T10:00:00Z"),
        event("bea", weekly, 1, "2023-01-05T18:30:00Z"),
        event("bea", weekly, 1, "2023-01-10T08:00:00Z"),
        event("bea", weekly, 3, "2023-02-01T12:00:00Z"),
        event("bea", weekly, 1, "2023-02-02T12:00:00Z"),
        // Out of order within the pair: before the current iteration.
        event("bea", weekly, 1, "2023-01-20T12:00:00Z"),
    ]});
    let b = app
        .integ(&key, "POST", "/v1/progress_events/batch", Some(events))
        .await;
    assert_eq!(b.status, 200, "{}", b.text);
    let b = b.json();
    assert_eq!(
        (b["applied"].clone(), b["rejected"].clone()),
        (json!(5), json!(1)),
        "{b}"
    );
    assert_eq!(b["results"][5]["reason"], "late", "{b}");
    let h = app.history(&key, "bea", weekly, "").await;
    assert_eq!(
        rows(&h),
        vec![
            row(
                "completed",
                4,
                "2023-02-01 12:00:00",
                "2023-02-08 12:00:00",
                "2023-02-01 12:00:00"
            ),
            row(
                "expired",
                1,
                "2023-01-10 08:00:00",
                "2023-01-17 08:00:00",
                ""
            ),
            row(
                "completed",
                3,
                "2023-01-02 10:00:00",
                "2023-01-09 10:00:00",
                "2023-01-05 18:30:00"
            ),
        ],
        "{h}"
    );
    // The export says the same.
    let export = app
        .mgmt(
            "GET",
            &format!(
                "/v1/applications/{application}/campaigns/{campaign}/achievements/{weekly}/export"
            ),
            None,
        )
        .await;
    assert_eq!(export.status, 200, "{}", export.text);
    let lines: Vec<&str> = export.text.lines().skip(1).collect();
    assert_eq!(
        lines,
        vec![
            "bea,Achievement,3,4,completed,2023-02-01T12:00:00Z,2023-02-08T12:00:00Z,2023-02-01T12:00:00Z",
            "bea,Achievement,3,1,expired,2023-01-10T08:00:00Z,2023-01-17T08:00:00Z,",
            "bea,Achievement,3,3,completed,2023-01-02T10:00:00Z,2023-01-09T10:00:00Z,2023-01-05T18:30:00Z",
        ],
        "{}",
        export.text
    );
    // The customer's current status is as of now: the last week is over.
    let list = app.list(&key, "bea", "").await;
    assert_eq!(
        list["data"][0]["currentProgress"]["status"], "completed",
        "{list}"
    );
}

#[actix_web::test]
async fn a_lateness_bound_keeps_ended_periods_closed() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"name": "daily", "target": 10, "period": "1D",
                   "recurrencePolicy": "on_expiration", "allowedLatenessSeconds": 0}),
        )
        .await;
    assert_eq!(a["allowedLatenessSeconds"], 0, "{a}");
    let id = a["id"].as_u64().expect("id");
    let path = format!("/v1/applications/{application}/campaigns/{campaign}/achievements/{id}");
    // 0: any period that has ended takes nothing more.
    assert_rejected(
        &app.event(&key, event("cy", id, 1, "2023-10-10T09:30:45Z"))
            .await,
        "late",
    );
    let now = now_s();
    applied(&app.event(&key, event("cy", id, 1, &rfc(now))).await);

    // Editable once customers have progress: an hour of grace.
    let put = app
        .mgmt("PUT", &path, Some(json!({"allowedLatenessSeconds": 3600})))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["allowedLatenessSeconds"], 3600);
    assert_eq!(put.json()["hasProgress"], true);
    // A day whose period ended ten minutes ago: inside the bound.
    let day_ago = now - Duration::days(1) - Duration::minutes(10);
    applied(&app.event(&key, event("dee", id, 1, &rfc(day_ago))).await);
    // One that ended two hours ago: outside it.
    let older = now - Duration::days(1) - Duration::hours(2);
    assert_rejected(
        &app.event(&key, event("eve", id, 1, &rfc(older))).await,
        "late",
    );

    // null removes the bound: the field is omitted and history flows in.
    let put = app
        .mgmt("PUT", &path, Some(json!({"allowedLatenessSeconds": null})))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert!(
        put.json().get("allowedLatenessSeconds").is_none(),
        "{}",
        put.text
    );
    applied(&app.event(&key, event("eve", id, 1, &rfc(older))).await);
    let got = app.mgmt("GET", &path, None).await.json();
    assert!(got.get("allowedLatenessSeconds").is_none(), "{got}");
}

#[actix_web::test]
async fn a_bad_lateness_bound_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let (application, _) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let create = format!("/v1/applications/{application}/campaigns/{campaign}/achievements");
    let bad = [
        json!(-1),
        json!(1.5),
        json!("60"),
        json!(true),
        json!(3_155_760_001u64),
        json!(1e3),
    ];
    for value in &bad {
        let a = app
            .mgmt(
                "POST",
                &create,
                Some(
                    json!({"name": "bounded", "title": "B", "description": "", "target": 1,
                            "period": "1D", "allowedLatenessSeconds": value}),
                ),
            )
            .await;
        assert_error(&a, 400, Some("/allowedLatenessSeconds"));
    }
    // Nothing was created by the refused requests.
    let list = app.mgmt("GET", &create, None).await.json();
    assert_eq!(list["data"], json!([]), "{list}");

    let id = app
        .achievement(application, campaign, json!({"name": "ok", "period": "1D"}))
        .await["id"]
        .as_u64()
        .expect("id");
    let path = format!("{create}/{id}");
    for value in &bad {
        let a = app
            .mgmt("PUT", &path, Some(json!({"allowedLatenessSeconds": value})))
            .await;
        assert_error(&a, 400, Some("/allowedLatenessSeconds"));
    }
    let got = app.mgmt("GET", &path, None).await.json();
    assert!(got.get("allowedLatenessSeconds").is_none(), "{got}");
    // The largest accepted value.
    let a = app
        .mgmt(
            "PUT",
            &path,
            Some(json!({"allowedLatenessSeconds": 3_155_760_000u64})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}
