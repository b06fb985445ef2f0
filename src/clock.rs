//! The only place that reads wall-clock time.
//!
//! Everything else receives instants as parameters, which keeps the domain
//! deterministic and lets tests pin time.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The current instant, truncated to milliseconds (the precision the engine
/// records and reports).
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}
