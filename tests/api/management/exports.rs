//! The CSV export of an achievement: one row per iteration, content
//! negotiation, quoting, thousands of customers.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;

const CSV_HEADER: &str =
    "profileIntegrationID,title,target,progress,status,startDate,endDate,completionDate";

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

#[actix_web::test]
async fn the_export_has_one_row_per_iteration() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(body(
            json!({"name": "coffee", "title": "Coffee", "target": 2,
                   "recurrencePolicy": "on_completion", "period": null}),
        ))
        .await;
    let (app, key, application, campaign) =
        (&seed.app, seed.key.clone(), seed.application, seed.campaign);
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
    let seed = seeded("UTC").await;
    let id = seed.achievement_id(body(json!({"name": "coffee"}))).await;
    let (app, key, application, campaign) =
        (&seed.app, seed.key.clone(), seed.application, seed.campaign);
    app.event(
        &key,
        json!({"integrationId": "c1", "achievementId": id, "delta": 1}),
    )
    .await;
    let path = format!("{}/export", achievement_path(application, campaign, id));
    for accept in [Some("application/csv"), Some("text/csv"), Some("*/*"), None] {
        let a = get_with_accept(app, &path, accept).await;
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
    let seed = seeded("UTC").await;
    let v = seed.achievement(body(json!({"name": "coffee"}))).await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
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
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(body(
            json!({"name": "coffee", "title": "Say \"hi\", please"}),
        ))
        .await;
    let (app, key, application, campaign) =
        (&seed.app, seed.key.clone(), seed.application, seed.campaign);
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
    let seed = seeded("UTC").await;
    let id = seed.achievement_id(body(json!({"name": "coffee"}))).await;
    let (app, key, application, campaign) =
        (&seed.app, seed.key.clone(), seed.application, seed.campaign);
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

#[actix_web::test]
async fn an_exact_multiple_of_the_target_completes_iterations_without_opening_one() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(body(
            json!({"name": "coffee", "target": 2, "recurrencePolicy": "on_completion",
                   "period": "1W"}),
        ))
        .await;
    let (app, key, application, campaign) =
        (&seed.app, seed.key.clone(), seed.application, seed.campaign);
    let e = app
        .event(
            &key,
            json!({"integrationId": "c1", "achievementId": id, "delta": 4}),
        )
        .await;
    assert_eq!(e.json()["outcome"], "applied", "{}", e.text);
    disable(app, application, campaign).await;
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
