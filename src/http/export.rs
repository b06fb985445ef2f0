//! The CSV export of an achievement: one row per iteration (current and
//! history) of every customer, streamed a chunk of customers at a time so an
//! export of millions of rows is never built in memory at once.

use std::fmt::Write;
use std::sync::Arc;

use actix_web::web::Bytes;
use futures_util::Stream;

use super::error::ApiError;
use super::json::fmt_time;
use crate::domain::{CustomerId, Iteration};
use crate::engine::{AchievementEntry, Engine};

/// The header row.
pub const HEADER: &str =
    "profileIntegrationID,title,target,progress,status,startDate,endDate,completionDate\n";

/// Customers read from a shard per chunk.
const CHUNK: usize = 512;

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
    keys: Vec<Vec<CustomerId>>,
    shard: usize,
    offset: usize,
    header_sent: bool,
}

/// The export as a stream of CSV chunks.
pub async fn csv_stream(
    engine: Engine,
    entry: Arc<AchievementEntry>,
) -> Result<impl Stream<Item = Result<Bytes, actix_web::Error>>, ApiError> {
    let keys = engine.export_keys(&entry).await?;
    let cursor = Cursor {
        engine,
        entry,
        keys,
        shard: 0,
        offset: 0,
        header_sent: false,
    };
    Ok(futures_util::stream::unfold(cursor, |mut c| async move {
        if !c.header_sent {
            c.header_sent = true;
            return Some((Ok(Bytes::from_static(HEADER.as_bytes())), c));
        }
        loop {
            let shard_keys = c.keys.get(c.shard)?;
            if c.offset >= shard_keys.len() {
                c.shard += 1;
                c.offset = 0;
                continue;
            }
            let end = (c.offset + CHUNK).min(shard_keys.len());
            let customers = shard_keys[c.offset..end].to_vec();
            c.offset = end;
            let chunk = match c.engine.export_rows(c.shard, &c.entry, customers).await {
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
