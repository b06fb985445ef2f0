//! Durability: the codec, the on-disk model, snapshot files, the write-ahead
//! log files, the engine's `Log` on them (`FileLog`), and the store that
//! restores the engine and takes snapshots (SPEC §5).
//!
//! Persistence implements what the engine owns and depends on the engine,
//! never the other way round: the engine appends engine-level records to its
//! `Log` and waits for them to be durable before it answers; the store reads
//! the engine's state through its public API, partition by partition.

pub mod codec;
pub mod file_log;
pub mod model;
pub mod snapshot;
pub mod store;
pub mod wal;
