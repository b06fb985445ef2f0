//! What the achievement event feed costs and how fast it tells: feed
//! throughput under batch ingestion, and the latency from an event's
//! acknowledgement to its entry on a live stream (SSE) and at a webhook.
//!
//! `cargo run --release --example feed_latency -- [events] [samples]`
//! (defaults 200,000 events in batches of 10,000, and 300 latency samples).
//! Runs the real server in this process on a temporary data directory
//! (fsync included), with a webhook receiver on loopback.
//!
//! 1. Throughput: `events` events for new customers of a target-1
//!    achievement (2 entries each: started, completed), in batches, one
//!    batch in flight; the time until the last entry is in the feed.
//! 2. Latency: one event at a time; for each, the time from sending it
//!    until its `achievement.completed` arrives on an open SSE stream and
//!    at the webhook (and the answer's own latency, for comparison).
//! 3. Delivery throughput: `10 × samples` completions in one batch, and the
//!    time until the webhook received them all (one webhook delivers in
//!    order, one at a time, its position made durable after each).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use achievements_engine::config::Settings;
use achievements_engine::engine::testing;
use achievements_engine::http::server;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::{bail, Context};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<28} median {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   (n={})",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default()),
        samples.len()
    );
}

struct Api {
    base: String,
    client: awc::Client,
    mgmt: String,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        auth: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let method = awc::http::Method::from_bytes(method.as_bytes())?;
        let req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .insert_header(("Authorization", auth.to_string()));
        let mut res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let bytes = res.body().limit(64 << 20).await?;
        if !res.status().is_success() {
            bail!(
                "{path}: {} {}",
                res.status(),
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        })
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args.get(1).map_or(Ok(200_000), |s| s.parse())?;
    let samples: usize = args.get(2).map_or(Ok(300), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::parse_from([
        "feed_latency",
        "--listen",
        "127.0.0.1:0",
        "--management-key",
        "bench",
        "--snapshot-interval",
        "0",
        "--webhook-allow-private",
    ]);
    settings.data_dir = dir.path().to_path_buf();
    let running = server::start(&settings)?;
    let base = format!("http://{}", running.addr);
    actix_web::rt::spawn(running.server);
    running
        .restored
        .await
        .context("restore")?
        .map_err(anyhow::Error::msg)?;
    let api = Api {
        base: base.clone(),
        client: awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish(),
        mgmt: "ManagementKey-v1 bench".into(),
    };
    let m = api.mgmt.clone();
    let app = api
        .call(
            "POST",
            "/v1/applications",
            &m,
            Some(json!({"name": "bench"})),
        )
        .await?["id"]
        .as_u64()
        .context("app id")?;
    let key = api
        .call(
            "POST",
            &format!("/v1/applications/{app}/api_keys"),
            &m,
            Some(json!({"name": "k"})),
        )
        .await?["key"]
        .as_str()
        .context("key")?
        .to_string();
    let integ = format!("ApiKey-v1 {key}");
    let campaign = api
        .call(
            "POST",
            &format!("/v1/applications/{app}/campaigns"),
            &m,
            Some(json!({"name": "c"})),
        )
        .await?["id"]
        .as_u64()
        .context("campaign id")?;
    let ach = api
        .call(
            "POST",
            &format!("/v1/applications/{app}/campaigns/{campaign}/achievements"),
            &m,
            Some(json!({"name": "one", "title": "One", "description": "", "target": 1, "period": "1W"})),
        )
        .await?["id"]
        .as_u64()
        .context("achievement id")?;

    // 1. Throughput.
    let rss_before = testing::resident_bytes();
    let start = Instant::now();
    let mut sent = 0;
    while sent < events {
        let n = (events - sent).min(10_000);
        let batch: Vec<Value> = (sent..sent + n)
            .map(|i| json!({"integrationId": format!("t{i}"), "achievementId": ach, "delta": 1}))
            .collect();
        api.call(
            "POST",
            "/v1/progress_events/batch?results=none",
            &integ,
            Some(json!({"events": batch})),
        )
        .await?;
        sent += n;
    }
    let acked = start.elapsed();
    let want = 2 * events as u64;
    let head = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("achv_feed_head "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    loop {
        let mut res = api
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let text = String::from_utf8_lossy(&res.body().limit(16 << 20).await?).to_string();
        if head(&text) >= want {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    let stored = start.elapsed();
    println!(
        "throughput: {events} events acknowledged in {:.2} s ({:.0} events/s); {want} feed entries stored {:.0} ms after the last answer ({:.0} entries/s overall)",
        acked.as_secs_f64(),
        events as f64 / acked.as_secs_f64(),
        ms(stored - acked),
        want as f64 / stored.as_secs_f64()
    );
    println!(
        "memory: resident set grew {:.1} MiB for {events} pairs and {want} feed entries ({:.0} bytes per entry if a pair takes ~330 bytes)",
        (testing::resident_bytes().saturating_sub(rss_before)) as f64 / (1024.0 * 1024.0),
        (testing::resident_bytes().saturating_sub(rss_before) as f64 - 330.0 * events as f64) / want as f64
    );

    // 2. Latency: a webhook receiver and an SSE stream.
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let hook_arrivals = arrivals.clone();
    let receiver = HttpServer::new(move || {
        let arrivals = hook_arrivals.clone();
        App::new().default_service(web::to(move |_req: HttpRequest, body: web::Bytes| {
            let arrivals = arrivals.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["type"] == "achievement.completed" {
                    if let Some(c) = v["integrationId"].as_str() {
                        arrivals
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(c.to_string(), Instant::now());
                    }
                }
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")?;
    let hook_addr = receiver.addrs()[0];
    actix_web::rt::spawn(receiver.run());
    api.call(
        "POST",
        &format!("/v1/applications/{app}/webhooks"),
        &m,
        Some(
            json!({"url": format!("http://{hook_addr}/hook"), "types": ["achievement.completed"]}),
        ),
    )
    .await?;
    let mut sse = api
        .client
        .get(format!(
            "{base}/v1/applications/{app}/achievement_events?type=achievement.completed"
        ))
        .insert_header(("Authorization", integ.clone()))
        .insert_header(("Accept", "text/event-stream"))
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("stream: {e}"))?;
    // Skip what is stored already: the stream starts at the oldest entry.
    let (mut answer, mut on_stream, mut at_hook) = (Vec::new(), Vec::new(), Vec::new());
    let mut buf = String::new();
    let mut skipped = 0u64;
    while skipped < events as u64 {
        let chunk = sse.next().await.context("stream ended")??;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if block.contains("\ndata: ") || block.starts_with("data: ") {
                skipped += 1;
            }
        }
    }
    for i in 0..samples {
        let customer = format!("l{i}");
        let t0 = Instant::now();
        api.call(
            "POST",
            "/v1/progress_events",
            &integ,
            Some(json!({"integrationId": customer, "achievementId": ach, "delta": 1})),
        )
        .await?;
        answer.push(t0.elapsed());
        'stream: loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if block.contains(&format!("\"integrationId\":\"{customer}\"")) {
                    on_stream.push(t0.elapsed());
                    break 'stream;
                }
            }
            let chunk = sse.next().await.context("stream ended")??;
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(t) = arrivals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&customer)
            {
                at_hook.push(t.duration_since(t0));
                break;
            }
            if Instant::now() > deadline {
                bail!("the webhook did not receive {customer} within 10 s");
            }
            actix_web::rt::time::sleep(Duration::from_micros(200)).await;
        }
    }
    // 3. Delivery throughput: a burst of completions, one webhook.
    let burst = samples.max(1) * 10;
    let batch: Vec<Value> = (0..burst)
        .map(|i| json!({"integrationId": format!("w{i}"), "achievementId": ach, "delta": 1}))
        .collect();
    let t0 = Instant::now();
    api.call(
        "POST",
        "/v1/progress_events/batch?results=none",
        &integ,
        Some(json!({"events": batch})),
    )
    .await?;
    let last = format!("w{}", burst - 1);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = {
            let got = arrivals.lock().unwrap_or_else(|e| e.into_inner());
            (0..burst).all(|i| got.contains_key(&format!("w{i}")))
        };
        if done {
            break;
        }
        if Instant::now() > deadline {
            bail!("the webhook did not receive {last} within 300 s");
        }
        actix_web::rt::time::sleep(Duration::from_millis(2)).await;
    }
    let took = t0.elapsed();
    println!(
        "webhook throughput: {burst} completions delivered in {:.2} s ({:.0} deliveries/s, one webhook, in order)",
        took.as_secs_f64(),
        burst as f64 / took.as_secs_f64()
    );
    report("answer (POST, durable)", answer);
    report("SSE (send → entry)", on_stream);
    report("webhook (send → delivery)", at_hook);
    Ok(())
}
