//! What every node follows: the catalog's log (applied in order; a
//! deleted achievement's pairs dropped), catalog changes appended after the
//! position followed, and the marks of achievements that have progress.

use super::requests::fresh_id;
use super::*;

/// Applies every catalog record, in order, as it is stored.
pub(super) async fn follow_catalog(inner: Arc<Inner>) {
    loop {
        let from = Position(inner.catalog_at.borrow().0 + 1);
        let mut records = match inner.log.tail_catalog(from).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the catalog; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(msg) = records.next().await {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "the catalog's consumer failed; following again");
                    break;
                }
            };
            let Ok(info) = msg.info() else { continue };
            let position = Position(info.stream_sequence);
            if position.0 <= inner.catalog_at.borrow().0 {
                continue;
            }
            match decode_catalog_record(&msg.payload) {
                Ok(record) => apply_catalog(&inner.engine, &record).await,
                Err(e) => {
                    tracing::error!(?position, error = %e, "a catalog record cannot be read; skipped")
                }
            }
            inner.catalog_at.send_replace(position);
        }
    }
}

/// Marks achievements that some node recorded as having progress (the
/// bucket's keys now, then each new one as it comes).
pub(super) async fn follow_progress(inner: Arc<Inner>) {
    loop {
        let watched = inner
            .meta
            .watch_with_history(format!("{PROGRESS_PREFIX}>"))
            .await;
        let mut updates = match watched {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch achievements' progress marks; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(Ok(entry)) = updates.next().await {
            let Some(id) = entry
                .key
                .strip_prefix(PROGRESS_PREFIX)
                .and_then(|id| id.parse().ok())
                .map(crate::domain::AchievementId)
            else {
                continue;
            };
            // The catalog may still be following the achievement's creation.
            for _ in 0..50 {
                let found = inner.engine.catalog.read().achievements.get(&id).cloned();
                if let Some(e) = found {
                    e.mark_progress();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Applies a catalog record here; a deleted achievement's pairs go from
/// the partitions this node holds.
async fn apply_catalog(engine: &Engine, record: &CatalogRecord) {
    let doomed = match record {
        CatalogRecord::DeleteAchievement(id) => engine.catalog.read().achievements.get(id).cloned(),
        _ => None,
    };
    engine.catalog.apply(record);
    if let Some(entry) = doomed {
        if let Err(e) = engine.drop_pairs(entry).await {
            tracing::error!(error = %e, "cannot drop a deleted achievement's pairs");
        }
    }
}

impl Inner {
    /// Records, once, that an achievement has progress (every node marks
    /// it from the meta bucket).
    pub(in crate::cluster) async fn tell_progress(
        &self,
        entries: &[Arc<crate::engine::AchievementEntry>],
    ) {
        for entry in entries {
            let id = entry.achievement.id;
            if !entry.has_progress() || lock(&self.progress_told).contains(&id) {
                continue;
            }
            let key = format!("{PROGRESS_PREFIX}{}", id.0);
            let told = match self.meta.create(&key, Bytes::from_static(b"1")).await {
                Ok(_) => true,
                Err(e) => e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists,
            };
            if told {
                lock(&self.progress_told).insert(id);
            }
        }
    }

    /// Waits until the catalog here has every record stored so far.
    pub(in crate::cluster) async fn catalog_sync(&self) -> Result<(), ClusterError> {
        let last = self.log.catalog_last().await?;
        let mut at = self.catalog_at.subscribe();
        tokio::time::timeout(self.config.wait.max(Duration::from_secs(5)), async {
            while at.borrow_and_update().0 < last.0 {
                if at.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(|_| js_error("catalog", "the catalog did not catch up in time"))
    }

    pub(super) async fn catalog_append(&self, record: CatalogRecord) -> Result<bool, EngineError> {
        let bytes = encode_catalog_record(&record).map_err(|e| {
            tracing::error!(error = %e, "cannot encode a catalog record");
            EngineError::Internal("cannot encode a catalog record")
        })?;
        let last = *self.catalog_at.borrow();
        let stored = self
            .log
            .append_catalog_after(last, &fresh_id(), Bytes::from(bytes))
            .await
            .map_err(unavailable("cannot append a catalog record"))?;
        let Some(stored) = stored else {
            return Ok(false);
        };
        let mut at = self.catalog_at.subscribe();
        tokio::time::timeout(self.config.wait, async {
            while at.borrow_and_update().0 < stored.position.0 {
                if at.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(|_| {
            EngineError::Unavailable("the catalog change is stored but not yet applied here")
        })?;
        Ok(true)
    }
}
