//! Hostile and bad input: every limit answers with a clear error at its
//! exact boundary, slow or greedy clients cannot hold the server, and keys
//! never reach the logs.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use achievements_engine::engine::keys;
use achievements_engine::http::integration::MAX_BATCH;
use achievements_engine::http::json::{BATCH_BODY_LIMIT, BODY_LIMIT, HEADER_LIMIT};
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Answer, Auth, TestApp};

/// An application, its key and one achievement (target 1 000 000).
async fn setup(app: &TestApp) -> (u64, String, u64, u64) {
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = app
        .achievement(
            application,
            campaign,
            json!({"target": 1_000_000, "period": "1D"}),
        )
        .await;
    (application, key, campaign, a["id"].as_u64().expect("id"))
}

/// `json` padded with trailing spaces to exactly `len` bytes.
fn padded(json: &Value, len: usize) -> String {
    let mut text = json.to_string();
    assert!(
        text.len() <= len,
        "{} bytes do not fit in {len}",
        text.len()
    );
    text.push_str(&" ".repeat(len - text.len()));
    assert_eq!(text.len(), len);
    text
}

fn addr_of(app: &TestApp) -> SocketAddr {
    app.base
        .trim_start_matches("http://")
        .parse()
        .expect("the test server's address")
}

/// Reads what the server sends until it closes or `limit` passes.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (out, false)
            }
            // A reset after the answer is a close too.
            Err(_) => return (out, true),
        }
    }
}

/// The status code of a raw HTTP answer, if it starts with one.
fn status_of(raw: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(raw);
    let line = text.lines().next()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

async fn healthy(app: &TestApp) {
    let a = app.raw("GET", "/healthz", Auth::None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
}

// ---------------------------------------------------------------- body size

#[actix_rt::test]
async fn a_single_event_body_of_exactly_the_limit_is_read_and_one_byte_more_is_413() {
    let app = spawn_app().await;
    let (_, key, _, id) = setup(&app).await;
    let ev = json!({"integrationId": "c", "achievementId": id, "delta": 1});
    let at_limit = app
        .raw(
            "POST",
            "/v1/progress_events",
            Auth::Integration(&key),
            Some(&padded(&ev, BODY_LIMIT)),
        )
        .await;
    assert_eq!(at_limit.status, 200, "{}", at_limit.text);
    assert_eq!(at_limit.json()["outcome"], "applied");
    let over = app
        .raw(
            "POST",
            "/v1/progress_events",
            Auth::Integration(&key),
            Some(&padded(&ev, BODY_LIMIT + 1)),
        )
        .await;
    assert_error(&over, 413, None);
    assert!(
        over.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains(&BODY_LIMIT.to_string())),
        "the 413 names the limit: {}",
        over.text
    );
    // The same limit holds for management bodies.
    let (application, _) = app.application("UTC").await;
    let over = app
        .raw(
            "POST",
            &format!("/v1/applications/{application}/campaigns"),
            Auth::Management,
            Some(&padded(&json!({"name": "c"}), BODY_LIMIT + 1)),
        )
        .await;
    assert_error(&over, 413, None);
}

#[actix_rt::test]
async fn a_batch_body_of_exactly_the_batch_limit_is_read_and_one_byte_more_is_413() {
    let app = spawn_app().await;
    let (_, key, _, id) = setup(&app).await;
    let batch = json!({"events": [
        {"integrationId": "c", "achievementId": id, "delta": 1, "eventId": "e1"},
        {"integrationId": "c", "achievementId": id, "delta": 2, "eventId": "e2"},
    ]});
    let at_limit = app
        .raw(
            "POST",
            "/v1/progress_events/batch",
            Auth::Integration(&key),
            Some(&padded(&batch, BATCH_BODY_LIMIT)),
        )
        .await;
    assert_eq!(at_limit.status, 200, "{}", at_limit.text);
    assert_eq!(at_limit.json()["applied"], 2, "{}", at_limit.text);
    let over = app
        .raw(
            "POST",
            "/v1/progress_events/batch",
            Auth::Integration(&key),
            Some(&padded(&batch, BATCH_BODY_LIMIT + 1)),
        )
        .await;
    assert_error(&over, 413, None);
    // A single event may not use the batch limit.
    let ev = json!({"integrationId": "c", "achievementId": id, "delta": 1});
    let single = app
        .raw(
            "POST",
            "/v1/progress_events",
            Auth::Integration(&key),
            Some(&padded(&ev, BODY_LIMIT * 2)),
        )
        .await;
    assert_error(&single, 413, None);
}

// --------------------------------------------------------------- batch size

#[actix_rt::test]
async fn a_batch_of_more_than_the_maximum_events_is_400_at_events() {
    let app = spawn_app().await;
    let (_, key, _, id) = setup(&app).await;
    let ev = json!({"integrationId": "c", "achievementId": id, "delta": 1});
    let events: Vec<Value> = std::iter::repeat_n(ev, MAX_BATCH + 1).collect();
    let a = app
        .integ(
            &key,
            "POST",
            "/v1/progress_events/batch",
            Some(json!({ "events": events })),
        )
        .await;
    assert_error(&a, 400, Some("/events"));
    assert!(a.text.contains(&MAX_BATCH.to_string()), "{}", a.text);
    // Nothing of the refused batch was applied.
    let h = app
        .integ(
            &key,
            "GET",
            &format!("/v1/customer_profiles/c/achievements/{id}"),
            None,
        )
        .await;
    assert_eq!(h.status, 200, "{}", h.text);
    assert_eq!(h.json()["totalResultSize"], 0, "{}", h.text);
}

// -------------------------------------------------------------- header size

/// Sends a GET with one header of `size` bytes; the raw answer and whether
/// the server closed the connection.
async fn big_header(app: &TestApp, size: usize) -> (Vec<u8>, bool) {
    let addr = addr_of(app);
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(size)
        );
        // The server may answer and close before it has read everything.
        let _ = s.write_all(request.as_bytes());
        read_until_closed(&mut s, Duration::from_secs(10))
    })
    .await
    .expect("client thread")
}

#[actix_rt::test]
async fn a_64_kib_header_gets_431_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    // Under the limit: served.
    let (raw, _) = big_header(&app, HEADER_LIMIT - 100).await;
    assert_eq!(
        status_of(&raw),
        Some(200),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // Over our limit (actix-http would read it): 431 with the error body.
    let (raw, closed) = big_header(&app, 64 * 1024).await;
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(status_of(&raw), Some(431), "{text}");
    assert!(text.contains("\"StatusCode\":431"), "{text}");
    assert!(closed, "Connection: close is honoured");
    // Over actix-http's own limit: a 4xx (431) before any handler runs.
    let (raw, closed) = big_header(&app, 256 * 1024).await;
    assert!(
        status_of(&raw).is_some_and(|s| (400..500).contains(&s)),
        "expected 431 or another 4xx, got {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(closed, "the connection is closed after the error");
    healthy(&app).await;
}

// ------------------------------------------------------- ids and text sizes

#[actix_rt::test]
async fn ids_and_texts_over_their_limits_are_400_naming_the_field() {
    let app = spawn_app().await;
    let (application, key, campaign, id) = setup(&app).await;
    let ev = |integration: String, event: String| json!({"integrationId": integration, "achievementId": id, "delta": 1, "eventId": event});
    // integrationId: 1000 characters (multi-byte ones count as one) is fine.
    let ok = app.event(&key, ev("é".repeat(1000), "e1".into())).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let a = app.event(&key, ev("x".repeat(1001), "e2".into())).await;
    assert_error(&a, 400, Some("/integrationId"));
    // eventId: 128 is fine, 129 is not.
    let ok = app.event(&key, ev("c".into(), "e".repeat(128))).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let a = app.event(&key, ev("c".into(), "e".repeat(129))).await;
    assert_error(&a, 400, Some("/eventId"));
    // The same in a batch, pointing into it.
    let a = app
        .integ(
            &key,
            "POST",
            "/v1/progress_events/batch",
            Some(json!({"events": [ev("c".into(), "ok".into()), ev("c".into(), "e".repeat(129))]})),
        )
        .await;
    assert_error(&a, 400, Some("/events/1/eventId"));
    // A rollback's eventId.
    let a = app
        .integ(
            &key,
            "POST",
            "/v1/progress_rollbacks",
            Some(json!({"integrationId": "c", "achievementId": id, "eventId": "e".repeat(129)})),
        )
        .await;
    assert_error(&a, 400, Some("/eventId"));
    // A path integrationId.
    let long = "x".repeat(1001);
    let a = app
        .integ(
            &key,
            "GET",
            &format!("/v1/customer_profiles/{long}/achievements"),
            None,
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(
        a.json()["errors"][0]["source"]["parameter"],
        "integrationId"
    );

    // Achievement texts.
    let path = format!("/v1/applications/{application}/campaigns/{campaign}/achievements");
    let base = json!({"name": "n", "title": "t", "description": "", "target": 1, "period": "1D"});
    for (field, value, pointer) in [
        ("name", format!("a{}", "b".repeat(1000)), "/name"),
        ("title", "t".repeat(1001), "/title"),
        ("description", "d".repeat(10_001), "/description"),
    ] {
        let mut body = base.clone();
        body[field] = json!(value);
        if field != "name" {
            body["name"] = json!(format!("long_{field}"));
        }
        let a = app.mgmt("POST", &path, Some(body)).await;
        assert_error(&a, 400, Some(pointer));
    }
    let mut at_limits = base.clone();
    at_limits["name"] = json!(format!("a{}", "b".repeat(999)));
    at_limits["title"] = json!("t".repeat(1000));
    at_limits["description"] = json!("d".repeat(10_000));
    let a = app.mgmt("POST", &path, Some(at_limits)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    // An achievement name is also refused at the limit when updating.
    let achievement = a.json()["id"].as_u64().expect("id");
    let a = app
        .mgmt(
            "PUT",
            &format!("{path}/{achievement}"),
            Some(json!({"title": "t".repeat(1001)})),
        )
        .await;
    assert_error(&a, 400, Some("/title"));
    // Application and campaign names.
    let a = app
        .mgmt(
            "POST",
            "/v1/applications",
            Some(json!({"name": "a".repeat(1001)})),
        )
        .await;
    assert_error(&a, 400, Some("/name"));
    let a = app
        .mgmt(
            "POST",
            &format!("/v1/applications/{application}/campaigns"),
            Some(json!({"name": "c".repeat(1001)})),
        )
        .await;
    assert_error(&a, 400, Some("/name"));
}

// --------------------------------------------------------------- page sizes

#[actix_rt::test]
async fn page_sizes_above_each_lists_maximum_are_400_naming_pagesize() {
    let app = spawn_app().await;
    let (application, key, campaign, id) = setup(&app).await;
    let mgmt = [
        ("/v1/applications".to_string(), 1000),
        (format!("/v1/applications/{application}/campaigns"), 1000),
        (
            format!("/v1/applications/{application}/campaigns/{campaign}/achievements"),
            50,
        ),
        (
            format!("/v1/applications/{application}/achievement_progress/c"),
            50,
        ),
    ];
    for (path, max) in &mgmt {
        let ok = app
            .mgmt("GET", &format!("{path}?pageSize={max}"), None)
            .await;
        assert_eq!(ok.status, 200, "{path}: {}", ok.text);
        let a = app
            .mgmt("GET", &format!("{path}?pageSize={}", max + 1), None)
            .await;
        assert_parameter(&a, "pageSize");
        let a = app
            .mgmt(
                "GET",
                &format!("{path}?pageSize=99999999999999999999"),
                None,
            )
            .await;
        assert_parameter(&a, "pageSize");
    }
    let integ = [
        ("/v1/customer_profiles/c/achievements".to_string(), 1000),
        (format!("/v1/customer_profiles/c/achievements/{id}"), 1000),
    ];
    for (path, max) in &integ {
        let ok = app
            .integ(&key, "GET", &format!("{path}?pageSize={max}"), None)
            .await;
        assert_eq!(ok.status, 200, "{path}: {}", ok.text);
        let a = app
            .integ(&key, "GET", &format!("{path}?pageSize={}", max + 1), None)
            .await;
        assert_parameter(&a, "pageSize");
    }
}

fn assert_parameter(a: &Answer, name: &str) {
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(
        a.json()["errors"][0]["source"]["parameter"],
        name,
        "{}",
        a.text
    );
}

// ------------------------------------------------------- slow clients, caps

#[actix_rt::test]
async fn a_client_that_stalls_mid_request_line_is_cut_off_while_others_are_served() {
    let app = spawn_app_with(|s| s.request_timeout_ms = 1_000).await;
    let addr = addr_of(&app);
    let stalled = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let started = Instant::now();
        s.write_all(b"GET /heal").expect("half a request line");
        let (bytes, closed) = read_until_closed(&mut s, Duration::from_secs(15));
        (bytes, closed, started.elapsed())
    });
    let silent = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let started = Instant::now();
        let (bytes, closed) = read_until_closed(&mut s, Duration::from_secs(15));
        (bytes, closed, started.elapsed())
    });
    // Meanwhile other clients are served, promptly (each on a connection
    // of its own: a pooled one may meet the short keep-alive closing it).
    for _ in 0..5 {
        let started = Instant::now();
        let (status, body) = tokio::task::spawn_blocking(move || {
            http(addr, "GET", "/healthz", None, None).expect("request")
        })
        .await
        .expect("client thread");
        assert_eq!(status, 200, "{body}");
        assert!(started.elapsed() < Duration::from_millis(900));
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let (bytes, closed, took) = stalled.await.expect("stalled client");
    assert!(closed, "the stalled connection is closed");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "closed after {took:?} (timeout 1 s)"
    );
    let status = status_of(&bytes);
    assert!(
        bytes.is_empty() || status == Some(408),
        "a stalled request gets 408 or a plain close: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    let (bytes, closed, took) = silent.await.expect("silent client");
    assert!(closed && took < Duration::from_secs(5), "silent: {took:?}");
    assert!(status_of(&bytes).is_none_or(|s| s == 408), "{bytes:?}");
    let (status, _) =
        tokio::task::spawn_blocking(move || http(addr, "GET", "/healthz", None, None))
            .await
            .expect("client thread")
            .expect("request");
    assert_eq!(status, 200);
}

/// Sends one keep-alive request and reads its answer, leaving the
/// connection open.
fn keep_alive_request(s: &mut TcpStream) -> u16 {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("an answer");
    status_of(&buf[..n]).expect("a status line")
}

#[actix_rt::test]
async fn beyond_max_connections_a_new_connection_waits_until_one_closes() {
    let app = spawn_app_with(|s| {
        s.workers = Some(1);
        s.max_connections = 2;
        s.request_timeout_ms = 20_000;
    })
    .await;
    let addr = addr_of(&app);
    tokio::task::spawn_blocking(move || {
        let mut held: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = TcpStream::connect(addr).expect("connect");
                assert_eq!(keep_alive_request(&mut s), 200);
                s
            })
            .collect();
        // A third connection is queued by the kernel, not served.
        let mut third = TcpStream::connect(addr).expect("the backlog accepts");
        third
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("request");
        let (early, _) = read_until_closed(&mut third, Duration::from_millis(1_500));
        assert!(
            early.is_empty(),
            "served beyond the cap: {:?}",
            String::from_utf8_lossy(&early)
        );
        // The held ones still work.
        assert_eq!(keep_alive_request(&mut held[0]), 200);
        // Once one closes, the waiting one is served.
        drop(held.remove(0));
        let (late, closed) = read_until_closed(&mut third, Duration::from_secs(10));
        assert_eq!(
            status_of(&late),
            Some(200),
            "{:?}",
            String::from_utf8_lossy(&late)
        );
        assert!(closed);
    })
    .await
    .expect("client thread");
}

// ----------------------------------------------------------------- secrets

/// The binary, with its whole output going to `log`.
struct Binary {
    child: Child,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_binary(dir: &Path, log: &Path, management_key: Option<&str>) -> (Binary, SocketAddr) {
    let out = fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file handle");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_achievements-engine"));
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir)
        .arg("--workers")
        .arg("1")
        .env_remove("ACHV_MANAGEMENT_KEY")
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    if let Some(key) = management_key {
        // The environment, as a deployment would pass it.
        cmd.env("ACHV_MANAGEMENT_KEY", key);
    }
    let child = cmd.spawn().expect("start the binary");
    let binary = Binary { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        let found = text
            .lines()
            .filter(|l| l.contains("listening"))
            .find_map(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse::<SocketAddr>().ok());
        if let Some(addr) = found {
            if let Ok(r) = http(addr, "GET", "/readyz", None, None) {
                if r.0 == 200 {
                    return (binary, addr);
                }
            }
        }
        assert!(Instant::now() < deadline, "binary not ready; log:\n{text}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A minimal blocking HTTP/1.1 exchange: status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = status_of(&raw).ok_or_else(|| std::io::Error::other(text.clone()))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn keys_never_reach_the_logs_and_every_wrong_key_gets_the_same_401() {
    for configured in [None, Some("mk-configured-3f9c1e7a5b2d")] {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let data = dir.path().join("data");
        let (binary, addr) = start_binary(&data, &log, configured);
        let management_key = match configured {
            Some(k) => k.to_string(),
            // Generated on first start and stored in the data directory.
            None => fs::read_to_string(data.join(keys::MANAGEMENT_KEY_FILE))
                .expect("the stored management key")
                .trim()
                .to_string(),
        };
        assert!(management_key.len() >= 16, "a real key: {management_key:?}");
        let mgmt = format!("ManagementKey-v1 {management_key}");
        let req = |method: &str, path: &str, auth: Option<&str>, body: Option<&str>| {
            http(addr, method, path, auth, body).expect("request")
        };
        let (status, body) = req(
            "POST",
            "/v1/applications",
            Some(&mgmt),
            Some(r#"{"name": "shop"}"#),
        );
        assert_eq!(status, 201, "{body}");
        let app: Value = serde_json::from_str(&body).expect("JSON");
        let app_id = app["id"].as_u64().expect("id");
        let (status, body) = req(
            "POST",
            &format!("/v1/applications/{app_id}/api_keys"),
            Some(&mgmt),
            Some(r#"{"name": "k"}"#),
        );
        assert_eq!(status, 201, "{body}");
        let key: Value = serde_json::from_str(&body).expect("JSON");
        let integration_key = key["key"].as_str().expect("key").to_string();
        let integ = format!("ApiKey-v1 {integration_key}");
        // Correct keys work.
        let (status, body) = req("GET", "/v1/applications", Some(&mgmt), None);
        assert_eq!(status, 200, "{body}");
        let (status, body) = req(
            "GET",
            "/v1/customer_profiles/c/achievements",
            Some(&integ),
            None,
        );
        assert_eq!(status, 200, "{body}");
        // Wrong ones, in every combination, get one and the same 401.
        let wrong_management = format!("{management_key}x");
        let wrong_integration = format!("{integration_key}x");
        let attempts: Vec<(&str, String, Option<String>)> = vec![
            (
                "GET",
                "/v1/applications".into(),
                Some(format!("ManagementKey-v1 {wrong_management}")),
            ),
            (
                "GET",
                "/v1/applications".into(),
                Some(format!("ManagementKey-v1 {integration_key}")),
            ),
            (
                "GET",
                "/v1/applications".into(),
                Some(format!("ApiKey-v1 {management_key}")),
            ),
            (
                "GET",
                "/v1/applications".into(),
                Some(format!("Bearer {management_key}")),
            ),
            ("GET", "/v1/applications".into(), None),
            (
                "GET",
                format!("/v1/applications/{}/campaigns", app_id + 1),
                Some(format!("ManagementKey-v1 {wrong_management}")),
            ),
            (
                "GET",
                "/v1/customer_profiles/c/achievements".into(),
                Some(format!("ApiKey-v1 {wrong_integration}")),
            ),
            (
                "GET",
                "/v1/customer_profiles/c/achievements".into(),
                Some(format!("ApiKey-v1 {management_key}")),
            ),
            (
                "GET",
                "/v1/customer_profiles/c/achievements".into(),
                Some(format!("ManagementKey-v1 {integration_key}")),
            ),
            (
                "POST",
                "/v1/progress_events".into(),
                Some(format!("ApiKey-v1 {wrong_integration}")),
            ),
            ("POST", "/v1/progress_events".into(), None),
        ];
        let mut bodies = Vec::new();
        for (method, path, auth) in &attempts {
            let body = (*method == "POST")
                .then_some(r#"{"integrationId": "c", "achievementId": 1, "delta": 1}"#);
            let (status, text) = req(method, path, auth.as_deref(), body);
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {text}");
            bodies.push(text);
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "401 bodies differ: {bodies:#?}"
        );
        for secret in [
            &management_key,
            &integration_key,
            &wrong_management,
            &wrong_integration,
        ] {
            assert!(!bodies[0].contains(secret.as_str()));
        }
        drop(binary);
        let output = fs::read_to_string(&log).expect("log");
        assert!(
            output.contains("path=/v1/applications") && output.contains("status=401"),
            "the log is verbose and records requests:\n{output}"
        );
        for secret in [&management_key, &integration_key] {
            assert!(
                !output.contains(secret.as_str()),
                "a key appears in the log:\n{output}"
            );
        }
        // Not even a recognisable part of one.
        for secret in [&management_key, &integration_key] {
            let middle = &secret[secret.len() / 4..secret.len() / 4 + 12];
            assert!(!output.contains(middle), "part of a key is logged");
        }
    }
}
