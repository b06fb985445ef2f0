//! The applied `eventId`s a pair remembers (SPEC §3 "Idempotency",
//! "Rollback"), compactly: every client sends an id with every event and
//! ids are kept for days, so at millions of customers the ids, not the
//! pairs, would decide the memory.
//!
//! Owns: `EventKey` (an id as remembered: a 64-bit SipHash-1-3 of its text),
//! `AppliedChange` (what an increase did: one iteration increased, opened
//! by it or not — nearly every event — or its effects as told), and
//! `Remembered`, a pair's ids in 40 bytes each: key, arrival to the
//! millisecond, the change's tracker, delta and resulting value as 64-bit
//! mantissas with their scales, and flags. What does not fit (effects over
//! several iterations, amounts beyond 64-bit mantissas) is kept whole
//! beside them. A duplicate's answer is rebuilt from the change, the
//! achievement's target (it cannot change while customers have progress)
//! and the iteration's dates; an iteration about to leave the history
//! first has the changes that opened it written out whole.
//!
//! Collisions: two different ids of one pair share a key with probability
//! about n²/2⁶⁵ for n ids remembered (10⁻¹⁴ at a thousand). The key is
//! fixed, so stored keys stay valid across restarts and nodes; a client can
//! only collide its own ids within one customer's pair, and the worst it
//! gets is its own later event answered `duplicate`.

use std::hash::Hasher;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use siphasher::sip::SipHasher13;

use super::Iteration;
use crate::domain::effects::Effect;
use crate::domain::ids::{EventId, ProgressTrackerId};

/// An `eventId` as a pair remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey(pub u64);

/// SipHash's key: fixed, so keys written to snapshots stay valid.
const SIP_KEY: (u64, u64) = (0x6163_6876_2d65_7665, 0x6e74_2d69_6473_2d31);

impl EventKey {
    pub fn of(id: &EventId) -> EventKey {
        let mut h = SipHasher13::new_with_keys(SIP_KEY.0, SIP_KEY.1);
        h.write(id.as_str().as_bytes());
        EventKey(h.finish())
    }
}

/// What an applied increase did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppliedChange {
    /// It increased one iteration (which it opened when `started`) by
    /// `delta` to `value`.
    One {
        seq: u32,
        delta: Decimal,
        value: Decimal,
        just_completed: bool,
        started: bool,
    },
    /// Anything else, effect by effect.
    Effects(Vec<Effect>),
}

/// An applied event remembered for idempotency and rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedEvent {
    pub key: EventKey,
    /// Its arrival, to the millisecond.
    pub arrived: DateTime<Utc>,
    pub rolled_back: bool,
    pub change: AppliedChange,
}

impl AppliedChange {
    /// The change an increase's effects describe. `iteration` finds an
    /// iteration of the pair by id: a start is remembered as a flag only if
    /// the pair still has the iteration it names, with the same dates.
    pub fn of<'a>(
        effects: &[Effect],
        tracker_base: u64,
        iteration: impl Fn(ProgressTrackerId) -> Option<&'a Iteration>,
    ) -> AppliedChange {
        let seq_of = |t: ProgressTrackerId| {
            t.0.checked_sub(tracker_base)
                .and_then(|s| u32::try_from(s).ok())
        };
        let one = |inc: &Effect, started: bool| match inc {
            Effect::Increase {
                tracker,
                delta,
                value,
                just_completed,
                ..
            } => seq_of(*tracker).map(|seq| AppliedChange::One {
                seq,
                delta: *delta,
                value: *value,
                just_completed: *just_completed,
                started,
            }),
            _ => None,
        };
        let compact = match effects {
            [inc] => one(inc, false),
            [Effect::Start {
                tracker,
                start,
                end,
                ..
            }, inc @ Effect::Increase { tracker: t2, .. }]
                if tracker == t2
                    && iteration(*tracker).is_some_and(|it| {
                        it.start == *start && it.end.map(|e| e.reported) == *end
                    }) =>
            {
                one(inc, true)
            }
            _ => None,
        };
        compact.unwrap_or_else(|| AppliedChange::Effects(effects.to_vec()))
    }

    /// The effects it answered with.
    pub fn effects<'a>(
        &self,
        tracker_base: u64,
        target: Decimal,
        iteration: impl Fn(ProgressTrackerId) -> Option<&'a Iteration>,
    ) -> Vec<Effect> {
        match self {
            AppliedChange::Effects(effects) => effects.clone(),
            AppliedChange::One {
                seq,
                delta,
                value,
                just_completed,
                started,
            } => {
                let tracker = ProgressTrackerId(tracker_base + u64::from(*seq));
                let mut out = Vec::with_capacity(2);
                if *started {
                    // Written out whole before its iteration leaves the
                    // history, so the iteration is there.
                    if let Some(it) = iteration(tracker) {
                        out.push(Effect::Start {
                            tracker,
                            target,
                            start: it.start,
                            end: it.end.map(|e| e.reported),
                        });
                    }
                }
                out.push(Effect::Increase {
                    tracker,
                    delta: *delta,
                    value: *value,
                    target,
                    just_completed: *just_completed,
                });
                out
            }
        }
    }

    /// The increases it made: (iteration, amount, whether it completed it).
    pub fn increases(&self, tracker_base: u64) -> Vec<(ProgressTrackerId, Decimal, bool)> {
        match self {
            AppliedChange::One {
                seq,
                delta,
                just_completed,
                ..
            } => vec![(
                ProgressTrackerId(tracker_base + u64::from(*seq)),
                *delta,
                *just_completed,
            )],
            AppliedChange::Effects(effects) => effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Increase {
                        tracker,
                        delta,
                        just_completed,
                        ..
                    } => Some((*tracker, *delta, *just_completed)),
                    _ => None,
                })
                .collect(),
        }
    }
}

const ROLLED_BACK: u8 = 1;
const JUST_COMPLETED: u8 = 2;
const STARTED: u8 = 4;
/// The change is kept whole in `Remembered::other`.
const OTHER: u8 = 8;

/// One remembered id: 40 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    key: u64,
    arrived_ms: i64,
    delta: i64,
    value: i64,
    seq: u32,
    delta_scale: u8,
    value_scale: u8,
    flags: u8,
}

/// A decimal as a 64-bit mantissa and its scale, if it fits.
fn narrow(d: Decimal) -> Option<(i64, u8)> {
    Some((
        i64::try_from(d.mantissa()).ok()?,
        u8::try_from(d.scale()).ok()?,
    ))
}

fn widen(mantissa: i64, scale: u8) -> Decimal {
    Decimal::from_i128_with_scale(i128::from(mantissa), u32::from(scale))
}

/// A pair's remembered ids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Remembered {
    /// Sorted by key.
    seen: Vec<Seen>,
    /// The changes of entries flagged `OTHER`, sorted by key.
    other: Vec<(u64, AppliedChange)>,
    /// The earliest arrival, so forgetting scans only when one is due.
    oldest_ms: i64,
}

impl Remembered {
    pub(super) fn len(&self) -> usize {
        self.seen.len()
    }

    fn index(&self, key: EventKey) -> Result<usize, usize> {
        self.seen.binary_search_by_key(&key.0, |s| s.key)
    }

    fn other_index(&self, key: u64) -> Result<usize, usize> {
        self.other.binary_search_by_key(&key, |(k, _)| *k)
    }

    /// The remembered event with `key`, if any.
    pub(super) fn get(&self, key: EventKey) -> Option<RememberedEvent> {
        let s = &self.seen[self.index(key).ok()?];
        Some(self.event_of(s))
    }

    fn event_of(&self, s: &Seen) -> RememberedEvent {
        let change = if s.flags & OTHER != 0 {
            match self.other_index(s.key) {
                Ok(i) => self.other[i].1.clone(),
                Err(_) => AppliedChange::Effects(Vec::new()),
            }
        } else {
            AppliedChange::One {
                seq: s.seq,
                delta: widen(s.delta, s.delta_scale),
                value: widen(s.value, s.value_scale),
                just_completed: s.flags & JUST_COMPLETED != 0,
                started: s.flags & STARTED != 0,
            }
        };
        RememberedEvent {
            key: EventKey(s.key),
            arrived: DateTime::from_timestamp_millis(s.arrived_ms).unwrap_or_default(),
            rolled_back: s.flags & ROLLED_BACK != 0,
            change,
        }
    }

    /// Remembers an event (replacing one with the same key).
    pub(super) fn insert(&mut self, event: RememberedEvent) {
        let arrived_ms = event.arrived.timestamp_millis();
        let mut seen = Seen {
            key: event.key.0,
            arrived_ms,
            delta: 0,
            value: 0,
            seq: 0,
            delta_scale: 0,
            value_scale: 0,
            flags: if event.rolled_back { ROLLED_BACK } else { 0 },
        };
        let compact = match &event.change {
            AppliedChange::One {
                seq,
                delta,
                value,
                just_completed,
                started,
            } => narrow(*delta).zip(narrow(*value)).map(|(d, v)| {
                (
                    *seq,
                    d,
                    v,
                    if *just_completed { JUST_COMPLETED } else { 0 }
                        | if *started { STARTED } else { 0 },
                )
            }),
            AppliedChange::Effects(_) => None,
        };
        match compact {
            Some((seq, (delta, delta_scale), (value, value_scale), flags)) => {
                seen.seq = seq;
                (seen.delta, seen.delta_scale) = (delta, delta_scale);
                (seen.value, seen.value_scale) = (value, value_scale);
                seen.flags |= flags;
                self.remove_other(event.key.0);
            }
            None => {
                seen.flags |= OTHER;
                match self.other_index(event.key.0) {
                    Ok(i) => self.other[i].1 = event.change,
                    Err(i) => self.other.insert(i, (event.key.0, event.change)),
                }
            }
        }
        if self.seen.is_empty() || arrived_ms < self.oldest_ms {
            self.oldest_ms = arrived_ms;
        }
        match self.index(event.key) {
            Ok(i) => self.seen[i] = seen,
            Err(i) => {
                // Grow by an eighth rather than double: ids are most of a
                // busy pair's memory.
                if self.seen.len() == self.seen.capacity() {
                    self.seen.reserve_exact((self.seen.len() / 8).max(1));
                }
                self.seen.insert(i, seen);
            }
        }
    }

    fn remove_other(&mut self, key: u64) {
        if let Ok(i) = self.other_index(key) {
            self.other.remove(i);
        }
    }

    /// Marks an event rolled back.
    pub(super) fn set_rolled_back(&mut self, key: EventKey) {
        if let Ok(i) = self.index(key) {
            self.seen[i].flags |= ROLLED_BACK;
        }
    }

    /// Forgets the events that arrived `retention` or longer before `now`.
    pub(super) fn forget(&mut self, now: DateTime<Utc>, retention: Duration) {
        let (now_ms, keep_ms) = (now.timestamp_millis(), retention.num_milliseconds());
        if self.seen.is_empty() || self.oldest_ms + keep_ms > now_ms {
            return;
        }
        self.seen.retain(|s| s.arrived_ms + keep_ms > now_ms);
        let seen = &self.seen;
        self.other
            .retain(|(k, _)| seen.binary_search_by_key(k, |s| s.key).is_ok());
        self.oldest_ms = self.seen.iter().map(|s| s.arrived_ms).min().unwrap_or(0);
        if self.seen.len() < self.seen.capacity() / 2 {
            self.seen.shrink_to_fit();
        }
    }

    /// Every remembered event, by key.
    pub(super) fn events(&self) -> impl Iterator<Item = RememberedEvent> + '_ {
        self.seen.iter().map(|s| self.event_of(s))
    }

    /// Before `dropped` leaves the pair's history: the changes that opened
    /// it are written out whole, their start told by its dates.
    pub(super) fn keep_start_of(
        &mut self,
        dropped: &Iteration,
        tracker_base: u64,
        target: Decimal,
    ) {
        let Some(seq) = dropped
            .id
            .0
            .checked_sub(tracker_base)
            .and_then(|s| u32::try_from(s).ok())
        else {
            return;
        };
        let compact = self
            .seen
            .iter()
            .filter(|s| s.flags & (STARTED | OTHER) == STARTED && s.seq == seq)
            .map(|s| EventKey(s.key));
        let wide = self.other.iter().filter_map(|(k, change)| match change {
            AppliedChange::One {
                seq: s,
                started: true,
                ..
            } if *s == seq => Some(EventKey(*k)),
            _ => None,
        });
        let keys: Vec<EventKey> = compact.chain(wide).collect();
        for key in keys {
            if let Some(mut event) = self.get(key) {
                let effects = event
                    .change
                    .effects(tracker_base, target, |_| Some(dropped));
                event.change = AppliedChange::Effects(effects);
                self.insert(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Seen>(), 40);
    }

    #[test]
    fn keys_are_stable_across_builds() {
        // Stored in snapshots: a change of hash function or key would make
        // every remembered id unknown after an upgrade.
        let id = EventId::parse("order-1", "/eventId").expect("valid");
        assert_eq!(EventKey::of(&id), EventKey::of(&id));
        assert_eq!(EventKey::of(&id).0, 0x2696_de1e_afe1_c903);
    }

    #[test]
    fn narrow_keeps_the_representation() {
        for s in [
            "1",
            "1.0",
            "0.001",
            "-5",
            "123456789.123456789",
            "9223372036854775807",
        ] {
            let d: Decimal = s.parse().expect("decimal");
            let (m, sc) = narrow(d).expect("fits");
            assert_eq!(widen(m, sc).to_string(), s);
        }
        assert!(narrow("79228162514264337593543950335".parse().expect("max")).is_none());
    }
}
