//! Idle pairs in a compact form: the bytes a partition keeps instead of a
//! pair's state cell once the pair has been idle a while.
//!
//! Owns: `Frozen` (a pair's tracker, log position and filed timer second as
//! variable-length bytes: about 40 for a pair with one iteration, against
//! a 160-byte cell, and about 20 more for each remembered event id, against
//! 40), freezing a cell and thawing it back. The form lives in memory only
//! and is never written to disk, so it can change freely; snapshots keep
//! their own versioned format. Must not depend on the actor system.
//!
//! A pair that remembers an event whole (its effects, when they do not fit
//! the compact form: rare) is not frozen.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::period::PeriodEnd;
use crate::domain::tracker::{AppliedChange, EventKey, RememberedEvent, TrackerParts};
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

// Flags of a remembered event.
const ROLLED_BACK: u8 = 1;
const JUST_COMPLETED: u8 = 2;
const STARTED: u8 = 4;

/// A decimal's sign, in its scale's byte (a scale is at most 28).
const NEGATIVE: u8 = 0x80;

/// A pair's state in compact bytes (see the module docs).
#[derive(Clone)]
pub struct Frozen(Box<[u8]>);

impl Frozen {
    /// The compact form of a cell's state, unless it remembers an event
    /// whole (such pairs stay as they are).
    pub fn of(cell: &PairCell) -> Option<Frozen> {
        let tracker = cell.tracker.borrow();
        Frozen::from_parts(&tracker.to_parts(), cell.last.get(), cell.armed.get())
    }

    /// The compact form of a pair's parts, its position and its filed timer
    /// second, unless it remembers an event whole.
    pub fn from_parts(parts: &TrackerParts, last: Position, armed: Option<i64>) -> Option<Frozen> {
        let whole = |e: &RememberedEvent| matches!(e.change, AppliedChange::Effects(_));
        if parts.events.iter().any(whole) {
            return None;
        }
        let mut out = Vec::with_capacity(48);
        let flags = flag(armed.is_some(), ARMED) | flag(parts.current.is_some(), CURRENT);
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
        put(&mut out, parts.events.len() as u128);
        for e in &parts.events {
            put_event(&mut out, e);
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
        let events = (0..r.unsigned()).map(|_| r.event()).collect();
        TrackerParts {
            tracker_base,
            next_seq,
            current,
            history,
            events,
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

/// `bit` if `on`.
fn flag(on: bool, bit: u8) -> u8 {
    if on {
        bit
    } else {
        0
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
    let flags = flag(it.end.is_some(), HAS_END)
        | flag(reported_differs, REPORTED_DIFFERS)
        | flag(it.completion.is_some(), HAS_COMPLETION);
    out.push(status);
    out.push(flags);
    put(out, u128::from(it.id.0.wrapping_sub(base)));
    put_decimal(out, it.progress);
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

/// A remembered event whose change is `One` (the caller checked).
fn put_event(out: &mut Vec<u8>, e: &RememberedEvent) {
    // Keys are hashes: eight bytes as they are.
    out.extend_from_slice(&e.key.0.to_le_bytes());
    put_signed(out, e.arrived.timestamp_millis().wrapping_sub(EPOCH * 1000));
    let AppliedChange::One {
        seq,
        delta,
        value,
        just_completed,
        started,
    } = &e.change
    else {
        return;
    };
    out.push(
        flag(e.rolled_back, ROLLED_BACK)
            | flag(*just_completed, JUST_COMPLETED)
            | flag(*started, STARTED),
    );
    put(out, u128::from(*seq));
    put_decimal(out, *delta);
    put_decimal(out, *value);
}

/// A decimal as its scale (with the sign's bit) and its mantissa.
fn put_decimal(out: &mut Vec<u8>, d: Decimal) {
    out.push(d.scale() as u8 | flag(d.is_sign_negative(), NEGATIVE));
    put(out, d.mantissa().unsigned_abs());
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

    fn decimal(&mut self) -> Decimal {
        let scale = self.byte();
        let m = self.unsigned();
        // Decimal's own 16-byte form (flags, then the 96-bit mantissa), which
        // keeps even a negative zero as it was.
        let sign = if scale & NEGATIVE != 0 { 1u32 << 31 } else { 0 };
        let scale = u32::from(scale & !NEGATIVE).min(28);
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&(sign | (scale << 16)).to_le_bytes());
        raw[4..].copy_from_slice(&m.to_le_bytes()[..12]);
        Decimal::deserialize(raw)
    }

    fn event(&mut self) -> RememberedEvent {
        let mut key = [0u8; 8];
        for b in &mut key {
            *b = self.byte();
        }
        let ms = (EPOCH * 1000).wrapping_add(self.signed());
        let flags = self.byte();
        let seq = self.unsigned() as u32;
        let (delta, value) = (self.decimal(), self.decimal());
        RememberedEvent {
            key: EventKey(u64::from_le_bytes(key)),
            arrived: DateTime::from_timestamp_millis(ms).unwrap_or_default(),
            rolled_back: flags & ROLLED_BACK != 0,
            change: AppliedChange::One {
                seq,
                delta,
                value,
                just_completed: flags & JUST_COMPLETED != 0,
                started: flags & STARTED != 0,
            },
        }
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
        let progress = self.decimal();
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

    fn event() -> impl Strategy<Value = RememberedEvent> {
        (
            any::<u64>(),
            // From 1900 to 2400, to the millisecond.
            -2_208_988_800_000i64..13_569_465_600_000,
            any::<[bool; 3]>(),
            any::<u32>(),
            decimal(),
            decimal(),
        )
            .prop_map(
                |(key, ms, [rolled_back, just_completed, started], seq, delta, value)| {
                    RememberedEvent {
                        key: EventKey(key),
                        arrived: DateTime::from_timestamp_millis(ms).unwrap(),
                        rolled_back,
                        change: AppliedChange::One {
                            seq,
                            delta,
                            value,
                            just_completed,
                            started,
                        },
                    }
                },
            )
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
            events in proptest::collection::vec(event(), 0..6),
        ) {
            // A tracker keeps its remembered events by key, once each.
            let mut events = events;
            events.sort_by_key(|e| e.key.0);
            events.dedup_by_key(|e| e.key.0);
            let parts = TrackerParts {
                tracker_base: base,
                next_seq,
                current,
                history,
                events,
            };
            let frozen = Frozen::from_parts(&parts, Position(last), armed)
                .expect("every change fits the compact form");
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
