//! Achievement events: the durable feed of what happened to customers'
//! achievements, read by cursor, streamed live, and delivered to webhooks.
//!
//! Owns: the feed's storage and reads (`store`), its writer (`writer`, the
//! engine's `FeedSink`), cursors, on-disk records (`model`) and the
//! AchievementEvent shape (`event`), and webhooks (`webhooks`: registry,
//! signed deliveries with retries, durable positions). Depends on the
//! engine (what it sends) and on `persist` for files; the engine knows only
//! the `FeedSink` trait.

pub mod cursor;
pub mod event;
pub mod model;
pub mod store;
pub mod webhooks;
pub mod writer;

pub use cursor::Cursor;
pub use store::{Feed, Page, ReadError, Stored, Types};
pub use webhooks::Webhooks;
pub use writer::FeedWriter;

#[cfg(test)]
mod tests;
