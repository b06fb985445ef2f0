//! Idle pairs in a compact form: the bytes a partition keeps instead of a
//! pair's state cell once the pair has been idle a while.
//!
//! Owns: `Frozen` (a pair's tracker, log position and filed timer second as
//! variable-length bytes: about 40 for a pair with one iteration, against
//! a 160-byte cell), freezing a cell and thawing it back. The form lives in
//! memory only and is never written to disk, so it can change freely;
//! snapshots keep their own versioned format. Must not depend on the actor
//! system.
//!
//! Pairs that remember event ids are not frozen: their ids, not the rest of
//! their state, decide their size, and they are pruned as they are touched.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::period::PeriodEnd;
use crate::domain::tracker::TrackerParts;
use crate::domain::{Iteration, PairTracker, ProgressStatus, ProgressTrackerId};
use crate::engine::log::Position;
use crate::engine::pair::PairCell;

/// Seconds are written relative to this instant (2026-01-01T00:00:00Z), so
/// the instants of live pairs take 4 or 5 bytes instead of 9.
const EPOCH: i64 = 1_767_225_600;

// Flags of a frozen pair (first byte).
const ARMED: u8 = 1;
const CURRENT: u8 = 2;

// Flags of an iteration (its second byte; the first is its status).
const HAS_END: u8 = 1;
const REPORTED_DIFFERS: u8 = 2;
const HAS_COMPLETION: u8 = 4;
const NEGATIVE: u8 = 8;

/// A pair's state in compact bytes (see the module docs).
pub struct Frozen(Box<[u8]>);

impl Frozen {
    /// The compact form of a cell's state, unless its tracker remembers
    /// event ids (such pairs stay as they are).
    pub fn of(cell: &PairCell) -> Option<Frozen> {
        let tracker = cell.tracker.borrow();
        if tracker.remembered_events() > 0 {
            return None;
        }
        Frozen::from_parts(&tracker.to_parts(), cell.last.get(), cell.armed.get())
    }

    /// The compact form of a pair's parts, its position and its filed timer
    /// second, unless it remembers event ids.
    pub fn from_parts(parts: &TrackerParts, last: Position, armed: Option<i64>) -> Option<Frozen> {
        if !parts.events.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(48);
        let flags = if armed.is_some() { ARMED } else { 0 }
            | if parts.current.is_some() { CURRENT } else { 0 };
        out.push(flags);
        if let Some(second) = armed {
            put_signed(&mut out, second.wrapping_sub(EPOCH));
        }
        put(&mut out, u128::from(last.0));
        put(&mut out, u128::from(parts.tracker_base));
        put(&mut out, u128::from(parts.next_seq));
        let base = parts.tracker_base;
        if let Some(current) = &parts.current {
            put_iteration(&mut out, base, current);
        }
        put(&mut out, parts.history.len() as u128);
        for it in &parts.history {
            put_iteration(&mut out, base, it);
        }
        let frozen = Frozen(out.into_boxed_slice());
        debug_assert!(
            &frozen.parts() == parts && frozen.last() == last && frozen.armed() == armed,
            "a frozen pair reads back as it was"
        );
        Some(frozen)
    }

    /// The timer second the pair is filed under, if any.
    pub fn armed(&self) -> Option<i64> {
        let mut r = Reader(&self.0);
        let flags = r.byte();
        (flags & ARMED != 0).then(|| r.signed().wrapping_add(EPOCH))
    }

    /// The log position of the pair's last change.
    pub fn last(&self) -> Position {
        self.header().1
    }

    /// Where the bytes are (to prefetch them).
    pub fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    /// Reads the flags, armed second and position, leaving the reader at
    /// the tracker.
    fn header(&self) -> (Reader<'_>, Position, u8, Option<i64>) {
        let mut r = Reader(&self.0);
        let flags = r.byte();
        let armed = (flags & ARMED != 0).then(|| r.signed().wrapping_add(EPOCH));
        let last = Position(r.unsigned() as u64);
        (r, last, flags, armed)
    }

    /// The tracker's parts.
    pub fn parts(&self) -> TrackerParts {
        let (mut r, _, flags, _) = self.header();
        let tracker_base = r.unsigned() as u64;
        let next_seq = r.unsigned() as u32;
        let current = (flags & CURRENT != 0).then(|| r.iteration(tracker_base));
        let history = (0..r.unsigned())
            .map(|_| r.iteration(tracker_base))
            .collect();
        TrackerParts {
            tracker_base,
            next_seq,
            current,
            history,
            events: Vec::new(),
        }
    }

    /// The pair's tracker (for a read that leaves the pair frozen).
    pub fn tracker(&self) -> PairTracker {
        PairTracker::from_parts(self.parts())
    }

    /// The pair as a live cell again, with its position and timer second.
    pub fn thaw(&self) -> Rc<PairCell> {
        let cell = PairCell::new(self.tracker());
        cell.last.set(self.last());
        cell.armed.set(self.armed());
        cell
    }
}

fn put_iteration(out: &mut Vec<u8>, base: u64, it: &Iteration) {
    let status = match it.status {
        ProgressStatus::NotStarted => 0,
        ProgressStatus::InProgress => 1,
        ProgressStatus::Completed => 2,
        ProgressStatus::Expired => 3,
    };
    let reported_differs = it.end.is_some_and(|e| e.reported != e.end);
    let flags = if it.end.is_some() { HAS_END } else { 0 }
        | if reported_differs {
            REPORTED_DIFFERS
        } else {
            0
        }
        | if it.completion.is_some() {
            HAS_COMPLETION
        } else {
            0
        }
        | if it.progress.is_sign_negative() {
            NEGATIVE
        } else {
            0
        };
    out.push(status);
    out.push(flags);
    put(out, u128::from(it.id.0.wrapping_sub(base)));
    out.push(it.progress.scale() as u8);
    put(out, it.progress.mantissa().unsigned_abs());
    let start = it.start.timestamp();
    put_signed(out, start.wrapping_sub(EPOCH));
    put(out, u128::from(it.start.timestamp_subsec_nanos()));
    if let Some(end) = it.end {
        put_instant(out, start, end.end);
        if reported_differs {
            put_instant(out, end.end.timestamp(), end.reported);
        }
    }
    if let Some(completion) = it.completion {
        put_instant(out, start, completion);
    }
}

/// An instant as seconds after `from` and its nanoseconds.
fn put_instant(out: &mut Vec<u8>, from: i64, t: DateTime<Utc>) {
    put_signed(out, t.timestamp().wrapping_sub(from));
    put(out, u128::from(t.timestamp_subsec_nanos()));
}

/// LEB128: seven bits a byte, low bits first.
fn put(out: &mut Vec<u8>, mut n: u128) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Zigzag, then LEB128: small magnitudes of either sign stay short.
fn put_signed(out: &mut Vec<u8>, n: i64) {
    put(out, u128::from(((n << 1) ^ (n >> 63)) as u64));
}

/// Reads what the `put` functions wrote. The bytes are always the engine's
/// own, so running out cannot happen; it would read zeros, never panic.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }

    fn unsigned(&mut self) -> u128 {
        let mut n = 0u128;
        let mut shift = 0;
        loop {
            let b = self.byte();
            if shift < 128 {
                n |= u128::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return n;
            }
        }
    }

    fn signed(&mut self) -> i64 {
        let z = self.unsigned() as u64;
        ((z >> 1) as i64) ^ -((z & 1) as i64)
    }

    fn instant(&mut self, from: i64) -> DateTime<Utc> {
        let secs = from.wrapping_add(self.signed());
        let nanos = self.unsigned() as u32;
        DateTime::from_timestamp(secs, nanos).unwrap_or_default()
    }

    fn iteration(&mut self, base: u64) -> Iteration {
        let status = match self.byte() {
            0 => ProgressStatus::NotStarted,
            1 => ProgressStatus::InProgress,
            2 => ProgressStatus::Completed,
            _ => ProgressStatus::Expired,
        };
        let flags = self.byte();
        let id = ProgressTrackerId(base.wrapping_add(self.unsigned() as u64));
        let scale = u32::from(self.byte());
        let m = self.unsigned();
        // Decimal's own 16-byte form (flags, then the 96-bit mantissa), which
        // keeps even a negative zero as it was.
        let sign = if flags & NEGATIVE != 0 { 1u32 << 31 } else { 0 };
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&(sign | (scale.min(28) << 16)).to_le_bytes());
        raw[4..].copy_from_slice(&m.to_le_bytes()[..12]);
        let progress = Decimal::deserialize(raw);
        let start_secs = EPOCH.wrapping_add(self.signed());
        let start =
            DateTime::from_timestamp(start_secs, self.unsigned() as u32).unwrap_or_default();
        let end = (flags & HAS_END != 0).then(|| {
            let end = self.instant(start_secs);
            let reported = if flags & REPORTED_DIFFERS != 0 {
                self.instant(end.timestamp())
            } else {
                end
            };
            PeriodEnd { end, reported }
        });
        let completion = (flags & HAS_COMPLETION != 0).then(|| self.instant(start_secs));
        Iteration {
            id,
            status,
            progress,
            start,
            end,
            completion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        // From 1900 to 2400, to the nanosecond.
        (-2_208_988_800i64..13_569_465_600, 0u32..1_000_000_000)
            .prop_map(|(s, n)| Utc.timestamp_opt(s, n).unwrap())
    }

    fn decimal() -> impl Strategy<Value = Decimal> {
        (any::<[u32; 3]>(), any::<bool>(), 0u32..=28)
            .prop_map(|([lo, mid, hi], neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale))
    }

    fn iteration() -> impl Strategy<Value = Iteration> {
        (
            any::<u64>(),
            0u8..4,
            decimal(),
            instant(),
            proptest::option::of((instant(), proptest::option::of(instant()))),
            proptest::option::of(instant()),
        )
            .prop_map(|(id, status, progress, start, end, completion)| Iteration {
                id: ProgressTrackerId(id),
                status: [
                    ProgressStatus::NotStarted,
                    ProgressStatus::InProgress,
                    ProgressStatus::Completed,
                    ProgressStatus::Expired,
                ][status as usize],
                progress,
                start,
                end: end.map(|(end, reported)| PeriodEnd {
                    end,
                    reported: reported.unwrap_or(end),
                }),
                completion,
            })
    }

    fn cell_of(parts: TrackerParts, last: u64, armed: Option<i64>) -> Rc<PairCell> {
        let cell = PairCell::new(PairTracker::from_parts(parts));
        cell.last.set(Position(last));
        cell.armed.set(armed);
        cell
    }

    proptest! {
        #[test]
        fn a_frozen_pair_thaws_to_the_same_state(
            base in any::<u64>(),
            next_seq in any::<u32>(),
            current in proptest::option::of(iteration()),
            history in proptest::collection::vec(iteration(), 0..4),
            last in any::<u64>(),
            armed in proptest::option::of(any::<i64>()),
        ) {
            let parts = TrackerParts {
                tracker_base: base,
                next_seq,
                current,
                history,
                events: Vec::new(),
            };
            let cell = cell_of(parts.clone(), last, armed);
            let frozen = Frozen::of(&cell).expect("no remembered ids");
            prop_assert_eq!(frozen.parts(), parts.clone());
            prop_assert_eq!(frozen.last(), Position(last));
            prop_assert_eq!(frozen.armed(), armed);
            let thawed = frozen.thaw();
            prop_assert_eq!(thawed.tracker.borrow().to_parts(), parts);
            prop_assert_eq!(thawed.last.get(), Position(last));
            prop_assert_eq!(thawed.armed.get(), armed);
        }
    }

    #[test]
    fn a_live_pair_with_one_iteration_takes_at_most_40_bytes() {
        let start = Utc.with_ymd_and_hms(2026, 11, 29, 17, 3, 12).unwrap();
        let end = start + chrono::Duration::days(1);
        let parts = TrackerParts {
            tracker_base: 9_999_999 << 24,
            next_seq: 1,
            current: Some(Iteration {
                id: ProgressTrackerId(9_999_999 << 24),
                status: ProgressStatus::InProgress,
                progress: Decimal::new(12_345, 2),
                start,
                end: Some(PeriodEnd::exact(end)),
                completion: None,
            }),
            history: Vec::new(),
            events: Vec::new(),
        };
        let cell = cell_of(parts, 123_456_789, Some(end.timestamp()));
        let frozen = Frozen::of(&cell).expect("no remembered ids");
        assert!(frozen.0.len() <= 40, "{} bytes", frozen.0.len());
    }

    #[test]
    fn negative_zero_progress_keeps_its_sign() {
        // Scale 3, sign bit set, mantissa 0 (`from_parts` would drop the sign).
        let zero = Decimal::deserialize([0, 0, 3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(zero.is_sign_negative());
        let it = Iteration {
            id: ProgressTrackerId(7),
            status: ProgressStatus::InProgress,
            progress: zero,
            start: Utc.timestamp_opt(0, 0).unwrap(),
            end: None,
            completion: None,
        };
        let mut out = Vec::new();
        put_iteration(&mut out, 0, &it);
        let back = Reader(&out).iteration(0);
        assert!(back.progress.is_sign_negative());
        assert_eq!(back.progress.scale(), 3);
        assert_eq!(back.progress.serialize(), zero.serialize());
    }
}
