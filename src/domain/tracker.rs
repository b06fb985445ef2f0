//! One customer's progress in one achievement: its iterations, where an event
//! lands, rollback, idempotency and expiry as time passes (SPEC §3).
//!
//! Owns: `PairTracker` and its `Iteration`s. Pure and deterministic: the caller
//! passes the current instant (`Ctx::now`) and the rules, so applying the same
//! inputs to the same state always gives the same state and answer. No actix,
//! no I/O, no clock.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::achievement::{AchievementRules, Bounds, RecurrencePolicy};
use super::effects::{Effect, EventResult, Outcome, Reason};
use super::error::DomainError;
use super::ids::{EventId, ProgressTrackerId};

mod remembered;

use super::period::PeriodEnd;
use remembered::Remembered;
pub use remembered::{AppliedChange, EventKey, RememberedEvent};

/// Bits of a progress tracker id that count the pair's iterations; the rest
/// is the pair's number. Ids stay below 2^53 for ~500 million pairs, so
/// JavaScript clients read them exactly.
pub const TRACKER_SEQ_BITS: u32 = 24;
/// The most iterations one `on_completion` event may complete.
pub const MAX_COMPLETIONS_PER_EVENT: u64 = 10_000;

/// The status of an iteration, or of a pair (`NotStarted` when it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgressStatus {
    NotStarted,
    InProgress,
    Completed,
    Expired,
}

impl ProgressStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressStatus::NotStarted => "not_started",
            ProgressStatus::InProgress => "inprogress",
            ProgressStatus::Completed => "completed",
            ProgressStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<ProgressStatus> {
        [
            ProgressStatus::NotStarted,
            ProgressStatus::InProgress,
            ProgressStatus::Completed,
            ProgressStatus::Expired,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// One iteration (progress tracker) of a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iteration {
    pub id: ProgressTrackerId,
    /// The stored status; `status_at` adds expiry that no event has seen yet.
    pub status: ProgressStatus,
    pub progress: Decimal,
    pub start: DateTime<Utc>,
    /// `None` when the iteration never expires.
    pub end: Option<PeriodEnd>,
    pub completion: Option<DateTime<Utc>>,
}

impl Iteration {
    /// The status as of `now`: an in-progress iteration whose end has passed
    /// is expired even before any timer or event noticed.
    pub fn status_at(&self, now: DateTime<Utc>) -> ProgressStatus {
        if self.status == ProgressStatus::InProgress && self.ended_by(now) {
            ProgressStatus::Expired
        } else {
            self.status
        }
    }

    /// When the iteration expires unless it completes first: the end of an
    /// iteration in progress.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        if self.status == ProgressStatus::InProgress {
            self.end.map(|e| e.end)
        } else {
            None
        }
    }

    /// Whether the iteration's period is over at `now`.
    pub fn ended_by(&self, now: DateTime<Utc>) -> bool {
        self.end.is_some_and(|e| e.end <= now)
    }

    /// The iteration as seen at `now`.
    pub fn at(&self, now: DateTime<Utc>) -> Iteration {
        Iteration {
            status: self.status_at(now),
            ..self.clone()
        }
    }
}

/// Tunables of the progress rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// How far ahead of the server an event time may be.
    pub max_clock_skew: Duration,
    /// How long an applied `eventId` is remembered.
    pub idempotency_retention: Duration,
    /// How many past iterations a pair keeps.
    pub history_cap: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clock_skew: Duration::minutes(5),
            idempotency_retention: Duration::days(7),
            history_cap: 100,
        }
    }
}

/// What an event is applied against.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub rules: &'a AchievementRules,
    pub tz: Tz,
    /// The server's time at arrival (recorded, so replay is deterministic).
    pub now: DateTime<Utc>,
    /// Whether the achievement's campaign is running at `now`.
    pub campaign_running: bool,
    pub limits: &'a Limits,
}

/// An increase of progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Increase {
    pub delta: Decimal,
    /// Event time; `None` means the arrival time.
    pub at: Option<DateTime<Utc>>,
    pub event_id: Option<EventId>,
}

/// The whole state of one (customer, achievement) pair.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PairTracker {
    tracker_base: u64,
    next_seq: u32,
    current: Option<Iteration>,
    /// Past iterations, newest first.
    /// Boxed and absent until there is one, so a pair in its first
    /// iteration pays 8 bytes for it.
    #[allow(
        clippy::box_collection,
        reason = "8 bytes when absent instead of 32: most pairs have no history"
    )]
    history: Option<Box<VecDeque<Iteration>>>,
    /// Remembered event ids; boxed and absent when there are none, so a
    /// pair that never saw an `eventId` pays 8 bytes for it.
    events: Option<Box<Remembered>>,
}

/// The raw parts of a tracker, for snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackerParts {
    pub tracker_base: u64,
    pub next_seq: u32,
    pub current: Option<Iteration>,
    pub history: Vec<Iteration>,
    /// By key.
    pub events: Vec<RememberedEvent>,
}

impl TrackerParts {
    /// The tracker's next deadline (`PairTracker::next_deadline`).
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.current.as_ref().and_then(Iteration::deadline)
    }
}

impl PairTracker {
    /// A pair with no progress. Its progress tracker ids are
    /// `pair_number << TRACKER_SEQ_BITS` plus the iteration's sequence number.
    pub fn new(pair_number: u64) -> PairTracker {
        PairTracker {
            tracker_base: pair_number << TRACKER_SEQ_BITS,
            ..PairTracker::default()
        }
    }

    pub fn from_parts(parts: TrackerParts) -> PairTracker {
        let mut tracker = PairTracker {
            tracker_base: parts.tracker_base,
            next_seq: parts.next_seq,
            current: parts.current,
            history: (!parts.history.is_empty()).then(|| Box::new(parts.history.into())),
            events: None,
        };
        let mut remembered = Remembered::default();
        for mut event in parts.events {
            // Effects told whole (older snapshots) become compact when
            // they fit.
            if let AppliedChange::Effects(effects) = &event.change {
                event.change =
                    AppliedChange::of(effects, tracker.tracker_base, |t| tracker.iteration(t));
            }
            remembered.insert(event);
        }
        tracker.events = (remembered.len() > 0).then(|| Box::new(remembered));
        tracker
    }

    /// The pair's iteration with id `id`, current or past.
    fn iteration(&self, id: ProgressTrackerId) -> Option<&Iteration> {
        self.current
            .iter()
            .chain(self.history.iter().flat_map(|h| h.iter()))
            .find(|it| it.id == id)
    }

    fn remembered(&self, id: &EventId) -> Option<RememberedEvent> {
        self.events.as_ref().and_then(|e| e.get(EventKey::of(id)))
    }

    pub fn to_parts(&self) -> TrackerParts {
        let events = self.events.iter().flat_map(|e| e.events()).collect();
        TrackerParts {
            tracker_base: self.tracker_base,
            next_seq: self.next_seq,
            current: self.current.clone(),
            history: self
                .history
                .iter()
                .flat_map(|h| h.iter())
                .cloned()
                .collect(),
            events,
        }
    }

    /// The pair's status at `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> ProgressStatus {
        self.current
            .as_ref()
            .map_or(ProgressStatus::NotStarted, |c| c.status_at(now))
    }

    /// The current (newest) iteration as stored.
    pub fn current(&self) -> Option<&Iteration> {
        self.current.as_ref()
    }

    /// All iterations as seen at `now`, newest first.
    pub fn iterations_at(&self, now: DateTime<Utc>) -> impl Iterator<Item = Iteration> + '_ {
        self.current
            .iter()
            .chain(self.history.iter().flat_map(|h| h.iter()))
            .map(move |i| i.at(now))
    }

    /// The stored iterations (statuses as last written, not as of now),
    /// newest first.
    pub fn stored_iterations(&self) -> impl Iterator<Item = &Iteration> + '_ {
        self.current
            .iter()
            .chain(self.history.iter().flat_map(|h| h.iter()))
    }

    /// The pair number this tracker's ids derive from.
    pub fn pair_number(&self) -> u64 {
        self.tracker_base >> TRACKER_SEQ_BITS
    }

    /// Whether the customer ever made progress here.
    pub fn has_progress(&self) -> bool {
        self.current.is_some()
    }

    /// How many applied event ids are remembered.
    pub fn remembered_events(&self) -> usize {
        self.events.as_ref().map_or(0, |e| e.len())
    }

    /// When the current iteration expires, if it is in progress and has an end.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.current.as_ref().and_then(Iteration::deadline)
    }

    /// Makes the passage of time visible in the stored state (the timer's
    /// work). Returns true when an iteration expired now.
    pub fn tick(&mut self, now: DateTime<Utc>) -> bool {
        match self.current.as_mut() {
            Some(c) if c.status == ProgressStatus::InProgress && c.ended_by(now) => {
                c.status = ProgressStatus::Expired;
                true
            }
            _ => false,
        }
    }

    fn forget_old_events(&mut self, now: DateTime<Utc>, retention: Duration) {
        let Some(events) = self.events.as_mut() else {
            return;
        };
        events.forget(now, retention);
        if events.len() == 0 {
            self.events = None;
        }
    }

    /// Applies an increase (SPEC §3 "Where an event lands" and "Applying it").
    /// Errors are inputs that can never apply (nothing changes); business
    /// rejections are `Ok` with outcome `rejected`.
    pub fn apply(&mut self, ctx: &Ctx<'_>, inc: &Increase) -> Result<EventResult, DomainError> {
        if inc.delta <= Decimal::ZERO {
            return Err(DomainError::NonPositiveDelta);
        }
        let (rules, now) = (ctx.rules, ctx.now);
        let retention = ctx.limits.idempotency_retention;
        // Nothing may change before the last check that can fail, so expiry
        // and forgetting old ids are applied only once the event will apply;
        // until then they are read, not written.
        if let Some(seen) = inc
            .event_id
            .as_ref()
            .and_then(|id| self.remembered(id))
            .filter(|e| e.arrived + retention > now)
        {
            return Ok(EventResult {
                outcome: Outcome::Duplicate,
                reason: None,
                effects: seen
                    .change
                    .effects(self.tracker_base, rules.target, |t| self.iteration(t)),
            });
        }
        if !ctx.campaign_running {
            return Ok(EventResult::rejected(Reason::CampaignNotRunning));
        }
        let t = inc.at.unwrap_or(now);
        // SPEC §3 step 1, in its order: outside the schedule, then too far
        // ahead of the server.
        if !rules.accepts_progress_at(ctx.tz, t) {
            return Ok(EventResult::rejected(Reason::OutsideSchedule));
        }
        if t > now + ctx.limits.max_clock_skew {
            return Ok(EventResult::rejected(Reason::FutureTimestamp));
        }
        let on_completion = rules.recurrence == RecurrencePolicy::OnCompletion;

        // Where does it land: the current iteration, or a new one?
        let mut lands_in_current = false;
        if let Some(cur) = &self.current {
            if t < cur.start {
                return Ok(EventResult::rejected(Reason::Late));
            }
            let completed = cur.status == ProgressStatus::Completed;
            let closes = match cur.completion {
                // A completed on_completion iteration is closed at its
                // completion: what happened before it cannot land anywhere.
                Some(done) if on_completion && completed => {
                    if t < done {
                        return Ok(EventResult::rejected(Reason::Late));
                    }
                    Some(done)
                }
                _ => cur.end.map(|e| e.end),
            };
            if closes.is_none_or(|c| t < c) {
                // The event's own time decides: an ended iteration still takes
                // events dated inside it, unless the achievement bounds
                // lateness and the bound has passed.
                if cur.end.is_some_and(|e| rules.closed_to_arrival(e.end, now)) {
                    return Ok(EventResult::rejected(Reason::Late));
                }
                lands_in_current = true;
            } else if rules.recurrence == RecurrencePolicy::NoRecurrence {
                return Ok(EventResult::rejected(if completed {
                    Reason::AlreadyCompleted
                } else {
                    Reason::Expired
                }));
            }
        }
        let bounds = if !lands_in_current || on_completion {
            let b = rules
                .open_bounds(ctx.tz, t)
                .ok_or(DomainError::DateOutOfRange)?;
            if !lands_in_current && b.end.is_some_and(|e| rules.closed_to_arrival(e.end, now)) {
                return Ok(EventResult::rejected(Reason::Late));
            }
            Some(b)
        } else {
            None
        };

        // Check what the event would need before changing anything.
        let base = if lands_in_current {
            self.current.as_ref().map_or(Decimal::ZERO, |c| c.progress)
        } else {
            Decimal::ZERO
        };
        let total = base.checked_add(inc.delta).ok_or(DomainError::Overflow)?;
        let mut new_ids = u64::from(!lands_in_current);
        if on_completion {
            let completions = total
                .checked_div(rules.target)
                .map(|q| q.floor())
                .and_then(|q| q.to_u64())
                .filter(|&n| n <= MAX_COMPLETIONS_PER_EVENT)
                .ok_or(DomainError::TooManyIterations(MAX_COMPLETIONS_PER_EVENT))?;
            new_ids += completions;
        }
        if u64::from(self.next_seq) + new_ids >= 1 << TRACKER_SEQ_BITS {
            return Err(DomainError::TrackerIdsExhausted);
        }

        self.tick(now);
        self.forget_old_events(now, retention);
        let mut effects = Vec::new();
        if let (false, Some(b)) = (lands_in_current, bounds) {
            self.open(b, rules.target, ctx.limits.history_cap, &mut effects);
        }
        let mut remaining = inc.delta;
        loop {
            let Some(cur) = self.current.as_mut() else {
                // An iteration was either current or just opened.
                unreachable!("an event always lands in an iteration");
            };
            let target = rules.target;
            if cur.status == ProgressStatus::Completed {
                let add = if rules.end_progress_on_target {
                    remaining.min((target - cur.progress).max(Decimal::ZERO))
                } else {
                    remaining
                };
                cur.progress += add;
                effects.push(increase_effect(cur, add, target, false));
                break;
            }
            let need = target - cur.progress;
            if remaining < need {
                cur.progress += remaining;
                effects.push(increase_effect(cur, remaining, target, false));
                break;
            }
            let add = if on_completion || rules.end_progress_on_target {
                need
            } else {
                remaining
            };
            cur.progress += add;
            cur.status = ProgressStatus::Completed;
            cur.completion = Some(t);
            effects.push(increase_effect(cur, add, target, true));
            remaining -= add;
            match bounds {
                Some(b) if on_completion && remaining > Decimal::ZERO => {
                    self.open(b, target, ctx.limits.history_cap, &mut effects);
                }
                _ => break,
            }
        }
        if let Some(id) = &inc.event_id {
            let change = AppliedChange::of(&effects, self.tracker_base, |t| self.iteration(t));
            self.events
                .get_or_insert_with(Box::default)
                .insert(RememberedEvent {
                    key: EventKey::of(id),
                    arrived: now,
                    rolled_back: false,
                    change,
                });
        }
        Ok(EventResult::applied(effects))
    }

    /// Opens a new iteration, moving the current one into history.
    fn open(&mut self, b: Bounds, target: Decimal, history_cap: usize, effects: &mut Vec<Effect>) {
        let id = ProgressTrackerId(self.tracker_base + u64::from(self.next_seq));
        self.next_seq += 1;
        if let Some(mut old) = self.current.take() {
            if old.status == ProgressStatus::InProgress {
                old.status = ProgressStatus::Expired;
            }
            let history = self.history.get_or_insert_with(Box::default);
            history.push_front(old);
            let dropped: Vec<Iteration> = history.drain(history_cap.min(history.len())..).collect();
            if history.is_empty() {
                self.history = None;
            }
            // A remembered start needs its iteration's dates: written out
            // before the iteration goes.
            if let Some(events) = self.events.as_mut() {
                for it in &dropped {
                    events.keep_start_of(it, self.tracker_base, target);
                }
            }
        }
        self.current = Some(Iteration {
            id,
            status: ProgressStatus::InProgress,
            progress: Decimal::ZERO,
            start: b.start,
            end: b.end,
            completion: None,
        });
        effects.push(Effect::Start {
            tracker: id,
            target,
            start: b.start,
            end: b.end.map(|e| e.reported),
        });
    }

    /// Undoes an earlier applied increase (SPEC §3 "Rollback").
    pub fn rollback(&mut self, ctx: &Ctx<'_>, event_id: &EventId) -> EventResult {
        let (rules, now) = (ctx.rules, ctx.now);
        // Expiry is not written here: a refused rollback must change nothing
        // (an ended iteration is refused below either way), and an expiry
        // is told by the change that records it.
        self.forget_old_events(now, ctx.limits.idempotency_retention);
        let Some(record) = self.remembered(event_id) else {
            return EventResult::rejected(Reason::UnknownEvent);
        };
        if record.rolled_back {
            return EventResult::rejected(Reason::AlreadyRolledBack);
        }
        let increases = record.change.increases(self.tracker_base);
        let [(tracker, added, just_completed)] = increases[..] else {
            // It completed at least one on_completion iteration, which is closed.
            return EventResult::rejected(Reason::RollbackNotAllowed);
        };
        if just_completed && rules.recurrence == RecurrencePolicy::OnCompletion {
            // It completed its iteration, which closed there and then, whether
            // or not a newer iteration has opened since.
            return EventResult::rejected(Reason::RollbackNotAllowed);
        }
        let Some(cur) = self.current.as_mut().filter(|c| c.id == tracker) else {
            return EventResult::rejected(Reason::PeriodEnded);
        };
        if cur.ended_by(now) || cur.status == ProgressStatus::Expired {
            return EventResult::rejected(Reason::PeriodEnded);
        }
        if cur.status == ProgressStatus::Completed
            && (rules.recurrence == RecurrencePolicy::OnCompletion
                || !rules.allow_rollback_after_completion)
        {
            return EventResult::rejected(Reason::RollbackNotAllowed);
        }
        cur.progress -= added;
        if cur.status == ProgressStatus::Completed && cur.progress < rules.target {
            cur.status = ProgressStatus::InProgress;
            cur.completion = None;
        }
        let effect = Effect::Rollback {
            tracker,
            decrease_by: added,
            current: cur.progress,
            target: rules.target,
        };
        if let Some(events) = self.events.as_mut() {
            events.set_rolled_back(EventKey::of(event_id));
        }
        EventResult::applied(vec![effect])
    }
}

fn increase_effect(
    cur: &Iteration,
    delta: Decimal,
    target: Decimal,
    just_completed: bool,
) -> Effect {
    Effect::Increase {
        tracker: cur.id,
        delta,
        value: cur.progress,
        target,
        just_completed,
    }
}

#[cfg(test)]
mod tests;
