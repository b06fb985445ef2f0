//! Domain benchmarks: period arithmetic and applying events to one tracker.
//!
//! Run with `cargo bench --bench domain`; the figures are in BENCHMARKS.md.

use std::hint::black_box;

use achievements_engine::domain::{
    AchievementDraft, ActivationPolicy, Ctx, EventId, Increase, Limits, PairTracker, Period,
    RecurrencePolicy,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rust_decimal::Decimal;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 30, 9, 30, 45)
        .single()
        .expect("valid date")
}

fn periods(c: &mut Criterion) {
    let tz = chrono_tz::Europe::Berlin;
    let mut group = c.benchmark_group("period");
    for text in ["1h", "1D", "1W", "1M", "3M_U", "30D_D"] {
        let p: Period = text.parse().expect("valid period");
        group.bench_function(format!("end_from/{text}"), |b| {
            b.iter(|| black_box(&p).end_from(black_box(start()), tz))
        });
    }
    let monthly: Period = "1M".parse().expect("valid period");
    let anchor = Utc
        .with_ymd_and_hms(2020, 1, 31, 0, 0, 0)
        .single()
        .expect("valid date");
    let t = Utc
        .with_ymd_and_hms(2026, 11, 26, 3, 0, 0)
        .single()
        .expect("valid date");
    group.bench_function("window_containing/1M after 6 years", |b| {
        b.iter(|| monthly.window_containing(black_box(anchor), tz, black_box(t)))
    });
    group.bench_function("parse/3M_U", |b| {
        b.iter(|| black_box("3M_U").parse::<Period>())
    });
    group.finish();
}

fn tracker(c: &mut Criterion) {
    let tz = chrono_tz::UTC;
    let limits = Limits::default();
    let draft = |recurrence| AchievementDraft {
        name: "coffee".into(),
        title: "Coffee".into(),
        target: Decimal::from(1_000_000),
        period: Some("1W".into()),
        recurrence_policy: recurrence,
        activation_policy: ActivationPolicy::UserAction,
        ..AchievementDraft::default()
    };
    let mut group = c.benchmark_group("tracker");
    for (label, recurrence) in [
        ("on_expiration", RecurrencePolicy::OnExpiration),
        ("on_completion", RecurrencePolicy::OnCompletion),
    ] {
        let rules = draft(recurrence).validate().expect("valid draft");
        let ctx = Ctx {
            rules: &rules,
            tz,
            now: start(),
            campaign_running: true,
            limits: &limits,
        };
        let inc = Increase {
            delta: Decimal::new(150, 2),
            at: None,
            event_id: None,
        };
        group.bench_function(format!("apply/{label}/no event id"), |b| {
            let mut tracker = PairTracker::new(1);
            b.iter(|| tracker.apply(&ctx, black_box(&inc)))
        });
        group.bench_function(format!("apply/{label}/with event id"), |b| {
            b.iter_batched(
                || (PairTracker::new(1), 0u64),
                |(mut tracker, n)| {
                    for i in n..n + 100 {
                        let inc = Increase {
                            event_id: Some(
                                EventId::parse(&format!("evt-{i}"), "/eventId").expect("short id"),
                            ),
                            ..inc.clone()
                        };
                        let _ = tracker.apply(
                            &Ctx {
                                now: start() + Duration::seconds(i as i64),
                                ..ctx
                            },
                            &inc,
                        );
                    }
                    tracker
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, periods, tracker);
criterion_main!(benches);
