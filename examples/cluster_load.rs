//! Ingestion against running nodes (a cluster from `scripts/cluster.sh`,
//! or a single node): events with an `eventId` each, sent by `connections`
//! concurrent clients for `seconds`, every request to a random node; a 503
//! (a partition moving) is retried with the same `eventId`, as a real
//! client does. Prints events/s and latency percentiles.
//!
//! ```text
//! cargo run --release --example cluster_load -- \
//!     --key "$(cat .cluster/node-1/management.key)" \
//!     --nodes 127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083 [--seconds 20] [--connections 64] [--batch 1]
//! ```
//!
//! It creates its own application, campaign and achievement first, on the
//! first node. With `--batch N` each request carries N events
//! (`/v1/progress_events/batch`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rand::Rng;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// The management key.
    #[arg(long)]
    key: String,
    /// Comma-separated host:port of the nodes.
    #[arg(long)]
    nodes: String,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Events per request (1: single events).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Distinct customers.
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
}

async fn post(
    c: &awc::Client,
    url: String,
    auth: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut r = c
        .post(url)
        .insert_header(("Authorization", auth.to_string()))
        .send_json(&body)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bytes = r
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((
        r.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nodes: Vec<String> = args
        .nodes
        .split(',')
        .map(|n| format!("http://{}", n.trim()))
        .collect();
    let c = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let m = format!("ManagementKey-v1 {}", args.key);
    let (s, app) = post(
        &c,
        format!("{}/v1/applications", nodes[0]),
        &m,
        json!({"name": "load", "timezone": "UTC"}),
    )
    .await?;
    if s != 201 {
        bail!("creating the application: {s} {app}");
    }
    let app = app["id"].as_u64().context("application id")?;
    let (_, key) = post(
        &c,
        format!("{}/v1/applications/{app}/api_keys", nodes[0]),
        &m,
        json!({"name": "load"}),
    )
    .await?;
    let auth = format!("ApiKey-v1 {}", key["key"].as_str().context("key")?);
    let (_, campaign) = post(
        &c,
        format!("{}/v1/applications/{app}/campaigns", nodes[0]),
        &m,
        json!({"name": "load"}),
    )
    .await?;
    let campaign = campaign["id"].as_u64().context("campaign id")?;
    let (_, achievement) = post(
        &c,
        format!("{}/v1/applications/{app}/campaigns/{campaign}/achievements", nodes[0]),
        &m,
        json!({"name": "load", "title": "Load", "description": "", "target": 1000000, "period": "1Y"}),
    )
    .await?;
    let achievement = achievement["id"].as_u64().context("achievement id")?;
    // Every node must know the catalog before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let until = Instant::now() + Duration::from_secs(args.seconds);
    let latencies = Rc::new(RefCell::new(Vec::new()));
    let retries = Rc::new(RefCell::new(0u64));
    let started = Instant::now();
    let workers = (0..args.connections).map(|w| {
        let (nodes, auth, latencies, retries) = (nodes.clone(), auth.clone(), latencies.clone(), retries.clone());
        let (batch, customers) = (args.batch, args.customers);
        async move {
            let c = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
            let mut n = 0u64;
            let mut events = 0u64;
            while Instant::now() < until {
                let one = |i: u64| {
                    let id = format!("w{w}-{i}");
                    let customer = rand::rng().random_range(0..customers);
                    json!({"integrationId": format!("c{customer}"), "achievementId": achievement,
                           "delta": 1, "eventId": id})
                };
                let (path, body) = if batch == 1 {
                    ("/v1/progress_events", one(n))
                } else {
                    ("/v1/progress_events/batch", json!({"events": (0..batch as u64).map(|i| one(n * 100_000 + i)).collect::<Vec<_>>()}))
                };
                n += 1;
                let sent = Instant::now();
                loop {
                    let node = &nodes[rand::rng().random_range(0..nodes.len())];
                    match post(&c, format!("{node}{path}"), &auth, body.clone()).await {
                        Ok((200, _)) => break,
                        _ => {
                            *retries.borrow_mut() += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                latencies.borrow_mut().push(sent.elapsed());
                events += batch as u64;
            }
            events
        }
    });
    let total: u64 = futures_util::future::join_all(workers)
        .await
        .into_iter()
        .sum();
    let elapsed = started.elapsed();
    let mut l = latencies.borrow().clone();
    l.sort();
    println!(
        "{} nodes, {} connections, batch {}: {:.0} events/s ({} events in {:.1} s), request latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms, retries {}",
        nodes.len(),
        args.connections,
        args.batch,
        total as f64 / elapsed.as_secs_f64(),
        total,
        elapsed.as_secs_f64(),
        percentile(&l, 0.5).as_secs_f64() * 1e3,
        percentile(&l, 0.99).as_secs_f64() * 1e3,
        l.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        retries.borrow()
    );
    Ok(())
}
