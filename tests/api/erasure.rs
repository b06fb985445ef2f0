//! Customer data erasure (`DELETE /v1/customer_data/{integrationId}`,
//! Talon.One's `deleteCustomerData`): the customer's pairs in the key's
//! application are gone from every read, listing and export, other
//! applications are untouched, a later event starts from nothing, and the
//! erasure survives `kill -9`, snapshots and restores.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::helpers::*;
use crate::recovery::{api_auth, create_catalog, snapshot_ids, snapshot_path, Server, Setup};

fn ev(customer: &str, achievement: u64, delta: u32, id: &str) -> Value {
    json!({"integrationId": customer, "achievementId": achievement, "delta": delta, "eventId": id})
}

#[actix_web::test]
async fn an_erased_customer_is_gone_from_every_read_of_that_application() {
    let app = spawn_app().await;
    let (app1, key1) = app.application("UTC").await;
    let (app2, key2) = app.application("UTC").await;
    let c1 = app.campaign(app1, json!({})).await;
    let c2 = app.campaign(app2, json!({})).await;
    let weekly = json!({"name": "weekly", "target": 5, "period": "1W",
                        "recurrencePolicy": "on_expiration"});
    let w1 = id_of(&app.achievement(app1, c1, weekly.clone()).await);
    let once = id_of(
        &app.achievement(
            app1,
            c1,
            json!({"name": "once", "target": 3, "period": "1D"}),
        )
        .await,
    );
    let w2 = id_of(&app.achievement(app2, c2, weekly).await);

    let first = applied(&app.event(&key1, ev("jane", w1, 2, "e1")).await);
    let old_tracker = first["effects"][0]["props"]["progressTrackerId"].clone();
    applied(&app.event(&key1, ev("jane", once, 3, "e2")).await);
    applied(&app.event(&key2, ev("jane", w2, 4, "e3")).await);
    applied(&app.event(&key1, ev("joe", w1, 1, "e4")).await);

    let erase = app
        .integ(&key1, "DELETE", "/v1/customer_data/jane", None)
        .await;
    assert_eq!(erase.status, 204, "{}", erase.text);
    assert!(erase.text.is_empty(), "{}", erase.text);

    // Integration reads: as a customer never seen.
    let list = app.list(&key1, "jane", "").await;
    assert_eq!(list["totalResultSize"], 2, "{list}");
    for entry in list["data"].as_array().expect("data") {
        assert!(entry.get("currentProgress").is_none(), "{list}");
    }
    let filtered = app
        .list(&key1, "jane", "?currentProgressStatus=completed")
        .await;
    assert_eq!(filtered["totalResultSize"], 0, "{filtered}");
    for a in [w1, once] {
        let h = app.history(&key1, "jane", a, "").await;
        assert_eq!(
            (h["totalResultSize"].clone(), h["data"].clone()),
            (json!(0), json!([])),
            "{h}"
        );
    }
    // Management reads: the progress listing and the export.
    let p = app
        .mgmt(
            "GET",
            &format!("/v1/applications/{app1}/achievement_progress/jane"),
            None,
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    for row in p.json()["data"].as_array().expect("data") {
        assert_eq!(row["status"], "not_started", "{}", p.text);
    }
    let export = app
        .mgmt(
            "GET",
            &format!("/v1/applications/{app1}/campaigns/{c1}/achievements/{w1}/export"),
            None,
        )
        .await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert!(!export.text.contains("jane"), "{}", export.text);
    assert_eq!(export.text.lines().count(), 2, "{}", export.text);

    let metrics = app.raw("GET", "/metrics", Auth::None, None).await.text;
    assert!(metrics.contains("achv_erased_pairs_total 2"), "{metrics}");
    // jane's pair in app 2 and joe's remain.
    assert!(metrics.contains("achv_pairs 2"), "{metrics}");

    // Other customers and other applications are untouched.
    assert_eq!(app.progress(&key1, "joe", w1).await, Some(json!(1)));
    assert_eq!(app.progress(&key2, "jane", w2).await, Some(json!(4)));

    // Her event ids went with her: the same event applies anew, from
    // nothing, with a new progress tracker.
    let again = applied(&app.event(&key1, ev("jane", w1, 2, "e1")).await);
    assert_eq!(
        again["effects"][0]["effectType"],
        "startAchievementProgress"
    );
    assert_eq!(again["effects"][1]["props"]["value"], json!(2), "{again}");
    assert_ne!(
        again["effects"][0]["props"]["progressTrackerId"],
        old_tracker
    );
    let rb = app
        .integ(
            &key1,
            "POST",
            "/v1/progress_rollbacks",
            Some(json!({"integrationId": "jane", "achievementId": once, "eventId": "e2"})),
        )
        .await;
    assert_eq!(rb.json()["reason"], "unknown_event", "{}", rb.text);

    // Idempotent: again, and for a customer nobody knows.
    for path in ["/v1/customer_data/jane", "/v1/customer_data/nobody"] {
        let a = app.integ(&key1, "DELETE", path, None).await;
        assert_eq!(a.status, 204, "{}", a.text);
    }
    // The second erasure took the new progress too.
    assert_eq!(app.progress(&key1, "jane", w1).await, None);
    assert_eq!(app.progress(&key2, "jane", w2).await, Some(json!(4)));
}

#[actix_web::test]
async fn a_hot_customer_is_erased_while_events_flow() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = id_of(
        &app.achievement(
            application,
            campaign,
            json!({"name": "laps", "target": 1000,
                                                        "recurrencePolicy": "on_completion"}),
        )
        .await,
    );
    // Events in quick succession make the pair active (an actor of its own).
    for i in 0..5 {
        applied(&app.event(&key, ev("hot", a, 1, &format!("h{i}"))).await);
    }
    let erase = app
        .integ(&key, "DELETE", "/v1/customer_data/hot", None)
        .await;
    assert_eq!(erase.status, 204, "{}", erase.text);
    assert_eq!(app.progress(&key, "hot", a).await, None);
    applied(&app.event(&key, ev("hot", a, 1, "h0")).await);
    assert_eq!(app.progress(&key, "hot", a).await, Some(json!(1)));
}

#[actix_web::test]
async fn erasure_refuses_bad_requests() {
    let app = spawn_app().await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    let a = id_of(
        &app.achievement(
            application,
            campaign,
            json!({"name": "laps", "period": "1D"}),
        )
        .await,
    );
    applied(&app.event(&key, ev("kim", a, 1, "k1")).await);

    let no_key = app
        .raw("DELETE", "/v1/customer_data/kim", Auth::None, None)
        .await;
    assert_error(&no_key, 401, None);
    let management = app
        .raw("DELETE", "/v1/customer_data/kim", Auth::Management, None)
        .await;
    assert_error(&management, 401, None);
    let wrong = app
        .raw(
            "DELETE",
            "/v1/customer_data/kim",
            Auth::Integration("not-a-key"),
            None,
        )
        .await;
    assert_error(&wrong, 401, None);
    for bad in ["%20".to_string(), "x".repeat(1001)] {
        let a = app
            .integ(&key, "DELETE", &format!("/v1/customer_data/{bad}"), None)
            .await;
        assert_error(&a, 400, None);
        let source = &a.json()["errors"][0]["source"];
        assert_eq!(source["parameter"], "integrationId", "{}", a.text);
    }
    // Nothing was erased by the refused requests.
    assert_eq!(app.progress(&key, "kim", a).await, Some(json!(1)));
}

// ---------------------------------------------------------------------------
// Against the binary: kill -9, snapshots, restores.
// ---------------------------------------------------------------------------

/// The current progress of a customer (None before any), read over HTTP.
fn progress(server: &Server, setup: &Setup, customer: &str) -> Option<i64> {
    let r = server.call(
        "GET",
        &format!(
            "/v1/customer_profiles/{customer}/achievements/{}",
            setup.achievement
        ),
        Some(&api_auth(&setup.key)),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"]
        .as_array()
        .and_then(|d| d.first())
        .map(|it| it["progress"].as_i64().expect("integer progress"))
}

fn send(server: &Server, setup: &Setup, customer: &str, delta: u32, id: &str) -> Value {
    let r = server.call(
        "POST",
        "/v1/progress_events",
        Some(&api_auth(&setup.key)),
        Some(ev(customer, setup.achievement, delta, id)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "applied", "{}", r.body);
    r.json()
}

fn erase(server: &Server, setup: &Setup, customer: &str) {
    let r = server.call(
        "DELETE",
        &format!("/v1/customer_data/{customer}"),
        Some(&api_auth(&setup.key)),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
}

fn snapshot(server: &Server) {
    let r = server.mgmt("POST", "/v1/admin/snapshots", None);
    assert_eq!(r.status, 201, "{}", r.body);
}

fn export(server: &Server, setup: &Setup) -> String {
    let r = server.mgmt(
        "GET",
        &format!(
            "/v1/applications/{}/campaigns/{}/achievements/{}/export",
            setup.application, setup.campaign, setup.achievement
        ),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[test]
fn an_erasure_survives_kill_9_snapshots_and_restores() {
    let data = tempfile::tempdir().expect("temp dir");
    let logs = tempfile::tempdir().expect("temp dir");
    let extra = ["--snapshot-interval", "0"];
    let mut server = Server::start(data.path(), &logs.path().join("1.log"), &extra);
    let one = create_catalog(&server);
    let two = create_catalog(&server);
    // "gone-7f3a" lives only in application one; jane in both.
    let first = send(&server, &one, "gone-7f3a", 3, "g1");
    let old_tracker = first["effects"][0]["props"]["progressTrackerId"].clone();
    send(&server, &one, "jane", 2, "j1");
    send(&server, &two, "jane", 5, "j2");
    send(&server, &one, "keep", 7, "k1");
    // The snapshot holds them; the erasures come after it, in the log only.
    snapshot(&server);
    erase(&server, &one, "gone-7f3a");
    erase(&server, &one, "jane");
    server.kill9();

    let mut server = Server::start(data.path(), &logs.path().join("2.log"), &extra);
    let check = |server: &Server| {
        assert_eq!(progress(server, &one, "gone-7f3a"), None);
        assert_eq!(progress(server, &one, "jane"), None);
        assert_eq!(progress(server, &two, "jane"), Some(5));
        assert_eq!(progress(server, &one, "keep"), Some(7));
        let rows = export(server, &one);
        assert!(
            !rows.contains("gone-7f3a") && !rows.contains("jane"),
            "{rows}"
        );
    };
    check(&server);

    // A snapshot taken now does not hold the customer at all.
    snapshot(&server);
    let newest = *snapshot_ids(data.path()).last().expect("a snapshot");
    let bytes = std::fs::read(snapshot_path(data.path(), newest)).expect("snapshot file");
    let needle = b"gone-7f3a";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the snapshot taken after the erasure still names the customer"
    );
    // Restored from that snapshot (kill -9 again): still gone.
    server.kill9();
    let mut server = Server::start(data.path(), &logs.path().join("3.log"), &extra);
    check(&server);

    // The customer comes back from nothing, and that survives a restart too.
    let fresh = send(&server, &one, "gone-7f3a", 4, "g1");
    assert_eq!(fresh["effects"][1]["props"]["value"], json!(4), "{fresh}");
    assert_ne!(
        fresh["effects"][0]["props"]["progressTrackerId"],
        old_tracker
    );
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let server = Server::start(data.path(), &logs.path().join("4.log"), &extra);
    assert_eq!(progress(&server, &one, "gone-7f3a"), Some(4));
    assert_eq!(progress(&server, &one, "jane"), None);
    assert_eq!(progress(&server, &two, "jane"), Some(5));
}
