//! Taking a snapshot while traffic flows: the catalog at a log position,
//! then each partition chunk by chunk (its shard serves other messages
//! between chunks), then the header; older snapshots beyond `keep` and the
//! log records only they needed are deleted.

use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_executor::block_on;

use super::{SnapshotInfo, Store, StoreError, CHUNK_PAIRS};
use std::sync::Mutex;

use crate::engine::error::EngineError;
use crate::engine::log::PartitionId;
use crate::engine::shard::PairImage;
use crate::engine::Engine;
use crate::persist::codec;
use crate::persist::model::{CatalogV2, ChunkV5, PairV5, TrackerV5};
use crate::persist::snapshot::{self, Covered, SnapshotWriter};

/// A chunk of a partition's pairs as a snapshot section (`ChunkV5`).
pub fn encode_chunk(partition: PartitionId, pairs: Vec<PairImage>) -> Result<Vec<u8>, String> {
    let chunk = ChunkV5 {
        partition: partition.0,
        pairs: pairs
            .iter()
            .map(|image| PairV5 {
                achievement: image.key.achievement.0,
                customer: image.key.customer.as_str().to_string(),
                last_lsn: image.last.0,
                tracker: TrackerV5::from(&image.tracker),
            })
            .collect(),
    };
    codec::encode(&chunk).map_err(|e| e.to_string())
}

/// Walks the partitions of shard `shard`, chunk by chunk, and notes where
/// each partition's log stood. The next chunk is asked for only once this
/// one is written: asked ahead, the shard was copying without a pause for
/// the whole snapshot, and the events behind each copy waited (p90 under
/// load 1.8 ms instead of 1.1-1.3).
async fn walk(
    engine: &Engine,
    shard: usize,
    positions: &Mutex<Vec<u64>>,
    writer: &Mutex<SnapshotWriter>,
) -> Result<(), StoreError> {
    let (partitions, shards) = (engine.partitions(), engine.shard_count());
    let mine = (0..partitions).filter(|p| *p as usize % shards == shard);
    for p in mine.map(PartitionId) {
        let begin = engine.snapshot_begin(p).await?;
        positions.lock().unwrap_or_else(|e| e.into_inner())[p.0 as usize] = begin.next.0;
        let mut from = Some(0);
        while let Some(at) = from {
            let chunk = engine
                .snapshot_chunk(p, at, CHUNK_PAIRS, begin.token)
                .await?;
            from = (!chunk.done).then_some(chunk.next);
            if chunk.is_empty() {
                continue;
            }
            let n = chunk.len();
            let bytes = encode_chunk(p, chunk.into_images()).map_err(|e| {
                tracing::error!(error = %e, "cannot encode a snapshot chunk");
                EngineError::Internal("cannot encode a snapshot chunk")
            })?;
            writer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_encoded_chunk(&bytes, n)?;
        }
    }
    Ok(())
}

/// Moves the calling thread to `SCHED_IDLE`: it runs only on a core
/// that no thread serving traffic wants, and any of them that wakes takes
/// the core at once (at nice 10 a waking event thread could still wait
/// behind a walk). The snapshot takes a little longer under load (1 M
/// pairs beside 4 connections of events: 1.2–1.4 s instead of 1.1–1.2 s)
/// and, on a saturated machine, still progresses at a smaller share (under
/// 64 connections: 4.6–8.6 s instead of 2.8–5.3 s; a snapshot must end, or
/// the log is never pruned). Where the policy is refused, nice 10. Only
/// this thread is affected (Linux applies both to a thread alone).
fn yield_to_traffic() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain system calls on this thread (0: the caller; a
        // thread id for `setpriority`).
        let failed = unsafe {
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0
                && libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) != 0
        };
        if failed {
            tracing::debug!("cannot lower a snapshot thread's priority");
        }
    }
}

impl Store {
    /// Takes a snapshot. Blocking; one at a time.
    pub fn snapshot(&self, engine: &Engine) -> Result<SnapshotInfo, StoreError> {
        let span = tracing::info_span!(
            "snapshot",
            id = tracing::field::Empty,
            pairs = tracing::field::Empty,
            bytes = tracing::field::Empty,
            millis = tracing::field::Empty,
        )
        .entered();
        match self.write_snapshot(engine) {
            Ok(info) => {
                span.record("id", info.id);
                span.record("pairs", info.pairs);
                span.record("bytes", info.bytes);
                span.record("millis", info.duration.map_or(0, |d| d.as_millis() as u64));
                self.snapshots.fetch_add(1, Ordering::Relaxed);
                *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
                Ok(info)
            }
            Err(e) => {
                self.snapshot_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn write_snapshot(&self, engine: &Engine) -> Result<SnapshotInfo, StoreError> {
        let _one = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let created = engine.now();
        let id = snapshot::list(&self.dir)?.last().map_or(1, |s| s.id + 1);
        let (catalog, catalog_position) = engine.catalog_at_position();
        let partitions = engine.partitions();
        let mut writer = SnapshotWriter::create(&self.dir, id, partitions as usize)?;
        writer.write_catalog(&CatalogV2::from(&catalog))?;
        drop(catalog);
        // One walk per shard, all at once, each on a thread of its own: the
        // shards only copy their pairs, the walks encode and write them;
        // chunks name their partition, so their order in the file is free.
        let positions = Mutex::new(vec![0u64; partitions as usize]);
        let writer = Mutex::new(writer);
        let shards = engine.shard_count();
        std::thread::scope(|scope| {
            let walks = (0..shards)
                .map(|s| {
                    let (positions, writer) = (&positions, &writer);
                    std::thread::Builder::new()
                        .name("snapshot".into())
                        .spawn_scoped(scope, move || {
                            yield_to_traffic();
                            block_on(walk(engine, s, positions, writer))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            walks.into_iter().try_for_each(|walk| {
                walk.join()
                    .unwrap_or(Err(StoreError::Engine(EngineError::Internal(
                        "a snapshot walk panicked",
                    ))))
            })
        })?;
        // Every feed entry of a record below these positions was sent before
        // the walk began; once the feed has stored them, the log below the
        // positions may go.
        block_on(engine.feed_barrier());
        let (writer, positions) = (
            writer.into_inner().unwrap_or_else(|e| e.into_inner()),
            positions.into_inner().unwrap_or_else(|e| e.into_inner()),
        );
        let (_, bytes, pairs) = writer.finish(
            created,
            catalog_position.0,
            positions,
            engine.shared().pair_numbers(),
        )?;
        let kept = snapshot::retain_newest(&self.dir, self.keep)?;
        if let Some(oldest) = kept.first() {
            let header = snapshot::read_header(&oldest.path)?;
            if let Covered::Partitions(positions) = &header.covered {
                self.log.prune(header.catalog_position, positions);
            }
        }
        let duration = started.elapsed();
        tracing::info!(
            id,
            pairs,
            bytes,
            millis = duration.as_millis() as u64,
            "snapshot written"
        );
        Ok(SnapshotInfo {
            id,
            created,
            pairs,
            bytes,
            duration: Some(duration),
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_walk_thread_yields_to_traffic_and_others_do_not() {
        let (policy, nice) = std::thread::spawn(|| {
            super::yield_to_traffic();
            // SAFETY: reads of this thread's own scheduling settings.
            unsafe {
                (
                    libc::sched_getscheduler(0),
                    libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t),
                )
            }
        })
        .join()
        .expect("thread");
        assert!(
            policy == libc::SCHED_IDLE || nice == 10,
            "policy {policy}, nice {nice}"
        );
        // The caller's thread is untouched.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }
}
