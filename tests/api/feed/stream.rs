//! The live stream (Server-Sent Events): entries arrive as they happen,
//! `Last-Event-ID` resumes after the last one seen.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::{events_path, wait_for};
use crate::common::*;
use crate::helpers::*;

/// Reads SSE events (id, event, data) from a response until `n` came.
pub async fn read_events<S>(
    res: &mut awc::ClientResponse<S>,
    n: usize,
) -> Vec<(String, String, Value)>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = actix_rt::time::timeout(Duration::from_secs(10), res.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open")
            .expect("bytes");
        buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (String::new(), String::new(), Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_string();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).expect("data is JSON");
                }
            }
            if !event.is_empty() {
                out.push((id, event, data));
            }
        }
    }
    out
}

fn ev(customer: &str, achievement: u64) -> Value {
    json!({"integrationId": customer, "achievementId": achievement, "delta": 1})
}

#[actix_web::test]
async fn the_stream_tells_entries_live_and_resumes_after_the_last_event_id() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "one", "target": 1, "period": "1W"}))
        .await;
    applied(&app.event(key, ev("before", ach)).await);
    wait_for(app, seed.application, 2).await;

    let url = format!("{}{}", app.base, events_path(seed.application, ""));
    let mut res = app
        .client
        .get(&url)
        .insert_header(("Authorization", format!("ApiKey-v1 {key}")))
        .insert_header(("Accept", "text/event-stream"))
        .send()
        .await
        .expect("stream opens");
    assert_eq!(res.status().as_u16(), 200);
    assert!(res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // What was there already, then what happens while listening.
    let first = read_events(&mut res, 2).await;
    assert_eq!(first[0].1, "achievement.started");
    assert_eq!(first[1].1, "achievement.completed");
    applied(&app.event(key, ev("live", ach)).await);
    let live = read_events(&mut res, 2).await;
    assert_eq!(live[0].2["integrationId"], "live");
    assert_eq!(live[0].1, live[0].2["type"].as_str().unwrap());
    drop(res);

    // Resume after the first live event: exactly what came after it.
    applied(&app.event(key, ev("after", ach)).await);
    wait_for(app, seed.application, 6).await;
    let mut res = app
        .client
        .get(&url)
        .insert_header(("Authorization", format!("ApiKey-v1 {key}")))
        .insert_header(("Accept", "text/event-stream"))
        .insert_header(("Last-Event-ID", live[0].0.clone()))
        .send()
        .await
        .expect("stream opens");
    let resumed = read_events(&mut res, 3).await;
    let who: Vec<_> = resumed
        .iter()
        .map(|(_, t, d)| (t.as_str(), d["integrationId"].as_str().unwrap()))
        .collect();
    assert_eq!(
        who,
        vec![
            ("achievement.completed", "live"),
            ("achievement.started", "after"),
            ("achievement.completed", "after"),
        ]
    );
    // The stream's ids are the page cursors: the same entries by `after`.
    let page = app
        .mgmt(
            "GET",
            &events_path(seed.application, &format!("?after={}", live[0].0)),
            None,
        )
        .await
        .json();
    let data: Vec<Value> = resumed.iter().map(|(_, _, d)| d.clone()).collect();
    assert_eq!(page["data"].as_array().unwrap()[..], data[..]);
}

/// Reads SSE events until the stream ends; returns them.
async fn read_to_end<S>(res: &mut awc::ClientResponse<S>) -> Vec<(String, String, Value)>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut text = String::new();
    while let Some(chunk) = actix_rt::time::timeout(Duration::from_secs(30), res.next())
        .await
        .expect("the cut stream ends")
    {
        text.push_str(std::str::from_utf8(&chunk.expect("bytes")).expect("utf-8"));
    }
    text.split("\n\n")
        .filter_map(|block| {
            let (mut id, mut event, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            Some((id?, event?, data?))
        })
        .collect()
}

#[actix_web::test]
async fn a_reader_that_stops_reading_is_cut_off_without_holding_up_ingestion_and_resumes() {
    let seed = seeded("UTC").await;
    let (app, key) = (&seed.app, seed.key.as_str());
    let ach = seed
        .achievement_id(json!({"name": "one", "target": 1, "period": "1W"}))
        .await;
    let url = format!("{}{}", app.base, events_path(seed.application, ""));
    let open = |last: Option<String>| {
        let mut req = app
            .client
            .get(&url)
            .insert_header(("Authorization", format!("ApiKey-v1 {key}")))
            .insert_header(("Accept", "text/event-stream"));
        if let Some(id) = last {
            req = req.insert_header(("Last-Event-ID", id));
        }
        req.send()
    };
    let mut slow = open(None).await.expect("stream opens");
    assert_eq!(slow.status().as_u16(), 200);

    // Heavy ingestion while the reader reads nothing: every batch is
    // answered (the stream never holds it up), 2 entries per event.
    const BATCHES: usize = 12;
    const PER_BATCH: usize = 2_000;
    for b in 0..BATCHES {
        let events: Vec<Value> = (0..PER_BATCH)
            .map(
                |i| json!({"integrationId": format!("c{b}-{i}"), "achievementId": ach, "delta": 1}),
            )
            .collect();
        let r = app
            .batch(key, "?results=none", json!({"events": events}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["applied"], json!(PER_BATCH));
    }
    let total = BATCHES * PER_BATCH * 2;
    let all = wait_for(app, seed.application, total).await;
    assert_eq!(all.len(), total);

    // The reader took nothing for the stall time and was cut off: what it
    // still gets ends, and it resumes after the last id it saw.
    let mut cut = false;
    for _ in 0..600 {
        let m = app.raw("GET", "/metrics", Auth::None, None).await.text;
        if m.lines()
            .any(|l| l.starts_with("achv_feed_streams_cut_total ") && !l.ends_with(" 0"))
        {
            cut = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cut, "the slow reader was cut off");
    let mut got = read_to_end(&mut slow).await;
    assert!(got.len() < total, "it was cut before the end");
    let last = got.last().map(|(id, _, _)| id.clone());
    let mut resumed = open(last).await.expect("stream reopens");
    got.extend(read_events(&mut resumed, total - got.len()).await);
    let ids: Vec<&Value> = got.iter().map(|(_, _, d)| &d["id"]).collect();
    let want: Vec<&Value> = all.iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, want, "every entry exactly once, in order");
}
