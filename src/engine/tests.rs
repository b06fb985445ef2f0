use std::sync::atomic::Ordering;
use std::time::Duration;

use rust_decimal::Decimal;

use super::*;
use crate::domain::{AchievementDraft, Outcome, RecurrencePolicy};

async fn engine(config: EngineConfig) -> (Engine, Arc<AchievementEntry>) {
    let engine = Engine::start(config, Catalog::default());
    let entry = testing::one_achievement(
        &engine,
        AchievementDraft {
            name: "coffee".into(),
            title: "Coffee".into(),
            target: Decimal::from(1_000_000),
            period: Some("1D".into()),
            recurrence_policy: RecurrencePolicy::OnExpiration,
            ..AchievementDraft::default()
        },
    )
    .await;
    (engine, entry)
}

fn input(entry: &Arc<AchievementEntry>, customer: &str, id: Option<&str>) -> EventInput {
    EventInput {
        customer: CustomerId::parse(customer, "/integrationId").expect("valid id"),
        entry: entry.clone(),
        increase: Increase {
            delta: Decimal::ONE,
            at: None,
            event_id: id.map(|i| EventId::parse(i, "/eventId").expect("valid id")),
        },
    }
}

async fn progress(engine: &Engine, entry: &Arc<AchievementEntry>, customer: &str) -> Decimal {
    let customer = CustomerId::parse(customer, "/integrationId").expect("valid id");
    let rows = engine
        .customer_progress(entry.application_id, &customer, std::slice::from_ref(entry))
        .await
        .expect("read");
    rows[0].first().map_or(Decimal::ZERO, |i| i.progress)
}

#[actix_rt::test]
async fn single_events_activate_an_actor_that_later_passivates() {
    let (engine, entry) = engine(EngineConfig {
        shards: 2,
        idle_after: Duration::from_millis(200),
        ..EngineConfig::default()
    })
    .await;
    for i in 0..5 {
        let r = engine
            .increase(input(&entry, "c1", Some(&format!("e{i}"))))
            .await;
        assert_eq!(r.expect("applied").outcome, Outcome::Applied);
    }
    assert_eq!(engine.stats().actors.load(Ordering::Relaxed), 1);
    assert_eq!(engine.shared.routes.len(), 1);
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(engine.stats().actors.load(Ordering::Relaxed), 0);
    assert!(engine.stats().passivations.load(Ordering::Relaxed) >= 1);
    assert!(engine.shared.routes.is_empty());
    // The passive pair kept its state and can be reactivated.
    assert_eq!(progress(&engine, &entry, "c1").await, Decimal::from(5));
    let again = engine
        .increase(input(&entry, "c1", Some("e0")))
        .await
        .expect("answer");
    assert_eq!(again.outcome, Outcome::Duplicate);
    engine
        .increase(input(&entry, "c1", None))
        .await
        .expect("applied");
    assert_eq!(progress(&engine, &entry, "c1").await, Decimal::from(6));
}

#[actix_rt::test]
async fn a_panicking_pair_is_restarted_from_its_last_state() {
    let (engine, entry) = engine(EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    })
    .await;
    engine
        .increase(input(&entry, "c1", None))
        .await
        .expect("applied");
    engine
        .increase(input(&entry, "c1", None))
        .await
        .expect("applied");
    assert_eq!(engine.stats().actors.load(Ordering::Relaxed), 1);
    let key = PairKey {
        achievement: entry.achievement.id,
        customer: CustomerId::parse("c1", "/integrationId").expect("valid id"),
    };
    let boom = engine
        .run(engine.message(key.customer, entry.clone(), OpKind::Panic))
        .await;
    assert!(matches!(boom, Err(EngineError::Internal(_))));
    assert_eq!(engine.stats().panics.load(Ordering::Relaxed), 1);
    // Other pairs and the same pair keep being served, from the last state.
    engine
        .increase(input(&entry, "c2", None))
        .await
        .expect("applied");
    let r = engine
        .increase(input(&entry, "c1", None))
        .await
        .expect("applied");
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(progress(&engine, &entry, "c1").await, Decimal::from(3));
}

#[actix_rt::test]
async fn a_full_shard_answers_overloaded_and_loses_nothing_accepted() {
    let (engine, entry) = engine(EngineConfig {
        shards: 1,
        queue_capacity: 4,
        ..EngineConfig::default()
    })
    .await;
    let sends = (0..200).map(|i| {
        let engine = engine.clone();
        let entry = entry.clone();
        async move {
            engine
                .increase(input(&entry, &format!("c{}", i % 3), None))
                .await
        }
    });
    let results = futures_util::future::join_all(sends).await;
    let applied = results.iter().filter(|r| r.is_ok()).count();
    let overloaded = results
        .iter()
        .filter(|r| matches!(r, Err(EngineError::Overloaded)))
        .count();
    assert_eq!(applied + overloaded, 200);
    assert!(
        overloaded > 0,
        "a queue of 4 must overflow with 200 senders"
    );
    let mut total = Decimal::ZERO;
    for c in 0..3 {
        total += progress(&engine, &entry, &format!("c{c}")).await;
    }
    assert_eq!(total, Decimal::from(applied as u64));
}

#[actix_rt::test]
async fn batches_keep_per_customer_order_and_results_in_input_order() {
    let (engine, entry) = engine(EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    })
    .await;
    let inputs: Vec<_> = (0..100)
        .map(|i| input(&entry, &format!("c{}", i % 7), Some(&format!("e{i}"))))
        .collect();
    let results = engine.increase_batch(inputs).await.expect("batch");
    let mut seen = [0i64; 7];
    for (i, r) in results.iter().enumerate() {
        let r = r.as_ref().expect("no error");
        assert_eq!(r.outcome, Outcome::Applied, "event {i}");
        // The increase effect's value counts this customer's events so far.
        seen[i % 7] += 1;
        let value = r.effects.iter().find_map(|e| match e {
            crate::domain::Effect::Increase { value, .. } => Some(*value),
            _ => None,
        });
        assert_eq!(value, Some(Decimal::from(seen[i % 7])), "event {i}");
    }
    let retries: Vec<_> = (0..30)
        .map(|i| input(&entry, &format!("c{}", i % 7), Some(&format!("e{i}"))))
        .collect();
    let again = engine.increase_batch(retries).await.expect("batch");
    assert!(again
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.outcome == Outcome::Duplicate)));
    let mut total = Decimal::ZERO;
    for c in 0..7 {
        total += progress(&engine, &entry, &format!("c{c}")).await;
    }
    assert_eq!(total, Decimal::from(100));
}

#[actix_rt::test]
async fn deleting_an_achievement_removes_its_pairs() {
    let (engine, entry) = engine(EngineConfig {
        shards: 2,
        ..EngineConfig::default()
    })
    .await;
    for c in 0..10 {
        engine
            .increase(input(&entry, &format!("c{c}"), None))
            .await
            .expect("applied");
    }
    assert_eq!(engine.stats().pairs.load(Ordering::Relaxed), 10);
    let removed = engine.drop_pairs(entry.clone()).await.expect("deleted");
    assert_eq!(removed, 10);
    assert_eq!(engine.stats().pairs.load(Ordering::Relaxed), 0);
}

/// Waits (real time, the shard ticks twice a second) until `expiries`
/// reaches `n`; false if it does not within 3 s.
/// Whether the shards tell `n` frozen pairs within 3 s (they count at each
/// tick).
async fn frozen_reach(engine: &Engine, n: i64) -> bool {
    for _ in 0..30 {
        if engine.stats().frozen.load(Ordering::Relaxed) == n {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn expiries_reach(engine: &Engine, n: u64) -> bool {
    for _ in 0..30 {
        if engine.stats().expiries.load(Ordering::Relaxed) >= n {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A clock the test moves by hand, starting at a fixed instant (2030).
fn manual_clock() -> Clock {
    Clock::manual(chrono::DateTime::from_timestamp(1_900_000_000, 0).expect("instant"))
}

#[actix_rt::test]
async fn timers_expire_active_and_passive_pairs_on_time_with_a_moved_clock() {
    let clock = manual_clock();
    let (engine, entry) = engine(EngineConfig {
        shards: 1,
        clock: clock.clone(),
        ..EngineConfig::default()
    })
    .await;
    // "hot" gets an actor (events less than a second apart); "cold" does not.
    for i in 0..3 {
        engine
            .increase(input(&entry, "hot", Some(&format!("h{i}"))))
            .await
            .expect("applied");
    }
    engine
        .increase(input(&entry, "cold", None))
        .await
        .expect("applied");
    assert_eq!(engine.stats().actors.load(Ordering::Relaxed), 1);
    // Nothing is due before the period (1D) ends...
    clock.advance(chrono::Duration::hours(23));
    actix_rt::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(engine.stats().expiries.load(Ordering::Relaxed), 0);
    // ...and both expire once it has, with no event.
    clock.advance(chrono::Duration::hours(1));
    assert!(expiries_reach(&engine, 2).await, "{:?}", engine.stats());
}

#[actix_rt::test]
async fn a_batch_that_changes_an_active_pair_moves_its_timer() {
    let clock = manual_clock();
    let engine = Engine::start(
        EngineConfig {
            shards: 1,
            clock: clock.clone(),
            ..EngineConfig::default()
        },
        Catalog::default(),
    );
    let entry = testing::one_achievement(
        &engine,
        AchievementDraft {
            name: "laps".into(),
            title: "Laps".into(),
            target: Decimal::from(2),
            period: Some("1h".into()),
            recurrence_policy: RecurrencePolicy::OnCompletion,
            ..AchievementDraft::default()
        },
    )
    .await;
    for i in 0..2 {
        engine
            .increase(input(&entry, "c", Some(&format!("a{i}"))))
            .await
            .expect("applied");
    }
    assert_eq!(engine.stats().actors.load(Ordering::Relaxed), 1);
    // The first iteration completed (no deadline). Half an hour later a
    // batch, served by the shard, opens a second one ending at +1h30.
    clock.advance(chrono::Duration::minutes(30));
    let answers = engine
        .increase_batch(vec![input(&entry, "c", Some("b"))])
        .await
        .expect("batch");
    assert_eq!(
        answers[0].as_ref().expect("applied").outcome,
        Outcome::Applied
    );
    clock.advance(chrono::Duration::minutes(59));
    actix_rt::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(engine.stats().expiries.load(Ordering::Relaxed), 0);
    clock.advance(chrono::Duration::minutes(2));
    assert!(expiries_reach(&engine, 1).await, "{:?}", engine.stats());
}

/// The read rule (engine module docs): a change is applied in memory, then
/// appended; its answer waits until it is durable, while a read may see it
/// a moment before. A catalog change is applied only once durable.
#[actix_rt::test]
async fn answers_wait_for_the_log_while_reads_may_see_the_change_first() {
    use super::log::{ChangeOp, MemoryLog, Position, Record, Stream};
    let (engine, entry) = engine(EngineConfig {
        shards: 2,
        partitions: 16,
        ..EngineConfig::default()
    })
    .await;
    let log = MemoryLog::new();
    engine.attach_log(log.clone()).await.expect("attached");
    log.hold();
    let customer = CustomerId::parse("c1", "/integrationId").expect("valid id");
    let partition = engine.partition_of(entry.application_id, &customer);
    let stream = Stream::Partition(partition);

    let (e, i) = (engine.clone(), input(&entry, "c1", Some("e1")));
    let pending = actix_rt::spawn(async move { e.increase(i).await });
    for _ in 0..200 {
        if !log.records(stream).is_empty() {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    // Appended to the customer's partition, as an engine value, at position 1.
    let records = log.records(stream);
    assert_eq!(records.len(), 1);
    let (position, Record::Pair(change)) = &records[0] else {
        panic!("a pair change: {records:?}");
    };
    assert_eq!(*position, Position(1));
    assert_eq!(change.customer, customer);
    assert!(matches!(&change.op, ChangeOp::Increase(inc) if inc.delta == Decimal::ONE));
    // Not answered yet, but a read shows it.
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !pending.is_finished(),
        "answered before the log made it durable"
    );
    assert_eq!(progress(&engine, &entry, "c1").await, Decimal::ONE);
    // A retry of the same event waits for the original to be durable too.
    let (e, i) = (engine.clone(), input(&entry, "c1", Some("e1")));
    let retry = actix_rt::spawn(async move { e.increase(i).await });
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !retry.is_finished(),
        "a duplicate answered before its original was durable"
    );
    // A catalog change is not applied until durable.
    let (e, app) = (engine.clone(), entry.application_id);
    let campaign = actix_rt::spawn(async move {
        e.create_campaign(
            app,
            crate::domain::catalog::CampaignPatch {
                name: Some("held".into()),
                ..Default::default()
            },
        )
        .await
    });
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(engine.catalog.campaigns(app).expect("app").len(), 1);

    log.release();
    let r = pending.await.expect("task").expect("answer");
    assert_eq!(r.outcome, Outcome::Applied);
    let r = retry.await.expect("task").expect("answer");
    assert_eq!(r.outcome, Outcome::Duplicate);
    campaign.await.expect("task").expect("created");
    assert_eq!(engine.catalog.campaigns(app).expect("app").len(), 2);
    assert_eq!(log.records(Stream::Catalog).len(), 1);
}

#[actix_rt::test]
async fn a_log_that_cannot_write_refuses_changes_and_changes_nothing() {
    use super::log::MemoryLog;
    let (engine, entry) = engine(EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    })
    .await;
    let log = MemoryLog::new();
    engine.attach_log(log.clone()).await.expect("attached");
    log.fail(true);
    let r = engine.increase(input(&entry, "c1", None)).await;
    assert!(matches!(r, Err(EngineError::Unavailable(_))), "{r:?}");
    assert_eq!(progress(&engine, &entry, "c1").await, Decimal::ZERO);
    let patch = crate::domain::catalog::CampaignPatch {
        name: Some("refused".into()),
        ..Default::default()
    };
    let r = engine.create_campaign(entry.application_id, patch).await;
    assert!(matches!(r, Err(EngineError::Unavailable(_))), "{r:?}");
    assert_eq!(
        engine
            .catalog
            .campaigns(entry.application_id)
            .expect("app")
            .len(),
        1
    );
    log.fail(false);
    engine
        .increase(input(&entry, "c1", None))
        .await
        .expect("applied");
    assert_eq!(progress(&engine, &entry, "c1").await, Decimal::ONE);
}

#[test]
fn a_pairs_cell_with_its_counts_fits_the_allocators_160_byte_class() {
    // `Rc` adds two counts (16 bytes); jemalloc's classes around it are 128,
    // 160 and 192 bytes, and every pair of the engine has one such cell.
    let with_counts = std::mem::size_of::<pair::PairCell>() + 2 * std::mem::size_of::<usize>();
    assert!(with_counts <= 160, "{with_counts} bytes");
}

#[test]
fn a_pairs_timer_second_reads_back_as_set() {
    let cell = pair::PairCell::new(crate::domain::PairTracker::new(1));
    assert_eq!(cell.armed.get(), None);
    for second in [Some(0), Some(-1), Some(1_700_000_000), Some(i64::MAX), None] {
        cell.armed.set(second);
        assert_eq!(cell.armed.get(), second);
    }
}

#[actix_rt::test]
async fn frozen_pairs_are_read_take_events_and_expire_on_time() {
    let clock = manual_clock();
    let (engine, entry) = engine(EngineConfig {
        shards: 1,
        clock: clock.clone(),
        freeze_after: None,
        ..EngineConfig::default()
    })
    .await;
    for c in ["a", "b", "c"] {
        engine
            .increase(input(&entry, c, None))
            .await
            .expect("applied");
    }
    // Just touched: not idle for a minute yet.
    let minute = Duration::from_secs(60);
    assert_eq!(engine.freeze_idle(minute).await.expect("froze"), 0);
    assert_eq!(engine.freeze_idle(Duration::ZERO).await.expect("froze"), 3);
    assert_eq!(engine.freeze_idle(Duration::ZERO).await.expect("froze"), 0);
    // A read leaves a pair frozen; an event thaws it.
    assert_eq!(progress(&engine, &entry, "a").await, Decimal::ONE);
    engine
        .increase(input(&entry, "b", None))
        .await
        .expect("applied");
    assert_eq!(progress(&engine, &entry, "b").await, Decimal::from(2));
    assert_eq!(engine.freeze_idle(Duration::ZERO).await.expect("froze"), 1);
    // A frozen pair keeps its event ids: a retry is a duplicate.
    engine
        .increase(input(&entry, "d", Some("order-1")))
        .await
        .expect("applied");
    assert_eq!(engine.freeze_idle(Duration::ZERO).await.expect("froze"), 1);
    let retry = engine
        .increase(input(&entry, "d", Some("order-1")))
        .await
        .expect("answered");
    assert_eq!(retry.outcome, Outcome::Duplicate);
    assert_eq!(progress(&engine, &entry, "d").await, Decimal::ONE);
    // Frozen pairs' timers fire when the period ends.
    clock.advance(chrono::Duration::hours(23));
    actix_rt::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(engine.stats().expiries.load(Ordering::Relaxed), 0);
    clock.advance(chrono::Duration::hours(1));
    assert!(expiries_reach(&engine, 4).await, "{:?}", engine.stats());
    assert_eq!(engine.stats().pairs.load(Ordering::Relaxed), 4);
    // Ticked, and frozen again: an expiry brings no frozen pair back to
    // life (d is live since its retry).
    assert_eq!(engine.freeze_idle(Duration::ZERO).await.expect("froze"), 1);
    assert!(frozen_reach(&engine, 4).await, "{:?}", engine.stats());
    let rows = engine
        .customer_progress(
            entry.application_id,
            &CustomerId::parse("a", "/integrationId").expect("valid id"),
            std::slice::from_ref(&entry),
        )
        .await
        .expect("read");
    assert_eq!(rows[0][0].status, crate::domain::ProgressStatus::Expired);
}

#[actix_rt::test]
async fn timers_find_their_pairs_after_a_removal_moved_them() {
    let clock = manual_clock();
    let (engine, kept) = engine(EngineConfig {
        shards: 1,
        partitions: 1,
        clock: clock.clone(),
        ..EngineConfig::default()
    })
    .await;
    let dropped = engine
        .create_achievement(
            kept.application_id,
            kept.campaign.id,
            AchievementDraft {
                name: "tea".into(),
                title: "Tea".into(),
                target: Decimal::from(1_000_000),
                period: Some("2D".into()),
                ..AchievementDraft::default()
            },
        )
        .await
        .expect("created");
    // Positions 0..4: tea, coffee, tea, coffee. Removing tea moves the
    // coffee pairs to 0 and 1, one of them frozen.
    for (entry, c) in [
        (&dropped, "c1"),
        (&kept, "c2"),
        (&dropped, "c3"),
        (&kept, "c4"),
    ] {
        engine
            .increase(input(entry, c, None))
            .await
            .expect("applied");
    }
    assert_eq!(engine.freeze_idle(Duration::ZERO).await.expect("froze"), 4);
    engine
        .increase(input(&kept, "c4", None))
        .await
        .expect("applied");
    assert_eq!(engine.drop_pairs(dropped).await.expect("dropped"), 2);
    // c2 is still frozen; c4 was thawed, c1 and c3 are gone.
    assert!(frozen_reach(&engine, 1).await, "{:?}", engine.stats());
    clock.advance(chrono::Duration::days(1));
    assert!(expiries_reach(&engine, 2).await, "{:?}", engine.stats());
    actix_rt::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(engine.stats().expiries.load(Ordering::Relaxed), 2);
}

#[actix_rt::test]
async fn the_shards_sweep_freezes_idle_pairs_and_leaves_them_working() {
    let (engine, entry) = engine(EngineConfig {
        shards: 2,
        partitions: 8,
        freeze_after: Some(Duration::from_millis(300)),
        ..EngineConfig::default()
    })
    .await;
    for i in 0..50 {
        let c = format!("c{i}");
        engine
            .increase(input(&entry, &c, None))
            .await
            .expect("applied");
    }
    // After a few ticks every pair was idle long enough and got frozen:
    // nothing is left to freeze.
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(engine.freeze_idle(Duration::ZERO).await.expect("froze"), 0);
    assert!(frozen_reach(&engine, 50).await, "{:?}", engine.stats());
    for i in 0..50 {
        let c = format!("c{i}");
        engine
            .increase(input(&entry, &c, None))
            .await
            .expect("applied");
        assert_eq!(progress(&engine, &entry, &c).await, Decimal::from(2));
    }
    // Just thawed by their events, so live again (until the sweep comes
    // by, 300 ms on).
    let frozen = engine.freeze_idle(Duration::ZERO).await.expect("froze");
    assert!(frozen > 0, "{frozen}");
    assert!(frozen_reach(&engine, 50).await, "{:?}", engine.stats());
}
