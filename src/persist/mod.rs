//! Durability: the codec, the on-disk model, snapshot files, the write-ahead
//! log, and the store that takes snapshots and restores from them (SPEC §5).
//!
//! Persistence watches from the side: the engine numbers and queues log
//! records of applied changes and waits for them to be durable before it
//! answers; the store reads the engine's state chunk by chunk for snapshots.

pub mod codec;
pub mod model;
pub mod snapshot;
pub mod store;
pub mod wal;
