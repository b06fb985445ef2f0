//! The accepting node's side of a request: the record sent to its
//! partition's log (message id, reply subject, correlation number), resent
//! while unacknowledged, and the owner's answer awaited; reads asked of the
//! owner; expiries recorded.

use super::*;

/// Hands each owner's answer to the request waiting for it.
pub(super) async fn dispatch_answers(inner: Arc<Inner>, mut answers: async_nats::Subscriber) {
    while let Some(msg) = answers.next().await {
        let corr = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(CORRELATION_HEADER))
            .and_then(|v| v.as_str().parse::<u64>().ok());
        let Some(corr) = corr else { continue };
        let waiter = inner
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&corr);
        if let Some(tx) = waiter {
            let answer = wire::decode_answer(&msg.payload).unwrap_or_else(|e| {
                tracing::error!(error = %e, "an owner's answer cannot be read");
                Err(EngineError::Internal("an owner's answer cannot be read"))
            });
            let _ = tx.send(answer);
        }
    }
}

/// The message id of a submitted record: derived from the request when it
/// has an `eventId` (a client's retry, on any node, is stored once within
/// the duplicate window), else fresh (a node's own resend keeps it).
fn message_id(p: PartitionId, record: &Record) -> String {
    let derived = match record {
        Record::Pair(c) => match &c.op {
            ChangeOp::Increase(inc) => inc.event_id.as_ref().map(|id| ("i", id)),
            ChangeOp::Rollback(id) => Some(("r", id)),
        }
        .map(|(kind, id)| {
            let mut h = Sha256::new();
            for part in [
                kind.as_bytes(),
                &c.achievement.0.to_le_bytes(),
                c.customer.as_str().as_bytes(),
                b"\0",
                id.as_str().as_bytes(),
            ] {
                h.update(part);
            }
            let digest = h.finalize();
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("{kind}{}-{hex}", p.0)
        }),
        _ => None,
    };
    derived.unwrap_or_else(fresh_id)
}

pub(super) fn fresh_id() -> String {
    format!("n-{:032x}", rand::random::<u128>())
}

/// A record sent and not yet answered.
struct Sent {
    p: PartitionId,
    msg_id: String,
    corr: u64,
    payload: Bytes,
    ack: async_nats::jetstream::context::PublishAckFuture,
    answer: oneshot::Receiver<Result<Answer, EngineError>>,
}

impl Inner {
    fn headers(&self, msg_id: &str, corr: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", msg_id);
        h.insert(ANSWER_HEADER, self.reply_subject.as_str());
        h.insert(CORRELATION_HEADER, corr.to_string().as_str());
        h
    }

    /// Sends until the cluster takes it or the deadline passes.
    async fn send(
        &self,
        p: PartitionId,
        msg_id: &str,
        corr: u64,
        payload: &Bytes,
        deadline: Instant,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, EngineError> {
        loop {
            match self
                .log
                .send(p, self.headers(msg_id, corr), payload.clone())
                .await
            {
                Ok(ack) => return Ok(ack),
                Err(e) if Instant::now() + Duration::from_millis(200) < deadline => {
                    tracing::debug!(error = %e, "send failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(unavailable("cannot send a record")(e)),
            }
        }
    }

    /// Waits for a sent record to be stored (sending it again with the same
    /// id if the acknowledgement is lost), then for its owner's answer.
    async fn complete(&self, sent: Sent, deadline: Instant) -> Result<Answer, EngineError> {
        let Sent {
            p,
            msg_id,
            corr,
            payload,
            mut ack,
            answer,
        } = sent;
        let mut first = true;
        loop {
            match tokio::time::timeout_at(deadline, ack).await {
                Err(_) => return Err(EngineError::Unavailable(MOVING)),
                Ok(Ok(stored)) => {
                    if stored.duplicate && first {
                        // Another request with this id is in the log (a
                        // retry racing its original): this one goes in as a
                        // record of its own, which the pair's remembered
                        // ids answer.
                        let id = fresh_id();
                        ack = self.send(p, &id, corr, &payload, deadline).await?;
                        first = false;
                        continue;
                    }
                    break;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "no acknowledgement; sending again");
                    if Instant::now() + Duration::from_millis(200) >= deadline {
                        return Err(EngineError::Unavailable(MOVING));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    // Same id: stored once, whichever send got there.
                    ack = self.send(p, &msg_id, corr, &payload, deadline).await?;
                    first = false;
                }
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => answer,
            _ => Err(EngineError::Unavailable(MOVING)),
        }
    }

    fn forget(&self, corr: u64) {
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&corr);
    }

    pub(super) async fn submit(
        self: Arc<Self>,
        records: Vec<(PartitionId, Record)>,
    ) -> Result<Vec<Result<Answer, EngineError>>, EngineError> {
        let deadline = Instant::now() + self.config.wait;
        let mut sent = Vec::with_capacity(records.len());
        // Sent one after another, so a partition's records keep their order.
        for (p, record) in records {
            let payload = encode_partition_record(p, &record.as_ref()).map_err(|e| {
                tracing::error!(error = %e, "cannot encode a record");
                EngineError::Internal("cannot encode a record")
            })?;
            let payload = Bytes::from(payload);
            let msg_id = message_id(p, &record);
            let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(corr, tx);
            match self.send(p, &msg_id, corr, &payload, deadline).await {
                Ok(ack) => sent.push(Ok(Sent {
                    p,
                    msg_id,
                    corr,
                    payload,
                    ack,
                    answer: rx,
                })),
                Err(e) => {
                    self.forget(corr);
                    sent.push(Err(e));
                }
            }
        }
        let waits = sent.into_iter().map(|s| {
            let inner = self.clone();
            async move {
                let sent = s?;
                let corr = sent.corr;
                let answer = inner.complete(sent, deadline).await;
                inner.forget(corr);
                answer
            }
        });
        Ok(futures_util::future::join_all(waits).await)
    }

    /// Asks partition `p`'s owner; while none answers (the partition is
    /// moving), asks again until the wait is over.
    pub(super) async fn read(
        &self,
        p: PartitionId,
        query: wire::Query,
    ) -> Result<wire::ReadReply, EngineError> {
        let deadline = Instant::now() + self.config.wait;
        let payload = Bytes::from(query.encode());
        loop {
            let request = async_nats::Request::new()
                .payload(payload.clone())
                .timeout(Some(Duration::from_secs(5)));
            match self.client.send_request(query_subject(p), request).await {
                Ok(reply) => {
                    return wire::decode_reply(&reply.payload).unwrap_or_else(|e| {
                        tracing::error!(error = %e, "an owner's reply cannot be read");
                        Err(EngineError::Internal("an owner's reply cannot be read"))
                    })
                }
                Err(e) => {
                    if Instant::now() + Duration::from_millis(100) >= deadline {
                        tracing::debug!(error = %e, partition = p.0, "no owner answered a read");
                        return Err(EngineError::Unavailable(
                            "the customer's partition is moving to another node; retry",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    pub(super) fn expire(self: Arc<Self>, p: PartitionId, expiry: Expiry) {
        tokio_handle().spawn(async move {
            let Ok(payload) = encode_partition_record(p, &Record::Expire(expiry).as_ref()) else {
                return;
            };
            let payload = Bytes::from(payload);
            let msg_id = fresh_id();
            // Until stored or the partition is no longer ours: whoever
            // holds it next sees the same ends and records them.
            while self.ownership.holds(p) {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", msg_id.as_str());
                let stored = match self.log.send(p, headers, payload.clone()).await {
                    Ok(ack) => ack.await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match stored {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(partition = p.0, error = %e, "cannot record an expiry; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}
