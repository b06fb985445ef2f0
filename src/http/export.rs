//! The CSV export of an achievement: one row per iteration (current and
//! history) of every customer, streamed a chunk of customers at a time so an
//! export of millions of rows is never built in memory at once. In a
//! cluster a chunk is one partition, asked of its owner; a partition that
//! is moving to another node is waited for (`MOVE_PATIENCE`), since once
//! the rows have begun an error can only cut the response short.

use std::fmt::Write;
use std::sync::Arc;

use actix_web::web::Bytes;
use futures_util::Stream;

use super::error::ApiError;
use super::json::fmt_time;
use crate::domain::{CustomerId, Iteration};
use crate::engine::log::PartitionId;
use crate::engine::{AchievementEntry, Engine, EngineError};

/// The header row.
pub const HEADER: &str =
    "profileIntegrationID,title,target,progress,status,startDate,endDate,completionDate\n";

/// Customers read from a shard per chunk.
const CHUNK: usize = 512;
/// How long a cluster's export waits for a partition changing owners.
const MOVE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Quotes a CSV cell when it needs it.
fn cell(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn rows(out: &mut String, entry: &AchievementEntry, customer: &CustomerId, its: &[Iteration]) {
    let target = entry.achievement.rules.target.normalize();
    for i in its {
        cell(out, customer.as_str());
        out.push(',');
        cell(out, &entry.achievement.title);
        let _ = writeln!(
            out,
            ",{},{},{},{},{},{}",
            target,
            i.progress.normalize(),
            i.status.as_str(),
            fmt_time(i.start),
            i.end.map(|e| fmt_time(e.reported)).unwrap_or_default(),
            i.completion.map(fmt_time).unwrap_or_default(),
        );
    }
}

struct Cursor {
    engine: Engine,
    entry: Arc<AchievementEntry>,
    /// Single node: the customers per shard, read a chunk at a time.
    keys: Vec<Vec<CustomerId>>,
    shard: usize,
    offset: usize,
    /// Cluster: the next partition, each read whole from its owner.
    partition: Option<u32>,
    header_sent: bool,
}

impl Cursor {
    /// The next chunk of rows; `None` at the end.
    async fn next_rows(
        &mut self,
    ) -> Option<Result<Vec<(CustomerId, Vec<Iteration>)>, EngineError>> {
        if let Some(p) = self.partition {
            if p >= self.engine.partitions() {
                return None;
            }
            let began = std::time::Instant::now();
            loop {
                match self
                    .engine
                    .export_partition(PartitionId(p), &self.entry)
                    .await
                {
                    Err(EngineError::Unavailable(why)) if began.elapsed() < MOVE_PATIENCE => {
                        tracing::debug!(partition = p, why, "export waits for a moving partition");
                        actix_rt::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    rows => {
                        self.partition = Some(p + 1);
                        return Some(rows);
                    }
                }
            }
        }
        loop {
            let shard_keys = self.keys.get(self.shard)?;
            if self.offset < shard_keys.len() {
                break;
            }
            self.shard += 1;
            self.offset = 0;
        }
        let shard_keys = &self.keys[self.shard];
        let end = (self.offset + CHUNK).min(shard_keys.len());
        let customers = shard_keys[self.offset..end].to_vec();
        self.offset = end;
        Some(
            self.engine
                .export_rows(self.shard, &self.entry, customers)
                .await,
        )
    }
}

/// The export as a stream of CSV chunks.
pub async fn csv_stream(
    engine: Engine,
    entry: Arc<AchievementEntry>,
) -> Result<impl Stream<Item = Result<Bytes, actix_web::Error>>, ApiError> {
    let clustered = engine.shared().remote().is_some();
    let keys = if clustered {
        Vec::new()
    } else {
        engine.export_keys(&entry).await?
    };
    let cursor = Cursor {
        engine,
        entry,
        keys,
        shard: 0,
        offset: 0,
        partition: clustered.then_some(0),
        header_sent: false,
    };
    Ok(futures_util::stream::unfold(cursor, |mut c| async move {
        if !c.header_sent {
            c.header_sent = true;
            return Some((Ok(Bytes::from_static(HEADER.as_bytes())), c));
        }
        loop {
            let chunk = match c.next_rows().await? {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(error = %e, "export stopped");
                    return Some((
                        Err(actix_web::error::ErrorInternalServerError("export failed")),
                        c,
                    ));
                }
            };
            let mut out = String::new();
            for (customer, its) in &chunk {
                rows(&mut out, &c.entry, customer, its);
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), c));
            }
        }
    }))
}
