//! Small helpers shared by the test files: time as the server renders it,
//! ids, checks of integration answers and effects, and the bodies and paths
//! of the management API.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, TimeZone, Utc};
use serde_json::{json, Value};

use crate::helpers::{assert_error, Answer, Seeded, TestApp};

// ---------------------------------------------------------------------------
// Time.
// ---------------------------------------------------------------------------

/// Now, cut to whole seconds (so the server echoes our timestamps verbatim).
pub fn now_s() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// RFC 3339 in UTC with a `Z`, as the server renders whole seconds.
pub fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `t` plus whole calendar days in `tz` (local wall time kept).
pub fn plus_local_days<Z: TimeZone>(t: DateTime<Utc>, tz: &Z, days: i64) -> DateTime<Utc> {
    let local = t.with_timezone(tz).naive_local() + Duration::days(days);
    tz.from_local_datetime(&local)
        .earliest()
        .expect("local time exists")
        .with_timezone(&Utc)
}

/// Asserts an RFC 3339 date string in UTC (ending in `Z`).
pub fn assert_utc_date(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a date string: {v}"));
    assert!(s.ends_with('Z'), "{s} does not end in Z");
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s} is not RFC 3339: {e}"));
}

// ---------------------------------------------------------------------------
// JSON.
// ---------------------------------------------------------------------------

/// The `id` of a created resource.
pub fn id_of(v: &Value) -> u64 {
    v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
}

/// The keys of a JSON object.
pub fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect::<BTreeSet<_>>()
}

pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Integration answers.
// ---------------------------------------------------------------------------

/// A 200 answer with outcome `applied`; returns its body.
pub fn applied(a: &Answer) -> Value {
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["outcome"], "applied", "{}", a.text);
    assert!(v.get("reason").is_none(), "{}", a.text);
    v
}

/// A 200 answer with outcome `rejected` and the given reason.
pub fn assert_rejected(a: &Answer, reason: &str) {
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["outcome"], "rejected", "{}", a.text);
    assert_eq!(v["reason"], reason, "{}", a.text);
    assert_eq!(v["effects"], json!([]), "{}", a.text);
}

/// The effect types of an answer, in order.
pub fn effect_types(v: &Value) -> Vec<String> {
    v["effects"]
        .as_array()
        .expect("effects")
        .iter()
        .map(|e| e["effectType"].as_str().expect("effectType").to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// The management API.
// ---------------------------------------------------------------------------

pub const FUTURE: &str = "2999-01-01T00:00:00Z";
pub const PAST: &str = "2000-01-01T00:00:00Z";

pub fn achievements_path(application: u64, campaign: u64) -> String {
    format!("/v1/applications/{application}/campaigns/{campaign}/achievements")
}

pub fn achievement_path(application: u64, campaign: u64, id: u64) -> String {
    format!("/v1/applications/{application}/campaigns/{campaign}/achievements/{id}")
}

pub fn campaign_path(application: u64, campaign: u64) -> String {
    format!("/v1/applications/{application}/campaigns/{campaign}")
}

/// A valid body (a one-time user-action achievement over one day) with
/// `fields` merged in; a `null` in `fields` removes the key.
pub fn body(fields: Value) -> Value {
    let mut b = json!({
        "name": "ach",
        "title": "Achievement",
        "description": "",
        "target": 5,
        "period": "1D"
    });
    let obj = b.as_object_mut().expect("object");
    for (k, v) in fields.as_object().expect("object") {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    b
}

/// POSTs an achievement and returns the raw answer.
pub async fn create(app: &TestApp, application: u64, campaign: u64, body: Value) -> Answer {
    app.mgmt(
        "POST",
        &achievements_path(application, campaign),
        Some(body),
    )
    .await
}

/// Sends `fields` merged into a valid body to the seeded campaign and
/// expects 400 at `pointer`.
pub async fn refused(seed: &Seeded, fields: Value, pointer: &str) {
    let sent = body(fields);
    let a = create(&seed.app, seed.application, seed.campaign, sent.clone()).await;
    assert_eq!(a.status, 400, "{sent} was accepted: {}", a.text);
    assert_error(&a, 400, Some(pointer));
    let message = a.json()["message"].as_str().unwrap().to_string();
    let field = pointer.trim_start_matches('/');
    assert!(
        message.contains(field) || a.text.contains(&format!("\"{pointer}\"")),
        "message does not name {field}: {message}"
    );
}

/// Three achievements in the seeded campaign, `a1` "Coffee lover", `a2`
/// "Tea lover" and `a3` "Cake"; their ids in that order.
pub async fn three_titled(seed: &Seeded) -> Vec<u64> {
    let mut ids = Vec::new();
    for (name, title) in [("a1", "Coffee lover"), ("a2", "Tea lover"), ("a3", "Cake")] {
        let v = seed
            .achievement(body(json!({"name": name, "title": title})))
            .await;
        ids.push(id_of(&v));
    }
    ids
}

/// Disables a campaign.
pub async fn disable(app: &TestApp, application: u64, campaign: u64) {
    let a = app
        .mgmt(
            "PUT",
            &campaign_path(application, campaign),
            Some(json!({"state": "disabled"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["state"], "disabled");
}

/// Asserts the error shape with `status` and an error naming query or path
/// parameter `parameter`.
pub fn assert_parameter(a: &Answer, status: u16, parameter: &str) {
    assert_error(a, status, None);
    let v = a.json();
    assert!(
        v["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|e| e["source"]["parameter"] == parameter),
        "no error names parameter {parameter}: {}",
        a.text
    );
}
