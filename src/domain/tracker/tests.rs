use super::*;

use std::str::FromStr;

use chrono::NaiveDateTime;
use proptest::prelude::*;

use crate::domain::achievement::{AchievementDraft, ActivationPolicy};

// ---------------------------------------------------------------- helpers

fn ts(s: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("bad test time {s}: {e}"))
        .and_utc()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn eid(s: &str) -> EventId {
    EventId::parse(s, "/eventId").unwrap()
}

fn draft(
    target: &str,
    period: Option<&str>,
    recurrence: RecurrencePolicy,
    activation: ActivationPolicy,
) -> AchievementDraft {
    AchievementDraft {
        name: "visits".into(),
        title: "Visits".into(),
        target: dec(target),
        period: period.map(str::to_string),
        recurrence_policy: recurrence,
        activation_policy: activation,
        ..AchievementDraft::default()
    }
}

fn user(target: &str, period: Option<&str>, recurrence: RecurrencePolicy) -> AchievementRules {
    draft(target, period, recurrence, ActivationPolicy::UserAction)
        .validate()
        .unwrap()
}

fn fixed(
    target: &str,
    period: Option<&str>,
    recurrence: RecurrencePolicy,
    anchor: DateTime<Utc>,
) -> AchievementRules {
    AchievementDraft {
        fixed_start_date: Some(anchor),
        ..draft(target, period, recurrence, ActivationPolicy::FixedSchedule)
    }
    .validate()
    .unwrap()
}

use RecurrencePolicy::{NoRecurrence, OnCompletion, OnExpiration};

/// Event time and lateness: history import, the `allowedLatenessSeconds` bound.
mod history;

/// What the feed says happened, compared with the effects.
mod happened;

/// The rules, limits and zone events are applied with.
struct Fx {
    rules: AchievementRules,
    limits: Limits,
    tz: Tz,
    running: bool,
}

impl Fx {
    fn new(rules: AchievementRules) -> Fx {
        Fx {
            rules,
            limits: Limits::default(),
            tz: Tz::UTC,
            running: true,
        }
    }

    fn ctx(&self, now: DateTime<Utc>) -> Ctx<'_> {
        Ctx {
            rules: &self.rules,
            tz: self.tz,
            now,
            campaign_running: self.running,
            limits: &self.limits,
        }
    }

    /// Applies `delta` with event time `at` (arrival time when `None`).
    fn try_apply(
        &self,
        tr: &mut PairTracker,
        now: DateTime<Utc>,
        delta: &str,
        at: Option<DateTime<Utc>>,
        id: Option<&str>,
    ) -> Result<EventResult, DomainError> {
        tr.apply(
            &self.ctx(now),
            &Increase {
                delta: dec(delta),
                at,
                event_id: id.map(eid),
            },
        )
    }

    fn apply(
        &self,
        tr: &mut PairTracker,
        now: DateTime<Utc>,
        delta: &str,
        at: Option<DateTime<Utc>>,
        id: Option<&str>,
    ) -> EventResult {
        self.try_apply(tr, now, delta, at, id).unwrap()
    }

    /// Applies at arrival time `now`.
    fn add(&self, tr: &mut PairTracker, now: DateTime<Utc>, delta: &str) -> EventResult {
        self.apply(tr, now, delta, None, None)
    }

    fn add_id(
        &self,
        tr: &mut PairTracker,
        now: DateTime<Utc>,
        delta: &str,
        id: &str,
    ) -> EventResult {
        self.apply(tr, now, delta, None, Some(id))
    }

    fn rollback(&self, tr: &mut PairTracker, now: DateTime<Utc>, id: &str) -> EventResult {
        tr.rollback(&self.ctx(now), &eid(id))
    }
}

/// (tracker, start, reported end) of a start effect.
fn as_start(e: &Effect) -> (ProgressTrackerId, DateTime<Utc>, Option<DateTime<Utc>>) {
    match e {
        Effect::Start {
            tracker,
            start,
            end,
            ..
        } => (*tracker, *start, *end),
        other => panic!("expected a start effect, got {other:?}"),
    }
}

/// (tracker, delta, value, just completed) of an increase effect.
fn as_inc(e: &Effect) -> (ProgressTrackerId, Decimal, Decimal, bool) {
    match e {
        Effect::Increase {
            tracker,
            delta,
            value,
            just_completed,
            ..
        } => (*tracker, *delta, *value, *just_completed),
        other => panic!("expected an increase effect, got {other:?}"),
    }
}

fn assert_applied(r: &EventResult) {
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.reason, None);
}

fn assert_rejected(r: &EventResult, reason: Reason) {
    assert_eq!(r.outcome, Outcome::Rejected, "{r:?}");
    assert_eq!(r.reason, Some(reason), "{r:?}");
    assert!(r.effects.is_empty());
}

fn cur(tr: &PairTracker) -> &Iteration {
    tr.current().expect("a current iteration")
}

fn history(tr: &PairTracker, now: DateTime<Utc>) -> Vec<Iteration> {
    tr.iterations_at(now).skip(1).collect()
}

fn just_completed_count(results: &[EventResult]) -> usize {
    results
        .iter()
        .flat_map(|r| &r.effects)
        .filter(|e| {
            matches!(
                e,
                Effect::Increase {
                    just_completed: true,
                    ..
                }
            )
        })
        .count()
}

fn t0() -> DateTime<Utc> {
    ts("2023-10-10 09:30:45")
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

// ------------------------------------------------------ SPEC §4 worked examples

/// SPEC §4's rows: (recurrence, fixed start, period, first progress, endDate).
fn spec_rows() -> [(
    RecurrencePolicy,
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
); 7] {
    [
        (
            NoRecurrence,
            None,
            "1D",
            "2023-10-10 09:30:45",
            "2023-10-11 09:30:45",
        ),
        (
            NoRecurrence,
            None,
            "1W",
            "2023-10-10 09:30:45",
            "2023-10-17 09:30:45",
        ),
        (
            NoRecurrence,
            None,
            "1M",
            "2023-10-10 09:30:45",
            "2023-11-10 09:30:45",
        ),
        (
            NoRecurrence,
            None,
            "1Y",
            "2023-10-10 09:30:45",
            "2024-10-10 09:30:45",
        ),
        (
            NoRecurrence,
            Some("2023-10-10 00:00:00"),
            "1M",
            "2023-10-18 10:20:00",
            "2023-11-10 00:00:00",
        ),
        (
            OnExpiration,
            None,
            "3M_U",
            "2023-10-10 09:30:45",
            "2024-01-31 23:59:59",
        ),
        (
            OnExpiration,
            Some("2023-01-01 00:00:00"),
            "2Y",
            "2023-08-12 14:15:02",
            "2025-01-01 00:00:00",
        ),
    ]
}

#[test]
fn spec_worked_examples() {
    let rows = spec_rows();
    for (recurrence, anchor, period, first, end) in rows {
        let rules = match anchor {
            None => user("10", Some(period), recurrence),
            Some(a) => fixed("10", Some(period), recurrence, ts(a)),
        };
        let fx = Fx::new(rules);
        let (first, end) = (ts(first), ts(end));
        let mut tr = PairTracker::new(1);
        let r = fx.add(&mut tr, first, "1");
        assert_applied(&r);
        assert_eq!(r.effects.len(), 2, "{period}: {r:?}");
        let (id, start, reported) = as_start(&r.effects[0]);
        assert_eq!(start, first, "{period}: startDate");
        assert_eq!(reported, Some(end), "{period}: endDate");
        let c = cur(&tr);
        assert_eq!(c.id, id);
        assert_eq!(c.start, first);
        assert_eq!(c.end.map(|e| e.reported), Some(end), "{period}");
        assert_eq!(c.status, ProgressStatus::InProgress);
        assert_eq!(as_inc(&r.effects[1]), (id, dec("1"), dec("1"), false));
    }
}

#[test]
fn round_up_period_covers_its_last_second_and_ends_after_it() {
    let fx = Fx::new(user("10", Some("3M_U"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1");
    let end = cur(&tr).end.unwrap();
    assert_eq!(end.end, ts("2024-02-01 00:00:00"));
    assert_eq!(end.reported, ts("2024-01-31 23:59:59"));
    let last_second = ts("2024-01-31 23:59:59");
    assert_eq!(tr.status_at(last_second), ProgressStatus::InProgress);
    assert_eq!(tr.status_at(end.end), ProgressStatus::Expired);
    assert_eq!(tr.next_deadline(), Some(end.end));
    // An event in the last reported second still lands in the iteration.
    let r = fx.add(&mut tr, last_second, "1");
    assert_eq!(r.effects.len(), 1);
    assert_eq!(cur(&tr).progress, dec("2"));
}

// ----------------------------------------------------------- basic shape

#[test]
fn new_pair_is_not_started() {
    let tr = PairTracker::new(7);
    assert_eq!(tr.status_at(t0()), ProgressStatus::NotStarted);
    assert!(tr.current().is_none());
    assert!(!tr.has_progress());
    assert_eq!(tr.iterations_at(t0()).count(), 0);
    assert_eq!(tr.next_deadline(), None);
    assert_eq!(tr.remembered_events(), 0);
}

#[test]
fn tracker_ids_are_pair_number_and_sequence() {
    let fx = Fx::new(user("1", None, OnCompletion));
    let mut tr = PairTracker::new(7);
    let r = fx.add(&mut tr, t0(), "3");
    let ids: Vec<_> = r
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Start { .. }))
        .map(|e| as_start(e).0)
        .collect();
    let base = 7u64 << TRACKER_SEQ_BITS;
    assert_eq!(
        ids,
        vec![
            ProgressTrackerId(base),
            ProgressTrackerId(base + 1),
            ProgressTrackerId(base + 2)
        ]
    );
}

#[test]
fn status_names_round_trip() {
    for s in [
        ProgressStatus::NotStarted,
        ProgressStatus::InProgress,
        ProgressStatus::Completed,
        ProgressStatus::Expired,
    ] {
        assert_eq!(ProgressStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(ProgressStatus::InProgress.as_str(), "inprogress");
    assert_eq!(ProgressStatus::parse("in_progress"), None);
}

// ------------------------------------------------ no_recurrence / user_action

#[test]
fn no_recurrence_user_action_progress_and_complete_once() {
    let fx = Fx::new(user("10", Some("1D"), NoRecurrence));
    let mut tr = PairTracker::new(1);
    let mut results = vec![fx.add(&mut tr, t0(), "4")];
    assert_eq!(tr.status_at(t0()), ProgressStatus::InProgress);
    assert_eq!(tr.next_deadline(), Some(t0() + days(1)));
    let t1 = t0() + Duration::hours(1);
    results.push(fx.add(&mut tr, t1, "6"));
    let id = cur(&tr).id;
    assert_eq!(
        as_inc(&results[1].effects[0]),
        (id, dec("6"), dec("10"), true)
    );
    assert_eq!(cur(&tr).status, ProgressStatus::Completed);
    assert_eq!(cur(&tr).completion, Some(t1));
    // A completed iteration has no deadline: nothing will change its status.
    assert_eq!(tr.next_deadline(), None);
    // More progress is still added (no endProgressOnTarget) and not "just completed".
    results.push(fx.add(&mut tr, t1 + secs(1), "5"));
    assert_eq!(
        as_inc(&results[2].effects[0]),
        (id, dec("5"), dec("15"), false)
    );
    assert_eq!(just_completed_count(&results), 1);
    assert_eq!(cur(&tr).completion, Some(t1), "completionDate never moves");
    // Still completed after the period ended, at read time and after a tick.
    let later = t0() + days(30);
    assert_eq!(tr.status_at(later), ProgressStatus::Completed);
    assert!(!tr.tick(later));
    assert_eq!(cur(&tr).status, ProgressStatus::Completed);
    // One-time: no second iteration.
    let before = tr.clone();
    assert_rejected(&fx.add(&mut tr, later, "1"), Reason::AlreadyCompleted);
    assert_eq!(tr, before);
    assert_eq!(tr.iterations_at(later).count(), 1);
}

#[test]
fn no_recurrence_expiry_at_read_time_and_by_tick() {
    let fx = Fx::new(user("10", Some("1D"), NoRecurrence));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "4");
    let end = t0() + days(1);
    assert_eq!(tr.status_at(end - secs(1)), ProgressStatus::InProgress);
    assert_eq!(tr.status_at(end), ProgressStatus::Expired);
    let seen: Vec<_> = tr.iterations_at(end).collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].status, ProgressStatus::Expired);
    assert_eq!(seen[0].progress, dec("4"));
    // The stored state changes only when the timer ticks.
    assert_eq!(cur(&tr).status, ProgressStatus::InProgress);
    assert_eq!(tr.next_deadline(), Some(end));
    assert!(!tr.tick(end - secs(1)));
    assert_eq!(cur(&tr).status, ProgressStatus::InProgress);
    assert!(tr.tick(end));
    assert_eq!(cur(&tr).status, ProgressStatus::Expired);
    assert!(!tr.tick(end + secs(1)), "expires only once");
    assert_eq!(tr.next_deadline(), None);
    assert_rejected(&fx.add(&mut tr, end + secs(5), "1"), Reason::Expired);
    assert_eq!(cur(&tr).progress, dec("4"));
}

#[test]
fn no_recurrence_expired_rejection_without_tick() {
    let fx = Fx::new(user("10", Some("1D"), NoRecurrence));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "4");
    let r = fx.add(&mut tr, t0() + days(2), "1");
    assert_rejected(&r, Reason::Expired);
    assert_eq!(tr.iterations_at(t0() + days(2)).count(), 1);
}

#[test]
fn no_recurrence_completed_then_expired_period_says_already_completed() {
    let fx = Fx::new(user("2", Some("1h"), NoRecurrence));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "2");
    assert_rejected(
        &fx.add(&mut tr, t0() + Duration::hours(1), "1"),
        Reason::AlreadyCompleted,
    );
}

// ------------------------------------------------ no_recurrence / fixed_schedule

#[test]
fn no_recurrence_fixed_schedule_single_window() {
    let anchor = ts("2023-10-02 00:00:00");
    let fx = Fx::new(fixed("3", Some("1W"), NoRecurrence, anchor));
    let mut tr = PairTracker::new(1);
    let t = anchor + days(2) + secs(77);
    let r = fx.add(&mut tr, t, "1");
    let (_, start, end) = as_start(&r.effects[0]);
    assert_eq!(start, t, "startDate is the customer's first progress");
    assert_eq!(end, Some(anchor + days(7)), "endDate is the window's end");
    assert_eq!(tr.next_deadline(), Some(anchor + days(7)));
    let r = fx.add(&mut tr, t + secs(1), "2");
    assert!(as_inc(&r.effects[0]).3);
    assert_eq!(tr.status_at(anchor + days(8)), ProgressStatus::Completed);
    // The single window is the achievement's schedule: after it, nothing lands.
    assert_rejected(
        &fx.add(&mut tr, anchor + days(7), "1"),
        Reason::OutsideSchedule,
    );
    assert_rejected(
        &fx.apply(&mut tr, anchor + days(1), "1", Some(anchor - secs(1)), None),
        Reason::OutsideSchedule,
    );
}

#[test]
fn no_recurrence_fixed_schedule_expires() {
    let anchor = ts("2023-10-02 00:00:00");
    let fx = Fx::new(fixed("3", Some("1W"), NoRecurrence, anchor));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, anchor + days(3), "1");
    let end = anchor + days(7);
    assert_eq!(tr.status_at(end - secs(1)), ProgressStatus::InProgress);
    assert_eq!(tr.status_at(end), ProgressStatus::Expired);
    assert!(tr.tick(end));
    assert_eq!(cur(&tr).status, ProgressStatus::Expired);
}

#[test]
fn no_recurrence_fixed_schedule_with_end_date_only() {
    let anchor = ts("2023-10-02 00:00:00");
    let end = ts("2023-10-20 12:00:00");
    let rules = AchievementDraft {
        fixed_start_date: Some(anchor),
        end_date: Some(end),
        ..draft("3", None, NoRecurrence, ActivationPolicy::FixedSchedule)
    }
    .validate()
    .unwrap();
    let fx = Fx::new(rules);
    let mut tr = PairTracker::new(1);
    let r = fx.add(&mut tr, anchor + days(1), "1");
    assert_eq!(as_start(&r.effects[0]).2, Some(end));
    assert_eq!(tr.next_deadline(), Some(end));
    assert_eq!(tr.status_at(end), ProgressStatus::Expired);
}

// ------------------------------------------------ on_expiration / user_action

#[test]
fn on_expiration_user_action_cycle() {
    let fx = Fx::new(user("5", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    let r1 = fx.add(&mut tr, t0(), "2");
    let (first_id, _, first_end) = as_start(&r1.effects[0]);
    assert_eq!(first_end, Some(t0() + days(1)));
    let end = t0() + days(1);
    assert_eq!(tr.status_at(end), ProgressStatus::Expired);
    assert_eq!(tr.next_deadline(), Some(end));

    // No tick: the next event notices the expiry itself.
    let t2 = end + Duration::hours(3);
    let r2 = fx.add(&mut tr, t2, "3");
    assert_applied(&r2);
    assert_eq!(r2.effects.len(), 2);
    let (second_id, start, second_end) = as_start(&r2.effects[0]);
    assert_ne!(second_id, first_id);
    assert_eq!(start, t2);
    assert_eq!(second_end, Some(t2 + days(1)));
    assert_eq!(
        as_inc(&r2.effects[1]),
        (second_id, dec("3"), dec("3"), false)
    );
    let c = cur(&tr);
    assert_eq!(
        (c.id, c.status, c.progress),
        (second_id, ProgressStatus::InProgress, dec("3"))
    );
    let past = history(&tr, t2);
    assert_eq!(past.len(), 1);
    assert_eq!(past[0].id, first_id);
    assert_eq!(past[0].status, ProgressStatus::Expired);
    assert_eq!(past[0].progress, dec("2"));
    assert_eq!(past[0].completion, None);

    // Complete the second, then a third period opens after it ends.
    let r3 = fx.add(&mut tr, t2 + secs(10), "2");
    assert!(as_inc(&r3.effects[0]).3);
    let r4 = fx.add(&mut tr, t2 + secs(11), "1");
    assert!(!as_inc(&r4.effects[0]).3);
    assert_eq!(just_completed_count(&[r1, r2, r3, r4]), 1);
    assert_eq!(tr.status_at(t2 + days(2)), ProgressStatus::Completed);
    assert_eq!(tr.next_deadline(), None);
    let t5 = t2 + days(1);
    let r5 = fx.add(&mut tr, t5, "1");
    let (third_id, start, _) = as_start(&r5.effects[0]);
    assert_eq!(start, t5);
    assert!(third_id != first_id && third_id != second_id);
    let past = history(&tr, t5);
    assert_eq!(past.len(), 2);
    assert_eq!(past[0].id, second_id);
    assert_eq!(past[0].status, ProgressStatus::Completed);
    assert_eq!(past[0].progress, dec("6"));
    assert_eq!(past[0].completion, Some(t2 + secs(10)));
    assert_eq!(past[1].id, first_id);
}

#[test]
fn on_expiration_tick_then_new_iteration() {
    let fx = Fx::new(user("5", Some("1h"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "2");
    let end = t0() + Duration::hours(1);
    assert!(tr.tick(end));
    assert_eq!(tr.next_deadline(), None);
    assert_eq!(tr.status_at(end), ProgressStatus::Expired);
    let r = fx.add(&mut tr, end + secs(1), "1");
    assert_eq!(r.effects.len(), 2);
    assert_eq!(tr.status_at(end + secs(1)), ProgressStatus::InProgress);
    assert_eq!(history(&tr, end)[0].status, ProgressStatus::Expired);
}

#[test]
fn event_at_exact_period_end_opens_next_iteration() {
    let fx = Fx::new(user("5", Some("1h"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "2");
    let end = t0() + Duration::hours(1);
    let r = fx.add(&mut tr, end, "1");
    assert_eq!(as_start(&r.effects[0]).1, end, "periods are half-open");
    assert_eq!(tr.iterations_at(end).count(), 2);
}

// ------------------------------------------------ on_expiration / fixed_schedule

#[test]
fn on_expiration_fixed_schedule_windows() {
    let anchor = ts("2023-10-02 00:00:00");
    let fx = Fx::new(fixed("5", Some("1W"), OnExpiration, anchor));
    let mut tr = PairTracker::new(1);
    let ta = anchor + days(1) + secs(5);
    let r = fx.add(&mut tr, ta, "2");
    let (first, start, end) = as_start(&r.effects[0]);
    assert_eq!((start, end), (ta, Some(anchor + days(7))));
    assert_eq!(tr.status_at(anchor + days(7)), ProgressStatus::Expired);
    let tb = anchor + days(8);
    let r = fx.add(&mut tr, tb, "5");
    let (second, start, end) = as_start(&r.effects[0]);
    assert_ne!(second, first);
    assert_eq!((start, end), (tb, Some(anchor + days(14))));
    assert!(as_inc(&r.effects[1]).3);
    assert_eq!(cur(&tr).completion, Some(tb));
    // Skip a window entirely: the next iteration is in the window of its event.
    let tc = anchor + days(22);
    let r = fx.add(&mut tr, tc, "1");
    let (third, start, end) = as_start(&r.effects[0]);
    assert_eq!((start, end), (tc, Some(anchor + days(28))));
    let ids: Vec<_> = tr.iterations_at(tc).map(|i| (i.id, i.status)).collect();
    assert_eq!(
        ids,
        vec![
            (third, ProgressStatus::InProgress),
            (second, ProgressStatus::Completed),
            (first, ProgressStatus::Expired)
        ]
    );
}

#[test]
fn fixed_schedule_window_is_cut_at_end_date() {
    let anchor = ts("2023-10-02 00:00:00");
    let end_date = ts("2023-10-12 00:00:00");
    let rules = AchievementDraft {
        fixed_start_date: Some(anchor),
        end_date: Some(end_date),
        ..draft(
            "5",
            Some("1W"),
            OnExpiration,
            ActivationPolicy::FixedSchedule,
        )
    }
    .validate()
    .unwrap();
    let fx = Fx::new(rules);
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, anchor + days(1), "1");
    let r = fx.add(&mut tr, anchor + days(8), "1");
    assert_eq!(as_start(&r.effects[0]).2, Some(end_date));
    assert_rejected(&fx.add(&mut tr, end_date, "1"), Reason::OutsideSchedule);
    assert_rejected(
        &fx.add(&mut tr, end_date + days(100), "1"),
        Reason::OutsideSchedule,
    );
}

// ------------------------------------------------ on_completion / user_action

#[test]
fn on_completion_without_period_never_expires() {
    let fx = Fx::new(user("3", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    let r1 = fx.add(&mut tr, t0(), "2");
    let (first, start, end) = as_start(&r1.effects[0]);
    assert_eq!((start, end), (t0(), None));
    assert_eq!(cur(&tr).end, None);
    assert_eq!(tr.next_deadline(), None);
    let far = t0() + days(3650);
    assert_eq!(tr.status_at(far), ProgressStatus::InProgress);
    assert!(!tr.tick(far));
    let t2 = t0() + days(400);
    let r2 = fx.add(&mut tr, t2, "1");
    assert_eq!(r2.effects.len(), 1);
    assert_eq!(as_inc(&r2.effects[0]), (first, dec("1"), dec("3"), true));
    assert_eq!(cur(&tr).status, ProgressStatus::Completed);
    assert_eq!(cur(&tr).completion, Some(t2));
    assert_eq!(tr.status_at(far), ProgressStatus::Completed);
    // The next event restarts at once.
    let t3 = t2 + secs(1);
    let r3 = fx.add(&mut tr, t3, "1");
    let (second, start, _) = as_start(&r3.effects[0]);
    assert_ne!(second, first);
    assert_eq!(start, t3);
    assert_eq!(as_inc(&r3.effects[1]), (second, dec("1"), dec("1"), false));
    assert_eq!(just_completed_count(&[r1, r2, r3]), 1);
    let past = history(&tr, t3);
    assert_eq!(past.len(), 1);
    assert_eq!(
        (past[0].id, past[0].status, past[0].progress),
        (first, ProgressStatus::Completed, dec("3"))
    );
}

#[test]
fn on_completion_with_period_expires_and_restarts() {
    let fx = Fx::new(user("3", Some("1D"), OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "2");
    let end = t0() + days(1);
    assert_eq!(tr.next_deadline(), Some(end));
    assert_eq!(tr.status_at(end), ProgressStatus::Expired);
    assert!(tr.tick(end));
    let t = end + secs(30);
    let r = fx.add(&mut tr, t, "1");
    let (_, start, e) = as_start(&r.effects[0]);
    assert_eq!((start, e), (t, Some(t + days(1))));
    assert_eq!(history(&tr, t)[0].status, ProgressStatus::Expired);
    assert_eq!(history(&tr, t)[0].progress, dec("2"));
}

#[test]
fn on_completion_completed_iteration_is_closed_at_its_completion() {
    let fx = Fx::new(user("3", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1");
    let done = t0() + Duration::hours(2);
    fx.add(&mut tr, done, "2");
    assert_eq!(cur(&tr).status, ProgressStatus::Completed);
    // An event dated before the completion belongs to a closed iteration.
    let before = tr.clone();
    let r = fx.apply(&mut tr, done + secs(5), "1", Some(done - secs(1)), None);
    assert_rejected(&r, Reason::Late);
    assert_eq!(tr, before);
    assert_eq!(cur(&tr).progress, dec("3"));
    // One at the completion instant opens the next iteration.
    let r = fx.apply(&mut tr, done + secs(5), "1", Some(done), None);
    assert_eq!(as_start(&r.effects[0]).1, done);
    assert_eq!(tr.iterations_at(done).count(), 2);
}

// ------------------------------------------------ on_completion / fixed_schedule

#[test]
fn on_completion_fixed_schedule() {
    let anchor = ts("2023-10-02 00:00:00");
    let fx = Fx::new(fixed("2", Some("1W"), OnCompletion, anchor));
    let mut tr = PairTracker::new(1);
    let ta = anchor + days(1);
    let r = fx.add(&mut tr, ta, "2");
    let (first, start, end) = as_start(&r.effects[0]);
    assert_eq!((start, end), (ta, Some(anchor + days(7))));
    assert!(as_inc(&r.effects[1]).3);
    // Restarts within the same window, ending at the window's end.
    let tb = anchor + days(2);
    let r = fx.add(&mut tr, tb, "1");
    let (second, start, end) = as_start(&r.effects[0]);
    assert_ne!(first, second);
    assert_eq!((start, end), (tb, Some(anchor + days(7))));
    assert_eq!(tr.status_at(anchor + days(7)), ProgressStatus::Expired);
    assert_eq!(tr.next_deadline(), Some(anchor + days(7)));
    assert!(tr.tick(anchor + days(7)));
    let tc = anchor + days(9);
    let r = fx.add(&mut tr, tc, "1");
    assert_eq!(as_start(&r.effects[0]).2, Some(anchor + days(14)));
    let statuses: Vec<_> = tr.iterations_at(tc).map(|i| i.status).collect();
    assert_eq!(
        statuses,
        vec![
            ProgressStatus::InProgress,
            ProgressStatus::Expired,
            ProgressStatus::Completed
        ]
    );
}

// ------------------------------------------------ on_completion overshoot

#[test]
fn overshoot_exact_multiple_opens_nothing_more() {
    let fx = Fx::new(user("6", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    let r = fx.add(&mut tr, t0(), "12");
    assert_applied(&r);
    assert_eq!(r.effects.len(), 4, "{r:?}");
    let (a, sa, _) = as_start(&r.effects[0]);
    assert_eq!(sa, t0());
    assert_eq!(as_inc(&r.effects[1]), (a, dec("6"), dec("6"), true));
    let (b, sb, _) = as_start(&r.effects[2]);
    assert_eq!(sb, t0());
    assert_eq!(as_inc(&r.effects[3]), (b, dec("6"), dec("6"), true));
    assert_ne!(a, b);
    let all: Vec<_> = tr.iterations_at(t0()).collect();
    assert_eq!(all.len(), 2);
    for i in &all {
        assert_eq!(i.status, ProgressStatus::Completed);
        assert_eq!(i.progress, dec("6"));
        assert_eq!(i.completion, Some(t0()));
    }
    assert_eq!(all[0].id, b, "newest first");
    assert_eq!(tr.status_at(t0()), ProgressStatus::Completed);
}

#[test]
fn overshoot_with_remainder_opens_a_third() {
    let fx = Fx::new(user("6", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    let r = fx.add(&mut tr, t0(), "13");
    assert_eq!(r.effects.len(), 6, "{r:?}");
    let ids: Vec<_> = [0, 2, 4].map(|i| as_start(&r.effects[i]).0).to_vec();
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    assert_eq!(as_inc(&r.effects[1]), (ids[0], dec("6"), dec("6"), true));
    assert_eq!(as_inc(&r.effects[3]), (ids[1], dec("6"), dec("6"), true));
    assert_eq!(as_inc(&r.effects[5]), (ids[2], dec("1"), dec("1"), false));
    let all: Vec<_> = tr.iterations_at(t0()).collect();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].status, ProgressStatus::InProgress);
    assert_eq!(all[0].progress, dec("1"));
    assert_eq!(all[0].id, ids[2]);
    assert_eq!(all[1].status, ProgressStatus::Completed);
    assert_eq!(all[2].status, ProgressStatus::Completed);
}

#[test]
fn overshoot_from_partial_progress() {
    let fx = Fx::new(user("6", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "4");
    let first = cur(&tr).id;
    let r = fx.add(&mut tr, t0() + secs(1), "9");
    assert_eq!(r.effects.len(), 5, "{r:?}");
    assert_eq!(as_inc(&r.effects[0]), (first, dec("2"), dec("6"), true));
    let (second, _, _) = as_start(&r.effects[1]);
    assert_eq!(as_inc(&r.effects[2]), (second, dec("6"), dec("6"), true));
    let (third, _, _) = as_start(&r.effects[3]);
    assert_eq!(as_inc(&r.effects[4]), (third, dec("1"), dec("1"), false));
    assert_eq!(tr.iterations_at(t0()).count(), 3);
    assert_eq!(cur(&tr).progress, dec("1"));
}

#[test]
fn overshoot_with_period_new_iterations_end_at_t_plus_period() {
    let fx = Fx::new(user("6", Some("1D"), OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "5");
    let t = t0() + Duration::hours(5);
    let r = fx.add(&mut tr, t, "8");
    assert_eq!(r.effects.len(), 5, "{r:?}");
    for i in [1, 3] {
        let (_, start, end) = as_start(&r.effects[i]);
        assert_eq!((start, end), (t, Some(t + days(1))));
    }
    let c = cur(&tr);
    assert_eq!(c.start, t);
    assert_eq!(c.end.map(|e| e.end), Some(t + days(1)));
    assert_eq!(c.progress, dec("1"));
    assert_eq!(tr.next_deadline(), Some(t + days(1)));
    let past = history(&tr, t);
    assert_eq!(past[1].end.map(|e| e.end), Some(t0() + days(1)));
}

// ------------------------------------------------ endProgressOnTarget

#[test]
fn end_progress_on_target_clips() {
    for recurrence in [NoRecurrence, OnExpiration] {
        let rules = AchievementDraft {
            end_progress_on_target: true,
            ..draft("10", Some("1D"), recurrence, ActivationPolicy::UserAction)
        }
        .validate()
        .unwrap();
        let fx = Fx::new(rules);
        let mut tr = PairTracker::new(1);
        fx.add(&mut tr, t0(), "7");
        let id = cur(&tr).id;
        let r = fx.add(&mut tr, t0() + secs(1), "5");
        assert_eq!(as_inc(&r.effects[0]), (id, dec("3"), dec("10"), true));
        assert_eq!(cur(&tr).progress, dec("10"));
        let r = fx.add(&mut tr, t0() + secs(2), "4");
        assert_applied(&r);
        assert_eq!(as_inc(&r.effects[0]), (id, dec("0"), dec("10"), false));
        assert_eq!(cur(&tr).progress, dec("10"));
        assert_eq!(cur(&tr).completion, Some(t0() + secs(1)));
    }
}

#[test]
fn end_progress_on_target_clips_first_event() {
    let rules = AchievementDraft {
        end_progress_on_target: true,
        ..draft("10", Some("1D"), OnExpiration, ActivationPolicy::UserAction)
    }
    .validate()
    .unwrap();
    let fx = Fx::new(rules);
    let mut tr = PairTracker::new(1);
    let r = fx.add(&mut tr, t0(), "25");
    assert_eq!(r.effects.len(), 2);
    assert_eq!(as_inc(&r.effects[1]).1, dec("10"));
    assert_eq!(cur(&tr).progress, dec("10"));
}

// ------------------------------------------------ decimals

#[test]
fn decimal_progress_is_exact() {
    for recurrence in [NoRecurrence, OnExpiration, OnCompletion] {
        let fx = Fx::new(user("0.3", Some("1D"), recurrence));
        let mut tr = PairTracker::new(1);
        fx.add(&mut tr, t0(), "0.1");
        let r = fx.add(&mut tr, t0() + secs(1), "0.2");
        let last = r.effects.last().unwrap();
        assert!(as_inc(last).3, "{recurrence:?}: {r:?}");
        let c = cur(&tr);
        assert_eq!(c.status, ProgressStatus::Completed);
        assert_eq!(c.progress, dec("0.3"));
        assert_eq!(c.progress.to_string(), "0.3");
    }
}

// ------------------------------------------------ idempotency

#[test]
fn duplicate_event_returns_original_effects_and_changes_nothing() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    let first = fx.add_id(&mut tr, t0(), "3", "e1");
    assert_applied(&first);
    assert_eq!(tr.remembered_events(), 1);
    let snapshot = tr.clone();
    // Same id, even with another delta: the original answer.
    let again = fx.add_id(&mut tr, t0() + secs(10), "5", "e1");
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(again.reason, None);
    assert_eq!(again.effects, first.effects);
    assert_eq!(tr, snapshot);
    assert_eq!(cur(&tr).progress, dec("3"));
    // Another id is applied.
    assert_applied(&fx.add_id(&mut tr, t0() + secs(11), "1", "e2"));
    assert_eq!(cur(&tr).progress, dec("4"));
    assert_eq!(tr.remembered_events(), 2);
}

#[test]
fn duplicate_is_answered_before_other_checks() {
    let mut fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    let first = fx.add_id(&mut tr, t0(), "3", "e1");
    fx.running = false;
    let again = fx.add_id(&mut tr, t0() + secs(1), "3", "e1");
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(again.effects, first.effects);
    // Also after the period the event landed in has ended.
    fx.running = true;
    let again = fx.add_id(&mut tr, t0() + days(2), "3", "e1");
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(tr.iterations_at(t0() + days(2)).count(), 1);
}

#[test]
fn duplicate_of_rolled_back_event_is_still_a_duplicate() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    let first = fx.add_id(&mut tr, t0(), "3", "e1");
    assert_applied(&fx.rollback(&mut tr, t0() + secs(1), "e1"));
    let again = fx.add_id(&mut tr, t0() + secs(2), "3", "e1");
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(again.effects, first.effects);
    assert_eq!(cur(&tr).progress, dec("0"));
}

#[test]
fn event_ids_are_forgotten_after_retention() {
    let fx = Fx::new(user("100", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "3", "e1");
    let retention = fx.limits.idempotency_retention;
    assert_eq!(retention, days(7));
    let r = fx.add_id(&mut tr, t0() + retention - secs(1), "3", "e1");
    assert_eq!(r.outcome, Outcome::Duplicate);
    let r = fx.add_id(&mut tr, t0() + retention + secs(1), "3", "e1");
    assert_applied(&r);
    assert_eq!(cur(&tr).progress, dec("6"));
    assert_eq!(tr.remembered_events(), 1);
    // Retention counts from the new arrival.
    let r = fx.add_id(&mut tr, t0() + retention + days(6), "3", "e1");
    assert_eq!(r.outcome, Outcome::Duplicate);
}

#[test]
fn rejected_events_are_not_remembered() {
    let mut fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.running = false;
    assert_rejected(
        &fx.add_id(&mut tr, t0(), "3", "e1"),
        Reason::CampaignNotRunning,
    );
    assert_eq!(tr.remembered_events(), 0);
    fx.running = true;
    let r = fx.apply(
        &mut tr,
        t0(),
        "3",
        Some(t0() + Duration::hours(1)),
        Some("e1"),
    );
    assert_rejected(&r, Reason::FutureTimestamp);
    assert_eq!(tr.remembered_events(), 0);
    let r = fx.add_id(&mut tr, t0(), "3", "e1");
    assert_applied(&r);
    assert_eq!(cur(&tr).progress, dec("3"));
}

#[test]
fn events_without_id_are_not_remembered() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "3");
    fx.add(&mut tr, t0(), "3");
    assert_eq!(tr.remembered_events(), 0);
    assert_eq!(cur(&tr).progress, dec("6"));
}

// ------------------------------------------------ rollback

fn rollback_effect(r: &EventResult) -> (ProgressTrackerId, Decimal, Decimal) {
    assert_applied(r);
    assert_eq!(r.effects.len(), 1);
    match &r.effects[0] {
        Effect::Rollback {
            tracker,
            decrease_by,
            current,
            target,
        } => {
            assert!(*target > Decimal::ZERO);
            (*tracker, *decrease_by, *current)
        }
        other => panic!("expected a rollback effect, got {other:?}"),
    }
}

#[test]
fn rollback_before_completion() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "3", "a");
    fx.add_id(&mut tr, t0() + secs(1), "4", "b");
    let id = cur(&tr).id;
    let r = fx.rollback(&mut tr, t0() + secs(2), "a");
    assert_eq!(rollback_effect(&r), (id, dec("3"), dec("4")));
    assert_eq!(cur(&tr).progress, dec("4"));
    assert_eq!(cur(&tr).status, ProgressStatus::InProgress);
    let before = tr.clone();
    assert_rejected(
        &fx.rollback(&mut tr, t0() + secs(3), "a"),
        Reason::AlreadyRolledBack,
    );
    assert_rejected(
        &fx.rollback(&mut tr, t0() + secs(3), "zzz"),
        Reason::UnknownEvent,
    );
    assert_eq!(tr, before);
    // The rolled back event's target is reported.
    match &r.effects[0] {
        Effect::Rollback { target, .. } => assert_eq!(*target, dec("10")),
        _ => unreachable!(),
    }
}

#[test]
fn rollback_of_event_without_id_is_unknown() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "3");
    assert_rejected(&fx.rollback(&mut tr, t0(), "x"), Reason::UnknownEvent);
    assert_eq!(cur(&tr).progress, dec("3"));
}

#[test]
fn rollback_after_completion_not_allowed_by_default() {
    let fx = Fx::new(user("10", Some("1D"), NoRecurrence));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "3", "a");
    fx.add_id(&mut tr, t0() + secs(1), "7", "b");
    let before = tr.clone();
    assert_rejected(
        &fx.rollback(&mut tr, t0() + secs(2), "a"),
        Reason::RollbackNotAllowed,
    );
    assert_rejected(
        &fx.rollback(&mut tr, t0() + secs(2), "b"),
        Reason::RollbackNotAllowed,
    );
    assert_eq!(tr, before);
    // Refused rollbacks do not use the event up.
    assert_rejected(
        &fx.rollback(&mut tr, t0() + secs(3), "a"),
        Reason::RollbackNotAllowed,
    );
}

#[test]
fn rollback_after_completion_with_flag() {
    for recurrence in [NoRecurrence, OnExpiration] {
        let rules = AchievementDraft {
            allow_rollback_after_completion: true,
            ..draft("10", Some("1D"), recurrence, ActivationPolicy::UserAction)
        }
        .validate()
        .unwrap();
        let fx = Fx::new(rules);
        let mut tr = PairTracker::new(1);
        fx.add_id(&mut tr, t0(), "2", "a");
        fx.add_id(&mut tr, t0() + secs(1), "10", "b");
        assert_eq!(cur(&tr).status, ProgressStatus::Completed);
        // Still at target: stays completed.
        let r = fx.rollback(&mut tr, t0() + secs(2), "a");
        assert_eq!(rollback_effect(&r).2, dec("10"));
        assert_eq!(cur(&tr).status, ProgressStatus::Completed);
        assert_eq!(cur(&tr).completion, Some(t0() + secs(1)));
        // Below target: back to in progress without a completion date.
        let r = fx.rollback(&mut tr, t0() + secs(3), "b");
        assert_eq!(rollback_effect(&r).2, dec("0"));
        let c = cur(&tr);
        assert_eq!(c.status, ProgressStatus::InProgress);
        assert_eq!(c.completion, None);
        assert_eq!(tr.next_deadline(), Some(t0() + days(1)));
        // Completing again is "just completed" again.
        let r = fx.add(&mut tr, t0() + secs(4), "10");
        assert!(as_inc(&r.effects[0]).3);
    }
}

#[test]
fn rollback_after_period_ended() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "3", "a");
    // Ended, not yet ticked.
    let end = t0() + days(1);
    let before = tr.clone();
    assert_rejected(&fx.rollback(&mut tr, end, "a"), Reason::PeriodEnded);
    assert_eq!(tr.iterations_at(end).next().unwrap().progress, dec("3"));
    assert_eq!(
        tr.current().unwrap().progress,
        before.current().unwrap().progress
    );
    // Ended and replaced by a newer iteration.
    fx.add_id(&mut tr, end + secs(1), "1", "b");
    assert_rejected(
        &fx.rollback(&mut tr, end + secs(2), "a"),
        Reason::PeriodEnded,
    );
    assert_eq!(history(&tr, end)[0].progress, dec("3"));
    // The new one can still be rolled back.
    let r = fx.rollback(&mut tr, end + secs(3), "b");
    assert_eq!(rollback_effect(&r).2, dec("0"));
}

#[test]
fn rollback_ignores_campaign_state() {
    let mut fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "3", "a");
    fx.running = false;
    assert_applied(&fx.rollback(&mut tr, t0() + secs(1), "a"));
    assert_eq!(cur(&tr).progress, dec("0"));
}

#[test]
fn rollback_forgotten_after_retention() {
    let fx = Fx::new(user("10", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "3", "a");
    assert_rejected(
        &fx.rollback(&mut tr, t0() + days(7) + secs(1), "a"),
        Reason::UnknownEvent,
    );
    assert_eq!(cur(&tr).progress, dec("3"));
}

#[test]
fn rollback_on_completion_before_completion() {
    let fx = Fx::new(user("6", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "4", "a");
    let id = cur(&tr).id;
    let r = fx.rollback(&mut tr, t0() + secs(1), "a");
    assert_eq!(rollback_effect(&r), (id, dec("4"), dec("0")));
    assert_eq!(tr.status_at(t0()), ProgressStatus::InProgress);
}

#[test]
fn rollback_of_on_completion_overshoot_is_not_allowed() {
    let fx = Fx::new(user("6", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "13", "big");
    let before = tr.clone();
    assert_rejected(
        &fx.rollback(&mut tr, t0() + secs(1), "big"),
        Reason::RollbackNotAllowed,
    );
    assert_eq!(tr, before);
    // An event that exactly completed one iteration is not undoable either.
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "2", "a");
    fx.add_id(&mut tr, t0() + secs(1), "4", "b");
    assert_rejected(
        &fx.rollback(&mut tr, t0() + secs(2), "b"),
        Reason::RollbackNotAllowed,
    );
    assert_rejected(
        &fx.rollback(&mut tr, t0() + secs(2), "a"),
        Reason::RollbackNotAllowed,
    );
    // ... also once a newer iteration is current.
    fx.add_id(&mut tr, t0() + secs(3), "1", "c");
    assert_rejected(
        &fx.rollback(&mut tr, t0() + secs(4), "b"),
        Reason::RollbackNotAllowed,
    );
    assert_eq!(history(&tr, t0())[0].progress, dec("6"));
}

// ------------------------------------------------ rejections

#[test]
fn late_event_before_current_start() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    let start = t0() + Duration::hours(2);
    fx.add(&mut tr, start, "1");
    let before = tr.clone();
    let r = fx.apply(&mut tr, start + secs(1), "1", Some(start - secs(1)), None);
    assert_rejected(&r, Reason::Late);
    assert_eq!(tr, before);
    // At the start instant is fine.
    assert_applied(&fx.apply(&mut tr, start + secs(1), "1", Some(start), None));
}

#[test]
fn future_timestamps() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    let skew = fx.limits.max_clock_skew;
    assert_eq!(skew, Duration::minutes(5));
    let r = fx.apply(&mut tr, t0(), "1", Some(t0() + skew + secs(1)), None);
    assert_rejected(&r, Reason::FutureTimestamp);
    assert!(tr.current().is_none());
    let r = fx.apply(&mut tr, t0(), "1", Some(t0() + skew), None);
    assert_applied(&r);
    assert_eq!(as_start(&r.effects[0]).1, t0() + skew);
}

#[test]
fn outside_schedule() {
    let anchor = ts("2023-10-02 00:00:00");
    let end_date = ts("2023-12-01 00:00:00");
    let rules = AchievementDraft {
        fixed_start_date: Some(anchor),
        end_date: Some(end_date),
        ..draft(
            "5",
            Some("1W"),
            OnExpiration,
            ActivationPolicy::FixedSchedule,
        )
    }
    .validate()
    .unwrap();
    let fx = Fx::new(rules);
    let mut tr = PairTracker::new(1);
    assert_rejected(
        &fx.add(&mut tr, anchor - secs(1), "1"),
        Reason::OutsideSchedule,
    );
    assert_rejected(&fx.add(&mut tr, end_date, "1"), Reason::OutsideSchedule);
    assert_rejected(
        &fx.apply(&mut tr, end_date + secs(1), "1", Some(end_date), None),
        Reason::OutsideSchedule,
    );
    assert!(tr.current().is_none());
    assert_applied(&fx.add(&mut tr, anchor, "1"));
    assert_applied(&fx.apply(
        &mut tr,
        end_date - secs(1),
        "1",
        Some(end_date - secs(1)),
        None,
    ));
}

#[test]
fn user_action_end_date_cuts_and_rejects() {
    let end_date = t0() + Duration::hours(5);
    let rules = AchievementDraft {
        end_date: Some(end_date),
        ..draft("5", Some("1D"), OnExpiration, ActivationPolicy::UserAction)
    }
    .validate()
    .unwrap();
    let fx = Fx::new(rules);
    let mut tr = PairTracker::new(1);
    let r = fx.add(&mut tr, t0(), "1");
    assert_eq!(as_start(&r.effects[0]).2, Some(end_date));
    assert_eq!(tr.status_at(end_date), ProgressStatus::Expired);
    assert_rejected(&fx.add(&mut tr, end_date, "1"), Reason::OutsideSchedule);
}

#[test]
fn campaign_not_running() {
    let mut fx = Fx::new(user("10", Some("1D"), OnExpiration));
    fx.running = false;
    let mut tr = PairTracker::new(1);
    let before = tr.clone();
    assert_rejected(&fx.add(&mut tr, t0(), "1"), Reason::CampaignNotRunning);
    assert_eq!(tr, before);
}

// ------------------------------------------------ history cap

#[test]
fn history_is_capped_newest_first() {
    let mut fx = Fx::new(user("1", None, OnCompletion));
    fx.limits = Limits {
        history_cap: 3,
        ..Limits::default()
    };
    let mut tr = PairTracker::new(1);
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = fx.add(&mut tr, t0() + secs(i), "1");
        ids.push(as_start(&r.effects[0]).0);
    }
    let all: Vec<_> = tr.iterations_at(t0() + secs(20)).map(|i| i.id).collect();
    assert_eq!(all, vec![ids[9], ids[8], ids[7], ids[6]]);
    // Also within one overshoot event.
    fx.add(&mut tr, t0() + secs(30), "5");
    assert_eq!(tr.iterations_at(t0() + secs(30)).count(), 4);
    let to_parts = tr.to_parts();
    assert_eq!(to_parts.history.len(), 3);
}

#[test]
fn history_cap_zero_keeps_only_current() {
    let mut fx = Fx::new(user("1", None, OnCompletion));
    fx.limits.history_cap = 0;
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "3");
    assert_eq!(tr.iterations_at(t0()).count(), 1);
}

// ------------------------------------------------ errors

#[test]
fn non_positive_delta_is_an_error() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "1", "a");
    let before = tr.clone();
    for delta in ["0", "-1", "-0.01"] {
        assert_eq!(
            fx.try_apply(&mut tr, t0(), delta, None, Some("z")),
            Err(DomainError::NonPositiveDelta)
        );
        assert_eq!(tr, before);
    }
}

#[test]
fn too_many_iterations_is_an_error_and_changes_nothing() {
    let fx = Fx::new(user("1", Some("1h"), OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "0.5", "a");
    // The current iteration has expired by now, an id is old enough to be
    // forgotten: an error must not even make those visible in the state.
    let now = t0() + days(8);
    let before = tr.clone();
    let r = fx.try_apply(&mut tr, now, "10001", None, Some("b"));
    assert_eq!(
        r,
        Err(DomainError::TooManyIterations(MAX_COMPLETIONS_PER_EVENT))
    );
    assert_eq!(tr, before);
    // Exactly the maximum is fine.
    let r = fx
        .try_apply(&mut tr, now, "10000", None, Some("b"))
        .unwrap();
    assert_applied(&r);
    assert_eq!(
        r.effects
            .iter()
            .filter(|e| matches!(
                e,
                Effect::Increase {
                    just_completed: true,
                    ..
                }
            ))
            .count(),
        10_000
    );
    assert_eq!(tr.status_at(now), ProgressStatus::Completed);
}

#[test]
fn too_many_iterations_counts_existing_progress() {
    let fx = Fx::new(user("2", None, OnCompletion));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1.5");
    let before = tr.clone();
    // 1.5 + 19999 = 20000.5 -> 10000 completions: allowed; one more is not.
    let r = fx.try_apply(&mut tr, t0(), "20000.5", None, None);
    assert_eq!(
        r,
        Err(DomainError::TooManyIterations(MAX_COMPLETIONS_PER_EVENT))
    );
    assert_eq!(tr, before);
    assert!(fx.try_apply(&mut tr, t0(), "19999", None, None).is_ok());
}

#[test]
fn tracker_ids_exhausted_is_an_error() {
    let fx = Fx::new(user("1", None, OnCompletion));
    let mut tr = PairTracker::from_parts(TrackerParts {
        tracker_base: 1 << TRACKER_SEQ_BITS,
        next_seq: (1 << TRACKER_SEQ_BITS) - 3,
        ..TrackerParts::default()
    });
    let before = tr.clone();
    assert_eq!(
        fx.try_apply(&mut tr, t0(), "5", None, None),
        Err(DomainError::TrackerIdsExhausted)
    );
    assert_eq!(tr, before);
    assert!(fx.try_apply(&mut tr, t0(), "1.5", None, None).is_ok());
}

#[test]
fn overflow_is_an_error_and_changes_nothing() {
    let fx = Fx::new(user("100000000000000000000", Some("1Y"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "1", "old");
    // "old" is past retention at `now`: the error must not forget it either.
    let now = t0() + days(8);
    let before = tr.clone();
    let r = tr.apply(
        &fx.ctx(now),
        &Increase {
            delta: Decimal::MAX,
            at: None,
            event_id: Some(eid("new")),
        },
    );
    assert_eq!(r, Err(DomainError::Overflow));
    assert_eq!(tr, before);
    assert_eq!(tr.remembered_events(), 1);
}

#[test]
fn rejections_change_nothing() {
    let fx = Fx::new(user("10", Some("1D"), NoRecurrence));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "1", "a");
    let before = tr.clone();
    let now = t0() + days(9);
    assert_rejected(&fx.add_id(&mut tr, now, "1", "b"), Reason::Expired);
    assert_rejected(
        &fx.apply(&mut tr, now, "1", Some(t0() - secs(1)), Some("c")),
        Reason::Late,
    );
    assert_eq!(tr.to_parts().events, before.to_parts().events);
    assert_eq!(tr.iterations_at(now).count(), 1);
    assert_eq!(tr.iterations_at(now).next().unwrap().progress, dec("1"));
}

#[test]
fn daily_period_keeps_local_time_across_dst() {
    let mut fx = Fx::new(user("10", Some("1D"), OnExpiration));
    fx.tz = "Europe/Berlin".parse().unwrap();
    let mut tr = PairTracker::new(1);
    // 2023-03-25 09:30 CET; the clocks go forward on the 26th.
    let first = ts("2023-03-25 08:30:00");
    let r = fx.add(&mut tr, first, "1");
    // 2023-03-26 09:30 CEST: 23 real hours later.
    assert_eq!(as_start(&r.effects[0]).2, Some(ts("2023-03-26 07:30:00")));
    assert_eq!(tr.next_deadline(), Some(ts("2023-03-26 07:30:00")));
}

// ------------------------------------------------ snapshots

#[test]
fn parts_round_trip() {
    let fx = Fx::new(user("4", Some("1D"), OnCompletion));
    let mut tr = PairTracker::new(3);
    fx.add_id(&mut tr, t0(), "9", "a");
    fx.add_id(&mut tr, t0() + secs(1), "1", "b");
    fx.add_id(&mut tr, t0() + secs(2), "1", "c");
    fx.rollback(&mut tr, t0() + secs(3), "c");
    let parts = tr.to_parts();
    assert_eq!(parts.history.len(), 2);
    assert_eq!(parts.events.len(), 3);
    assert!(
        parts.events.windows(2).all(|w| w[0].key < w[1].key),
        "sorted"
    );
    let c = EventKey::of(&eid("c"));
    assert!(parts.events.iter().all(|e| e.rolled_back == (e.key == c)));
    let back = PairTracker::from_parts(parts.clone());
    assert_eq!(back, tr);
    assert_eq!(back.to_parts(), parts);
    // The restored tracker behaves the same.
    let (mut a, mut b) = (tr.clone(), back);
    let ra = fx.add_id(&mut a, t0() + secs(4), "1", "b");
    let rb = fx.add_id(&mut b, t0() + secs(4), "1", "b");
    assert_eq!(ra, rb);
    assert_eq!(ra.outcome, Outcome::Duplicate);
    assert_eq!(a, b);
}

// ------------------------------------------------ properties

fn cents() -> impl Strategy<Value = Decimal> {
    (1i64..=10_000).prop_map(|c| Decimal::new(c, 2))
}

#[derive(Debug, Clone)]
enum Op {
    Add(Decimal),
    /// Roll back the event at this index (modulo the events so far).
    Rollback(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => cents().prop_map(Op::Add),
        1 => any::<usize>().prop_map(Op::Rollback),
    ]
}

proptest! {
    #[test]
    fn progress_is_sum_of_applied_minus_rolled_back(ops in prop::collection::vec(op(), 1..60)) {
        let fx = Fx::new(user("100000000000000000000", Some("100Y"), OnExpiration));
        let mut tr = PairTracker::new(1);
        let mut added: Vec<(String, Decimal, bool)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let now = t0() + secs(i as i64);
            match op {
                Op::Add(d) => {
                    let id = format!("e{i}");
                    let r = fx.add_id(&mut tr, now, &d.to_string(), &id);
                    prop_assert_eq!(r.outcome, Outcome::Applied);
                    added.push((id, *d, false));
                }
                Op::Rollback(k) if !added.is_empty() => {
                    let k = k % added.len();
                    let r = fx.rollback(&mut tr, now, &added[k].0);
                    if added[k].2 {
                        prop_assert_eq!(r.reason, Some(Reason::AlreadyRolledBack));
                    } else {
                        prop_assert_eq!(r.outcome, Outcome::Applied);
                        added[k].2 = true;
                    }
                }
                Op::Rollback(_) => {
                    let r = fx.rollback(&mut tr, now, "nothing");
                    prop_assert_eq!(r.reason, Some(Reason::UnknownEvent));
                }
            }
            let expected: Decimal = added.iter().filter(|a| !a.2).map(|a| a.1).sum();
            let progress = tr.current().map_or(Decimal::ZERO, |c| c.progress);
            prop_assert_eq!(progress, expected);
        }
        prop_assert_eq!(tr.iterations_at(t0()).count(), usize::from(tr.current().is_some()));
    }

    #[test]
    fn rollback_exactly_undoes_its_increase(
        recurrence in prop::sample::select(vec![NoRecurrence, OnExpiration, OnCompletion]),
        allow in any::<bool>(),
        clip in any::<bool>(),
        target in cents(),
        before in prop::collection::vec(cents(), 0..8),
        delta in cents(),
    ) {
        let on_completion = recurrence == OnCompletion;
        let rules = AchievementDraft {
            allow_rollback_after_completion: allow && !on_completion,
            end_progress_on_target: clip && !on_completion,
            ..draft(&target.to_string(), Some("1D"), recurrence, ActivationPolicy::UserAction)
        }
        .validate()
        .unwrap();
        let fx = Fx::new(rules);
        let mut tr = PairTracker::new(1);
        for (i, d) in before.iter().enumerate() {
            fx.add(&mut tr, t0() + secs(i as i64), &d.to_string());
        }
        let now = t0() + secs(100);
        let state_before = tr.clone();
        let inc = fx.add_id(&mut tr, now, &delta.to_string(), "x");
        prop_assert_eq!(inc.outcome, Outcome::Applied);
        let after_inc = tr.clone();
        let completed_now = tr.current().unwrap().status == ProgressStatus::Completed;
        let touched = inc.effects.iter().filter(|e| matches!(e, Effect::Increase { .. })).count();
        let just_completed = just_completed_count(std::slice::from_ref(&inc)) > 0;
        let allowed = if on_completion {
            touched == 1 && !just_completed
        } else {
            !completed_now || allow
        };
        let r = fx.rollback(&mut tr, now, "x");
        if allowed {
            prop_assert_eq!(r.outcome, Outcome::Applied);
            let opened = inc.effects.iter().any(|e| matches!(e, Effect::Start { .. }));
            let progress_before = if opened {
                Decimal::ZERO
            } else {
                state_before.current().unwrap().progress
            };
            let c = tr.current().unwrap();
            prop_assert_eq!(c.progress, progress_before);
            if !opened {
                let b = state_before.current().unwrap();
                prop_assert_eq!(c.status, b.status);
                prop_assert_eq!(c.completion, b.completion);
            }
        } else {
            prop_assert_eq!(r.reason, Some(Reason::RollbackNotAllowed));
            prop_assert_eq!(&tr, &after_inc);
        }
    }

    #[test]
    fn on_completion_iterations_add_up(
        target in (1i64..=2_000).prop_map(|c| Decimal::new(c, 2)),
        deltas in prop::collection::vec(cents(), 1..40),
    ) {
        let mut fx = Fx::new(user(&target.to_string(), None, OnCompletion));
        fx.limits.history_cap = usize::MAX;
        let mut tr = PairTracker::new(1);
        for (i, d) in deltas.iter().enumerate() {
            let r = fx.add(&mut tr, t0() + secs(i as i64), &d.to_string());
            prop_assert_eq!(r.outcome, Outcome::Applied);
            let added: Decimal = r.effects.iter().filter_map(|e| match e {
                Effect::Increase { delta, .. } => Some(*delta),
                _ => None,
            }).sum();
            prop_assert_eq!(added, *d);
        }
        let now = t0() + days(1);
        let all: Vec<_> = tr.iterations_at(now).collect();
        let total: Decimal = deltas.iter().sum();
        prop_assert_eq!(all.iter().map(|i| i.progress).sum::<Decimal>(), total);
        for past in &all[1..] {
            prop_assert_eq!(past.progress, target);
            prop_assert_eq!(past.status, ProgressStatus::Completed);
        }
        let c = &all[0];
        if c.status == ProgressStatus::Completed {
            prop_assert_eq!(c.progress, target);
        } else {
            prop_assert!(c.progress > Decimal::ZERO && c.progress < target);
        }
        let full = (total / target).floor();
        let expected = full + if (total % target).is_zero() { Decimal::ZERO } else { Decimal::ONE };
        prop_assert_eq!(Decimal::from(all.len()), expected);
        let mut ids: Vec<_> = all.iter().map(|i| i.id).collect();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(ids.len(), all.len());
    }
}

#[test]
fn outside_schedule_is_checked_before_future_timestamp() {
    let mut rules = user("10", Some("1D"), OnExpiration);
    rules.end_date = Some(ts("2024-01-01 00:30:00"));
    let fx = Fx::new(rules);
    let mut tr = PairTracker::new(1);
    let now = ts("2024-01-01 00:00:00");
    // An hour ahead of the server and after endDate: the schedule decides.
    let r = fx.apply(&mut tr, now, "1", Some(ts("2024-01-01 01:00:00")), None);
    assert_eq!(r.reason, Some(Reason::OutsideSchedule));
    // Ten minutes ahead and within the schedule: too far in the future.
    let r = fx.apply(&mut tr, now, "1", Some(ts("2024-01-01 00:10:00")), None);
    assert_eq!(r.reason, Some(Reason::FutureTimestamp));
    assert!(!tr.has_progress());
}

// ------------------------------------------------ remembered ids, compactly

/// An event of the duplicate property: its delta (small, with decimals,
/// beyond a 64-bit mantissa), which of a few ids it carries, and how long
/// after the previous one it arrives.
fn remembered_op() -> impl Strategy<Value = (String, usize, i64)> {
    (
        prop_oneof![
            Just("1".to_string()),
            Just("2.50".to_string()),
            Just("7".to_string()),
            Just("13".to_string()),
            Just("0.001".to_string()),
            Just("100000000000000000000.5".to_string()),
        ],
        0usize..12,
        prop_oneof![Just(1i64), Just(3_600), Just(86_400 * 2)],
    )
}

proptest! {
    /// However an event landed — in the current iteration, opening one,
    /// completing several, with amounts too wide for the compact form, its
    /// iteration since pushed out of a short history — a retry is answered
    /// `duplicate` with exactly the effects of the first answer, and a
    /// restored copy of the pair answers the same.
    #[test]
    fn a_duplicate_answers_the_original_effects(
        ops in prop::collection::vec(remembered_op(), 1..40),
        recurrence in prop_oneof![Just(NoRecurrence), Just(OnExpiration), Just(OnCompletion)],
        period in prop_oneof![Just("1D"), Just("1W"), Just("1Y")],
    ) {
        let mut fx = Fx::new(user("6", Some(period), recurrence));
        fx.limits.history_cap = 2;
        let mut tr = PairTracker::new(7);
        let mut first: std::collections::HashMap<usize, (DateTime<Utc>, Vec<Effect>)> =
            std::collections::HashMap::new();
        let mut now = t0();
        for (delta, id, gap) in &ops {
            now += secs(*gap);
            let key = format!("id-{id}");
            let Ok(r) = fx.try_apply(&mut tr, now, delta, None, Some(&key)) else {
                continue;
            };
            let remembered = first
                .get(id)
                .filter(|(at, _)| *at + fx.limits.idempotency_retention > now);
            match remembered {
                Some((_, effects)) => {
                    prop_assert_eq!(r.outcome, Outcome::Duplicate);
                    prop_assert_eq!(&r.effects, effects);
                }
                None => {
                    prop_assert_ne!(r.outcome, Outcome::Duplicate);
                    if r.outcome == Outcome::Applied {
                        first.insert(*id, (now, r.effects.clone()));
                    }
                }
            }
            let back = PairTracker::from_parts(tr.to_parts());
            prop_assert_eq!(&back, &tr);
        }
        // Every id still remembered answers its first effects, also from a
        // restored copy.
        let mut copy = PairTracker::from_parts(tr.to_parts());
        for (id, (at, effects)) in &first {
            if *at + fx.limits.idempotency_retention <= now {
                continue;
            }
            for t in [&mut tr, &mut copy] {
                let r = fx.apply(t, now, "1", None, Some(&format!("id-{id}")));
                prop_assert_eq!(r.outcome, Outcome::Duplicate);
                prop_assert_eq!(&r.effects, effects);
            }
        }
    }
}

#[test]
fn a_duplicate_of_an_event_whose_iteration_left_the_history_keeps_its_start() {
    let mut fx = Fx::new(user("2", Some("1D"), OnExpiration));
    fx.limits.history_cap = 1;
    let mut tr = PairTracker::new(1);
    let first = fx.add_id(&mut tr, t0(), "1", "opener");
    assert_eq!(first.effects.len(), 2, "a start and an increase");
    // Two more days: the first iteration leaves the one-slot history.
    fx.add_id(&mut tr, t0() + days(1), "1", "second");
    fx.add_id(&mut tr, t0() + days(2), "1", "third");
    assert!(tr
        .iterations_at(t0() + days(2))
        .all(|it| it.id != as_start(&first.effects[0]).0));
    let again = fx.add_id(&mut tr, t0() + days(2), "1", "opener");
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(again.effects, first.effects);
}

#[test]
fn a_rollback_finds_a_compactly_remembered_increase() {
    let fx = Fx::new(user("10", Some("1W"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "2.25", "a");
    fx.add_id(&mut tr, t0() + secs(1), "3", "b");
    let r = fx.rollback(&mut tr, t0() + secs(2), "a");
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(tr.current().map(|c| c.progress), Some(dec("3.00")));
    let again = fx.rollback(&mut tr, t0() + secs(3), "a");
    assert_eq!(again.reason, Some(Reason::AlreadyRolledBack));
}
