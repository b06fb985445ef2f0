//! achievements-engine: an in-memory, actor-based engine that tracks
//! customers' progress towards time-boxed achievements.
//!
//! # Layout
//! Data flows one way: HTTP → validation into domain types → the engine
//! (routing to a pair's shard or actor) → one pure domain step → effects
//! back out; the engine appends each change to its log and answers once it
//! is durable. Persistence implements the engine's log and depends on the
//! engine, never the other way round.
//!
//! - [`domain`]: pure rules — period arithmetic, achievement definitions, the
//!   catalog's entities, one pair's tracker. No actix, no I/O, no clock.
//! - [`engine`]: the actor system — partitions over shards, pair actors,
//!   timers, the catalog, backpressure, and the `Log` interface it owns.
//! - [`persist`]: the codec, on-disk formats (one module per version),
//!   snapshot files, the write-ahead log files and `FileLog` (the engine's
//!   `Log` on them), and the store that restores and snapshots.
//! - [`http`]: the actix-web front — routes, DTOs, one error type, auth,
//!   metrics.
//! - [`config`]: command-line flags and environment → validated settings.
//! - [`logging`]: log lines as text (coloured only on a terminal) or JSON.
//! - [`ops`]: operator commands on a data directory, run instead of the
//!   server: `verify` (what a restore would load or lose) and `inspect` (one
//!   customer as a restore rebuilds it). Read-only; they follow the
//!   restore's own code.
//! - [`clock`]: the only place that reads wall-clock time (a manual clock in
//!   tests).

/// jemalloc for everything built on this crate (the server, its tests,
/// benchmarks and measurement tools), so what they measure is what runs:
/// glibc's malloc and free were a fifth of the server's time under batch
/// load. Freed pages go back to the system after a few seconds, from a
/// background thread (`_rjem_malloc_conf`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start: purge from a background thread,
/// so an idle server also returns what it freed; one arena, so memory one
/// thread frees (a restore's decoded chunks) is reused by the others (the
/// shards' pairs) rather than held in an arena of its own.
#[allow(non_upper_case_globals, reason = "the symbol jemalloc looks up")]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 33] = b"background_thread:true,narenas:1\0";

pub mod clock;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod engine;
pub mod feed;
pub mod http;
pub mod logging;
pub mod ops;
pub mod persist;
