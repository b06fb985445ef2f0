//! Cluster mode's building blocks on NATS JetStream (SPEC §6): the engine's
//! log kept in replicated, deduplicating JetStream streams instead of local
//! files. Depends on the engine's types (partitions, positions), never the
//! other way round.
//!
//! Owns: the stream layout and the partition log client (`streams`);
//! partition leases, live nodes and rendezvous ownership (`leases`);
//! partition snapshots in the object store, fenced by the lease
//! (`snapshots`); takeover — newest snapshot plus replay of the log from
//! its position (`takeover`); the catalog followed by every node
//! (`catalog`). The owner's apply loop, request forwarding and the server's
//! `--cluster` mode come next; until then nothing in the server uses this module, and
//! single-node mode is unchanged.

pub mod catalog;
pub mod feed;
pub mod leases;
pub mod node;
pub mod owner;
pub mod service;
pub mod snapshots;
pub mod streams;
pub mod takeover;
pub mod webhooks;
pub mod wire;

pub use catalog::{follow_catalog, publish_catalog};
pub use leases::{owner_of, Lease, Leases, LiveNode, Nodes};
pub use node::{ClusterConfig, Node};
pub use owner::{OwnerStats, OwnershipView};
pub use service::Service;
pub use snapshots::{Refused, SnapshotHead, SnapshotStore};
pub use streams::{Appended, ClusterError, JetStreamLog, StreamLayout};
pub use takeover::{snapshot_partition, take_over};
