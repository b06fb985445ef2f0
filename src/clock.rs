//! The only place that reads wall-clock time.
//!
//! Owns: `Clock`, the handle every other layer asks for "now". In production
//! it reads the system clock; in tests it is a manual clock that only moves
//! when told to, so expiry and lateness can be tested without sleeping. The
//! domain never sees a clock: it receives instants as parameters.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// A source of "now". Cheap to clone; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: milliseconds since the Unix epoch,
    /// moved by `set` and `advance` only.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `start` (truncated to milliseconds) until it is
    /// moved.
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(start.timestamp_millis()))),
        }
    }

    /// The current instant, truncated to milliseconds (the precision the
    /// engine records and reports).
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => {
                let t = Utc::now();
                t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
            }
            Some(ms) => {
                DateTime::from_timestamp_millis(ms.load(Ordering::Acquire)).unwrap_or_default()
            }
        }
    }

    /// Whether this clock only moves when told to.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock forward (or back, with a negative delta); a
    /// system clock is not moved.
    pub fn advance(&self, by: TimeDelta) {
        if let Some(ms) = &self.manual {
            ms.fetch_add(by.num_milliseconds(), Ordering::AcqRel);
        }
    }

    /// Sets a manual clock; a system clock is not moved.
    pub fn set(&self, to: DateTime<Utc>) {
        if let Some(ms) = &self.manual {
            ms.store(to.timestamp_millis(), Ordering::Release);
        }
    }
}

/// The current instant of the system clock (for code that has no engine at
/// hand, such as file names and tools).
pub fn now() -> DateTime<Utc> {
    Clock::system().now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let clock = Clock::manual(start);
        let other = clock.clone();
        assert_eq!(clock.now().timestamp_millis(), start.timestamp_millis());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(clock.now().timestamp_millis(), start.timestamp_millis());
        other.advance(TimeDelta::seconds(90));
        assert_eq!(clock.now() - other.now(), TimeDelta::zero());
        assert_eq!(
            clock.now().timestamp_millis(),
            start.timestamp_millis() + 90_000
        );
        clock.set(start);
        assert_eq!(other.now().timestamp_millis(), start.timestamp_millis());
        assert!(clock.is_manual());
    }

    #[test]
    fn the_system_clock_is_whole_milliseconds_and_cannot_be_moved() {
        let clock = Clock::system();
        let before = clock.now();
        clock.advance(TimeDelta::days(365));
        let after = clock.now();
        assert!(after >= before && after - before < TimeDelta::days(1));
        assert_eq!(after.timestamp_subsec_nanos() % 1_000_000, 0);
        assert!(!clock.is_manual());
    }
}
