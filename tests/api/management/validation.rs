//! Achievement definitions that are refused, each with a 400 naming the field:
//! periods, fixed start and end dates, on_completion options, targets, names
//! and required fields.

use serde_json::json;

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn a_missing_period_is_refused_where_it_is_required() {
    let seed = seeded("UTC").await;
    let start = "2023-10-10T00:00:00Z";
    for fields in [
        json!({"period": null}),
        json!({"period": null, "recurrencePolicy": "no_recurrence", "activationPolicy": "user_action"}),
        json!({"period": null, "recurrencePolicy": "on_expiration", "activationPolicy": "user_action"}),
        json!({"period": null, "recurrencePolicy": "on_expiration", "activationPolicy": "fixed_schedule", "fixedStartDate": start}),
        json!({"period": null, "recurrencePolicy": "on_expiration", "activationPolicy": "fixed_schedule", "fixedStartDate": start, "endDate": FUTURE}),
    ] {
        refused(&seed, fields, "/period").await;
    }
}

#[actix_web::test]
async fn a_malformed_period_is_refused() {
    let seed = seeded("UTC").await;
    for period in [
        json!("3X"),
        json!("0D"),
        json!("1.5M"),
        json!("1.5Y"),
        json!("1d"),
        json!("D"),
        json!(""),
        json!("-1D"),
        json!("1h_U"),
        json!("1W_D"),
        json!("1D_X"),
        json!("1 D"),
        json!(5),
    ] {
        refused(&seed, json!({"period": period}), "/period").await;
    }
}

#[actix_web::test]
async fn fixed_start_date_goes_only_with_fixed_schedule() {
    let seed = seeded("UTC").await;
    refused(
        &seed,
        json!({"fixedStartDate": "2023-10-10T00:00:00Z"}),
        "/fixedStartDate",
    )
    .await;
    refused(
        &seed,
        json!({"activationPolicy": "user_action", "recurrencePolicy": "on_completion", "period": null, "fixedStartDate": "2023-10-10T00:00:00Z"}),
        "/fixedStartDate",
    )
    .await;
    for recurrence in ["no_recurrence", "on_expiration", "on_completion"] {
        refused(
            &seed,
            json!({"activationPolicy": "fixed_schedule", "recurrencePolicy": recurrence}),
            "/fixedStartDate",
        )
        .await;
    }
    refused(
        &seed,
        json!({"activationPolicy": "fixed_schedule", "fixedStartDate": "10/10/2023"}),
        "/fixedStartDate",
    )
    .await;
}

#[actix_web::test]
async fn a_one_time_fixed_schedule_needs_a_period_or_an_end_date() {
    let seed = seeded("UTC").await;
    refused(
        &seed,
        json!({"activationPolicy": "fixed_schedule", "recurrencePolicy": "no_recurrence",
               "fixedStartDate": "2023-10-10T00:00:00Z", "period": null}),
        "/endDate",
    )
    .await;
}

#[actix_web::test]
async fn an_end_date_must_follow_the_fixed_start_date() {
    let seed = seeded("UTC").await;
    for end in ["2023-10-10T00:00:00Z", "2023-10-09T00:00:00Z"] {
        refused(
            &seed,
            json!({"activationPolicy": "fixed_schedule", "fixedStartDate": "2023-10-10T00:00:00Z",
                   "endDate": end}),
            "/endDate",
        )
        .await;
    }
    refused(&seed, json!({"endDate": "tomorrow"}), "/endDate").await;
}

#[actix_web::test]
async fn on_completion_refuses_end_progress_on_target_and_rollback_after_completion() {
    let seed = seeded("UTC").await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    refused(
        &seed,
        json!({"recurrencePolicy": "on_completion", "endProgressOnTarget": true}),
        "/endProgressOnTarget",
    )
    .await;
    refused(
        &seed,
        json!({"recurrencePolicy": "on_completion", "allowRollbackAfterCompletion": true}),
        "/allowRollbackAfterCompletion",
    )
    .await;
    // false is fine.
    let a = create(
        app,
        application,
        campaign,
        body(
            json!({"recurrencePolicy": "on_completion", "endProgressOnTarget": false,
                   "allowRollbackAfterCompletion": false}),
        ),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
}

#[actix_web::test]
async fn a_target_must_be_a_positive_number() {
    let seed = seeded("UTC").await;
    for target in [
        json!(0),
        json!(-1),
        json!(-0.5),
        json!("5"),
        json!(true),
        json!([5]),
    ] {
        refused(&seed, json!({"target": target}), "/target").await;
    }
    // A tiny positive decimal is fine and exact.
    let v = seed
        .achievement(body(json!({"name": "tiny", "target": 0.0001})))
        .await;
    assert_eq!(v["target"], json!(0.0001));
}

#[actix_web::test]
async fn an_achievement_name_must_match_the_pattern() {
    let seed = seeded("UTC").await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    let too_long = format!("a{}", "b".repeat(1000));
    for name in [
        "1abc",
        "a",
        "a b",
        "",
        "_ab",
        "ab-c",
        "café",
        "ab\n",
        too_long.as_str(),
    ] {
        refused(&seed, json!({"name": name}), "/name").await;
    }
    refused(&seed, json!({"name": 5}), "/name").await;
    // Two characters, underscores and digits, and exactly 1000 characters are fine.
    let longest = format!("a{}", "b".repeat(999));
    for name in ["ab", "a_1", "A9_z", longest.as_str()] {
        let a = create(app, application, campaign, body(json!({"name": name}))).await;
        assert_eq!(a.status, 201, "{name}: {}", a.text);
        assert_eq!(a.json()["name"], name);
    }
}

#[actix_web::test]
async fn required_achievement_fields_are_named_when_missing() {
    let seed = seeded("UTC").await;
    let (app, application, campaign) = (&seed.app, seed.application, seed.campaign);
    for field in ["name", "title", "description", "target"] {
        let mut b = body(json!({}));
        b.as_object_mut().unwrap().remove(field);
        let a = create(app, application, campaign, b).await;
        assert_error(&a, 400, Some(&format!("/{field}")));
    }
    refused(&seed, json!({"title": ""}), "/title").await;
    refused(&seed, json!({"title": "t".repeat(1001)}), "/title").await;
    refused(
        &seed,
        json!({"recurrencePolicy": "weekly"}),
        "/recurrencePolicy",
    )
    .await;
    refused(
        &seed,
        json!({"activationPolicy": "manual"}),
        "/activationPolicy",
    )
    .await;
    refused(&seed, json!({"colour": "red"}), "/colour").await;
    // Nothing was created by any of these.
    let list = app
        .mgmt("GET", &achievements_path(application, campaign), None)
        .await
        .json();
    assert_eq!(list["data"], json!([]));
}
