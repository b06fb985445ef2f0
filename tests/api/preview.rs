//! `GET /v1/period_preview`: the dates an iteration opened at `start` would
//! have (SPEC §2), and 400s that name the parameter at fault.

use chrono::{DateTime, Datelike, Duration, Utc};

use crate::common::*;
use crate::helpers::*;

async fn preview(app: &TestApp, query: &str) -> Answer {
    app.mgmt("GET", &format!("/v1/period_preview{query}"), None)
        .await
}

#[actix_web::test]
async fn the_dates_are_those_of_an_iteration_opened_at_start() {
    let app = spawn_app().await;
    // (period, start, timezone, startDate, endDate)
    let cases = [
        (
            "1D",
            "2024-01-31T10:00:00Z",
            "UTC",
            "2024-01-31T10:00:00Z",
            "2024-02-01T10:00:00Z",
        ),
        (
            "1.5h",
            "2024-01-01T00:00:00Z",
            "UTC",
            "2024-01-01T00:00:00Z",
            "2024-01-01T01:30:00Z",
        ),
        // Month-end clamping in a leap year.
        (
            "1M",
            "2024-01-31T10:00:00Z",
            "UTC",
            "2024-01-31T10:00:00Z",
            "2024-02-29T10:00:00Z",
        ),
        // _U: up to the end of the month, reported one second earlier.
        (
            "1M_U",
            "2024-01-31T10:00:00Z",
            "UTC",
            "2024-01-31T10:00:00Z",
            "2024-02-29T23:59:59Z",
        ),
        // SPEC §2's worked example.
        (
            "3M_U",
            "2023-10-10T09:30:45Z",
            "UTC",
            "2023-10-10T09:30:45Z",
            "2024-01-31T23:59:59Z",
        ),
        (
            "1D_D",
            "2024-05-10T15:00:00Z",
            "UTC",
            "2024-05-10T15:00:00Z",
            "2024-05-11T00:00:00Z",
        ),
        // Berlin springs forward on 31 Mar 2024: a calendar day is 23 hours
        // (09:30 local to 09:30 local), 24h is elapsed time.
        (
            "1D",
            "2024-03-30T09:30:00+01:00",
            "Europe/Berlin",
            "2024-03-30T08:30:00Z",
            "2024-03-31T07:30:00Z",
        ),
        (
            "24h",
            "2024-03-30T09:30:00+01:00",
            "Europe/Berlin",
            "2024-03-30T08:30:00Z",
            "2024-03-31T08:30:00Z",
        ),
        // Falls back on 27 Oct 2024: the ISO week ends Sunday 3 Nov 24:00 CET.
        (
            "1W_U",
            "2024-10-23T14:00:00+02:00",
            "Europe/Berlin",
            "2024-10-23T12:00:00Z",
            "2024-11-03T22:59:59Z",
        ),
        // The same instant in UTC ends on UTC's week.
        (
            "1W_U",
            "2024-10-23T12:00:00Z",
            "UTC",
            "2024-10-23T12:00:00Z",
            "2024-11-03T23:59:59Z",
        ),
    ];
    for (period, start, tz, start_date, end_date) in cases {
        let query = format!(
            "?period={}&start={}&timezone={}",
            period,
            start.replace('+', "%2B"),
            tz.replace('/', "%2F")
        );
        let a = preview(&app, &query).await;
        assert_eq!(a.status, 200, "{query}: {}", a.text);
        let v = a.json();
        assert_eq!(
            (v["startDate"].as_str(), v["endDate"].as_str()),
            (Some(start_date), Some(end_date)),
            "{query}: {v}"
        );
        assert_eq!(keys_of(&v), set(&["startDate", "endDate"]), "{v}");
    }
}

#[actix_web::test]
async fn start_defaults_to_now_and_timezone_to_utc() {
    let app = spawn_app().await;
    let before = Utc::now() - Duration::seconds(1);
    let v = preview(&app, "?period=1W_U").await.json();
    let after = Utc::now() + Duration::seconds(1);
    assert_utc_date(&v["startDate"]);
    assert_utc_date(&v["endDate"]);
    let date = |k: &str| {
        DateTime::parse_from_rfc3339(v[k].as_str().expect("date"))
            .expect("RFC 3339")
            .with_timezone(&Utc)
    };
    let (start, end) = (date("startDate"), date("endDate"));
    assert!(before <= start && start <= after, "{v}");
    // A week on from the start, moved up to the last second of its ISO week
    // (the Sunday, 23:59:59 UTC): 7 to 14 days on, by the start's weekday.
    let week_on = (start + Duration::days(7)).date_naive();
    let sunday = week_on + Duration::days(6 - i64::from(week_on.weekday().num_days_from_monday()));
    let expected = sunday.and_hms_opt(23, 59, 59).expect("a time").and_utc();
    assert_eq!(end, expected, "{v}");
    assert_eq!(end.format("%a %H:%M:%S").to_string(), "Sun 23:59:59", "{v}");
}

#[actix_web::test]
async fn bad_input_is_a_400_naming_the_parameter() {
    let app = spawn_app().await;
    // (query, parameter, words the message holds)
    let cases = [
        ("", "period", "required"),
        ("?period=", "period", "empty"),
        ("?period=0D", "period", "greater than zero"),
        ("?period=1X", "period", "unknown period unit"),
        ("?period=1h_U", "period", "_U"),
        ("?period=1.5M", "period", "whole amount"),
        ("?period=1D&start=yesterday", "start", "RFC 3339"),
        ("?period=1D&start=2024-01-01", "start", "RFC 3339"),
        ("?period=1D&timezone=Mars%2FOlympus", "timezone", "IANA"),
        ("?period=1D&timezone=", "timezone", "IANA"),
        ("?period=1D&tz=UTC", "tz", "unknown parameter"),
        ("?period=1D&period=2D", "period", "period"),
    ];
    for (query, parameter, words) in cases {
        let a = preview(&app, query).await;
        assert_parameter(&a, 400, parameter);
        let message = a.json()["message"].as_str().unwrap_or("").to_string();
        assert!(message.contains(words), "{query}: {message}");
    }
}

#[actix_web::test]
async fn the_management_key_is_required() {
    let app = spawn_app().await;
    let (_, integration_key) = app.application("UTC").await;
    let integration = format!("ApiKey-v1 {integration_key}");
    for auth in [
        Auth::None,
        Auth::Raw("ManagementKey-v1 wrong"),
        Auth::Raw(&integration),
    ] {
        let a = app
            .raw("GET", "/v1/period_preview?period=1D", auth, None)
            .await;
        assert_parameter(&a, 401, "Authorization");
    }
}
