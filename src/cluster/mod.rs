//! Cluster mode on NATS JetStream (SPEC §6): the engine's `Remote` with
//! partition and catalog logs in replicated, deduplicating JetStream
//! streams. Depends on the engine's types and interfaces, never the other
//! way round; single-node mode does not use it.
//!
//! Owns: the stream layout and log client (`streams`); leases, live nodes
//! and rendezvous ownership (`leases`); a node — joining, submitting
//! records and awaiting owners' answers, reads, the catalog it follows
//! (`node`); owning partitions — takeover, the apply loop, hand-over
//! (`owner`, `takeover`); partition snapshots fenced by the lease
//! (`snapshots`); the feed stream (`feed`); shared webhooks (`webhooks`);
//! what nodes send each other (`wire`); the node's own thread (`service`);
//! catalog helpers for tools and tests (`catalog`).

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
