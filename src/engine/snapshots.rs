//! The engine's side of snapshots and restores, for whoever stores them
//! (`persist`): attach a log, read the catalog at a log position, walk a
//! partition's pairs, load pairs and replay records into a partition.
//! Everything goes through these methods, never the shards' messages.

use std::sync::Arc;

use super::catalog::CatalogState;
use super::error::EngineError;
use super::log::{Log, PartitionId, Position, Stream};
use super::remote::Applied;
use super::shard::{
    AttachLog, Chunk, FreezeIdle, LoadPairs, PairImage, Replay, ReplayRecord, ReservePairs,
    SnapshotBegin, SnapshotChunk, SnapshotStart, UnloadPartition,
};
use super::{shard_gone, Engine};

impl Engine {
    /// Starts logging every change to `log` (after a restore).
    pub async fn attach_log(&self, log: Arc<dyn Log>) -> Result<(), EngineError> {
        let _serial = self.catalog_writer.lock().await;
        *self.log.write().unwrap_or_else(|e| e.into_inner()) = Some(log.clone());
        for shard in self.shards.iter() {
            shard
                .send(AttachLog { log: log.clone() })
                .await
                .map_err(shard_gone)?;
        }
        if let Some(feed) = self.shared.feed() {
            feed.log_attached(log);
        }
        Ok(())
    }

    /// The catalog as of a position of its stream: every change below it is
    /// included, none from it on. Blocking (call it off the arbiters).
    pub fn catalog_at_position(&self) -> (CatalogState, Position) {
        let _serial = self.catalog_writer.blocking_lock();
        let position = self
            .log()
            .map_or(Position(0), |log| log.next_position(Stream::Catalog));
        (self.catalog.read().clone(), position)
    }

    /// Starts a snapshot of a partition (see `SnapshotBegin`).
    pub async fn snapshot_begin(&self, p: PartitionId) -> Result<SnapshotStart, EngineError> {
        self.shards[self.shard_of(p)]
            .send(SnapshotBegin { partition: p })
            .await
            .map_err(shard_gone)?
    }

    /// The next chunk of a partition's pairs in a snapshot, copied on the
    /// shard's thread (the request is on its way when this returns, not when
    /// the future is first polled).
    pub fn snapshot_chunk(
        &self,
        p: PartitionId,
        from: usize,
        max: usize,
        token: u64,
    ) -> impl std::future::Future<Output = Result<Chunk, EngineError>> + 'static {
        let request = self.shards[self.shard_of(p)].send(SnapshotChunk {
            partition: p,
            from,
            max,
            token,
        });
        async move { request.await.map_err(shard_gone)? }
    }

    /// Freezes every pair untouched for `idle` now, rather than as the
    /// shards' sweep reaches it (for tools and tests: the sweep does it in
    /// time anyway). Returns how many pairs were frozen.
    pub async fn freeze_idle(&self, idle: std::time::Duration) -> Result<usize, EngineError> {
        let mut frozen = 0;
        for p in 0..self.partitions() {
            let p = PartitionId(p);
            let mut from = 0;
            loop {
                let (next, n) = self.shards[self.shard_of(p)]
                    .send(FreezeIdle {
                        partition: p,
                        from,
                        idle,
                    })
                    .await
                    .map_err(shard_gone)??;
                frozen += n;
                if next == 0 {
                    break;
                }
                from = next;
            }
        }
        Ok(frozen)
    }

    /// Makes room for about this many pairs in every partition.
    pub async fn reserve_pairs(&self, per_partition: usize) -> Result<(), EngineError> {
        for shard in self.shards.iter() {
            shard
                .send(ReservePairs { per_partition })
                .await
                .map_err(shard_gone)?;
        }
        Ok(())
    }

    /// Loads pairs of a partition (from a snapshot).
    pub async fn load_pairs(
        &self,
        p: PartitionId,
        pairs: Vec<PairImage>,
    ) -> Result<(), EngineError> {
        self.shards[self.shard_of(p)]
            .send(LoadPairs {
                partition: p,
                pairs,
            })
            .await
            .map_err(shard_gone)?
    }

    /// Forgets a partition's pairs (its node no longer owns it); returns
    /// how many had progress.
    pub async fn unload_partition(&self, p: PartitionId) -> Result<usize, EngineError> {
        self.shards[self.shard_of(p)]
            .send(UnloadPartition { partition: p })
            .await
            .map_err(shard_gone)?
    }

    /// Applies log records of a partition again, in order; returns how many
    /// applied (records a pair already holds are skipped).
    pub async fn replay(
        &self,
        p: PartitionId,
        records: Vec<(Position, ReplayRecord)>,
    ) -> Result<usize, EngineError> {
        let applied = self.apply_logged(p, records).await?;
        Ok(applied
            .iter()
            .filter(|a| !matches!(a, Applied::Skipped))
            .count())
    }

    /// Applies records of a partition read from its log, in order, and
    /// says what each did (a cluster's owner answers their submitters
    /// with it). Records a pair already holds are skipped.
    pub async fn apply_logged(
        &self,
        p: PartitionId,
        records: Vec<(Position, ReplayRecord)>,
    ) -> Result<Vec<Applied>, EngineError> {
        self.shards[self.shard_of(p)]
            .send(Replay {
                partition: p,
                records,
            })
            .await
            .map_err(shard_gone)?
    }
}
