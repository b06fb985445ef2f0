//! Partition ownership: leases in JetStream key-value buckets, live nodes,
//! and who should own what (rendezvous hashing).
//!
//! Owns: `Leases` (one key per partition in bucket `ACHV_LEASES`, whose
//! value is the holder's node id; taken with create-if-absent, renewed and
//! released with compare-and-set on the key's revision, gone by itself when
//! not renewed within the bucket's age limit, `--lease-secs`), `Nodes`
//! (each node's heartbeat key in `ACHV_NODES`, with its address, expiring
//! the same way) and `owner_of` (rendezvous hashing over live nodes: each
//! partition goes to the node with the highest hash of (node, partition),
//! so a node leaving moves only its own partitions). A lease's revision is
//! what fences a holder that lost it: its next compare-and-set fails.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;

use super::streams::ClusterError;
use crate::engine::log::PartitionId;

/// The leases' bucket.
pub const LEASES_BUCKET: &str = "ACHV_LEASES";
/// The live nodes' bucket.
pub const NODES_BUCKET: &str = "ACHV_NODES";

fn js_error(what: &'static str) -> impl Fn(String) -> ClusterError {
    move |reason| ClusterError::JetStream { what, reason }
}

async fn bucket(
    js: &jetstream::Context,
    name: &str,
    ttl: Duration,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: name.into(),
        history: 1,
        max_age: ttl,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
    .map_err(js_error("key-value bucket creation"))
}

/// A held lease: the partition, its holder and the revision that proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub partition: PartitionId,
    pub node: String,
    pub revision: u64,
}

/// The partition leases of a cluster.
pub struct Leases {
    kv: kv::Store,
}

fn key(p: PartitionId) -> String {
    format!("p{}", p.0)
}

impl Leases {
    /// Opens (or creates) the bucket; a lease not renewed within `ttl` ends.
    pub async fn open(
        js: &jetstream::Context,
        ttl: Duration,
        replicas: usize,
    ) -> Result<Leases, ClusterError> {
        Ok(Leases {
            kv: bucket(js, LEASES_BUCKET, ttl, replicas).await?,
        })
    }

    /// Takes partition `p` for `node` if nobody holds it (or `node` does
    /// already, say after its restart). `None`: another node holds it.
    pub async fn acquire(&self, p: PartitionId, node: &str) -> Result<Option<Lease>, ClusterError> {
        match self.kv.create(key(p), Bytes::from(node.to_string())).await {
            Ok(revision) => Ok(Some(Lease {
                partition: p,
                node: node.into(),
                revision,
            })),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.holder(p).await? {
                    Some(held) if held.node == node => self.renew(&held).await,
                    // Released or expired between the two calls: next round.
                    _ => Ok(None),
                }
            }
            Err(e) => Err(js_error("lease acquisition")(e.to_string())),
        }
    }

    /// Renews a lease; `None` if it was lost (expired and taken, or
    /// released): the holder must stop serving the partition.
    pub async fn renew(&self, lease: &Lease) -> Result<Option<Lease>, ClusterError> {
        match self
            .kv
            .update(
                key(lease.partition),
                Bytes::from(lease.node.clone()),
                lease.revision,
            )
            .await
        {
            Ok(revision) => Ok(Some(Lease {
                revision,
                ..lease.clone()
            })),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(js_error("lease renewal")(e.to_string())),
        }
    }

    /// Gives a lease up (a graceful stop hands over without waiting for it
    /// to expire). Only the revision that holds it can release it.
    pub async fn release(&self, lease: &Lease) -> Result<bool, ClusterError> {
        match self
            .kv
            .delete_expect_revision(key(lease.partition), Some(lease.revision))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(js_error("lease release")(e.to_string())),
        }
    }

    /// Who holds partition `p` now, if anyone.
    pub async fn holder(&self, p: PartitionId) -> Result<Option<Lease>, ClusterError> {
        let entry = self
            .kv
            .entry(key(p))
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("lease lookup"))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| Lease {
                partition: p,
                node: String::from_utf8_lossy(&e.value).into_owned(),
                revision: e.revision,
            }))
    }
}

/// The live nodes of a cluster.
pub struct Nodes {
    kv: kv::Store,
}

impl Nodes {
    /// Opens (or creates) the bucket; a node whose heartbeat is older than
    /// `ttl` is gone.
    pub async fn open(
        js: &jetstream::Context,
        ttl: Duration,
        replicas: usize,
    ) -> Result<Nodes, ClusterError> {
        Ok(Nodes {
            kv: bucket(js, NODES_BUCKET, ttl, replicas).await?,
        })
    }

    /// Says that `node` (reachable at `address`) is alive.
    /// Says `node` is alive and serves HTTP at `address`.
    pub async fn heartbeat(&self, node: &str, address: &str) -> Result<(), ClusterError> {
        self.kv
            .put(node_key(node), Bytes::from(format!("{node}\n{address}")))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
            .map_err(js_error("heartbeat"))
    }

    /// Leaves at once (a graceful stop), without waiting for the age.
    pub async fn leave(&self, node: &str) -> Result<(), ClusterError> {
        self.kv
            .delete(node_key(node))
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("leaving"))
    }

    /// The live nodes, sorted by id.
    pub async fn live(&self) -> Result<Vec<LiveNode>, ClusterError> {
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| e.to_string())
            .map_err(js_error("node listing"))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k
                .map_err(|e| e.to_string())
                .map_err(js_error("node listing"))?;
            let entry = self
                .kv
                .entry(k.clone())
                .await
                .map_err(|e| e.to_string())
                .map_err(js_error("node lookup"))?;
            let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
                continue;
            };
            let value = String::from_utf8_lossy(&entry.value).into_owned();
            let (id, address) = value.split_once('\n').unwrap_or((&k, &value));
            out.push(LiveNode {
                id: id.to_owned(),
                address: address.to_owned(),
                last_seen: chrono::DateTime::from_timestamp(entry.created.unix_timestamp(), 0)
                    .unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// A node that sent a heartbeat within the bucket's age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNode {
    pub id: String,
    pub address: String,
    pub last_seen: chrono::DateTime<chrono::Utc>,
}

/// A node id as a key (keys allow letters, digits and `-/_=.`; a default
/// id is an address such as `127.0.0.1:8080`).
fn node_key(node: &str) -> String {
    node.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-/_=.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn weight(node: &str, p: PartitionId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([b'/']).chain(p.0.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final mix so that nearby partitions spread well.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The node that should own partition `p` among `nodes` (rendezvous
/// hashing); `None` without nodes.
pub fn owner_of(p: PartitionId, nodes: &[String]) -> Option<&str> {
    nodes
        .iter()
        .max_by_key(|n| (weight(n, p), n.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rendezvous_spreads_partitions_and_a_leaving_node_moves_only_its_own() {
        let three = nodes(&["node-a", "node-b", "node-c"]);
        let owners: Vec<&str> = (0..256)
            .map(|p| owner_of(PartitionId(p), &three).unwrap())
            .collect();
        for n in &three {
            let count = owners.iter().filter(|o| *o == n).count();
            assert!((50..=120).contains(&count), "{n} owns {count} of 256");
        }
        // The order the nodes are listed in does not matter.
        let shuffled = nodes(&["node-c", "node-a", "node-b"]);
        for p in 0..256 {
            assert_eq!(
                owner_of(PartitionId(p), &shuffled),
                Some(owners[p as usize])
            );
        }
        // node-b leaves: only its partitions move, and they spread.
        let two = nodes(&["node-a", "node-c"]);
        for p in 0..256 {
            let now = owner_of(PartitionId(p), &two).unwrap();
            if owners[p as usize] != "node-b" {
                assert_eq!(now, owners[p as usize], "partition {p} moved needlessly");
            }
        }
        assert_eq!(owner_of(PartitionId(1), &[]), None);
    }
}
