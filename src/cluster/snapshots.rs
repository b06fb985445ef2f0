//! Partition snapshots in the JetStream object store, with the log
//! position they cover, committed only by the partition's lease holder.
//!
//! Owns: `SnapshotStore`. A snapshot is an object (`p<partition>-<position>-
//! <lease revision>` in bucket `ACHV_SNAPSHOTS`); what a takeover loads is
//! the partition's head in key-value bucket `ACHV_SNAPSHOT_HEADS`, which
//! names the object and its position. A commit stores the object, then
//! moves the head with compare-and-set, only if the committer's lease is
//! still the one in force (its revision) and the position does not go
//! backwards — so a node that lost its lease (a zombie) cannot replace a
//! newer snapshot. The object of a head that was replaced is deleted.

use async_nats::jetstream::{self, kv, object_store};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::leases::{Lease, Leases};
use super::streams::ClusterError;
use crate::engine::log::{PartitionId, Position};

/// The snapshots' object bucket and heads' key-value bucket.
pub const SNAPSHOTS_BUCKET: &str = "ACHV_SNAPSHOTS";
pub const HEADS_BUCKET: &str = "ACHV_SNAPSHOT_HEADS";

fn js_error(what: &'static str) -> impl Fn(String) -> ClusterError {
    move |reason| ClusterError::JetStream { what, reason }
}

/// A partition's newest committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHead {
    pub object: String,
    /// The log is covered up to (not including) this position.
    pub position: Position,
    pub lease_revision: u64,
}

impl SnapshotHead {
    fn encode(&self) -> Bytes {
        Bytes::from(format!(
            "{} {} {}",
            self.object, self.position.0, self.lease_revision
        ))
    }

    fn decode(bytes: &[u8]) -> Option<SnapshotHead> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split(' ');
        let object = parts.next()?.to_string();
        let position = Position(parts.next()?.parse().ok()?);
        let lease_revision = parts.next()?.parse().ok()?;
        Some(SnapshotHead {
            object,
            position,
            lease_revision,
        })
    }
}

/// Why a commit did not move the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The committer no longer holds the lease (or holds a newer one).
    LeaseLost,
    /// The head covers more of the log already.
    Older,
    /// Another commit moved the head meanwhile.
    Raced,
}

pub struct SnapshotStore {
    objects: object_store::ObjectStore,
    heads: kv::Store,
}

fn key(p: PartitionId) -> String {
    format!("p{}", p.0)
}

impl SnapshotStore {
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<SnapshotStore, ClusterError> {
        let objects = match js.get_object_store(SNAPSHOTS_BUCKET).await {
            Ok(o) => o,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: SNAPSHOTS_BUCKET.into(),
                    num_replicas: replicas.max(1),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())
                .map_err(js_error("object store creation"))?,
        };
        let heads = match js.get_key_value(HEADS_BUCKET).await {
            Ok(h) => h,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: HEADS_BUCKET.into(),
                    history: 1,
                    num_replicas: replicas.max(1),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())
                .map_err(js_error("key-value bucket creation"))?,
        };
        Ok(SnapshotStore { objects, heads })
    }

    async fn head_entry(
        &self,
        p: PartitionId,
    ) -> Result<Option<(u64, SnapshotHead)>, ClusterError> {
        let entry = self
            .heads
            .entry(key(p))
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("snapshot head lookup"))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .and_then(|e| SnapshotHead::decode(&e.value).map(|h| (e.revision, h))))
    }

    /// The partition's newest snapshot head, if any.
    pub async fn head(&self, p: PartitionId) -> Result<Option<SnapshotHead>, ClusterError> {
        Ok(self.head_entry(p).await?.map(|(_, h)| h))
    }

    /// Commits `bytes` as the snapshot of `lease`'s partition covering the
    /// log up to `position`.
    pub async fn commit(
        &self,
        leases: &Leases,
        lease: &Lease,
        position: Position,
        bytes: &[u8],
    ) -> Result<Result<SnapshotHead, Refused>, ClusterError> {
        let p = lease.partition;
        let head = SnapshotHead {
            // Unique per attempt: a refused attempt deletes only its own
            // object, never one a head points to.
            object: format!(
                "p{}-{}-{}-{:08x}",
                p.0,
                position.0,
                lease.revision,
                rand::random::<u32>()
            ),
            position,
            lease_revision: lease.revision,
        };
        let mut reader = bytes;
        self.objects
            .put(head.object.as_str(), &mut reader)
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("snapshot upload"))?;
        let object = head.object.clone();
        let refused = |why| async move {
            let _ = self.objects.delete(object.as_str()).await;
            Ok(Err(why))
        };
        let current = self.head_entry(p).await?;
        if current.as_ref().is_some_and(|(_, h)| h.position > position) {
            return refused(Refused::Older).await;
        }
        if leases.holder(p).await?.as_ref() != Some(lease) {
            return refused(Refused::LeaseLost).await;
        }
        // Refused for certain: another commit moved the head first. Any
        // other failure may have moved it all the same (an answer lost):
        // the object stays, and the error is returned.
        let moved = match &current {
            None => match self.heads.create(key(p), head.encode()).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e.to_string()),
            },
            Some((revision, _)) => {
                match self.heads.update(key(p), head.encode(), *revision).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        match moved {
            Ok(true) => {}
            Ok(false) => return refused(Refused::Raced).await,
            Err(e) => return Err(js_error("snapshot head update")(e)),
        }
        if let Some((_, old)) = current.filter(|(_, old)| old.object != head.object) {
            let _ = self.objects.delete(old.object).await;
        }
        Ok(Ok(head))
    }

    /// The partition's newest snapshot: its position and bytes.
    pub async fn latest(
        &self,
        p: PartitionId,
    ) -> Result<Option<(Position, Vec<u8>)>, ClusterError> {
        let Some(head) = self.head(p).await? else {
            return Ok(None);
        };
        let mut object = match self.objects.get(head.object.as_str()).await {
            Ok(o) => o,
            // The head names an object that is gone: the partition's log
            // is never cut, so replaying all of it gives the same state.
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => {
                tracing::error!(partition = p.0, object = %head.object, "a partition's snapshot is missing; replaying its whole log");
                return Ok(None);
            }
            Err(e) => return Err(js_error("snapshot download")(e.to_string())),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("snapshot download"))?;
        Ok(Some((head.position, bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_read_back_and_garbage_is_no_head() {
        let h = SnapshotHead {
            object: "p7-120-9".into(),
            position: Position(120),
            lease_revision: 9,
        };
        assert_eq!(SnapshotHead::decode(&h.encode()), Some(h));
        for bad in [&b""[..], b"p7", b"p7 x 9", b"p7 1", b"\xff\xfe"] {
            assert_eq!(SnapshotHead::decode(bad), None);
        }
    }
}
