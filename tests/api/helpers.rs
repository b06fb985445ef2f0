//! `spawn_app`, the `seeded` fixture and small clients for the tests.

use std::time::Duration;

use achievements_engine::clock::Clock;
use achievements_engine::config::Settings;
use achievements_engine::http::server::{start_with_clock, Running};
use awc::Client;
use serde_json::{json, Value};

/// A server running in this test's actix system.
pub struct TestApp {
    pub base: String,
    pub management_key: String,
    pub client: Client,
    _dir: tempfile::TempDir,
}

/// An HTTP answer: status, headers we care about and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub text: String,
}

impl Answer {
    /// Reads a client response into an answer.
    pub async fn read<S>(res: &mut awc::ClientResponse<S>) -> Answer
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let bytes = res
            .body()
            .limit(256 * 1024 * 1024)
            .await
            .expect("body read");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Answer {
            status: res.status().as_u16(),
            content_type: header("content-type").unwrap_or_default(),
            retry_after: header("retry-after"),
            text: String::from_utf8_lossy(&bytes).to_string(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

pub fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        data_dir: dir.to_path_buf(),
        management_key: Some("test-management-key".into()),
        snapshot_interval: 0,
        snapshot_keep: 3,
        idempotency_retention_secs: 604_800,
        history_cap: 100,
        queue_capacity: 65_536,
        partitions: None,
        workers: Some(2),
        max_connections: 25_000,
        request_timeout_ms: 5_000,
        feed_retention_secs: 604_800,
        webhook_retry_hours: 24,
        // Test receivers listen on loopback.
        webhook_allow_private: true,
        cluster: None,
        node_id: None,
        replicas: 3,
        lease_secs: 10,
        log_format: achievements_engine::config::LogFormat::Text,
    }
}

/// Starts a server on port 0 with a fresh data directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server with adjusted settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_clock(Clock::system(), adjust).await
}

/// Starts a server whose engine reads time from `clock`: a manual clock
/// lets a test move time (expiry, lateness) instead of sleeping.
pub async fn spawn_app_with_clock(clock: Clock, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = settings(dir.path());
    adjust(&mut settings);
    let Running {
        addr,
        server,
        management_key,
        restored,
        ..
    } = start_with_clock(&settings, clock).expect("server starts");
    actix_rt::spawn(server);
    restored
        .await
        .expect("restore reports")
        .expect("restore succeeds");
    let client = Client::builder().timeout(Duration::from_secs(30)).finish();
    TestApp {
        base: format!("http://{addr}"),
        management_key,
        client,
        _dir: dir,
    }
}

/// The setup most tests start from: a server with one application (in a
/// given zone), an integration key for it and one campaign.
pub struct Seeded {
    pub app: TestApp,
    pub application: u64,
    pub key: String,
    pub campaign: u64,
}

/// A fresh server (`spawn_app`) seeded with an application in `timezone`,
/// its key and an enabled, unbounded campaign.
pub async fn seeded(timezone: &str) -> Seeded {
    Seeded::on(spawn_app().await, timezone, json!({})).await
}

impl Seeded {
    /// Seeds `app` (from `spawn_app_with` or `spawn_app_with_clock`, say)
    /// with an application in `timezone`, its key and a campaign with the
    /// fields `campaign` (see `TestApp::campaign`).
    pub async fn on(app: TestApp, timezone: &str, campaign: Value) -> Seeded {
        let (application, key) = app.application(timezone).await;
        let campaign = app.campaign(application, campaign).await;
        Seeded {
            app,
            application,
            key,
            campaign,
        }
    }

    /// Adds an achievement to the seeded campaign (see `TestApp::achievement`)
    /// and returns it as created.
    pub async fn achievement(&self, fields: Value) -> Value {
        self.app
            .achievement(self.application, self.campaign, fields)
            .await
    }

    /// Adds an achievement to the seeded campaign and returns its id.
    pub async fn achievement_id(&self, fields: Value) -> u64 {
        self.achievement(fields).await["id"]
            .as_u64()
            .expect("achievement id")
    }
}

pub enum Auth<'a> {
    None,
    Management,
    Integration(&'a str),
    Raw(&'a str),
}

impl TestApp {
    /// Sends a request with a raw body (or none).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<&str>,
    ) -> Answer {
        let url = format!("{}{}", self.base, path);
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, url);
        req = match auth {
            Auth::None => req,
            Auth::Management => req.insert_header((
                "Authorization",
                format!("ManagementKey-v1 {}", self.management_key),
            )),
            Auth::Integration(key) => {
                req.insert_header(("Authorization", format!("ApiKey-v1 {key}")))
            }
            Auth::Raw(value) => req.insert_header(("Authorization", value.to_string())),
        };
        let mut res = match body {
            Some(b) => req
                .insert_header(("Content-Type", "application/json"))
                .send_body(b.to_string())
                .await
                .expect("request sent"),
            None => req.send().await.expect("request sent"),
        };
        Answer::read(&mut res).await
    }

    pub async fn mgmt(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let text = body.map(|b| b.to_string());
        self.raw(method, path, Auth::Management, text.as_deref())
            .await
    }

    pub async fn integ(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
        let text = body.map(|b| b.to_string());
        self.raw(method, path, Auth::Integration(key), text.as_deref())
            .await
    }

    /// Creates an application (with a zone) and an integration key for it.
    pub async fn application(&self, timezone: &str) -> (u64, String) {
        let a = self
            .mgmt(
                "POST",
                "/v1/applications",
                Some(json!({"name": "shop", "timezone": timezone})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        let app = a.json()["id"].as_u64().expect("application id");
        let k = self
            .mgmt(
                "POST",
                &format!("/v1/applications/{app}/api_keys"),
                Some(json!({"name": "k"})),
            )
            .await;
        assert_eq!(k.status, 201, "{}", k.text);
        (app, k.json()["key"].as_str().expect("key").to_string())
    }

    /// Creates a campaign (enabled, unbounded unless `extra` says otherwise).
    pub async fn campaign(&self, app: u64, extra: Value) -> u64 {
        let mut body = json!({"name": "campaign"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let c = self
            .mgmt(
                "POST",
                &format!("/v1/applications/{app}/campaigns"),
                Some(body),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.text);
        c.json()["id"].as_u64().expect("campaign id")
    }

    /// Creates an achievement from `fields` (name, title, description and
    /// target default to something valid).
    pub async fn achievement(&self, app: u64, campaign: u64, fields: Value) -> Value {
        let mut body =
            json!({"name": "ach", "title": "Achievement", "description": "", "target": 5});
        if let (Some(b), Some(e)) = (body.as_object_mut(), fields.as_object()) {
            b.extend(e.clone());
        }
        let a = self
            .mgmt(
                "POST",
                &format!("/v1/applications/{app}/campaigns/{campaign}/achievements"),
                Some(body),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        a.json()
    }

    /// Sends one progress event.
    pub async fn event(&self, key: &str, body: Value) -> Answer {
        self.integ(key, "POST", "/v1/progress_events", Some(body))
            .await
    }
}

/// Reads and writes of the integration API, shared by the test files.
impl TestApp {
    pub async fn list(&self, key: &str, customer: &str, query: &str) -> Value {
        let a = self
            .integ(
                key,
                "GET",
                &format!("/v1/customer_profiles/{customer}/achievements{query}"),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()
    }

    pub async fn history(&self, key: &str, customer: &str, achievement: u64, query: &str) -> Value {
        let a = self
            .integ(
                key,
                "GET",
                &format!("/v1/customer_profiles/{customer}/achievements/{achievement}{query}"),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()
    }

    pub async fn rollback(&self, key: &str, body: Value) -> Answer {
        self.integ(key, "POST", "/v1/progress_rollbacks", Some(body))
            .await
    }

    pub async fn batch(&self, key: &str, query: &str, body: Value) -> Answer {
        self.integ(
            key,
            "POST",
            &format!("/v1/progress_events/batch{query}"),
            Some(body),
        )
        .await
    }

    /// The customer's current progress in one achievement (None when not started).
    pub async fn progress(&self, key: &str, customer: &str, achievement: u64) -> Option<Value> {
        let list = self
            .list(key, customer, &format!("?achievementIds={achievement}"))
            .await;
        assert_eq!(list["totalResultSize"], 1, "{list}");
        let p = &list["data"][0]["currentProgress"];
        (!p.is_null()).then(|| p["progress"].clone())
    }

    pub async fn healthy(&self) {
        let h = self.raw("GET", "/healthz", Auth::None, None).await;
        assert_eq!(h.status, 200, "{}", h.text);
    }
}

/// Asserts Talon.One's error shape with the given status and pointer.
pub fn assert_error(a: &Answer, status: u16, pointer: Option<&str>) {
    assert_eq!(a.status, status, "{}", a.text);
    let v = a.json();
    assert!(v["message"].is_string(), "{}", a.text);
    assert_eq!(v["StatusCode"], status, "{}", a.text);
    let errors = v["errors"].as_array().expect("errors array");
    assert!(!errors.is_empty(), "{}", a.text);
    if let Some(p) = pointer {
        assert!(
            errors.iter().any(|e| e["source"]["pointer"] == p),
            "no error points at {p}: {}",
            a.text
        );
    }
}
