//! achievements-engine: an in-memory, actor-based engine that tracks customers'
//! progress towards time-boxed achievements.
//!
//! # Layout
//! - [`domain`]: pure rules — period arithmetic, achievement definitions, one
//!   pair's tracker. No actix, no I/O, no clock.
//! - [`clock`]: the only place that reads wall-clock time.
//! - [`config`]: command-line flags and environment → validated settings.
//! - [`http`]: the actix-web front.

pub mod clock;
pub mod config;
pub mod domain;
pub mod engine;
pub mod http;
pub mod persist;
