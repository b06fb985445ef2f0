//! The feed across `kill -9`, a snapshot and restore, and SIGTERM, against
//! the real binary: the same entries with the same ids in the same order,
//! nothing lost and nothing invented — every entry is what an acknowledged
//! answer's effects said happened.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::recovery::{api_auth, create_catalog, http, Server};

const CUSTOMERS: usize = 6;

/// Every entry of the application's feed, following `next`.
fn read_feed(server: &Server, application: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let r = server.mgmt(
            "GET",
            &format!("/v1/applications/{application}/achievement_events?limit=1000{after}"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        after = format!("&after={}", page["next"].as_str().expect("next"));
        if !page["hasMore"].as_bool().expect("hasMore") {
            return out;
        }
    }
}

/// (type, customer, tracker) → count, from answers' effects.
type Counts = BTreeMap<(String, String, u64), usize>;

fn expected(answers: &BTreeMap<String, (String, Value)>) -> Counts {
    let mut out = Counts::new();
    for (customer, answer) in answers.values() {
        for e in answer["effects"].as_array().expect("effects") {
            let tracker = e["props"]["progressTrackerId"].as_u64().expect("tracker");
            let kind = match e["effectType"].as_str().expect("type") {
                "startAchievementProgress" => "achievement.started",
                "increaseAchievementProgress" if e["props"]["isJustCompleted"] == json!(true) => {
                    "achievement.completed"
                }
                _ => continue,
            };
            *out.entry((kind.into(), customer.clone(), tracker))
                .or_default() += 1;
        }
    }
    out
}

fn told(entries: &[Value]) -> Counts {
    let mut out = Counts::new();
    for e in entries {
        let key = (
            e["type"].as_str().expect("type").to_string(),
            e["integrationId"].as_str().expect("customer").to_string(),
            e["progressTrackerId"].as_u64().expect("tracker"),
        );
        *out.entry(key).or_default() += 1;
    }
    out
}

/// Sends events `from..to` from a thread until stopped or the server dies;
/// returns the acknowledged answers by eventId.
fn send_events(
    addr: std::net::SocketAddr,
    key: String,
    achievement: u64,
    range: std::ops::Range<usize>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<BTreeMap<String, (String, Value)>> {
    thread::spawn(move || {
        let mut acked = BTreeMap::new();
        for i in range {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let customer = format!("c{}", i % CUSTOMERS);
            let id = format!("e{i}");
            let body = json!({"integrationId": customer, "achievementId": achievement,
                              "delta": 2, "eventId": id})
            .to_string();
            match http(
                addr,
                "POST",
                "/v1/progress_events",
                Some(&api_auth(&key)),
                Some(&body),
            ) {
                Ok(r) if r.status == 200 => {
                    acked.insert(id, (customer, r.json()));
                }
                _ => break,
            }
        }
        acked
    })
}

/// Sends (again) every event of `range` that has no acknowledged answer.
fn complete(
    server: &Server,
    key: &str,
    achievement: u64,
    range: std::ops::Range<usize>,
    acked: &mut BTreeMap<String, (String, Value)>,
) {
    for i in range {
        let id = format!("e{i}");
        if acked.contains_key(&id) {
            continue;
        }
        let customer = format!("c{}", i % CUSTOMERS);
        let r = server.call(
            "POST",
            "/v1/progress_events",
            Some(&api_auth(key)),
            Some(json!({"integrationId": customer, "achievementId": achievement, "delta": 2, "eventId": id})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        acked.insert(id, (customer, r.json()));
    }
}

/// What differs between two counts (for a readable failure).
fn diff(a: &Counts, b: &Counts) -> Vec<String> {
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k:?}: feed {:?}, answers {:?}", a.get(k), b.get(k)))
        .collect()
}

/// Polls the feed until it tells what the answers said (entries are stored
/// right after their changes are durable). With `in_flight`, the feed may
/// tell more: changes that became durable while their answers were cut off
/// by a kill.
fn settled(
    server: &Server,
    application: u64,
    acked: &BTreeMap<String, (String, Value)>,
    in_flight: bool,
) -> Vec<Value> {
    let want = expected(acked);
    let fits = |entries: &[Value]| {
        let got = told(entries);
        if in_flight {
            want.iter().all(|(k, n)| got.get(k) == Some(n)) && got.values().all(|n| *n == 1)
        } else {
            got == want
        }
    };
    for _ in 0..200 {
        let entries = read_feed(server, application);
        if fits(&entries) {
            return entries;
        }
        thread::sleep(Duration::from_millis(25));
    }
    let entries = read_feed(server, application);
    panic!(
        "the feed does not tell what the answers said: {:#?}",
        diff(&told(&entries), &want)
    );
}

fn assert_prefix(before: &[Value], after: &[Value], what: &str) {
    assert!(after.len() >= before.len(), "{what}: entries were lost");
    assert_eq!(
        &after[..before.len()],
        before,
        "{what}: the entries seen before changed"
    );
}

#[test]
fn the_feed_keeps_its_entries_ids_and_order_across_kill_9_snapshots_and_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let data = dir.path().join("data");
    let args = ["--snapshot-interval", "0"];
    let mut server = Server::start(&data, &log, &args);
    let setup = create_catalog(&server);
    let a = server.mgmt(
        "POST",
        &format!(
            "/v1/applications/{}/campaigns/{}/achievements",
            setup.application, setup.campaign
        ),
        Some(
            json!({"name": "stamps", "title": "Stamps", "description": "every third",
                    "target": 3, "period": "1W", "recurrencePolicy": "on_completion"}),
        ),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let stamps = a.json()["id"].as_u64().expect("id");

    // Traffic, then kill -9 in the middle of it.
    let stop = Arc::new(AtomicBool::new(false));
    let client = send_events(
        server.addr,
        setup.key.clone(),
        stamps,
        0..5_000,
        stop.clone(),
    );
    thread::sleep(Duration::from_millis(400));
    let seen_live = read_feed(&server, setup.application);
    assert!(
        !seen_live.is_empty(),
        "the feed tells entries while traffic flows"
    );
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acked = client.join().expect("client thread");
    let sent = acked.len();
    assert!(sent > 0, "events were acknowledged before the kill");

    // Restart: what was acknowledged is told, what was seen stays as it was.
    let server = Server::start(&data, &log, &args);
    let recovered = settled(&server, setup.application, &acked, true);
    assert_prefix(&seen_live, &recovered, "after kill -9");
    // Retrying the unacknowledged events by eventId completes the picture.
    complete(&server, &setup.key, stamps, 0..sent + 50, &mut acked);
    let first = settled(&server, setup.application, &acked, false);
    assert_prefix(&recovered, &first, "after the retries");
    let ids: std::collections::BTreeSet<_> = first
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), first.len(), "ids are unique");

    // A snapshot, more traffic, kill -9 again: restored from the snapshot
    // plus the log, the feed is the same and grows only by what happened.
    let s = server.mgmt("POST", "/v1/admin/snapshots", None);
    assert_eq!(s.status, 201, "{}", s.body);
    complete(
        &server,
        &setup.key,
        stamps,
        sent + 50..sent + 120,
        &mut acked,
    );
    let before_kill = settled(&server, setup.application, &acked, false);
    let mut server = server;
    server.kill9();
    let mut server = Server::start(&data, &log, &args);
    let after_kill = settled(&server, setup.application, &acked, false);
    assert_eq!(after_kill, before_kill, "after a snapshot and kill -9");
    assert_prefix(&first, &after_kill, "after a snapshot and kill -9");

    // SIGTERM (a final snapshot), restart: the same again; reading from a
    // cursor in the middle gives the same tail as before.
    assert!(server.terminate(Duration::from_secs(30)).success());
    let server = Server::start(&data, &log, &args);
    assert_eq!(
        read_feed(&server, setup.application),
        after_kill,
        "after SIGTERM and restart"
    );
    let mid = server.mgmt(
        "GET",
        &format!(
            "/v1/applications/{}/achievement_events?limit=7",
            setup.application
        ),
        None,
    );
    let next = mid.json()["next"].as_str().expect("next").to_string();
    let tail = server.mgmt(
        "GET",
        &format!(
            "/v1/applications/{}/achievement_events?limit=1000&after={next}",
            setup.application
        ),
        None,
    );
    assert_eq!(
        tail.json()["data"].as_array().expect("data")[..],
        after_kill[7..]
    );
}
