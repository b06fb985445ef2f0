//! Cluster mode's parts on a real NATS JetStream: `nats-server` processes on
//! loopback (installed by `scripts/nats-server.sh` into the project's venv,
//! pinned). A test binary of its own, so that `cargo test` runs it after
//! the HTTP suite rather than beside its timing-sensitive drills.
//!
//! The log: records append in order per partition, a retried message id is
//! stored once, and losing a server loses nothing (3 servers, replicas 3).
//! Leases, snapshots, takeover and the catalog: below.
#![allow(clippy::await_holding_lock)] // `serial`: held across awaits on purpose

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use achievements_engine::cluster::{
    JetStreamLog, Leases, Nodes, Refused, SnapshotStore, StreamLayout,
};
use achievements_engine::engine::log::{PartitionId, Position};
use bytes::Bytes;

/// One test at a time: each starts its own JetStream servers (and the
/// drills three engines), and on two cores parallel ones would slow each
/// other's leader elections past their deadlines. Held across awaits on
/// purpose (each test has its own runtime; the lock only orders them).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pinned `nats-server`, installed on first use (once per test run).
fn nats_server() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(install_nats_server).clone()
}

fn install_nats_server() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nats-server.sh");
    let out = Command::new("bash")
        .arg(script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/nats-server.sh");
    assert!(out.status.success(), "scripts/nats-server.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
}

/// A port free now and never handed out before in this process: tests
/// start servers in parallel, and the system may give a port just released
/// to the next caller, which once made one server's client port another's
/// cluster port.
fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind an ephemeral port")
            .local_addr()
            .expect("local address")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// A JetStream cluster of `nats-server` processes on loopback; killed when
/// dropped.
pub struct NatsCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    ports: Vec<(u16, u16)>,
    procs: Vec<Option<Child>>,
}

impl NatsCluster {
    pub fn start(n: usize) -> NatsCluster {
        let bin = nats_server();
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut cluster = NatsCluster {
            bin,
            dir,
            ports,
            procs: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            cluster.start_server(i);
        }
        cluster
    }

    fn start_server(&mut self, i: usize) {
        let (port, cport) = self.ports[i];
        let routes: Vec<String> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (_, c))| format!("nats://127.0.0.1:{c}"))
            .collect();
        let store = self.dir.path().join(format!("n{i}"));
        // Appended to: a restarted server's log follows its first life's.
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{i}.log")))
            .expect("log file");
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-n",
            &format!("n{i}"),
        ])
        .args(["-js", "-sd", store.to_str().expect("utf-8 path")]);
        // One server is a JetStream of its own; more form a cluster.
        if !routes.is_empty() {
            cmd.args([
                "--cluster_name",
                "achv",
                "--cluster",
                &format!("nats://127.0.0.1:{cport}"),
            ])
            .args(["--routes", &routes.join(",")]);
        }
        let child = cmd
            .stdout(Stdio::from(log.try_clone().expect("clone")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start nats-server");
        self.procs[i] = Some(child);
    }

    /// Every server's client URL, comma-separated.
    pub fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|(p, _)| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `kill -9` one server.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Each server's last `lines` log lines that are warnings or errors
    /// (`[WRN]`, `[ERR]`), for a failed drill's report.
    pub fn log_tails(&self, lines: usize) -> String {
        (0..self.procs.len())
            .map(|i| {
                let path = self.dir.path().join(format!("n{i}.log"));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let notable: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains("[WRN]") || l.contains("[ERR]"))
                    .collect();
                let tail = &notable[notable.len().saturating_sub(lines)..];
                format!("--- nats-server n{i}: last warnings\n{}\n", tail.join("\n"))
            })
            .collect()
    }

    /// Copies every server's log into `to` (a failed drill's report).
    pub fn keep_logs(&self, to: &Path) {
        for i in 0..self.procs.len() {
            let name = format!("n{i}.log");
            let _ = std::fs::copy(self.dir.path().join(&name), to.join(format!("nats-{name}")));
        }
    }

    /// Waits until every stream has a leader and all its replicas are
    /// current, for up to `limit`. A cluster that is still forming (on two
    /// busy cores it has taken 20 s) and then loses a server must finish
    /// forming one server short, which is not what a drill that kills a
    /// server of a working cluster means to measure.
    pub async fn wait_healthy(&self, limit: Duration) {
        use futures_util::StreamExt;
        let began = Instant::now();
        let deadline = began + limit;
        let addrs: Vec<async_nats::ServerAddr> = self
            .ports
            .iter()
            .map(|(p, _)| format!("nats://127.0.0.1:{p}").parse().expect("a URL"))
            .collect();
        let client = async_nats::connect(addrs).await.expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        let mut last = String::from("no stream listed");
        loop {
            let mut streams = js.streams();
            let mut healthy = 0;
            let mut all = true;
            while let Some(info) = streams.next().await {
                let ok = match &info {
                    Ok(info) => info.cluster.as_ref().is_some_and(|c| {
                        c.leader.is_some() && c.replicas.iter().all(|p| p.current && !p.offline)
                    }),
                    Err(_) => false,
                };
                if ok {
                    healthy += 1;
                } else {
                    all = false;
                    last = match info {
                        Ok(info) => format!("{}: {:?}", info.config.name, info.cluster),
                        Err(e) => e.to_string(),
                    };
                }
            }
            if all && healthy > 0 {
                eprintln!(
                    "JetStream healthy ({healthy} streams) after {:?}",
                    began.elapsed()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the JetStream cluster was not healthy within {limit:?}: {last}"
            );
            actix_rt::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.start_server(i);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill9(i);
        }
    }
}

/// Connects once the cluster has a JetStream leader (retrying up to 30 s).
async fn connect(urls: &str, layout: StreamLayout) -> JetStreamLog {
    connect_with(urls, layout, 3).await
}

async fn connect_with(urls: &str, layout: StreamLayout, replicas: usize) -> JetStreamLog {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match JetStreamLog::connect(urls, layout, replicas).await {
            Ok(log) => return log,
            Err(_) if Instant::now() < deadline => {
                actix_rt::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the JetStream cluster did not come up: {e}"),
        }
    }
}

/// Appends, retrying while the cluster elects a new leader (a client
/// retries the same way; the message id keeps it one record).
async fn append(log: &JetStreamLog, p: u32, id: &str, body: &str) -> (Position, bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match log
            .append(PartitionId(p), id, Bytes::from(body.to_string()))
            .await
        {
            Ok(a) => return (a.position, a.duplicate),
            Err(_) if Instant::now() < deadline => {
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("append did not succeed within 30 s: {e}"),
        }
    }
}

/// A partition's records, retrying while the cluster elects a leader.
async fn bodies(log: &JetStreamLog, p: u32, from: u64) -> Vec<(u64, String)> {
    // After a server's kill or restart the JetStream API waits for a meta
    // leader; on a loaded 2-core machine that has taken over 30 s.
    let deadline = Instant::now() + Duration::from_secs(90);
    let records = loop {
        match log.read(PartitionId(p), Position(from), 10_000).await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => {
                actix_rt::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("read did not succeed within 90 s: {e}"),
        }
    };
    records
        .into_iter()
        .map(|(pos, b)| (pos.0, String::from_utf8(b.to_vec()).expect("utf-8")))
        .collect()
}

#[actix_web::test]
async fn records_append_in_order_a_retried_id_is_stored_once_and_a_lost_server_loses_nothing() {
    let _one = crate::serial();
    let mut cluster = NatsCluster::start(3);
    let urls = cluster.urls();
    // 4 partitions over 4 streams would give each its own: 20 partitions
    // put 2 (0 and 16) in one stream, as a real layout does.
    let layout = StreamLayout::new(20);
    let log = connect(&urls, layout).await;

    let mut positions = Vec::new();
    for i in 0..10 {
        let p = if i % 2 == 0 { 0 } else { 16 };
        let (pos, dup) = append(&log, p, &format!("r{i}"), &format!("record {i}")).await;
        assert!(!dup);
        positions.push((p, pos.0));
    }
    // One stream holds both partitions: positions increase across them.
    assert!(
        positions.windows(2).all(|w| w[0].1 < w[1].1),
        "{positions:?}"
    );
    let zero = bodies(&log, 0, 0).await;
    assert_eq!(
        zero.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>(),
        ["record 0", "record 2", "record 4", "record 6", "record 8"]
    );
    let sixteen = bodies(&log, 16, 0).await;
    assert_eq!(sixteen.len(), 5);
    assert!(sixteen
        .iter()
        .all(|(pos, _)| positions.contains(&(16, *pos))));
    // Reading from a position gives what is at or after it.
    assert_eq!(bodies(&log, 0, zero[2].0).await, zero[2..]);

    // The same message id again (a retried request): stored once.
    let (again, dup) = append(&log, 0, "r4", "record 4, retried").await;
    assert!(dup);
    assert_eq!(
        again.0, zero[2].0,
        "a duplicate answers the first record's position"
    );
    assert_eq!(bodies(&log, 0, 0).await, zero);

    // kill -9 a server: appends go on (the streams have 3 replicas), and
    // everything acknowledged is still there, also once it is back.
    cluster.kill9(0);
    for i in 10..20 {
        append(&log, 0, &format!("r{i}"), &format!("record {i}")).await;
    }
    let after = bodies(&log, 0, 0).await;
    assert_eq!(after.len(), 15);
    assert_eq!(after[..5], zero[..]);
    cluster.restart(0);
    let log2 = connect(&urls, layout).await;
    assert_eq!(bodies(&log2, 0, 0).await, after);

    // The catalog has its own stream.
    let c = log2
        .append_catalog("c1", Bytes::from_static(b"catalog 1"))
        .await
        .expect("catalog append");
    // Right after a server's restart a stream may still be electing its
    // leader: the read is retried until the stream answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let catalog = loop {
        match log2.read_catalog(Position(0), 10).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                actix_rt::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("catalog read did not succeed within 30 s: {e}"),
        }
    };
    assert_eq!(
        catalog,
        vec![(c.position, Bytes::from_static(b"catalog 1"))]
    );
}

#[actix_web::test]
async fn a_lease_has_one_holder_is_renewed_by_revision_fences_a_lost_holder_and_expires() {
    let _one = crate::serial();
    let cluster = NatsCluster::start(1);
    let log = connect_with(&cluster.urls(), StreamLayout::new(4), 1).await;
    let ttl = Duration::from_secs(2);
    let leases = Leases::open(log.jetstream(), ttl, 1).await.expect("leases");
    let p = PartitionId(3);

    let a = leases
        .acquire(p, "node-a")
        .await
        .expect("acquire")
        .expect("free: a takes it");
    assert_eq!(
        leases.acquire(p, "node-b").await.expect("acquire"),
        None,
        "held by a"
    );
    assert_eq!(leases.holder(p).await.expect("holder"), Some(a.clone()));
    // a restarting asks again and keeps it.
    let a = leases
        .acquire(p, "node-a")
        .await
        .expect("acquire")
        .expect("a holds it already");
    let renewed = leases
        .renew(&a)
        .await
        .expect("renew")
        .expect("a still holds it");
    assert!(renewed.revision > a.revision);
    // The old revision no longer proves anything.
    assert_eq!(leases.renew(&a).await.expect("renew"), None);

    // a stops renewing: after the lease time b takes over, and a is fenced.
    let deadline = Instant::now() + Duration::from_secs(15);
    let b = loop {
        if let Some(b) = leases.acquire(p, "node-b").await.expect("acquire") {
            break b;
        }
        assert!(Instant::now() < deadline, "the lease did not expire");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(b.revision > renewed.revision);
    assert_eq!(
        leases.renew(&renewed).await.expect("renew"),
        None,
        "a lost it"
    );
    assert!(
        !leases.release(&renewed).await.expect("release"),
        "a cannot release b's lease"
    );

    // A graceful hand-over: b releases, c takes it at once.
    assert!(leases.release(&b).await.expect("release"));
    let c = leases
        .acquire(p, "node-c")
        .await
        .expect("acquire")
        .expect("released: c takes it");
    assert_eq!(c.node, "node-c");

    // Live nodes: heartbeats, a leave, and an expiry.
    let nodes = Nodes::open(log.jetstream(), ttl, 1).await.expect("nodes");
    nodes
        .heartbeat("node-a", "127.0.0.1:1")
        .await
        .expect("heartbeat");
    nodes
        .heartbeat("node-b", "127.0.0.1:2")
        .await
        .expect("heartbeat");
    nodes
        .heartbeat("node-c", "127.0.0.1:3")
        .await
        .expect("heartbeat");
    let names = |l: Vec<achievements_engine::cluster::LiveNode>| {
        l.into_iter().map(|n| n.id).collect::<Vec<_>>()
    };
    assert_eq!(
        names(nodes.live().await.expect("live")),
        ["node-a", "node-b", "node-c"]
    );
    nodes.leave("node-c").await.expect("leave");
    assert_eq!(
        names(nodes.live().await.expect("live")),
        ["node-a", "node-b"]
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        nodes
            .heartbeat("node-b", "127.0.0.1:2")
            .await
            .expect("heartbeat");
        if names(nodes.live().await.expect("live")) == ["node-b"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node-a's heartbeat did not expire"
        );
        actix_rt::time::sleep(Duration::from_millis(300)).await;
    }
}

#[actix_web::test]
async fn a_snapshot_is_committed_only_by_the_lease_holder_and_never_backwards() {
    let _one = crate::serial();
    let cluster = NatsCluster::start(1);
    let log = connect_with(&cluster.urls(), StreamLayout::new(4), 1).await;
    let leases = Leases::open(log.jetstream(), Duration::from_secs(30), 1)
        .await
        .expect("leases");
    let store = SnapshotStore::open(log.jetstream(), 1)
        .await
        .expect("snapshots");
    let p = PartitionId(2);
    assert_eq!(store.latest(p).await.expect("latest"), None);

    let a = leases
        .acquire(p, "node-a")
        .await
        .expect("acquire")
        .expect("free");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let head = store
        .commit(&leases, &a, Position(10), &big)
        .await
        .expect("commit")
        .expect("a holds it");
    assert_eq!(head.position, Position(10));
    assert_eq!(
        store.latest(p).await.expect("latest"),
        Some((Position(10), big.clone()))
    );
    // Never backwards.
    assert_eq!(
        store
            .commit(&leases, &a, Position(5), b"older")
            .await
            .expect("commit"),
        Err(Refused::Older)
    );
    // A renewed lease commits; the one it replaced is fenced.
    let a2 = leases.renew(&a).await.expect("renew").expect("still a's");
    assert_eq!(
        store
            .commit(&leases, &a, Position(12), b"stale lease")
            .await
            .expect("commit"),
        Err(Refused::LeaseLost)
    );
    store
        .commit(&leases, &a2, Position(12), b"at 12")
        .await
        .expect("commit")
        .expect("current lease");
    // Hand-over: a releases, b takes over and commits; a (a zombie now)
    // cannot replace b's snapshot.
    assert!(leases.release(&a2).await.expect("release"));
    let b = leases
        .acquire(p, "node-b")
        .await
        .expect("acquire")
        .expect("free");
    store
        .commit(&leases, &b, Position(20), b"b at 20")
        .await
        .expect("commit")
        .expect("b holds it");
    assert_eq!(
        store
            .commit(&leases, &a2, Position(30), b"zombie")
            .await
            .expect("commit"),
        Err(Refused::LeaseLost)
    );
    assert_eq!(
        store.latest(p).await.expect("latest"),
        Some((Position(20), b"b at 20".to_vec()))
    );
    // Other partitions are untouched.
    assert_eq!(store.latest(PartitionId(3)).await.expect("latest"), None);
}

mod drills;
mod expiry;

mod takeover {
    use std::sync::Arc;

    use achievements_engine::cluster::{
        snapshot_partition, take_over, JetStreamLog, Leases, SnapshotStore, StreamLayout,
    };
    use achievements_engine::domain::catalog::CampaignPatch;
    use achievements_engine::domain::{
        AchievementDraft, ApplicationId, CustomerId, EventId, Increase, ProgressStatus,
        RecurrencePolicy,
    };
    use achievements_engine::engine::log::{ChangeOpRef, PairChangeRef, PartitionId, RecordRef};
    use achievements_engine::engine::{AchievementEntry, Catalog, Engine, EngineConfig};
    use achievements_engine::persist::model::encode_partition_record;
    use bytes::Bytes;
    use chrono::{DateTime, Duration, Utc};

    use super::{connect_with, NatsCluster};

    /// An engine with the catalog every node follows (created the same way,
    /// so with the same ids).
    async fn node() -> (Engine, ApplicationId, Arc<AchievementEntry>) {
        let engine = Engine::start(
            EngineConfig {
                partitions: 16,
                shards: 2,
                arbiters: 2,
                ..EngineConfig::default()
            },
            Catalog::default(),
        );
        let app = engine
            .create_application("shop".into(), chrono_tz::UTC, String::new())
            .await
            .expect("application");
        let campaign = engine
            .create_campaign(
                app.id,
                CampaignPatch {
                    name: Some("c".into()),
                    ..CampaignPatch::default()
                },
            )
            .await
            .expect("campaign");
        let entry = engine
            .create_achievement(
                app.id,
                campaign.id,
                AchievementDraft {
                    name: "three".into(),
                    title: "Three".into(),
                    target: 3.into(),
                    recurrence_policy: RecurrencePolicy::OnCompletion,
                    ..AchievementDraft::default()
                },
            )
            .await
            .expect("achievement");
        (engine, app.id, entry)
    }

    /// Appends event `i` (delta 2) of `customer` to partition `p`'s log, as
    /// an accepting node would.
    async fn append_event(
        log: &JetStreamLog,
        p: PartitionId,
        entry: &AchievementEntry,
        customer: &CustomerId,
        pair_number: u64,
        i: u32,
    ) {
        let t0: DateTime<Utc> = "2026-03-01T10:00:00Z".parse().expect("instant");
        let inc = Increase {
            delta: 2.into(),
            at: None,
            event_id: Some(EventId::parse(&format!("e{i}"), "/eventId").expect("valid")),
        };
        let change = PairChangeRef {
            achievement: entry.achievement.id,
            customer,
            pair_number,
            now: t0 + Duration::seconds(i64::from(i)),
            campaign_running: true,
            op: ChangeOpRef::Increase(&inc),
        };
        let bytes = encode_partition_record(p, &RecordRef::Pair(change)).expect("encodes");
        log.append(p, &format!("e{i}"), Bytes::from(bytes))
            .await
            .expect("append");
    }

    /// (tracker id, status, progress) of each iteration, newest first.
    async fn state(
        engine: &Engine,
        app: ApplicationId,
        entry: &Arc<AchievementEntry>,
        customers: &[CustomerId],
    ) -> Vec<Vec<(u64, ProgressStatus, String)>> {
        let mut out = Vec::new();
        for c in customers {
            let lists = engine
                .customer_progress(app, c, std::slice::from_ref(entry))
                .await
                .expect("read");
            out.push(
                lists[0]
                    .iter()
                    .map(|it| (it.id.0, it.status, it.progress.to_string()))
                    .collect(),
            );
        }
        out
    }

    #[actix_web::test]
    async fn a_partition_is_taken_over_from_its_snapshot_and_the_rest_of_its_log() {
        let _one = crate::serial();
        let cluster = NatsCluster::start(1);
        let log = connect_with(&cluster.urls(), StreamLayout::new(16), 1).await;
        let leases = Leases::open(log.jetstream(), std::time::Duration::from_secs(30), 1)
            .await
            .expect("leases");
        let store = SnapshotStore::open(log.jetstream(), 1)
            .await
            .expect("snapshots");
        let (a, app, entry) = node().await;
        let (b, _, entry_b) = node().await;
        assert_eq!(entry.achievement.id, entry_b.achievement.id);

        // Three customers of one partition.
        let all: Vec<CustomerId> = (0..200)
            .map(|i| CustomerId::parse(&format!("c{i}"), "/c").expect("valid"))
            .collect();
        let p = a.partition_of(app, &all[0]);
        let customers: Vec<CustomerId> = all
            .into_iter()
            .filter(|c| a.partition_of(app, c) == p)
            .take(3)
            .collect();
        assert_eq!(customers.len(), 3);

        // 12 events (4 per customer, delta 2, target 3 on completion).
        for i in 0..12u32 {
            let c = (i % 3) as usize;
            append_event(&log, p, &entry, &customers[c], c as u64 + 1, i).await;
        }
        // Node a takes the partition over: nothing snapshotted yet, the
        // whole log is replayed.
        let next = take_over(&a, &log, &store, p).await.expect("takeover");
        let first = state(&a, app, &entry, &customers).await;
        // 8 each: two completed iterations and a third at 2.
        for (c, iterations) in first.iter().enumerate() {
            let base = (c as u64 + 1) << 24;
            assert_eq!(
                iterations,
                &vec![
                    (base + 2, ProgressStatus::InProgress, "2".to_string()),
                    (base + 1, ProgressStatus::Completed, "3".to_string()),
                    (base, ProgressStatus::Completed, "3".to_string()),
                ]
            );
        }

        // a snapshots the partition under its lease; more events follow.
        let lease = leases
            .acquire(p, "node-a")
            .await
            .expect("acquire")
            .expect("free");
        let blob = snapshot_partition(&a, p).await.expect("snapshot");
        store
            .commit(&leases, &lease, next, &blob)
            .await
            .expect("commit")
            .expect("a holds it");
        for i in 12..18u32 {
            let c = (i % 3) as usize;
            append_event(&log, p, &entry, &customers[c], c as u64 + 1, i).await;
        }
        // a hands over; b loads the snapshot and replays only what followed.
        assert!(leases.release(&lease).await.expect("release"));
        leases
            .acquire(p, "node-b")
            .await
            .expect("acquire")
            .expect("released");
        let next_b = take_over(&b, &log, &store, p).await.expect("takeover");
        assert!(next_b > next);
        let after = state(&b, app, &entry, &customers).await;
        // 12 each: four completed iterations, none open (exactly at target).
        for (c, iterations) in after.iter().enumerate() {
            let base = (c as u64 + 1) << 24;
            let want: Vec<_> = (0..4u64)
                .rev()
                .map(|k| (base + k, ProgressStatus::Completed, "3".to_string()))
                .collect();
            assert_eq!(iterations, &want, "customer {c}");
        }
        // a, following the log from its own snapshot, ends the same.
        take_over(&a, &log, &store, p).await.expect("a catches up");
        assert_eq!(state(&a, app, &entry, &customers).await, after);
        // A duplicate of an earlier request (same message id) changes nothing.
        append_event(&log, p, &entry, &customers[0], 1, 3).await;
        assert_eq!(take_over(&b, &log, &store, p).await.expect("again"), next_b);
        assert_eq!(state(&b, app, &entry, &customers).await, after);
    }
}

mod catalog {
    use std::sync::Arc;

    use achievements_engine::cluster::{follow_catalog, publish_catalog, StreamLayout};
    use achievements_engine::domain::catalog::CampaignPatch;
    use achievements_engine::domain::{AchievementDraft, AchievementPatch};
    use achievements_engine::engine::log::{Log, MemoryLog, Position, Record, Stream};
    use achievements_engine::engine::{Catalog, Engine, EngineConfig};

    use super::{connect_with, NatsCluster};

    fn engine() -> Engine {
        Engine::start(
            EngineConfig {
                partitions: 16,
                shards: 2,
                arbiters: 2,
                ..EngineConfig::default()
            },
            Catalog::default(),
        )
    }

    /// Applications, campaigns, and achievements as (id, name, title).
    type Summary = (Vec<String>, Vec<String>, Vec<(u64, String, String)>);

    /// What a node's catalog says.
    fn summary(e: &Engine) -> Summary {
        let c = e.catalog.read();
        (
            c.applications
                .values()
                .map(|a| format!("{}:{}", a.id, a.name))
                .collect(),
            c.campaigns
                .values()
                .map(|c| format!("{}:{}", c.id, c.name))
                .collect(),
            c.achievements
                .values()
                .filter(|a| a.is_alive())
                .map(|a| {
                    (
                        a.achievement.id.0,
                        a.achievement.name.clone(),
                        a.achievement.title.clone(),
                    )
                })
                .collect(),
        )
    }

    #[actix_web::test]
    async fn every_node_follows_the_catalog_log_to_the_same_catalog() {
        let _one = crate::serial();
        let cluster = NatsCluster::start(1);
        let log = connect_with(&cluster.urls(), StreamLayout::new(16), 1).await;

        // Node a plans changes; its records are what goes to the catalog log.
        let a = engine();
        let mem = MemoryLog::new();
        a.attach_log(mem.clone() as Arc<dyn Log>)
            .await
            .expect("attach");
        let app = a
            .create_application("shop".into(), chrono_tz::Europe::Berlin, "d".into())
            .await
            .expect("application");
        let (_, key) = a.create_api_key(app.id, "k".into()).await.expect("key");
        let campaign = a
            .create_campaign(
                app.id,
                CampaignPatch {
                    name: Some("autumn".into()),
                    ..CampaignPatch::default()
                },
            )
            .await
            .expect("campaign");
        let draft = |name: &str| AchievementDraft {
            name: name.into(),
            title: name.into(),
            target: 5.into(),
            period: Some("1W".into()),
            ..AchievementDraft::default()
        };
        let kept = a
            .create_achievement(app.id, campaign.id, draft("kept"))
            .await
            .expect("achievement");
        let gone = a
            .create_achievement(app.id, campaign.id, draft("gone"))
            .await
            .expect("achievement");
        a.update_achievement(
            app.id,
            campaign.id,
            kept.achievement.id,
            &AchievementPatch {
                title: Some("Kept, renamed".into()),
                ..AchievementPatch::default()
            },
        )
        .await
        .expect("update");
        a.delete_achievement(app.id, campaign.id, gone.achievement.id)
            .await
            .expect("delete");

        let records = mem.records(Stream::Catalog);
        assert_eq!(records.len(), 7);
        for (position, record) in &records {
            let Record::Catalog(r) = record else {
                panic!("a catalog record")
            };
            let id = format!("catalog-{}", position.0);
            publish_catalog(&log, &id, r).await.expect("publish");
            // A retried publish (same id) is one record.
            assert!(
                publish_catalog(&log, &id, r)
                    .await
                    .expect("publish")
                    .duplicate
            );
        }

        // Node b follows the log from its start and has the same catalog.
        let b = engine();
        let next = follow_catalog(&b, &log, Position(0)).await.expect("follow");
        assert_eq!(summary(&b), summary(&a));
        assert_eq!(
            summary(&b).2,
            vec![(kept.achievement.id.0, "kept".into(), "Kept, renamed".into())]
        );
        assert_eq!(
            b.catalog.authenticate(&key),
            Some(app.id),
            "b accepts a's integration key"
        );
        assert_eq!(
            b.catalog.read().applications[&app.id].timezone,
            chrono_tz::Europe::Berlin
        );
        // Nothing new: it stays where it is. A new change: it follows.
        assert_eq!(follow_catalog(&b, &log, next).await.expect("follow"), next);
        a.create_campaign(
            app.id,
            CampaignPatch {
                name: Some("winter".into()),
                ..CampaignPatch::default()
            },
        )
        .await
        .expect("campaign");
        let (position, Record::Catalog(r)) = mem.records(Stream::Catalog).pop().expect("a record")
        else {
            panic!("a catalog record")
        };
        publish_catalog(&log, &format!("catalog-{}", position.0), &r)
            .await
            .expect("publish");
        assert!(follow_catalog(&b, &log, next).await.expect("follow") > next);
        assert_eq!(summary(&b), summary(&a));
    }
}
