//! Feed transitions (`domain::happened`): every way an iteration starts,
//! completes, expires or loses its completion shows up once, in order, and
//! agrees with the effects the same changes answered.

use super::*;

use crate::domain::happened::{EntryType, Transition};

/// Applies `f` and returns what changed, as (type, tracker seq, at).
fn changes(
    tr: &mut PairTracker,
    at: DateTime<Utc>,
    f: impl FnOnce(&mut PairTracker),
) -> Vec<(EntryType, u64, DateTime<Utc>)> {
    let mark = tr.mark();
    f(tr);
    let mut out = Vec::new();
    tr.transitions_since(mark, at, &mut out);
    out.iter()
        .map(|t| (t.kind, t.iteration.id.0 & 0xFFFF, t.at))
        .collect()
}

use EntryType::{Completed, CompletionRolledBack, Expired, Started};

#[test]
fn start_then_completion() {
    let fx = Fx::new(user("5", Some("1W"), OnExpiration));
    let mut tr = PairTracker::new(1);
    let t = t0();
    assert_eq!(
        changes(&mut tr, t, |tr| {
            fx.add(tr, t, "2");
        }),
        vec![(Started, 0, t)]
    );
    let t2 = t + secs(60);
    assert_eq!(
        changes(&mut tr, t2, |tr| {
            fx.add(tr, t2, "1");
        }),
        vec![]
    );
    assert_eq!(
        changes(&mut tr, t2, |tr| {
            fx.add(tr, t2, "2");
        }),
        vec![(Completed, 0, t2)]
    );
    // Progress past the target changes no status.
    assert_eq!(
        changes(&mut tr, t2, |tr| {
            fx.add(tr, t2, "2");
        }),
        vec![]
    );
}

#[test]
fn on_completion_overshoot_opens_and_completes_in_order() {
    let fx = Fx::new(user("2", Some("1W"), OnCompletion));
    let mut tr = PairTracker::new(1);
    let t = t0();
    assert_eq!(
        changes(&mut tr, t, |tr| {
            fx.add(tr, t, "5");
        }),
        vec![
            (Started, 0, t),
            (Completed, 0, t),
            (Started, 1, t),
            (Completed, 1, t),
            (Started, 2, t),
        ]
    );
}

#[test]
fn expiry_by_time_is_told_once_at_the_period_end() {
    let fx = Fx::new(user("5", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1");
    let end = t0() + Duration::days(1);
    // Before the end nothing happens.
    assert_eq!(
        changes(&mut tr, end, |tr| {
            tr.tick(end - secs(1));
        }),
        vec![]
    );
    assert_eq!(
        changes(&mut tr, end, |tr| {
            tr.tick(end + secs(3));
        }),
        vec![(Expired, 0, end)]
    );
    assert_eq!(
        changes(&mut tr, end, |tr| {
            tr.tick(end + secs(9));
        }),
        vec![]
    );
    // The next event opens a new iteration and tells nothing more of the old.
    let t = end + secs(3600);
    assert_eq!(
        changes(&mut tr, t, |tr| {
            fx.add(tr, t, "1");
        }),
        vec![(Started, 1, t)]
    );
}

#[test]
fn expiry_found_by_the_next_event_comes_before_its_start() {
    let fx = Fx::new(user("5", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1");
    let end = t0() + Duration::days(1);
    let t = end + secs(3600);
    assert_eq!(
        changes(&mut tr, t, |tr| {
            fx.add(tr, t, "1");
        }),
        vec![(Expired, 0, end), (Started, 1, t)]
    );
}

#[test]
fn imported_history_tells_each_iteration_with_its_own_times() {
    let fx = Fx::new(user("2", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    let now = t0() + Duration::days(30);
    let mut all = Vec::new();
    for (day, delta) in [(0, "1"), (1, "2"), (3, "1")] {
        let at = t0() + Duration::days(day);
        all.extend(changes(&mut tr, at, |tr| {
            fx.apply(tr, now, delta, Some(at), None);
        }));
    }
    let d = |n: i64| t0() + Duration::days(n);
    assert_eq!(
        all,
        vec![
            (Started, 0, d(0)),
            (Expired, 0, d(1)),
            (Started, 1, d(1)),
            (Completed, 1, d(1)),
            (Started, 2, d(3)),
        ]
    );
}

#[test]
fn rollback_below_target_takes_the_completion_back() {
    let rules = AchievementDraft {
        allow_rollback_after_completion: true,
        ..draft("10", Some("1D"), OnExpiration, ActivationPolicy::UserAction)
    }
    .validate()
    .unwrap();
    let fx = Fx::new(rules);
    let mut tr = PairTracker::new(1);
    fx.add_id(&mut tr, t0(), "4", "a");
    fx.add_id(&mut tr, t0() + secs(1), "6", "b");
    let t = t0() + secs(2);
    assert_eq!(
        changes(&mut tr, t, |tr| {
            fx.rollback(tr, t, "b");
        }),
        vec![(CompletionRolledBack, 0, t)]
    );
    // A rollback that leaves it in progress tells nothing.
    assert_eq!(
        changes(&mut tr, t, |tr| {
            fx.rollback(tr, t, "a");
        }),
        vec![]
    );
    // Completing again is a second completion.
    assert_eq!(
        changes(&mut tr, t, |tr| {
            fx.add(tr, t, "10");
        }),
        vec![(Completed, 0, t)]
    );
}

#[test]
fn a_late_event_can_complete_an_expired_iteration() {
    let fx = Fx::new(user("2", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1");
    let end = t0() + Duration::days(1);
    changes(&mut tr, end, |tr| {
        tr.tick(end);
    });
    // Arrives after the end, dated inside the period (no lateness bound).
    let at = end - secs(10);
    assert_eq!(
        changes(&mut tr, at, |tr| {
            fx.apply(tr, end + secs(5), "1", Some(at), None);
        }),
        vec![(Completed, 0, at)]
    );
}

#[derive(Debug, Clone)]
enum Op {
    Add {
        hours: i64,
        late: i64,
        delta: u8,
        id: Option<u8>,
    },
    Rollback {
        hours: i64,
        id: u8,
    },
    Tick {
        hours: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6i64, 0..30i64, 1..6u8, proptest::option::of(0..8u8))
            .prop_map(|(hours, late, delta, id)| Op::Add { hours, late, delta, id }),
        1 => (0..6i64, 0..8u8).prop_map(|(hours, id)| Op::Rollback { hours, id }),
        1 => (0..30i64).prop_map(|hours| Op::Tick { hours }),
    ]
}

fn policy() -> impl Strategy<Value = (RecurrencePolicy, bool)> {
    (
        prop_oneof![Just(NoRecurrence), Just(OnExpiration), Just(OnCompletion)],
        any::<bool>(),
    )
}

proptest! {
    /// For any sequence of events, rollbacks and timer ticks: starts are the
    /// `startAchievementProgress` effects, completions the increases that
    /// completed, rollbacks of completions the rollbacks that left an
    /// iteration below target, and each iteration's last told status is its
    /// stored one (an iteration is told expired once per expiry).
    #[test]
    fn transitions_agree_with_effects((recurrence, allow) in policy(), ops in proptest::collection::vec(op(), 1..40)) {
        let rules = AchievementDraft {
            allow_rollback_after_completion: allow && recurrence != OnCompletion,
            ..draft("6", Some("1D"), recurrence, ActivationPolicy::UserAction)
        }
        .validate()
        .unwrap();
        let fx = Fx::new(rules);
        let mut tr = PairTracker::new(1);
        let mut now = t0();
        let mut told: Vec<Transition> = Vec::new();
        let (mut starts, mut completions, mut taken_back) = (Vec::new(), Vec::new(), 0usize);
        for op in ops {
            let mark = tr.mark();
            let (at, effects, completed_before) = match op {
                Op::Add { hours, late, delta, id } => {
                    now += Duration::hours(hours);
                    let at = now - Duration::hours(late);
                    let id = id.map(|i| format!("e{i}"));
                    let r = fx.apply(&mut tr, now, &delta.to_string(), Some(at), id.as_deref());
                    (at, r, None)
                }
                Op::Rollback { hours, id } => {
                    now += Duration::hours(hours);
                    let before = tr.current().map(|c| c.status);
                    let r = fx.rollback(&mut tr, now, &format!("e{id}"));
                    (now, r, before)
                }
                Op::Tick { hours } => {
                    now += Duration::hours(hours);
                    tr.tick(now);
                    (now, EventResult::applied(Vec::new()), None)
                }
            };
            if effects.outcome == Outcome::Applied {
                for e in &effects.effects {
                    match e {
                        Effect::Start { tracker, .. } => starts.push(*tracker),
                        Effect::Increase { tracker, just_completed: true, .. } => completions.push(*tracker),
                        Effect::Rollback { current, target, .. }
                            if completed_before == Some(ProgressStatus::Completed) && current < target =>
                        {
                            taken_back += 1
                        }
                        _ => {}
                    }
                }
            }
            tr.transitions_since(mark, at, &mut told);
        }
        let ids = |kind: EntryType| -> Vec<ProgressTrackerId> {
            told.iter().filter(|t| t.kind == kind).map(|t| t.iteration.id).collect()
        };
        prop_assert_eq!(ids(Started), starts);
        prop_assert_eq!(ids(Completed), completions);
        prop_assert_eq!(ids(CompletionRolledBack).len(), taken_back);
        for it in tr.stored_iterations() {
            let last = told
                .iter()
                .rev()
                .find(|t| t.iteration.id == it.id && t.kind != Started)
                .map(|t| t.kind);
            let expected = match it.status {
                ProgressStatus::Completed => Some(Completed),
                ProgressStatus::Expired => Some(Expired),
                _ => last.filter(|k| *k == CompletionRolledBack),
            };
            prop_assert_eq!(last, expected, "iteration {:?}", it.id);
        }
    }
}
