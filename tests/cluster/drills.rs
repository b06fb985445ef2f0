//! Cluster drills (SPEC §6) against the real binary: 3 `nats-server` and 3
//! engine nodes on loopback; clients send every event with an `eventId`
//! to a random node and retry it (to random nodes) until it is
//! acknowledged, while a node or a server is killed, a node stops
//! gracefully, or the whole cluster restarts. After each: every event is
//! acknowledged and counted exactly once, every node answers the same, and
//! the state equals that of a single node fed the same events.
//!
//! The drills share the machine's two cores, so they run one at a time
//! (`serial`, held across awaits on purpose: each test has its own
//! runtime, and the lock only orders the tests).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

use super::{free_port, serial, NatsCluster};

const KEY: &str = "cluster-drill-key";
/// Events per drill, customers, and concurrent clients (each client owns
/// some customers and sends their events in order, so a single node fed
/// the same per-customer order must end in the same state).
const EVENTS: usize = 480;
const CUSTOMERS: usize = 48;
const CLIENTS: usize = 8;

struct EngineNode {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

/// An engine binary: in the cluster at `urls`, or alone (`None`).
fn spawn_engine(node: &EngineNode, id: &str, urls: Option<&str>, lease_secs: u64) -> Child {
    std::fs::create_dir_all(&node.dir).expect("node dir");
    let out = File::options()
        .create(true)
        .append(true)
        .open(&node.log)
        .expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_achievements-engine"));
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{}", node.port))
        .arg("--data-dir")
        .arg(&node.dir)
        .args(["--management-key", KEY, "--workers", "2"])
        .args(["--partitions", "32", "--snapshot-interval", "2"])
        // The drills' webhook receiver listens on loopback.
        .arg("--webhook-allow-private")
        .env("RUST_LOG", "info,http=warn")
        .env("NO_COLOR", "1");
    if let Some(urls) = urls {
        cmd.args(["--cluster", urls, "--node-id", id])
            .args(["--lease-secs", &lease_secs.to_string()]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("start the engine binary")
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// 3 servers and 3 nodes; killed when dropped.
struct Drill {
    nats: NatsCluster,
    nodes: Vec<EngineNode>,
    lease_secs: u64,
    _dir: tempfile::TempDir,
}

impl Drill {
    async fn start(lease_secs: u64) -> Drill {
        let nats = NatsCluster::start(3);
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes = (1..=3)
            .map(|i| EngineNode {
                child: None,
                port: free_port(),
                dir: dir.path().join(format!("node-{i}")),
                log: dir.path().join(format!("node-{i}.log")),
            })
            .collect();
        let mut drill = Drill {
            nats,
            nodes,
            lease_secs,
            _dir: dir,
        };
        for i in 0..3 {
            drill.start_node(i);
        }
        for i in 0..3 {
            drill.wait_ready(i).await;
        }
        drill
    }

    fn start_node(&mut self, i: usize) {
        let urls = self.nats.urls();
        let child = spawn_engine(
            &self.nodes[i],
            &format!("node-{}", i + 1),
            Some(&urls),
            self.lease_secs,
        );
        self.nodes[i].child = Some(child);
    }

    async fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let client = client();
        loop {
            if let Some(status) = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("poll"))
            {
                panic!(
                    "node {} exited ({status}):\n{}",
                    i + 1,
                    log_text(&self.nodes[i].log)
                );
            }
            let url = format!("http://127.0.0.1:{}/readyz", self.nodes[i].port);
            if let Ok(r) = client.get(url).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {} not ready in 90 s:\n{}",
                i + 1,
                log_text(&self.nodes[i].log)
            );
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit (the node hands over first).
    async fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        let mut child = self.nodes[i].child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("poll") {
                return status;
            }
            assert!(Instant::now() < deadline, "node {} did not stop", i + 1);
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {}\n{}", i + 1, log_text(&n.log)))
            .collect()
    }
}

impl Drop for Drill {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        if std::thread::panicking() {
            // What the nodes said, for the failure's report.
            let keep = std::env::temp_dir().join(format!("cluster-drill-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&keep);
            for (i, n) in self.nodes.iter().enumerate() {
                let _ = std::fs::copy(&n.log, keep.join(format!("node-{}.log", i + 1)));
            }
            self.nats.keep_logs(&keep);
            eprintln!("node logs kept in {}", keep.display());
            // A CI run keeps only what was printed: each node's last
            // warnings and errors, to tell a stall's cause.
            for (i, n) in self.nodes.iter().enumerate() {
                let text = log_text(&n.log);
                let notable: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                    .collect();
                let tail = &notable[notable.len().saturating_sub(40)..];
                eprintln!("--- node {}: last warnings\n{}", i + 1, tail.join("\n"));
            }
            eprintln!("{}", self.nats.log_tails(30));
        }
    }
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

async fn call(
    client: &awc::Client,
    port: u16,
    method: &str,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let req = match method {
        "POST" => client.post(url),
        "DELETE" => client.delete(url),
        _ => client.get(url),
    }
    .insert_header(("Authorization", auth.to_string()));
    let mut resp = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp
        .body()
        .limit(8 << 20)
        .await
        .map_err(|e| e.to_string())?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

/// Retries a call on random nodes until it gets a 2xx (a 503 or a dead
/// node is retried), for up to 90 s.
async fn until_ok(
    client: &awc::Client,
    ports: &[u16],
    method: &str,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < deadline {
        let port = ports[rand::rng().random_range(0..ports.len())];
        match call(client, port, method, path, auth, body.clone()).await {
            Ok((s, v)) if (200..300).contains(&s) => return v,
            Ok((s, v)) => last = format!("{s} {v}"),
            Err(e) => last = e,
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{method} {path} did not succeed within 90 s: {last}");
}

/// The application, its key, a campaign and an achievement ("7 within a
/// year, again on completion"); returns (integration auth, achievement id).
async fn catalog(ports: &[u16]) -> (String, u64) {
    let c = client();
    let m = format!("ManagementKey-v1 {KEY}");
    let app = until_ok(
        &c,
        ports,
        "POST",
        "/v1/applications",
        &m,
        Some(json!({"name": "drill", "timezone": "UTC"})),
    )
    .await["id"]
        .as_u64()
        .expect("application id");
    let key = until_ok(
        &c,
        ports,
        "POST",
        &format!("/v1/applications/{app}/api_keys"),
        &m,
        Some(json!({"name": "drill"})),
    )
    .await["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let campaign = until_ok(
        &c,
        ports,
        "POST",
        &format!("/v1/applications/{app}/campaigns"),
        &m,
        Some(json!({"name": "drill"})),
    )
    .await["id"]
        .as_u64()
        .expect("campaign id");
    let achievement = until_ok(
        &c,
        ports,
        "POST",
        &format!("/v1/applications/{app}/campaigns/{campaign}/achievements"),
        &m,
        Some(json!({"name": "seven", "title": "Seven", "description": "",
                    "target": 7, "period": "1Y", "recurrencePolicy": "on_completion"})),
    )
    .await["id"]
        .as_u64()
        .expect("achievement id");
    (format!("ApiKey-v1 {key}"), achievement)
}

/// Event `n`: its customer, delta and id.
fn event(n: usize) -> (String, u32, String) {
    (
        format!("c{}", n % CUSTOMERS),
        (n % 5 + 1) as u32,
        format!("e{n}"),
    )
}

/// Sends every event (retrying each to random nodes until acknowledged);
/// `during` runs beside the load and is given the number of events
/// acknowledged so far. Returns each event's outcome.
async fn load<F, Fut>(
    ports: Vec<u16>,
    auth: &str,
    achievement: u64,
    during: F,
) -> BTreeMap<usize, String>
where
    F: FnOnce(Rc<std::cell::Cell<usize>>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let acked = Rc::new(std::cell::Cell::new(0usize));
    let clients = (0..CLIENTS).map(|w| {
        let (ports, acked) = (ports.clone(), acked.clone());
        async move {
            let c = client();
            let mut outcomes = Vec::new();
            // Client `w` owns the customers c ≡ w (mod CLIENTS).
            for n in (0..EVENTS).filter(|n| (n % CUSTOMERS) % CLIENTS == w) {
                let (customer, delta, id) = event(n);
                let body = json!({"integrationId": customer, "achievementId": achievement,
                                  "delta": delta, "eventId": id});
                let v = until_ok(&c, &ports, "POST", "/v1/progress_events", auth, Some(body)).await;
                outcomes.push((n, v["outcome"].as_str().unwrap_or("?").to_owned()));
                acked.set(acked.get() + 1);
            }
            outcomes
        }
    });
    let (results, ()) =
        futures_util::future::join(futures_util::future::join_all(clients), during(acked)).await;
    results.into_iter().flatten().collect()
}

async fn until_acked(acked: &std::cell::Cell<usize>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.get() < n {
        assert!(
            Instant::now() < deadline,
            "the load stalled at {}",
            acked.get()
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each customer's iterations as (status, progress), newest first, as a
/// node answers them.
async fn state(port: u16, auth: &str, achievement: u64) -> BTreeMap<String, Vec<(String, String)>> {
    let c = client();
    let mut out = BTreeMap::new();
    for i in 0..CUSTOMERS {
        let customer = format!("c{i}");
        let path = format!("/v1/customer_profiles/{customer}/achievements/{achievement}");
        let v = until_ok(&c, &[port], "GET", &path, auth, None).await;
        let its = v["data"]
            .as_array()
            .expect("iterations")
            .iter()
            .map(|it| {
                (
                    it["status"].as_str().unwrap_or("?").to_owned(),
                    it["progress"].to_string(),
                )
            })
            .collect();
        out.insert(customer, its);
    }
    out
}

/// The same events, per customer in the same order, into a single node.
#[allow(clippy::type_complexity)]
async fn single_node_state() -> (
    BTreeMap<String, Vec<(String, String)>>,
    Vec<Vec<String>>,
    Vec<(String, String, String)>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = EngineNode {
        child: None,
        port: free_port(),
        dir: dir.path().join("single"),
        log: dir.path().join("single.log"),
    };
    let mut child = spawn_engine(&node, "single", None, 0);
    let ports = [node.port];
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(
        call(&c, node.port, "GET", "/readyz", "", None).await,
        Ok((200, _))
    ) {
        assert!(
            Instant::now() < deadline,
            "single node not ready:\n{}",
            log_text(&node.log)
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (auth, achievement) = catalog(&ports).await;
    for n in 0..EVENTS {
        let (customer, delta, id) = event(n);
        let body = json!({"integrationId": customer, "achievementId": achievement,
                          "delta": delta, "eventId": id});
        until_ok(&c, &ports, "POST", "/v1/progress_events", &auth, Some(body)).await;
    }
    let s = state(node.port, &auth, achievement).await;
    let e = export(node.port, achievement).await;
    let f = stable_feed(node.port, &auth).await;
    let _ = child.kill();
    let _ = child.wait();
    (s, e, f)
}

/// The achievement's CSV export as (customer, target, progress, status)
/// rows, sorted (dates differ between runs).
async fn export(port: u16, achievement: u64) -> Vec<Vec<String>> {
    // Fresh data: application 1, campaign 3 (ids count up from 1).
    let path = format!("/v1/applications/1/campaigns/3/achievements/{achievement}/export");
    let mut resp = client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .insert_header(("Authorization", format!("ManagementKey-v1 {KEY}")))
        .send()
        .await
        .expect("export");
    assert_eq!(resp.status(), 200);
    let body = resp.body().limit(8 << 20).await.expect("body");
    let mut rows: Vec<Vec<String>> = String::from_utf8(body.to_vec())
        .expect("utf-8")
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            [0, 2, 3, 4].iter().map(|i| cells[*i].to_owned()).collect()
        })
        .collect();
    rows.sort();
    rows
}

/// The whole achievement event feed as a node serves it: (id, type,
/// customer), in feed order, read page by page.
async fn feed(port: u16, auth: &str) -> Vec<(String, String, String)> {
    let c = client();
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/v1/applications/1/achievement_events?limit=1000{after}");
        let v = until_ok(&c, &[port], "GET", &path, auth, None).await;
        for e in v["data"].as_array().expect("entries") {
            out.push((
                e["id"].as_str().expect("id").to_owned(),
                e["type"].as_str().expect("type").to_owned(),
                e["integrationId"].as_str().expect("customer").to_owned(),
            ));
        }
        if !v["hasMore"].as_bool().expect("hasMore") {
            return out;
        }
        after = format!("&after={}", v["next"].as_str().expect("next"));
    }
}

/// A node's feed once two reads a moment apart agree.
async fn stable_feed(port: u16, auth: &str) -> Vec<(String, String, String)> {
    let mut f = feed(port, auth).await;
    loop {
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        let again = feed(port, auth).await;
        if again == f {
            return f;
        }
        f = again;
    }
}

/// Each load customer's entry types, in order.
fn per_customer(feed: &[(String, String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, kind, customer) in feed.iter().filter(|(_, _, c)| c.starts_with('c')) {
        out.entry(customer.clone()).or_default().push(kind.clone());
    }
    out
}

/// Waits until a node's feed has every entry the single node's has (the
/// feed follows the answers by a moment), then returns it.
async fn settled_feed(port: u16, auth: &str, want: usize) -> Vec<(String, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let f = feed(port, auth).await;
        if f.len() >= want || Instant::now() > deadline {
            return f;
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every event acknowledged once as applied (a retry may be told
/// `duplicate`: then the first attempt was applied), every node answers
/// the same, and that is what a single node says.
async fn check(drill: &Drill, outcomes: &BTreeMap<usize, String>, auth: &str, achievement: u64) {
    assert_eq!(outcomes.len(), EVENTS, "every event acknowledged");
    assert!(
        outcomes
            .values()
            .all(|o| o == "applied" || o == "duplicate"),
        "{outcomes:?}"
    );
    let (expected, expected_export, expected_feed) = single_node_state().await;
    let mut first_feed: Option<Vec<(String, String, String)>> = None;
    assert!(
        expected_export.len() > CUSTOMERS,
        "completions make rows of their own"
    );
    for (i, node) in drill.nodes.iter().enumerate() {
        if node.child.is_none() {
            continue;
        }
        let got = state(node.port, auth, achievement).await;
        assert_eq!(
            got,
            expected,
            "node {} differs from a single node fed the same events\n{}",
            i + 1,
            drill.logs()
        );
        assert_eq!(
            export(node.port, achievement).await,
            expected_export,
            "node {}'s export differs from a single node's",
            i + 1
        );
        // Every node knows the definition has progress (the editing rule).
        let path = format!("/v1/applications/1/campaigns/3/achievements/{achievement}");
        let m = format!("ManagementKey-v1 {KEY}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while until_ok(&client(), &[node.port], "GET", &path, &m, None).await["hasProgress"] != true
        {
            assert!(
                Instant::now() < deadline,
                "node {} does not know the achievement has progress",
                i + 1
            );
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        // The feed: every entry once, each customer's in the order a single
        // node tells them, and the same ids in the same order on every node.
        let f = settled_feed(node.port, auth, expected_feed.len()).await;
        let mut ids: Vec<&String> = f.iter().map(|(id, _, _)| id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), f.len(), "node {}'s feed repeats an entry", i + 1);
        assert_eq!(
            per_customer(&f),
            per_customer(&expected_feed),
            "node {}'s feed differs from a single node's",
            i + 1
        );
        match &first_feed {
            None => first_feed = Some(f),
            Some(first) => assert_eq!(
                &f,
                first,
                "node {}'s feed differs from another node's",
                i + 1
            ),
        }
    }
}

/// Which node holds which partitions, as `GET /v1/admin/cluster` says.
async fn ownership(port: u16) -> BTreeMap<String, Vec<u64>> {
    let c = client();
    let m = format!("ManagementKey-v1 {KEY}");
    let v = until_ok(&c, &[port], "GET", "/v1/admin/cluster", &m, None).await;
    v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["nodeId"].as_str().expect("id").to_owned(),
                n["partitions"]
                    .as_array()
                    .expect("partitions")
                    .iter()
                    .filter_map(Value::as_u64)
                    .collect(),
            )
        })
        .collect()
}

/// Waits until exactly `nodes` are live and hold all 32 partitions
/// between them; returns how long that took.
async fn wait_owned_by(port: u16, nodes: &[&str]) -> Duration {
    let began = Instant::now();
    loop {
        let o = ownership(port).await;
        let names: Vec<&str> = o.keys().map(String::as_str).collect();
        let held: usize = o.values().map(Vec::len).sum();
        if names == nodes && held == 32 && o.values().all(|p| !p.is_empty()) {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(90),
            "ownership did not settle on {nodes:?}: {o:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A counter of a node's `/metrics`.
async fn metric(port: u16, name: &str) -> f64 {
    let mut resp = client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = String::from_utf8(resp.body().await.expect("body").to_vec()).expect("utf-8");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn kill_9_of_an_engine_node_moves_its_partitions_and_loses_nothing() {
    let _one = serial();
    let mut drill = Drill::start(2).await;
    let ports = drill.ports();
    let (auth, achievement) = catalog(&ports).await;
    let victim = 2;
    let drill_ref = &mut drill;
    let survivor = drill_ref.nodes[0].port;
    wait_owned_by(survivor, &["node-1", "node-2", "node-3"]).await;
    let outcomes = load(ports, &auth, achievement, |acked| async move {
        until_acked(&acked, EVENTS / 4).await;
        let before = metric(survivor, "achv_cluster_takeovers_total").await;
        drill_ref.kill9(victim);
        // Its partitions wait for their leases (2 s) and move.
        let moved = wait_owned_by(survivor, &["node-1", "node-2"]).await;
        eprintln!("kill -9 of a node: its partitions served elsewhere after {moved:?}");
        assert!(metric(survivor, "achv_cluster_takeovers_total").await > before);
        until_acked(&acked, EVENTS / 2).await;
        drill_ref.start_node(victim);
        drill_ref.wait_ready(victim).await;
        wait_owned_by(survivor, &["node-1", "node-2", "node-3"]).await;
    })
    .await;
    check(&drill, &outcomes, &auth, achievement).await;
}

#[actix_web::test]
async fn kill_9_of_a_jetstream_server_loses_nothing() {
    let _one = serial();
    let mut drill = Drill::start(2).await;
    let ports = drill.ports();
    let (auth, achievement) = catalog(&ports).await;
    let drill_ref = &mut drill;
    let outcomes = load(ports, &auth, achievement, |acked| async move {
        until_acked(&acked, EVENTS / 4).await;
        drill_ref.nats.wait_healthy(Duration::from_secs(60)).await;
        drill_ref.nats.kill9(1);
        until_acked(&acked, EVENTS * 3 / 4).await;
        drill_ref.nats.restart(1);
    })
    .await;
    check(&drill, &outcomes, &auth, achievement).await;
}

/// The partitions a node serves, summed over the nodes that answer.
async fn serving(ports: &[u16]) -> f64 {
    let mut sum = 0.0;
    for port in ports {
        sum += metric(*port, "achv_cluster_serving_partitions").await;
    }
    sum
}

/// With two of three servers gone no lease can be renewed: every node
/// stops serving within the lease (reads then fail rather than answer
/// from state another owner may have moved past), and everything is
/// served again, unchanged, once the servers are back.
#[actix_web::test]
async fn losing_the_jetstream_quorum_stops_serving_within_the_lease() {
    let _one = serial();
    let mut drill = Drill::start(2).await;
    let ports = drill.ports();
    let (auth, achievement) = catalog(&ports).await;
    wait_owned_by(ports[0], &["node-1", "node-2", "node-3"]).await;
    let c = client();
    for n in 0..CUSTOMERS {
        let (customer, delta, id) = event(n);
        let body = json!({"integrationId": customer, "achievementId": achievement,
                          "delta": delta, "eventId": id});
        until_ok(&c, &ports, "POST", "/v1/progress_events", &auth, Some(body)).await;
    }
    let before = state(ports[0], &auth, achievement).await;
    assert_eq!(serving(&ports).await, 32.0);
    drill.nats.kill9(1);
    drill.nats.kill9(2);
    let began = Instant::now();
    while serving(&ports).await > 0.0 {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "nodes still serve {} partitions {:?} after the quorum was lost\n{}",
            serving(&ports).await,
            began.elapsed(),
            drill.logs()
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "quorum lost: every node stopped serving after {:?}",
        began.elapsed()
    );
    let path = format!("/v1/customer_profiles/c1/achievements/{achievement}");
    for port in &ports {
        let (status, body) = call(&c, *port, "GET", &path, &auth, None)
            .await
            .expect("a node answers");
        assert_eq!(status, 503, "a read without a serving owner: {body}");
    }
    drill.nats.restart(1);
    drill.nats.restart(2);
    wait_owned_by(ports[0], &["node-1", "node-2", "node-3"]).await;
    for port in &ports {
        assert_eq!(state(*port, &auth, achievement).await, before);
    }
}

#[actix_web::test]
async fn a_graceful_stop_hands_partitions_over_without_waiting_for_the_lease() {
    let _one = serial();
    // Leases of 60 s: a node lost without a hand-over would stall its
    // partitions for a minute.
    let mut drill = Drill::start(60).await;
    let ports = drill.ports();
    let (auth, achievement) = catalog(&ports).await;
    let survivor = drill.nodes[0].port;
    wait_owned_by(survivor, &["node-1", "node-2", "node-3"]).await;
    let drill_ref = &mut drill;
    let outcomes = load(ports, &auth, achievement, |acked| async move {
        until_acked(&acked, EVENTS / 3).await;
        let began = Instant::now();
        let status = drill_ref.terminate(1).await;
        assert!(status.success(), "a graceful stop exits 0: {status}");
        let moved = began.elapsed() + wait_owned_by(survivor, &["node-1", "node-3"]).await;
        eprintln!("graceful stop: partitions served elsewhere after {moved:?}");
        assert!(
            moved < Duration::from_secs(20),
            "hand-over took {moved:?}, as long as waiting for the leases"
        );
    })
    .await;
    check(&drill, &outcomes, &auth, achievement).await;
}

#[actix_web::test]
async fn a_full_cluster_restart_keeps_everything() {
    let _one = serial();
    let mut drill = Drill::start(2).await;
    let ports = drill.ports();
    let (auth, achievement) = catalog(&ports).await;
    let outcomes = load(ports.clone(), &auth, achievement, |_| async {}).await;
    let before = state(ports[0], &auth, achievement).await;
    // An achievement only one customer (so one owner) has progress in:
    // every node must know it has progress, also after the restart.
    let m = format!("ManagementKey-v1 {KEY}");
    let c = client();
    let solo = until_ok(
        &c,
        &ports,
        "POST",
        "/v1/applications/1/campaigns/3/achievements",
        &m,
        Some(json!({"name": "solo", "title": "Solo", "description": "", "target": 3, "period": "1Y"})),
    )
    .await["id"]
        .as_u64()
        .expect("id");
    let body =
        json!({"integrationId": "solo-1", "achievementId": solo, "delta": 1, "eventId": "s1"});
    until_ok(&c, &ports, "POST", "/v1/progress_events", &auth, Some(body)).await;
    let solo_path = format!("/v1/applications/1/campaigns/3/achievements/{solo}");
    for port in &ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        while until_ok(&c, &[*port], "GET", &solo_path, &m, None).await["hasProgress"] != true {
            assert!(
                Instant::now() < deadline,
                "a node does not know `solo` has progress"
            );
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Everything at once, with no chance to hand over or flush.
    for i in 0..3 {
        drill.kill9(i);
    }
    for i in 0..3 {
        drill.nats.kill9(i);
    }
    for i in 0..3 {
        drill.nats.restart(i);
    }
    for i in 0..3 {
        drill.start_node(i);
    }
    for i in 0..3 {
        drill.wait_ready(i).await;
    }
    assert_eq!(state(ports[2], &auth, achievement).await, before);
    for port in &ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        while until_ok(&c, &[*port], "GET", &solo_path, &m, None).await["hasProgress"] != true {
            assert!(
                Instant::now() < deadline,
                "after the restart a node forgot `solo` has progress"
            );
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Retried after the restart, every event is remembered: a duplicate.
    for n in (0..EVENTS).step_by(37) {
        let (customer, delta, id) = event(n);
        let body = json!({"integrationId": customer, "achievementId": achievement,
                          "delta": delta, "eventId": id});
        let v = until_ok(&c, &ports, "POST", "/v1/progress_events", &auth, Some(body)).await;
        assert_eq!(v["outcome"], "duplicate", "event {n} counted again: {v}");
    }
    check(&drill, &outcomes, &auth, achievement).await;
}

/// A webhook receiver on loopback: the `webhook-id` of every POST, in the
/// order received (200 to each).
async fn receiver() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    actix_web::dev::ServerHandle,
) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let got: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let seen = got.clone();
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        App::new().route(
            "/hooks",
            web::post().to(move |req: HttpRequest| {
                let seen = seen.clone();
                async move {
                    if let Some(id) = req
                        .headers()
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                    {
                        seen.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(id.to_owned());
                    }
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind the receiver");
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (port, got, handle)
}

#[actix_web::test]
async fn webhooks_are_shared_by_every_node_and_delivery_survives_its_node() {
    let _one = serial();
    let mut drill = Drill::start(2).await;
    let ports = drill.ports();
    let (auth, achievement) = catalog(&ports).await;
    let (rport, got, server) = receiver().await;
    let m = format!("ManagementKey-v1 {KEY}");
    let c = client();
    let hook = until_ok(
        &c,
        &ports[..1],
        "POST",
        "/v1/applications/1/webhooks",
        &m,
        Some(json!({"url": format!("http://127.0.0.1:{rport}/hooks"), "types": ["achievement.completed"]})),
    )
    .await["id"]
        .as_u64()
        .expect("webhook id");
    // Every node lists it.
    for port in &ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = until_ok(&c, &[*port], "GET", "/v1/applications/1/webhooks", &m, None).await;
            if list["data"]
                .as_array()
                .is_some_and(|l| l.iter().any(|h| h["id"] == hook))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node on {port} does not list the webhook: {list}"
            );
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Kill the delivering node (the owner of partition 0) under load.
    let owners = ownership(ports[0]).await;
    let deliverer = owners
        .iter()
        .find(|(_, ps)| ps.contains(&0))
        .map(|(id, _)| id.clone())
        .expect("partition 0 has an owner");
    let victim: usize = deliverer
        .trim_start_matches("node-")
        .parse::<usize>()
        .expect("node-N")
        - 1;
    let survivor = ports[(victim + 1) % 3];
    let drill_ref = &mut drill;
    let outcomes = load(ports.clone(), &auth, achievement, |acked| async move {
        until_acked(&acked, EVENTS / 3).await;
        drill_ref.kill9(victim);
        until_acked(&acked, EVENTS * 2 / 3).await;
        drill_ref.start_node(victim);
        drill_ref.wait_ready(victim).await;
    })
    .await;
    assert_eq!(outcomes.len(), EVENTS);
    // Every completion in the feed reaches the receiver (at least once),
    // first deliveries in feed order.
    let completed: Vec<String> = stable_feed(survivor, &auth)
        .await
        .into_iter()
        .filter(|(_, t, _)| t == "achievement.completed")
        .map(|(id, _, _)| id)
        .collect();
    assert!(!completed.is_empty());
    let deadline = Instant::now() + Duration::from_secs(60);
    let firsts = loop {
        let all = got.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut firsts: Vec<String> = Vec::new();
        for id in all {
            if !firsts.contains(&id) {
                firsts.push(id);
            }
        }
        if firsts.len() >= completed.len() || Instant::now() > deadline {
            break firsts;
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        firsts, completed,
        "the receiver got other entries, or out of feed order"
    );
    // Any node lists the attempts.
    let path = format!("/v1/applications/1/webhooks/{hook}/deliveries");
    for port in &ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        while until_ok(&c, &[*port], "GET", &path, &m, None).await["data"]
            .as_array()
            .is_none_or(|l| l.is_empty())
        {
            assert!(
                Instant::now() < deadline,
                "node on {port} lists no attempts"
            );
            actix_rt::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Erasing a customer through one node removes it everywhere: its
    // progress on every node, and its entries from every node's feed.
    let erase = c
        .delete(format!("http://127.0.0.1:{}/v1/customer_data/c1", ports[1]))
        .insert_header(("Authorization", auth.clone()))
        .send()
        .await
        .expect("erase");
    assert_eq!(erase.status(), 204);
    for port in &ports {
        let path = format!("/v1/customer_profiles/c1/achievements/{achievement}");
        let v = until_ok(&c, &[*port], "GET", &path, &auth, None).await;
        assert_eq!(v["totalResultSize"], 0, "node on {port} still has c1: {v}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while feed(*port, &auth)
            .await
            .iter()
            .any(|(_, _, who)| who == "c1")
        {
            assert!(
                Instant::now() < deadline,
                "node on {port} still tells c1's entries"
            );
            actix_rt::time::sleep(Duration::from_millis(200)).await;
        }
    }
    server.stop(false).await;
}
