//! A partition while this node owns it: takeover (the newest snapshot,
//! then the log from its position), then the live log — each record
//! applied in order and its submitter answered — reads served once caught
//! up, snapshots now and then, and a check that the consumer still follows.
//! It ends at its lease's deadline unless a renewal moved it: a node that
//! cannot renew (a server lost, a network split) must not answer reads
//! that another owner may have moved past.

use super::*;

/// Records applied per engine call.
const BATCH: usize = 512;
/// How often an idle partition checks that its consumer still follows.
const STALL_CHECK: Duration = Duration::from_secs(5);

async fn next_query(queries: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match queries {
        Some(q) => q.next().await,
        None => std::future::pending().await,
    }
}

/// Owns partition `p` until stopped: takeover (snapshot + replay), then
/// the live log, answering submitters and reads. Returns the position of
/// the next record (what a snapshot taken now covers).
pub(super) async fn serve(
    inner: Arc<Inner>,
    p: PartitionId,
    mut stopped: watch::Receiver<bool>,
    deadline: watch::Receiver<Instant>,
) -> Result<Position, ClusterError> {
    let began = Instant::now();
    // Whatever an earlier ownership left is stale.
    let _ = inner.engine.unload_partition(p).await;
    let mut next = load_snapshot(&inner.engine, &inner.snapshots, p).await?;
    let target = inner.log.last_position(p).await?;
    let mut records = inner.log.tail_partition(p, next).await?;
    let mut queries = None;
    let mut last_snapshot = Instant::now();
    let mut changed = false;
    let mut watchdog = tokio::time::interval(STALL_CHECK);
    let mut upload: Option<JoinHandle<()>> = None;
    let mut applied_since_check = true;
    loop {
        // Caught up: every record stored when the takeover began is
        // applied (positions start at 1; 0 is an empty log).
        if queries.is_none() && (target.0 == 0 || next.0 > target.0) {
            queries = Some(
                inner
                    .client
                    .subscribe(query_subject(p))
                    .await
                    .map_err(|e| ClusterError::JetStream {
                        what: "subscription",
                        reason: e.to_string(),
                    })?,
            );
            inner.ownership.serving[p.0 as usize].store(true, Ordering::Relaxed);
            let ms = began.elapsed().as_millis() as u64;
            let o = &inner.ownership;
            o.takeovers.fetch_add(1, Ordering::Relaxed);
            o.takeover_ms_total.fetch_add(ms, Ordering::Relaxed);
            o.last_takeover_ms.store(ms, Ordering::Relaxed);
            tracing::info!(
                partition = p.0,
                from = next.0,
                took_ms = ms,
                "partition taken over"
            );
        }
        let until = *deadline.borrow();
        tokio::select! {
            _ = stopped.changed() => return Ok(next),
            _ = tokio::time::sleep_until(until) => {
                if Instant::now() >= *deadline.borrow() {
                    inner.ownership.serving[p.0 as usize].store(false, Ordering::Relaxed);
                    tracing::warn!(partition = p.0, "lease not renewed in time; no longer serving the partition");
                    return Err(ClusterError::JetStream { what: "lease renewal", reason: "not renewed in time".into() });
                }
            }
            msg = records.next() => {
                let Some(msg) = msg else {
                    return Err(ClusterError::JetStream { what: "partition log", reason: "the consumer ended".into() });
                };
                let mut batch = vec![msg.map_err(|e| ClusterError::JetStream { what: "partition log", reason: e.to_string() })?];
                while batch.len() < BATCH {
                    match records.next().now_or_never() {
                        Some(Some(Ok(m))) => batch.push(m),
                        _ => break,
                    }
                }
                let began = Instant::now();
                let n = batch.len();
                next = apply_batch(&inner, p, batch, next).await?;
                if began.elapsed() > Duration::from_secs(2) {
                    tracing::warn!(partition = p.0, records = n, took_ms = began.elapsed().as_millis() as u64, "applying records was slow");
                }
                changed = true;
                applied_since_check = true;
            }
            _ = watchdog.tick() => {
                // A consumer created while its stream was still electing a
                // leader can stay silent: if the log holds records this
                // task has not seen, follow it again from where it is.
                if !std::mem::take(&mut applied_since_check) {
                    let last = inner.log.last_position(p).await?;
                    if last.0 > 0 && last.0 >= next.0 {
                        tracing::warn!(partition = p.0, next = next.0, last = last.0, "the partition's consumer stalled; following again");
                        records = inner.log.tail_partition(p, next).await?;
                    }
                }
            }
            q = next_query(&mut queries) => {
                // Past the deadline another node may own the partition and
                // have moved on: its answer is the one to get.
                if let Some(q) = q.filter(|_| Instant::now() < *deadline.borrow()) {
                    answer_query(&inner, p, q).await;
                }
            }
        }
        let uploading = upload.as_ref().is_some_and(|u| !u.is_finished());
        if changed && !uploading && last_snapshot.elapsed() >= inner.config.snapshot_every {
            if let Some(lease) = inner.ownership.lease_of(p) {
                // The partition's pairs are copied now, between records;
                // waiting for the feed and storing the copy go on beside
                // the log, which must not wait for them.
                match snapshot_partition(&inner.engine, p).await {
                    Ok(blob) => {
                        let inner = inner.clone();
                        upload = Some(tokio::spawn(async move {
                            if let Err(e) = commit_snapshot(&inner, &lease, next, blob).await {
                                tracing::warn!(partition = p.0, error = %e, "periodic partition snapshot failed");
                            }
                        }));
                    }
                    Err(e) => {
                        tracing::warn!(partition = p.0, error = %e, "periodic partition snapshot failed")
                    }
                }
            }
            last_snapshot = Instant::now();
            changed = false;
        }
    }
}

type ReplyTo = Option<(String, u64)>;

fn reply_to(msg: &jetstream::Message) -> ReplyTo {
    let h = msg.headers.as_ref()?;
    let subject = h.get(ANSWER_HEADER)?.as_str().to_owned();
    let corr = h.get(CORRELATION_HEADER)?.as_str().parse().ok()?;
    Some((subject, corr))
}

async fn send_answer(
    inner: &Inner,
    to: ReplyTo,
    answer: &Result<crate::engine::remote::Answer, EngineError>,
) {
    if let Some((subject, corr)) = to {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(CORRELATION_HEADER, corr.to_string().as_str());
        let bytes = Bytes::from(wire::encode_answer(answer));
        if let Err(e) = inner
            .client
            .publish_with_headers(subject, headers, bytes)
            .await
        {
            tracing::debug!(error = %e, "cannot send an answer");
        }
    }
}

/// Applies records read from the partition's log, in order, and answers
/// their submitters; returns the position after the last one.
async fn apply_batch(
    inner: &Arc<Inner>,
    p: PartitionId,
    batch: Vec<jetstream::Message>,
    mut next: Position,
) -> Result<Position, ClusterError> {
    let mut records = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let mut touched: Vec<Arc<crate::engine::AchievementEntry>> = Vec::new();
    let mut pending = 0;
    for msg in batch {
        let info = msg.info().map_err(|e| ClusterError::JetStream {
            what: "record metadata",
            reason: e.to_string(),
        })?;
        let position = Position(info.stream_sequence);
        pending = info.pending;
        next = Position(position.0 + 1);
        let to = reply_to(&msg);
        let record = match decode_shard_record(&msg.payload) {
            Ok((_, record)) => record,
            Err(e) => {
                tracing::error!(partition = p.0, ?position, error = %e, "a record cannot be read; skipped");
                send_answer(
                    inner,
                    to,
                    &Err(EngineError::Internal("a record cannot be read")),
                )
                .await;
                continue;
            }
        };
        let replay = match record {
            Record::Pair(change) => {
                let mut entry = inner
                    .engine
                    .catalog
                    .read()
                    .achievements
                    .get(&change.achievement)
                    .cloned();
                if entry.is_none() {
                    // Created on another node a moment ago, or deleted.
                    let _ = inner.catalog_sync().await;
                    entry = inner
                        .engine
                        .catalog
                        .read()
                        .achievements
                        .get(&change.achievement)
                        .cloned();
                }
                match entry {
                    Some(entry) => {
                        if !touched.iter().any(|e| Arc::ptr_eq(e, &entry)) {
                            touched.push(entry.clone());
                        }
                        ReplayRecord::Pair(change, entry)
                    }
                    None => {
                        send_answer(
                            inner,
                            to,
                            &Err(EngineError::not_found("achievement", "achievementId")),
                        )
                        .await;
                        continue;
                    }
                }
            }
            Record::Erase(e) => ReplayRecord::Erase(e),
            Record::Expire(e) => ReplayRecord::Expire(e),
            Record::Catalog(_) => {
                tracing::error!(
                    partition = p.0,
                    ?position,
                    "a catalog record in a partition's log; skipped"
                );
                continue;
            }
        };
        records.push((position, replay));
        replies.push(to);
    }
    inner.ownership.lag[p.0 as usize].store(pending, Ordering::Relaxed);
    if records.is_empty() {
        return Ok(next);
    }
    let applied =
        inner
            .engine
            .apply_logged(p, records)
            .await
            .map_err(|e| ClusterError::JetStream {
                what: "applying records",
                reason: e.to_string(),
            })?;
    // Recorded before the answers, so every node learns within moments of
    // an acknowledgement that the definition has progress (editing rule).
    inner.tell_progress(&touched).await;
    for (applied, to) in applied.into_iter().zip(replies) {
        if let Applied::Answer(answer) = applied {
            send_answer(inner, to, &answer).await;
        }
    }
    Ok(next)
}

async fn answer_query(inner: &Arc<Inner>, p: PartitionId, q: async_nats::Message) {
    let Some(reply) = q.reply.clone() else { return };
    let engine = &inner.engine;
    let answer = match wire::Query::decode(&q.payload) {
        Ok(wire::Read::Progress(customer, achievements)) => engine
            .local_progress(p, &customer, &achievements)
            .await
            .map(wire::ReadReply::Progress),
        Ok(wire::Read::Export(application, achievement)) => engine
            .local_export(p, application, achievement)
            .await
            .map(wire::ReadReply::Export),
        Err(e) => {
            tracing::error!(error = %e, "a read cannot be read");
            Err(EngineError::Internal("a read cannot be read"))
        }
    };
    let bytes = Bytes::from(wire::encode_reply(&answer));
    if let Err(e) = inner.client.publish(reply, bytes).await {
        tracing::debug!(error = %e, "cannot send a read's reply");
    }
}
