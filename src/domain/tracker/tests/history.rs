//! SPEC §3 as amended: an event's own time decides where it lands, so
//! history can be imported in order; only an event before the current
//! iteration (or before a closed `on_completion` iteration's completion) is
//! `late`, unless `allowedLatenessSeconds` bounds how long an ended period
//! stays open.

use super::*;

use crate::domain::achievement::{Achievement, AchievementPatch, MAX_LATENESS_SECS};
use crate::domain::ids::{AchievementId, CampaignId};

/// When the imported events arrive: years after they happened.
fn arrival() -> DateTime<Utc> {
    ts("2026-11-29 12:00:00")
}

/// Imports events (time, delta) in order, all arriving at `arrival()`, and
/// returns their results.
fn import(fx: &Fx, tr: &mut PairTracker, events: &[(&str, &str)]) -> Vec<EventResult> {
    events
        .iter()
        .map(|(t, delta)| fx.apply(tr, arrival(), delta, Some(ts(t)), None))
        .collect()
}

/// (status, progress, start, reported end, completion) of each iteration as
/// of `arrival()`, newest first.
type Row = (
    ProgressStatus,
    Decimal,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn rows(tr: &PairTracker) -> Vec<Row> {
    tr.iterations_at(arrival())
        .map(|i| {
            (
                i.status,
                i.progress,
                i.start,
                i.end.map(|e| e.reported),
                i.completion,
            )
        })
        .collect()
}

fn row(
    status: ProgressStatus,
    progress: &str,
    start: &str,
    end: Option<&str>,
    completion: Option<&str>,
) -> Row {
    (
        status,
        dec(progress),
        ts(start),
        end.map(ts),
        completion.map(ts),
    )
}

use ProgressStatus::{Completed, Expired};

fn bounded(mut rules: AchievementRules, secs: u64) -> AchievementRules {
    rules.allowed_lateness_secs = Some(secs);
    rules
}

// ------------------------------------------------------------ import, unbounded

#[test]
fn spec_worked_examples_imported_years_later() {
    // SPEC §4's rows, each event arriving in 2026: the same dates as live.
    let rows_ = spec_rows();
    for (recurrence, anchor, period, first, end) in rows_ {
        let rules = match anchor {
            None => user("10", Some(period), recurrence),
            Some(a) => fixed("10", Some(period), recurrence, ts(a)),
        };
        let fx = Fx::new(rules);
        let mut tr = PairTracker::new(1);
        let r = fx.apply(&mut tr, arrival(), "1", Some(ts(first)), None);
        assert_applied(&r);
        let (_, start, reported) = as_start(&r.effects[0]);
        assert_eq!((start, reported), (ts(first), Some(ts(end))), "{period}");
        // Its period is long over: expired as of now, as if it had arrived then.
        assert_eq!(
            rows(&tr),
            vec![row(Expired, "1", first, Some(end), None)],
            "{period}"
        );
    }
}

#[test]
fn import_on_expiration_user_action_builds_each_iteration() {
    let fx = Fx::new(user("3", Some("1W"), OnExpiration));
    let mut tr = PairTracker::new(1);
    let results = import(
        &fx,
        &mut tr,
        &[
            ("2023-01-02 10:00:00", "2"),
            ("2023-01-05 18:30:00", "1"), // completes the first week
            ("2023-01-06 09:00:00", "4"), // still counts there (no clipping)
            ("2023-01-10 08:00:00", "1"), // a new week opens at its time
            ("2023-02-01 12:00:00", "2"),
        ],
    );
    results.iter().for_each(assert_applied);
    assert_eq!(just_completed_count(&results), 1);
    assert_eq!(
        rows(&tr),
        vec![
            row(
                Expired,
                "2",
                "2023-02-01 12:00:00",
                Some("2023-02-08 12:00:00"),
                None
            ),
            row(
                Expired,
                "1",
                "2023-01-10 08:00:00",
                Some("2023-01-17 08:00:00"),
                None
            ),
            row(
                Completed,
                "7",
                "2023-01-02 10:00:00",
                Some("2023-01-09 10:00:00"),
                Some("2023-01-05 18:30:00"),
            ),
        ]
    );
    // Ids in order of opening.
    let ids: Vec<u64> = tr.iterations_at(arrival()).map(|i| i.id.0).collect();
    assert_eq!(ids, vec![(1 << 24) + 2, (1 << 24) + 1, 1 << 24]);
}

#[test]
fn import_no_recurrence_user_action_completes_then_refuses() {
    let fx = Fx::new(user("2", Some("1D"), NoRecurrence));
    let mut tr = PairTracker::new(1);
    let r = import(
        &fx,
        &mut tr,
        &[
            ("2023-10-10 09:30:45", "1"),
            ("2023-10-10 20:00:00", "1"),
            ("2023-10-12 08:00:00", "1"),
        ],
    );
    assert_applied(&r[0]);
    assert_applied(&r[1]);
    assert_rejected(&r[2], Reason::AlreadyCompleted);
    assert_eq!(
        rows(&tr),
        vec![row(
            Completed,
            "2",
            "2023-10-10 09:30:45",
            Some("2023-10-11 09:30:45"),
            Some("2023-10-10 20:00:00"),
        )]
    );
    // Not completed in its day: expired, and the next day is refused so.
    let mut tr = PairTracker::new(2);
    let r = import(
        &fx,
        &mut tr,
        &[("2023-10-10 09:30:45", "1"), ("2023-10-11 09:30:45", "1")],
    );
    assert_applied(&r[0]);
    assert_rejected(&r[1], Reason::Expired);
    assert_eq!(tr.status_at(arrival()), Expired);
}

#[test]
fn import_on_completion_user_action_with_period() {
    let fx = Fx::new(user("2", Some("1W"), OnCompletion));
    let mut tr = PairTracker::new(1);
    let results = import(
        &fx,
        &mut tr,
        &[
            ("2023-01-02 10:00:00", "3"), // completes one, opens a second at 1
            ("2023-01-03 11:00:00", "1"), // completes the second
            ("2023-01-20 09:00:00", "1"), // a third, never completed
        ],
    );
    results.iter().for_each(assert_applied);
    assert_eq!(just_completed_count(&results), 2);
    assert_eq!(
        rows(&tr),
        vec![
            row(
                Expired,
                "1",
                "2023-01-20 09:00:00",
                Some("2023-01-27 09:00:00"),
                None
            ),
            row(
                Completed,
                "2",
                "2023-01-02 10:00:00",
                Some("2023-01-09 10:00:00"),
                Some("2023-01-03 11:00:00"),
            ),
            row(
                Completed,
                "2",
                "2023-01-02 10:00:00",
                Some("2023-01-09 10:00:00"),
                Some("2023-01-02 10:00:00"),
            ),
        ]
    );
}

#[test]
fn import_on_expiration_fixed_schedule_uses_the_event_window() {
    let fx = Fx::new(fixed(
        "5",
        Some("1M"),
        OnExpiration,
        ts("2023-01-01 00:00:00"),
    ));
    let mut tr = PairTracker::new(1);
    let results = import(
        &fx,
        &mut tr,
        &[
            ("2023-01-15 12:00:00", "5"),
            ("2023-01-31 23:00:00", "1"),
            ("2023-03-03 08:00:00", "1"), // February had no progress
        ],
    );
    results.iter().for_each(assert_applied);
    assert_eq!(
        rows(&tr),
        vec![
            row(
                Expired,
                "1",
                "2023-03-03 08:00:00",
                Some("2023-04-01 00:00:00"),
                None
            ),
            row(
                Completed,
                "6",
                "2023-01-15 12:00:00",
                Some("2023-02-01 00:00:00"),
                Some("2023-01-15 12:00:00"),
            ),
        ]
    );
}

#[test]
fn import_no_recurrence_and_on_completion_fixed_schedule() {
    let fx = Fx::new(fixed(
        "2",
        Some("1M"),
        NoRecurrence,
        ts("2023-10-10 00:00:00"),
    ));
    let mut tr = PairTracker::new(1);
    let r = import(
        &fx,
        &mut tr,
        &[("2023-10-18 10:20:00", "1"), ("2023-11-10 00:00:00", "1")],
    );
    assert_applied(&r[0]);
    // After its only window: outside the schedule, whatever the arrival.
    assert_rejected(&r[1], Reason::OutsideSchedule);
    assert_eq!(
        rows(&tr),
        vec![row(
            Expired,
            "1",
            "2023-10-18 10:20:00",
            Some("2023-11-10 00:00:00"),
            None
        )]
    );

    let fx = Fx::new(fixed(
        "2",
        Some("1M"),
        OnCompletion,
        ts("2023-01-01 00:00:00"),
    ));
    let mut tr = PairTracker::new(2);
    let results = import(
        &fx,
        &mut tr,
        &[("2023-01-10 00:00:00", "2"), ("2023-01-20 00:00:00", "1")],
    );
    results.iter().for_each(assert_applied);
    assert_eq!(
        rows(&tr),
        vec![
            row(
                Expired,
                "1",
                "2023-01-20 00:00:00",
                Some("2023-02-01 00:00:00"),
                None
            ),
            row(
                Completed,
                "2",
                "2023-01-10 00:00:00",
                Some("2023-02-01 00:00:00"),
                Some("2023-01-10 00:00:00"),
            ),
        ]
    );
}

#[test]
fn an_offline_till_counts_for_the_week_it_sold_in() {
    // Live traffic, then a till syncs Saturday's sales on Monday: they land
    // in last week's iteration, which was still current.
    let fx = Fx::new(fixed(
        "3",
        Some("1W"),
        OnExpiration,
        ts("2023-10-02 00:00:00"),
    ));
    let mut tr = PairTracker::new(1);
    assert_applied(&fx.add(&mut tr, ts("2023-10-05 10:00:00"), "1"));
    let monday = ts("2023-10-09 09:00:00");
    let r = fx.apply(&mut tr, monday, "2", Some(ts("2023-10-07 15:00:00")), None);
    assert_applied(&r);
    assert_eq!(
        tr.iterations_at(monday)
            .map(|i| (i.status, i.progress, i.completion))
            .collect::<Vec<_>>(),
        vec![(Completed, dec("3"), Some(ts("2023-10-07 15:00:00")))]
    );
    // Monday's own sale opens this week.
    assert_applied(&fx.add(&mut tr, monday, "1"));
    assert_eq!(cur(&tr).start, monday);
}

// ------------------------------------------------------------ still late

#[test]
fn out_of_order_within_a_pair_is_late() {
    let fx = Fx::new(user("10", Some("1W"), OnExpiration));
    let mut tr = PairTracker::new(1);
    import(&fx, &mut tr, &[("2023-01-10 00:00:00", "1")]);
    let before = tr.clone();
    // Before the current iteration's start: it cannot land anywhere.
    let r = fx.apply(
        &mut tr,
        arrival(),
        "1",
        Some(ts("2023-01-09 23:59:59")),
        None,
    );
    assert_rejected(&r, Reason::Late);
    assert_eq!(tr, before);
    // Once a later iteration opened, the earlier one is closed too.
    import(&fx, &mut tr, &[("2023-02-01 00:00:00", "1")]);
    let r = fx.apply(
        &mut tr,
        arrival(),
        "1",
        Some(ts("2023-01-12 00:00:00")),
        None,
    );
    assert_rejected(&r, Reason::Late);
}

#[test]
fn on_completion_iteration_is_closed_at_its_completion() {
    let fx = Fx::new(user("2", Some("1W"), OnCompletion));
    let mut tr = PairTracker::new(1);
    import(
        &fx,
        &mut tr,
        &[("2023-01-02 10:00:00", "1"), ("2023-01-04 10:00:00", "1")],
    );
    assert_eq!(cur(&tr).status, Completed);
    let r = fx.apply(
        &mut tr,
        arrival(),
        "1",
        Some(ts("2023-01-03 10:00:00")),
        None,
    );
    assert_rejected(&r, Reason::Late);
    let r = fx.apply(
        &mut tr,
        arrival(),
        "1",
        Some(ts("2023-01-04 10:00:00")),
        None,
    );
    assert_applied(&r);
}

// ------------------------------------------------------------ the bound

#[test]
fn bound_zero_closes_a_period_when_it_ends() {
    // Today's behaviour before the amendment, now a choice.
    let fx = Fx::new(bounded(user("10", Some("1D"), OnExpiration), 0));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1");
    let end = t0() + days(1);
    let r = fx.apply(&mut tr, end, "1", Some(end - secs(1)), None);
    assert_rejected(&r, Reason::Late);
    assert_eq!(tr.iterations_at(end).next().unwrap().progress, dec("1"));
    // While the period runs: fine.
    let r = fx.apply(&mut tr, end - secs(1), "1", Some(end - secs(2)), None);
    assert_applied(&r);

    // A first event whose period would already be over.
    let fx = Fx::new(bounded(user("10", Some("1h"), OnExpiration), 0));
    let mut tr = PairTracker::new(2);
    let now = t0() + Duration::hours(2);
    assert_rejected(&fx.apply(&mut tr, now, "1", Some(t0()), None), Reason::Late);
    assert!(tr.current().is_none());
    let r = fx.apply(&mut tr, now, "1", Some(now - Duration::minutes(59)), None);
    assert_eq!(as_start(&r.effects[0]).1, now - Duration::minutes(59));

    // A past fixed window.
    let anchor = ts("2023-10-02 00:00:00");
    let fx = Fx::new(bounded(fixed("5", Some("1W"), OnExpiration, anchor), 0));
    let mut tr = PairTracker::new(3);
    let r = fx.apply(&mut tr, anchor + days(8), "1", Some(anchor + days(6)), None);
    assert_rejected(&r, Reason::Late);
    assert!(tr.current().is_none());
}

#[test]
fn bound_of_n_seconds_just_inside_and_just_outside() {
    let n = 3600;
    let fx = Fx::new(bounded(user("10", Some("1D"), OnExpiration), n));
    let end = t0() + days(1);
    let in_period = Some(end - secs(10));
    let apply_arriving = |after_end: i64| {
        let mut tr = PairTracker::new(1);
        fx.add(&mut tr, t0(), "1");
        fx.apply(&mut tr, end + secs(after_end), "1", in_period, None)
    };
    assert_applied(&apply_arriving(0));
    assert_applied(&apply_arriving(n as i64 - 1));
    // The window is half-open like a period: N seconds after the end, closed.
    assert_rejected(&apply_arriving(n as i64), Reason::Late);
    assert_rejected(&apply_arriving(n as i64 + 1), Reason::Late);

    // The same for an iteration the event would open (fixed schedule).
    let anchor = ts("2023-10-02 00:00:00");
    let fx = Fx::new(bounded(fixed("5", Some("1W"), OnExpiration, anchor), n));
    let window_end = anchor + days(7);
    let at = Some(anchor + days(6));
    let mut tr = PairTracker::new(2);
    let r = fx.apply(&mut tr, window_end + secs(n as i64 - 1), "1", at, None);
    assert_applied(&r);
    let mut tr = PairTracker::new(3);
    let r = fx.apply(&mut tr, window_end + secs(n as i64 + 1), "1", at, None);
    assert_rejected(&r, Reason::Late);
}

#[test]
fn unset_bound_accepts_any_lateness() {
    let fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1");
    let end = t0() + days(1);
    let r = fx.apply(&mut tr, end + days(1000), "1", Some(end - secs(1)), None);
    assert_applied(&r);
    assert_eq!(tr.iterations_at(end).next().unwrap().progress, dec("2"));
}

#[test]
fn a_huge_bound_does_not_overflow() {
    let fx = Fx::new(bounded(user("10", Some("1D"), OnExpiration), u64::MAX));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1");
    let r = fx.apply(&mut tr, t0() + days(400), "1", Some(t0() + secs(5)), None);
    assert_applied(&r);
}

#[test]
fn editing_the_bound_applies_to_the_next_event() {
    let mut fx = Fx::new(user("10", Some("1D"), OnExpiration));
    let mut tr = PairTracker::new(1);
    fx.add(&mut tr, t0(), "1");
    let later = t0() + days(2);
    let at = Some(t0() + Duration::hours(1));
    fx.rules.allowed_lateness_secs = Some(0);
    assert_rejected(&fx.apply(&mut tr, later, "1", at, None), Reason::Late);
    fx.rules.allowed_lateness_secs = Some(2 * 86_400);
    assert_applied(&fx.apply(&mut tr, later, "1", at, None));
    fx.rules.allowed_lateness_secs = None;
    assert_applied(&fx.apply(&mut tr, later + days(30), "1", at, None));
    assert_eq!(cur(&tr).progress, dec("3"));
}

fn stored(rules: AchievementRules) -> Achievement {
    Achievement {
        id: AchievementId(1),
        campaign_id: CampaignId(1),
        created: t0(),
        name: "visits".into(),
        title: "Visits".into(),
        description: String::new(),
        rules,
    }
}

#[test]
fn the_bound_may_change_once_customers_have_progress() {
    let a = stored(user("10", Some("1D"), OnExpiration));
    let locked = true;
    let set = AchievementPatch {
        allowed_lateness_secs: Some(Some(60)),
        ..AchievementPatch::default()
    };
    let a = a.patched(&set, locked).unwrap();
    assert_eq!(a.rules.allowed_lateness_secs, Some(60));
    let clear = AchievementPatch {
        allowed_lateness_secs: Some(None),
        ..AchievementPatch::default()
    };
    assert_eq!(
        a.patched(&clear, locked)
            .unwrap()
            .rules
            .allowed_lateness_secs,
        None
    );
    // Absent from the patch: unchanged.
    let untouched = a.patched(&AchievementPatch::default(), locked).unwrap();
    assert_eq!(untouched.rules.allowed_lateness_secs, Some(60));
    // A rule about progress still cannot change.
    let target = AchievementPatch {
        target: Some(dec("11")),
        allowed_lateness_secs: Some(Some(5)),
        ..AchievementPatch::default()
    };
    let errors = a.patched(&target, locked).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].pointer, "/target");
}

#[test]
fn the_bound_is_validated() {
    let mut d = draft("10", Some("1D"), OnExpiration, ActivationPolicy::UserAction);
    d.allowed_lateness_secs = Some(MAX_LATENESS_SECS);
    assert_eq!(
        d.validate().unwrap().allowed_lateness_secs,
        Some(MAX_LATENESS_SECS)
    );
    d.allowed_lateness_secs = Some(MAX_LATENESS_SECS + 1);
    let errors = d.validate().unwrap_err();
    assert_eq!(errors[0].pointer, "/allowedLatenessSeconds");
}
