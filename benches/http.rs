//! HTTP load benchmarks: the engine server (durability on: every answered
//! event is in the write-ahead log) against the bare baseline
//! (`achievements_engine::http::baseline`: same decoding, fixed answer, no
//! engine), both started in this process, driven by an `awc` client over
//! many concurrent keep-alive connections.
//!
//! Measured, engine and baseline in the same run:
//! - single events (`POST /v1/progress_events`) spread over 100,000
//!   customers, without and with a unique `eventId`: requests/s;
//! - batches of 1,000 events (`POST /v1/progress_events/batch`), with
//!   `results=none` and with the default `results=all`: events/s.
//!
//! After the criterion output, a summary prints the median of each
//! measurement's samples and the engine/baseline ratios.
//!
//! Run with `cargo bench --bench http` (≈ 3 min). `HTTP_BENCH_WORKERS`
//! (default 2) sets both servers' workers; `HTTP_BENCH_CONNECTIONS`
//! (default 64) the connections for single events.
//!
//! Note: the client runs on one thread of the same machine, so on a small
//! machine the client, the server and the engine share the CPUs.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use achievements_engine::config::Settings;
use achievements_engine::http::{baseline, server};
use actix_web::dev::ServerHandle;
use awc::{Client, Connector};
use bytes::Bytes;
use clap::Parser;
use criterion::{Criterion, SamplingMode, Throughput};
use serde_json::{json, Value};

const CUSTOMERS: usize = 100_000;
const STRIDE: usize = 7_919;
/// Single-event requests per criterion iteration.
const SINGLES_PER_ITER: u64 = 1_000;
const BATCH: usize = 1_000;
/// Batches per criterion iteration.
const BATCHES_PER_ITER: u64 = 10;
/// Batches in flight at once.
const BATCH_CONNECTIONS: usize = 16;
const MANAGEMENT_KEY: &str = "bench-management-key";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts the engine server on its own actix system thread; returns once
/// its restore finished.
fn start_engine(dir: &std::path::Path, workers: usize) -> (SocketAddr, ServerHandle) {
    let settings = Settings::parse_from([
        "achievements-engine".to_string(),
        "--listen=127.0.0.1:0".into(),
        format!("--data-dir={}", dir.display()),
        format!("--management-key={MANAGEMENT_KEY}"),
        "--snapshot-interval=0".into(),
        format!("--workers={workers}"),
    ]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("engine-server".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let running = server::start(&settings).expect("engine server starts");
                let server = running.server;
                tx.send((running.addr, server.handle(), running.restored))
                    .expect("bench waits");
                server.await.expect("engine server runs");
            })
        })
        .expect("thread");
    let (addr, handle, restored) = rx.recv().expect("engine server started");
    futures_executor::block_on(restored)
        .expect("restore reports")
        .expect("restore succeeds");
    (addr, handle)
}

/// Starts the baseline on its own actix system thread.
fn start_baseline(workers: usize) -> (SocketAddr, ServerHandle) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("baseline-server".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let (addr, server) =
                    baseline::start("127.0.0.1:0".parse().expect("address"), workers)
                        .expect("baseline starts");
                tx.send((addr, server.handle())).expect("bench waits");
                server.await.expect("baseline runs");
            })
        })
        .expect("thread");
    rx.recv().expect("baseline started")
}

async fn call(client: &Client, method: &str, url: &str, auth: &str, body: Value) -> Value {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut res = client
        .request(method, url)
        .insert_header(("Authorization", auth))
        .send_json(&body)
        .await
        .expect("request sent");
    let bytes = res.body().await.expect("body");
    assert!(
        res.status().is_success(),
        "{url}: {} {}",
        res.status(),
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).expect("JSON answer")
}

/// Creates an application, an integration key, a campaign and a weekly
/// `on_expiration` achievement with a target never reached; returns the key
/// and the achievement id.
async fn set_up(client: &Client, base: &str) -> (String, u64) {
    let m = format!("ManagementKey-v1 {MANAGEMENT_KEY}");
    let app = call(
        client,
        "POST",
        &format!("{base}/v1/applications"),
        &m,
        json!({"name": "bench", "timezone": "UTC"}),
    )
    .await["id"]
        .as_u64()
        .expect("application id");
    let key = call(
        client,
        "POST",
        &format!("{base}/v1/applications/{app}/api_keys"),
        &m,
        json!({"name": "bench"}),
    )
    .await["key"]
        .as_str()
        .expect("key")
        .to_string();
    let campaign = call(
        client,
        "POST",
        &format!("{base}/v1/applications/{app}/campaigns"),
        &m,
        json!({"name": "bench"}),
    )
    .await["id"]
        .as_u64()
        .expect("campaign id");
    let achievement = call(
        client,
        "POST",
        &format!("{base}/v1/applications/{app}/campaigns/{campaign}/achievements"),
        &m,
        json!({"name": "visits", "title": "Visits", "description": "",
               "target": 1_000_000_000_000u64, "period": "1W",
               "recurrencePolicy": "on_expiration"}),
    )
    .await["id"]
        .as_u64()
        .expect("achievement id");
    (key, achievement)
}

fn event_json(out: &mut String, customer: usize, achievement: u64, event_id: Option<u64>) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        r#"{{"integrationId":"customer-{customer:06}","achievementId":{achievement},"delta":1"#
    );
    if let Some(id) = event_id {
        let _ = write!(out, r#","eventId":"bench-{id}""#);
    }
    out.push('}');
}

/// Sends every body with `connections` requests in flight; returns the
/// elapsed time. Failed requests are counted in `failures`.
async fn drive(
    client: &Client,
    url: &str,
    auth: &str,
    bodies: Vec<Bytes>,
    connections: usize,
    failures: &RefCell<Failures>,
) -> Duration {
    let queue = Rc::new(RefCell::new(bodies.into_iter()));
    let started = Instant::now();
    let workers = (0..connections).map(|_| {
        let queue = queue.clone();
        async move {
            loop {
                let Some(body) = queue.borrow_mut().next() else {
                    break;
                };
                let sent = client
                    .post(url)
                    .insert_header(("Authorization", auth))
                    .insert_header(("Content-Type", "application/json"))
                    .send_body(body)
                    .await;
                match sent {
                    Ok(mut res) => {
                        let body = res.body().limit(64 * 1024 * 1024).await;
                        if !res.status().is_success() {
                            failures.borrow_mut().note(format!(
                                "{} {}",
                                res.status(),
                                body.map(|b| String::from_utf8_lossy(&b).into_owned())
                                    .unwrap_or_default()
                            ));
                        }
                    }
                    Err(e) => failures.borrow_mut().note(e.to_string()),
                }
            }
        }
    });
    futures_util::future::join_all(workers).await;
    started.elapsed()
}

#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    fn note(&mut self, what: String) {
        self.count += 1;
        self.first.get_or_insert(what);
    }
}

/// One server under test.
struct Target {
    name: &'static str,
    base: String,
}

/// Per measurement: the rate (elements/s) of each criterion sample.
type Rates = RefCell<BTreeMap<String, Vec<f64>>>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    let workers = env_usize("HTTP_BENCH_WORKERS", 2);
    let connections = env_usize("HTTP_BENCH_CONNECTIONS", 64);
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine_addr, engine_handle) = start_engine(dir.path(), workers);
    let (baseline_addr, baseline_handle) = start_baseline(workers);
    eprintln!(
        "engine on {engine_addr}, baseline on {baseline_addr}, {workers} workers each; \
         {connections} connections for single events, {BATCH_CONNECTIONS} for batches; \
         data dir {}",
        dir.path().display()
    );

    let system = actix_rt::System::new();
    let client = system.block_on(async {
        Client::builder()
            .connector(Connector::new().limit(connections.max(BATCH_CONNECTIONS) + 8))
            .timeout(Duration::from_secs(60))
            .finish()
    });
    let engine_base = format!("http://{engine_addr}");
    let (key, achievement) = system.block_on(set_up(&client, &engine_base));
    let auth = format!("ApiKey-v1 {key}");
    let targets = [
        Target {
            name: "engine",
            base: engine_base,
        },
        Target {
            name: "baseline",
            base: format!("http://{baseline_addr}"),
        },
    ];

    // Bodies reused across iterations (no eventId: any repetition is fine).
    let singles: Vec<Bytes> = {
        let mut c = 0;
        (0..CUSTOMERS)
            .map(|_| {
                c = (c + STRIDE) % CUSTOMERS;
                let mut s = String::with_capacity(80);
                event_json(&mut s, c, achievement, None);
                Bytes::from(s)
            })
            .collect()
    };
    let batches: Vec<Bytes> = (0..CUSTOMERS / BATCH)
        .map(|b| {
            let mut s = String::with_capacity(BATCH * 72 + 16);
            s.push_str(r#"{"events":["#);
            for i in 0..BATCH {
                if i > 0 {
                    s.push(',');
                }
                // Every customer once per batch, the batches covering all.
                event_json(
                    &mut s,
                    (i * (CUSTOMERS / BATCH) + b) % CUSTOMERS,
                    achievement,
                    None,
                );
            }
            s.push_str("]}");
            Bytes::from(s)
        })
        .collect();

    let rates: Rates = RefCell::new(BTreeMap::new());
    let failures = RefCell::new(Failures::default());
    let mut next_single = 0usize;
    let mut next_batch = 0usize;
    let mut next_event_id = 0u64;

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    let mut group = c.benchmark_group("http");
    group.sampling_mode(SamplingMode::Flat);

    let record = |name: String, n: u64, took: Duration| {
        rates
            .borrow_mut()
            .entry(name)
            .or_default()
            .push(n as f64 / took.as_secs_f64());
    };

    group.throughput(Throughput::Elements(SINGLES_PER_ITER));
    for t in &targets {
        let name = format!("single events/{}", t.name);
        let url = format!("{}/v1/progress_events", t.base);
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let n = iters * SINGLES_PER_ITER;
                let bodies: Vec<Bytes> = (0..n)
                    .map(|_| {
                        next_single = (next_single + 1) % singles.len();
                        singles[next_single].clone()
                    })
                    .collect();
                let took =
                    system.block_on(drive(&client, &url, &auth, bodies, connections, &failures));
                record(name.clone(), n, took);
                took
            })
        });
    }
    for t in &targets {
        let name = format!("single events with eventId/{}", t.name);
        let url = format!("{}/v1/progress_events", t.base);
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let n = iters * SINGLES_PER_ITER;
                let bodies: Vec<Bytes> = (0..n)
                    .map(|_| {
                        next_single = (next_single + 1) % singles.len();
                        next_event_id += 1;
                        let mut s = String::with_capacity(100);
                        event_json(
                            &mut s,
                            (next_single * STRIDE) % CUSTOMERS,
                            achievement,
                            Some(next_event_id),
                        );
                        Bytes::from(s)
                    })
                    .collect();
                let took =
                    system.block_on(drive(&client, &url, &auth, bodies, connections, &failures));
                record(name.clone(), n, took);
                took
            })
        });
    }
    group.throughput(Throughput::Elements(BATCHES_PER_ITER * BATCH as u64));
    for results in ["none", "all"] {
        for t in &targets {
            let name = format!("batch 1000 events results={results}/{}", t.name);
            let url = format!("{}/v1/progress_events/batch?results={results}", t.base);
            group.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    let n = iters * BATCHES_PER_ITER;
                    let bodies: Vec<Bytes> = (0..n)
                        .map(|_| {
                            next_batch = (next_batch + 1) % batches.len();
                            batches[next_batch].clone()
                        })
                        .collect();
                    let took = system.block_on(drive(
                        &client,
                        &url,
                        &auth,
                        bodies,
                        BATCH_CONNECTIONS,
                        &failures,
                    ));
                    record(name.clone(), n * BATCH as u64, took);
                    took
                })
            });
        }
    }
    group.finish();

    // Medians of the measured samples (the last `sample_size` calls; the
    // earlier ones are criterion's warm-up).
    let rates = rates.into_inner();
    let medians: BTreeMap<&str, f64> = rates
        .iter()
        .map(|(k, v)| (k.as_str(), median(v[v.len().saturating_sub(10)..].to_vec())))
        .collect();
    println!("\nHTTP summary (median of 10 samples; elements/s; {workers} workers; client on this machine):");
    for (name, rate) in &medians {
        println!("  {name:<48} {rate:>12.0} /s");
    }
    for measure in [
        "single events",
        "single events with eventId",
        "batch 1000 events results=none",
        "batch 1000 events results=all",
    ] {
        let engine = medians.get(format!("{measure}/engine").as_str());
        let baseline = medians.get(format!("{measure}/baseline").as_str());
        if let (Some(e), Some(b)) = (engine, baseline) {
            println!("  ratio engine/baseline, {measure:<32} {:.3}", e / b);
        }
    }
    let failures = failures.into_inner();
    if failures.count > 0 {
        println!(
            "  FAILED REQUESTS: {} (first: {})",
            failures.count,
            failures.first.unwrap_or_default()
        );
    } else {
        println!("  failed requests: 0");
    }
    c.final_summary();

    system.block_on(async {
        engine_handle.stop(true).await;
        baseline_handle.stop(true).await;
    });
    drop(dir);
}
