//! Webhooks through real HTTP: receivers are actix-web servers on port 0
//! (on their own thread) that record what they get and answer from a
//! script. Signed deliveries of a completion, the `types` filter and order,
//! retries, giving up, a 410 that disables, the address policy, the
//! management routes, and a restart of the binary that resumes delivery.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use achievements_engine::clock::Clock;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{events_path, wait_for};
use crate::common::*;
use crate::helpers::*;
use crate::recovery::{api_auth, create_catalog, Server};

// ---------------------------------------------------------------------------
// A receiver.
// ---------------------------------------------------------------------------

/// A request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Log {
    got: Vec<Received>,
    /// Statuses to answer with, in order; 200 once it is empty.
    script: VecDeque<u16>,
}

/// A webhook receiver on 127.0.0.1, port 0, running on its own thread.
struct Receiver {
    url: String,
    log: Arc<Mutex<Log>>,
}

impl Receiver {
    fn start(script: &[u16]) -> Receiver {
        let log = Arc::new(Mutex::new(Log {
            got: Vec::new(),
            script: script.iter().copied().collect(),
        }));
        let shared = log.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(shared.clone()))
                        .default_service(web::to(receive))
                })
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind a receiver");
                tx.send(server.addrs()[0]).expect("report the address");
                let _ = server.run().await;
            })
        });
        let addr = rx.recv().expect("the receiver starts");
        Receiver {
            url: format!("http://{addr}/hook"),
            log,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.log.lock().unwrap().got.clone()
    }

    /// What came, once it is `n` requests; panics past `deadline`.
    fn came(&self, n: usize, deadline: Instant) -> Option<Vec<Received>> {
        let got = self.got();
        if got.len() >= n {
            return Some(got);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} requests came",
            got.len()
        );
        None
    }

    /// Waits until `n` requests came (10 s at most).
    async fn wait(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(got) = self.came(n, deadline) {
                return got;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `wait` for tests without an actix system.
    fn wait_blocking(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(got) = self.came(n, deadline) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn receive(
    log: web::Data<Arc<Mutex<Log>>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut log = log.lock().unwrap();
    log.got.push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body: body.to_vec(),
    });
    let status = log.script.pop_front().unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

/// Checks a request's signature as a receiver would (Standard Webhooks).
fn assert_signed(secret: &str, r: &Received) {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD.decode(encoded).expect("base64 key"),
        None => secret.as_bytes().to_vec(),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", r.id, r.timestamp).as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(r.signature, expected, "signature of {}", r.id);
    assert_eq!(r.content_type, "application/json");
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

fn hooks_path(application: u64) -> String {
    format!("/v1/applications/{application}/webhooks")
}

async fn create_hook(app: &TestApp, application: u64, body: Value) -> Value {
    let a = app.mgmt("POST", &hooks_path(application), Some(body)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.json()
}

async fn deliveries(app: &TestApp, application: u64, hook: u64) -> Vec<Value> {
    let a = app
        .mgmt(
            "GET",
            &format!("{}/{hook}/deliveries", hooks_path(application)),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["data"].as_array().expect("data").clone()
}

/// Waits until a webhook's deliveries list has `n` rows (10 s at most).
async fn wait_deliveries(app: &TestApp, application: u64, hook: u64, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = deliveries(app, application, hook).await;
        if rows.len() >= n {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} deliveries: {rows:?}",
            rows.len()
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (eventId, attempt, status, responseStatus) of delivery rows.
fn rows(list: &[Value]) -> Vec<(String, u64, String, Option<u64>)> {
    list.iter()
        .map(|d| {
            assert_utc_date(&d["at"]);
            (
                d["eventId"].as_str().unwrap_or("").to_string(),
                d["attempt"].as_u64().expect("attempt"),
                d["status"].as_str().expect("status").to_string(),
                d["responseStatus"].as_u64(),
            )
        })
        .collect()
}

fn ev(customer: &str, achievement: u64, id: &str) -> Value {
    json!({"integrationId": customer, "achievementId": achievement, "delta": 1, "eventId": id})
}

const ALL_TYPES: [&str; 4] = [
    "achievement.started",
    "achievement.completed",
    "achievement.expired",
    "achievement.completion_rolled_back",
];

// ---------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn a_completion_is_delivered_signed_in_feed_order_from_the_creation_on() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "two", "target": 2, "period": "1W"}))
        .await;
    // Before the webhook exists: not delivered to it.
    applied(&app.event(key, ev("early", ach, "e1")).await);
    wait_for(app, seed.application, 1).await;

    let receiver = Receiver::start(&[]);
    let before = now_s();
    let hook = create_hook(app, seed.application, json!({"url": receiver.url})).await;
    assert_eq!(
        keys_of(&hook),
        ["created", "id", "secret", "types", "url"]
            .map(String::from)
            .into()
    );
    assert!(hook["id"].as_u64().expect("id") > 0);
    assert_eq!(hook["url"], receiver.url);
    assert_eq!(hook["types"], json!(ALL_TYPES));
    assert_utc_date(&hook["created"]);
    let secret = hook["secret"].as_str().expect("a generated secret");
    let key_bytes = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64");
    assert_eq!(key_bytes.len(), 24);

    applied(&app.event(key, ev("jane", ach, "j1")).await);
    applied(&app.event(key, ev("jane", ach, "j2")).await);
    let got = receiver.wait(2).await;
    let entries = wait_for(app, seed.application, 3).await;
    let janes: Vec<&Value> = entries
        .iter()
        .filter(|e| e["integrationId"] == "jane")
        .collect();
    assert_eq!(
        got.len(),
        2,
        "only entries stored after the webhook was created"
    );
    for (r, entry) in got.iter().zip(&janes) {
        assert_signed(secret, r);
        assert_eq!(r.id, entry["id"].as_str().unwrap());
        assert_eq!(&r.json(), *entry, "the body is the feed's AchievementEvent");
        let ts: i64 = r.timestamp.parse().expect("Unix seconds");
        assert!((before.timestamp() - 5..=now_s().timestamp() + 5).contains(&ts));
    }
    assert_eq!(got[0].json()["type"], "achievement.started");
    assert_eq!(got[1].json()["type"], "achievement.completed");

    let id = hook["id"].as_u64().unwrap();
    let list = wait_deliveries(app, seed.application, id, 2).await;
    assert_eq!(
        rows(&list),
        vec![
            (got[1].id.clone(), 1, "delivered".into(), Some(200)),
            (got[0].id.clone(), 1, "delivered".into(), Some(200)),
        ]
    );
}

#[actix_web::test]
async fn types_are_honoured_and_a_burst_keeps_feed_order() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "one", "target": 1, "period": "1W"}))
        .await;
    let everything = Receiver::start(&[]);
    let completions = Receiver::start(&[]);
    create_hook(
        app,
        seed.application,
        json!({"url": everything.url, "secret": "plain secret", "types": []}),
    )
    .await;
    let only = create_hook(
        app,
        seed.application,
        json!({"url": completions.url, "secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
               "types": ["achievement.completed", "achievement.completed"]}),
    )
    .await;
    assert_eq!(only["types"], json!(["achievement.completed"]));
    assert_eq!(only["secret"], "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");

    const N: usize = 12;
    for i in 0..N {
        applied(
            &app.event(key, ev(&format!("c{i}"), ach, &format!("e{i}")))
                .await,
        );
    }
    let entries = wait_for(app, seed.application, 2 * N).await;
    let all_ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let completed_ids: Vec<&str> = entries
        .iter()
        .filter(|e| e["type"] == "achievement.completed")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let got_all = everything.wait(2 * N).await;
    let got_completed = completions.wait(N).await;
    assert_eq!(
        got_all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        all_ids
    );
    assert_eq!(
        got_completed
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        completed_ids
    );
    for r in &got_all {
        assert_signed("plain secret", r);
    }
    for r in &got_completed {
        assert_signed("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", r);
        assert_eq!(r.json()["type"], "achievement.completed");
    }
}

#[actix_web::test]
async fn failures_are_retried_with_backoff_until_acknowledged() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "five", "target": 5, "period": "1W"}))
        .await;
    let receiver = Receiver::start(&[500, 500]);
    let hook = create_hook(
        app,
        seed.application,
        json!({"url": receiver.url, "secret": "s"}),
    )
    .await;
    let id = hook["id"].as_u64().unwrap();
    applied(&app.event(key, ev("jane", ach, "j1")).await);
    // 1 s, then 2 s of backoff.
    let got = receiver.wait(3).await;
    let entry = &wait_for(app, seed.application, 1).await[0];
    let event_id = entry["id"].as_str().unwrap().to_string();
    assert!(
        got.iter().all(|r| r.id == event_id),
        "the same entry each time"
    );
    for r in &got {
        assert_signed("s", r);
    }
    let gaps: Vec<i64> = got
        .windows(2)
        .map(|w| w[1].timestamp.parse::<i64>().unwrap() - w[0].timestamp.parse::<i64>().unwrap())
        .collect();
    assert!(gaps[0] >= 1 && gaps[1] >= 2, "backoff doubles: {gaps:?}");
    let list = wait_deliveries(app, seed.application, id, 3).await;
    assert_eq!(
        rows(&list),
        vec![
            (event_id.clone(), 3, "delivered".into(), Some(200)),
            (event_id.clone(), 2, "failed".into(), Some(500)),
            (event_id.clone(), 1, "failed".into(), Some(500)),
        ]
    );
    // The metrics count the attempts by outcome; nothing waits now.
    let m = app.raw("GET", "/metrics", Auth::None, None).await.text;
    let sample = |name: &str| {
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.to_string())
    };
    assert_eq!(
        sample("achv_webhook_deliveries_total{status=\"failed\"}").as_deref(),
        Some("2")
    );
    assert_eq!(
        sample("achv_webhook_deliveries_total{status=\"delivered\"}").as_deref(),
        Some("1")
    );
    assert_eq!(sample("achv_webhook_retrying ").as_deref(), Some("0"));
    assert_eq!(
        sample("achv_webhook_oldest_undelivered_seconds ").as_deref(),
        Some("0")
    );
}

#[actix_web::test]
async fn after_the_retry_window_an_entry_is_given_up_and_the_next_one_delivered() {
    let clock = Clock::manual(now_s());
    let seed = Seeded::on(
        spawn_app_with_clock(clock.clone(), |s| s.webhook_retry_hours = 1).await,
        "UTC",
        json!({}),
    )
    .await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "one", "target": 1, "period": "1W"}))
        .await;
    let receiver = Receiver::start(&[500, 503]);
    let hook = create_hook(app, seed.application, json!({"url": receiver.url})).await;
    let id = hook["id"].as_u64().unwrap();
    applied(&app.event(key, ev("jane", ach, "j1")).await);
    wait_deliveries(app, seed.application, id, 1).await;
    // The first retry comes a second later, past the hour's window.
    clock.advance(chrono::Duration::minutes(61));
    let got = receiver.wait(3).await;
    let entries = wait_for(app, seed.application, 2).await;
    let (started, completed) = (
        entries[0]["id"].as_str().unwrap(),
        entries[1]["id"].as_str().unwrap(),
    );
    assert_eq!(
        got.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [started, started, completed]
    );
    let list = wait_deliveries(app, seed.application, id, 3).await;
    assert_eq!(
        rows(&list),
        vec![
            (completed.into(), 1, "delivered".into(), Some(200)),
            (started.into(), 2, "gave_up".into(), Some(503)),
            (started.into(), 1, "failed".into(), Some(500)),
        ]
    );
}

#[actix_web::test]
async fn a_410_disables_the_webhook() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "five", "target": 5, "period": "1W"}))
        .await;
    let receiver = Receiver::start(&[410]);
    let hook = create_hook(app, seed.application, json!({"url": receiver.url})).await;
    let id = hook["id"].as_u64().unwrap();
    applied(&app.event(key, ev("jane", ach, "j1")).await);
    let got = receiver.wait(1).await;
    let list = wait_deliveries(app, seed.application, id, 1).await;
    assert_eq!(
        rows(&list),
        vec![(got[0].id.clone(), 1, "disabled".into(), Some(410))]
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = app.mgmt("GET", &hooks_path(seed.application), None).await;
        if listed.json()["data"][0]["disabled"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "not disabled: {}", listed.text);
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    applied(&app.event(key, ev("bob", ach, "b1")).await);
    wait_for(app, seed.application, 2).await;
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got().len(), 1, "nothing more after the 410");
    assert_eq!(deliveries(app, seed.application, id).await.len(), 1);
}

#[actix_web::test]
async fn private_and_malformed_targets_are_refused() {
    let app = spawn_app_with(|s| s.webhook_allow_private = false).await;
    let (application, _) = app.application("UTC").await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost:9/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:192.168.0.1]/",
        "http://169.254.169.254/latest",
        "ftp://example.com/",
        "not a url",
        "https://user:pw@example.com/",
    ] {
        let a = app
            .mgmt("POST", &hooks_path(application), Some(json!({"url": url})))
            .await;
        assert_error(&a, 400, Some("/url"));
    }
    let a = app
        .mgmt(
            "POST",
            &hooks_path(application),
            Some(json!({"url": "http://127.0.0.1:9/x"})),
        )
        .await;
    assert!(a.text.contains("--webhook-allow-private"), "{}", a.text);
    let listed = app.mgmt("GET", &hooks_path(application), None).await;
    assert_eq!(listed.json(), json!({"data": []}));
}

#[actix_web::test]
async fn the_routes_check_keys_applications_bodies_and_never_list_secrets() {
    let seed = seeded("UTC").await;
    let app = &seed.app;
    let application = seed.application;
    let (other, _) = app.application("UTC").await;
    let path = hooks_path(application);
    let url = "http://127.0.0.1:9/never-called";
    for (body, pointer) in [
        (json!({"url": url, "extra": 1}), "/extra"),
        (json!({"types": []}), "/url"),
        (
            json!({"url": url, "types": ["achievement.started", "nope"]}),
            "/types/1",
        ),
        (
            json!({"url": url, "types": "achievement.started"}),
            "/types",
        ),
        (json!({"url": url, "secret": ""}), "/secret"),
        (json!({"url": url, "secret": "whsec_***"}), "/secret"),
        (json!({"url": url, "secret": "x".repeat(257)}), "/secret"),
    ] {
        let a = app.mgmt("POST", &path, Some(body.clone())).await;
        assert_error(&a, 400, Some(pointer));
    }
    let secret = "a-secret-nobody-may-see";
    let hook = create_hook(
        app,
        application,
        json!({"url": url, "secret": secret, "types": ["achievement.expired"]}),
    )
    .await;
    let id = hook["id"].as_u64().unwrap();
    let second = create_hook(app, application, json!({"url": url})).await;
    assert!(second["id"].as_u64().unwrap() > id);

    let listed = app.mgmt("GET", &path, None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert!(!listed.text.contains(secret) && !listed.text.contains("whsec_"));
    let data = listed.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 2);
    assert_eq!(
        keys_of(&data[0]),
        ["created", "disabled", "id", "types", "url"]
            .map(String::from)
            .into()
    );
    assert_eq!(data[0]["types"], json!(["achievement.expired"]));
    assert_eq!(data[0]["disabled"], false);
    assert_eq!(
        app.mgmt("GET", &hooks_path(other), None).await.json(),
        json!({"data": []})
    );

    let one = format!("{path}/{id}");
    let other_one = format!("{}/{id}", hooks_path(other));
    // Without the management key, or with an integration key: 401.
    for (method, p) in [
        ("POST", path.as_str()),
        ("GET", path.as_str()),
        ("DELETE", one.as_str()),
        ("GET", &format!("{one}/deliveries")),
    ] {
        let a = app.raw(method, p, Auth::None, Some("{}")).await;
        assert_error(&a, 401, None);
        let a = app
            .raw(method, p, Auth::Integration(&seed.key), Some("{}"))
            .await;
        assert_error(&a, 401, None);
    }
    // Unknown application: 404; another application's webhook: 404.
    for (method, p) in [
        ("GET", "/v1/applications/999/webhooks".to_string()),
        ("DELETE", format!("/v1/applications/999/webhooks/{id}")),
        (
            "GET",
            format!("/v1/applications/999/webhooks/{id}/deliveries"),
        ),
        ("DELETE", other_one.clone()),
        ("GET", format!("{other_one}/deliveries")),
        ("GET", format!("{path}/424242/deliveries")),
    ] {
        assert_error(&app.mgmt(method, &p, None).await, 404, None);
    }
    let a = app
        .mgmt(
            "POST",
            "/v1/applications/999/webhooks",
            Some(json!({"url": url})),
        )
        .await;
    assert_error(&a, 404, None);
    let a = app.mgmt("GET", &format!("{path}/x/deliveries"), None).await;
    assert_error(&a, 400, None);

    assert_eq!(deliveries(app, application, id).await, Vec::<Value>::new());
    let d = app.mgmt("DELETE", &one, None).await;
    assert_eq!(d.status, 204, "{}", d.text);
    assert_error(
        &app.mgmt("GET", &format!("{one}/deliveries"), None).await,
        404,
        None,
    );
    assert_error(&app.mgmt("DELETE", &one, None).await, 404, None);
    let listed = app.mgmt("GET", &path, None).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    // Ids are never reused.
    let third = create_hook(app, application, json!({"url": url})).await;
    assert!(third["id"].as_u64().unwrap() > second["id"].as_u64().unwrap());
}

// ---------------------------------------------------------------------------
// Restart (the binary as a child process, see `recovery`).
// ---------------------------------------------------------------------------

fn drill_event(server: &Server, key: &str, customer: &str) {
    let body = json!({"integrationId": customer, "achievementName": "drill_total",
        "delta": 1, "eventId": format!("{customer}-1")});
    let r = server.call(
        "POST",
        "/v1/progress_events",
        Some(&api_auth(key)),
        Some(body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

fn feed_ids(server: &Server, application: u64) -> Vec<String> {
    let r = server.mgmt("GET", &events_path(application, "?limit=1000"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn wait_feed(server: &Server, application: u64, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ids = feed_ids(server, application);
        if ids.len() >= n {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} feed entries",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_restart_drill(dir: &Path) {
    let log = dir.join("server.log");
    let data = dir.join("data");
    let receiver = Receiver::start(&[]);
    let mut server = Server::start(&data, &log, &["--webhook-allow-private"]);
    let setup = create_catalog(&server);
    let r = server.mgmt(
        "POST",
        &hooks_path(setup.application),
        Some(json!({"url": receiver.url, "secret": "restart"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    for c in ["a", "b", "c"] {
        drill_event(&server, &setup.key, c);
    }
    let before = receiver.wait_blocking(3);
    server.kill9();
    // Each delivered entry's position is durable before the next one is
    // sent: a restart delivers again at most the last one.
    let server = Server::start(&data, &log, &["--webhook-allow-private"]);
    for c in ["d", "e"] {
        drill_event(&server, &setup.key, c);
    }
    let ids = wait_feed(&server, setup.application, 5);
    let after = receiver.wait_blocking(5);
    std::thread::sleep(Duration::from_millis(300));
    let got: Vec<String> = receiver.got().into_iter().map(|r| r.id).collect();
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(distinct, ids, "every entry, in order: {got:?}");
    assert!(got.len() <= 6, "at most one entry again: {got:?}");
    if got.len() == 6 {
        assert_eq!(got[2], got[3], "only the last entry before the kill again");
    }
    for r in before.iter().chain(&after) {
        assert_signed("restart", r);
    }
}

#[test]
fn a_restart_resumes_delivery_where_it_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    run_restart_drill(dir.path());
}
