//! The feed end to end in process (engine, file log, feed): for random
//! events, rollbacks, erasures and time passing, the feed tells exactly
//! what the answers' effects and the pairs' final states say happened — and
//! a crash (no snapshot) or a snapshot and restart changes nothing in it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::{Feed, FeedWriter};
use crate::clock::Clock;
use crate::domain::catalog::CampaignPatch;
use crate::domain::{
    AchievementDraft, ApplicationId, CustomerId, Effect, EntryType, EventId, Increase, Outcome,
    ProgressStatus, RecurrencePolicy,
};
use crate::engine::{AchievementEntry, Catalog, Engine, EngineConfig, EventInput};
use crate::persist::store::Store;

/// An engine with its feed, restored from `dir`.
async fn open(dir: &Path, clock: Clock) -> (Engine, Arc<Store>, Arc<Feed>) {
    let engine = Engine::start(
        EngineConfig {
            clock: clock.clone(),
            shards: 2,
            arbiters: 2,
            partitions: 16,
            ..EngineConfig::default()
        },
        Catalog::default(),
    );
    // Retention far beyond the time the cases move through (trimming is
    // tested on its own).
    let feed = Feed::open(&dir.join("feed"), Duration::days(3650), clock).expect("feed opens");
    engine
        .attach_feed(FeedWriter::start(feed.clone()).expect("writer starts"))
        .expect("attached once");
    let (e, d) = (engine.clone(), dir.to_path_buf());
    let (store, _) = actix_rt::task::spawn_blocking(move || Store::restore(&e, &d, 3))
        .await
        .expect("restore thread")
        .expect("restore succeeds");
    (engine, Arc::new(store), feed)
}

#[derive(Debug, Clone)]
enum Op {
    Add {
        customer: u8,
        achievement: u8,
        delta: u8,
        late_hours: i64,
        id: u8,
    },
    Rollback {
        customer: u8,
        achievement: u8,
        id: u8,
    },
    Erase {
        customer: u8,
    },
    Advance {
        hours: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..4u8, 0..3u8, 1..4u8, prop_oneof![3 => Just(0i64), 1 => 0..40i64], 0..12u8)
            .prop_map(|(customer, achievement, delta, late_hours, id)| Op::Add { customer, achievement, delta, late_hours, id }),
        2 => (0..4u8, 0..3u8, 0..12u8).prop_map(|(customer, achievement, id)| Op::Rollback { customer, achievement, id }),
        1 => (0..4u8).prop_map(|customer| Op::Erase { customer }),
        2 => (1..30i64).prop_map(|hours| Op::Advance { hours }),
    ]
}

fn cid(n: u8) -> CustomerId {
    CustomerId::parse(&format!("c{n}"), "/integrationId").expect("valid")
}

fn eid(n: u8) -> EventId {
    EventId::parse(&format!("e{n}"), "/eventId").expect("valid")
}

async fn catalog(engine: &Engine) -> (ApplicationId, Vec<Arc<AchievementEntry>>) {
    let app = engine
        .create_application("feed".into(), chrono_tz::UTC, String::new())
        .await
        .expect("application");
    let campaign = engine
        .create_campaign(
            app.id,
            CampaignPatch {
                name: Some("c".into()),
                ..CampaignPatch::default()
            },
        )
        .await
        .expect("campaign");
    let mut entries = Vec::new();
    for (name, recurrence, target, allow) in [
        ("every3", RecurrencePolicy::OnCompletion, 3, false),
        ("daily2", RecurrencePolicy::OnExpiration, 2, true),
        ("once2", RecurrencePolicy::NoRecurrence, 2, true),
    ] {
        let draft = AchievementDraft {
            name: name.into(),
            title: name.into(),
            target: Decimal::from(target),
            period: Some("1D".into()),
            recurrence_policy: recurrence,
            allow_rollback_after_completion: allow,
            ..AchievementDraft::default()
        };
        entries.push(
            engine
                .create_achievement(app.id, campaign.id, draft)
                .await
                .expect("achievement"),
        );
    }
    (app.id, entries)
}

/// (customer, achievement) → the transitions the answers' effects say
/// happened, in order: (type, progress tracker id).
type Told = BTreeMap<(String, u64), Vec<(EntryType, u64)>>;

fn from_effects(told: &mut Told, key: (String, u64), effects: &[Effect]) {
    let list = told.entry(key).or_default();
    for e in effects {
        match e {
            Effect::Start { tracker, .. } => list.push((EntryType::Started, tracker.0)),
            Effect::Increase {
                tracker,
                just_completed: true,
                ..
            } => list.push((EntryType::Completed, tracker.0)),
            Effect::Rollback {
                tracker,
                decrease_by,
                current,
                target,
            } if current + decrease_by >= *target && current < target => {
                list.push((EntryType::CompletionRolledBack, tracker.0))
            }
            _ => {}
        }
    }
}

/// What the feed holds: (seq, id, type, customer, achievement, tracker).
fn feed_rows(feed: &Feed) -> Vec<(u64, String, EntryType, String, u64, u64)> {
    feed.all_after(0)
        .iter()
        .map(|s| {
            let e = &s.entry;
            (
                s.seq,
                s.id(),
                e.transition.kind,
                e.customer.as_str().to_string(),
                e.achievement.0,
                e.transition.iteration.id.0,
            )
        })
        .collect()
}

/// Lets every shard's timers run once (they tick every 500 ms), then waits
/// until the feed stored all that was sent.
async fn settle(engine: &Engine) {
    actix_rt::time::sleep(std::time::Duration::from_millis(700)).await;
    engine.feed_barrier().await;
}

async fn run_case(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let start: DateTime<Utc> = "2026-01-05T08:00:00Z".parse().expect("instant");
    let clock = Clock::manual(start);
    let (engine, store, feed) = open(dir.path(), clock.clone()).await;
    let (app, achievements) = catalog(&engine).await;
    let mut told = Told::new();
    for op in ops {
        match op {
            Op::Add {
                customer,
                achievement,
                delta,
                late_hours,
                id,
            } => {
                let entry = &achievements[achievement as usize];
                let r = engine
                    .increase(EventInput {
                        customer: cid(customer),
                        entry: entry.clone(),
                        increase: Increase {
                            delta: Decimal::from(delta),
                            at: Some(clock.now() - Duration::hours(late_hours)),
                            event_id: Some(eid(id)),
                        },
                    })
                    .await
                    .expect("engine answers");
                if r.outcome == Outcome::Applied {
                    from_effects(
                        &mut told,
                        (format!("c{customer}"), entry.achievement.id.0),
                        &r.effects,
                    );
                }
            }
            Op::Rollback {
                customer,
                achievement,
                id,
            } => {
                let entry = &achievements[achievement as usize];
                let r = engine
                    .rollback(cid(customer), entry.clone(), eid(id))
                    .await
                    .expect("engine answers");
                if r.outcome == Outcome::Applied {
                    from_effects(
                        &mut told,
                        (format!("c{customer}"), entry.achievement.id.0),
                        &r.effects,
                    );
                }
            }
            Op::Erase { customer } => {
                engine
                    .erase_customer(app, cid(customer))
                    .await
                    .expect("erased");
                told.retain(|(c, _), _| *c != format!("c{customer}"));
            }
            Op::Advance { hours } => clock.advance(Duration::hours(hours)),
        }
    }
    settle(&engine).await;
    let rows = feed_rows(&feed);

    // Starts, completions and rollbacks of completions: as the effects say.
    let mut from_feed = Told::new();
    for (_, _, kind, customer, achievement, tracker) in &rows {
        if *kind != EntryType::Expired {
            from_feed
                .entry((customer.clone(), *achievement))
                .or_default()
                .push((*kind, *tracker));
        }
    }
    told.retain(|_, l| !l.is_empty());
    prop_assert_eq!(&from_feed, &told);

    // Expiries: each iteration whose status is expired now was told
    // expired once, and no other iteration was told expired unless a late
    // event completed it afterwards.
    let now = clock.now();
    for c in 0..4u8 {
        let lists = engine
            .customer_progress(app, &cid(c), &achievements)
            .await
            .expect("read");
        for (entry, iterations) in achievements.iter().zip(lists) {
            for it in iterations {
                let expired_told = rows
                    .iter()
                    .filter(|r| {
                        r.2 == EntryType::Expired && r.5 == it.id.0 && r.4 == entry.achievement.id.0
                    })
                    .count();
                match it.status {
                    ProgressStatus::Expired => {
                        prop_assert_eq!(expired_told, 1, "{:?} at {}", it, now)
                    }
                    ProgressStatus::InProgress => prop_assert_eq!(expired_told, 0, "{:?}", it),
                    _ => prop_assert!(expired_told <= 1),
                }
            }
        }
    }

    // A crash (no snapshot) and a restart: replay sends everything again,
    // the feed keeps what it has and adds nothing. The old engine keeps its
    // own clock, which no longer moves, so its timers stay quiet.
    drop((engine, store, feed));
    let (engine, store, feed) = open(dir.path(), Clock::manual(now)).await;
    settle(&engine).await;
    prop_assert_eq!(&feed_rows(&feed), &rows);

    // A snapshot, then a restart from it.
    let (e, s) = (engine.clone(), store.clone());
    actix_rt::task::spawn_blocking(move || s.snapshot(&e))
        .await
        .expect("thread")
        .expect("snapshot");
    drop((engine, store, feed));
    let (engine, _store, feed) = open(dir.path(), Clock::manual(now)).await;
    settle(&engine).await;
    prop_assert_eq!(&feed_rows(&feed), &rows);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn the_feed_is_what_the_effects_and_states_say_and_restarts_change_nothing(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        actix_rt::System::new().block_on(run_case(ops))?;
    }
}

/// A made-up entry of the record at (`partition`, `position`).
fn entry(
    partition: u32,
    position: u64,
    index: u32,
    customer: &str,
) -> crate::engine::feed::FeedEntry {
    use crate::domain::{AchievementId, CampaignId, Iteration, ProgressTrackerId, Transition};
    let at: DateTime<Utc> = "2026-01-05T08:00:00Z".parse().expect("instant");
    crate::engine::feed::FeedEntry {
        partition: crate::engine::log::PartitionId(partition),
        position: crate::engine::log::Position(position),
        index,
        application: ApplicationId(1),
        campaign: CampaignId(2),
        achievement: AchievementId(3),
        achievement_name: "a".into(),
        customer: CustomerId::parse(customer, "/c").expect("valid"),
        target: Decimal::ONE,
        event_id: None,
        transition: Transition {
            kind: EntryType::Started,
            at,
            iteration: Iteration {
                id: ProgressTrackerId(position),
                status: ProgressStatus::InProgress,
                progress: Decimal::ZERO,
                start: at,
                end: None,
                completion: None,
            },
        },
    }
}

fn send(writer: &FeedWriter, entries: Vec<crate::engine::feed::FeedEntry>) {
    use crate::engine::feed::{FeedMessage, FeedSink};
    writer.send(FeedMessage::Entries(entries));
}

fn barrier(writer: &FeedWriter) {
    use crate::engine::feed::{FeedMessage, FeedSink};
    let (tx, rx) = tokio::sync::oneshot::channel();
    writer.send(FeedMessage::Barrier(tx));
    futures_executor::block_on(rx).expect("the writer answers");
}

#[test]
fn resent_entries_are_kept_once_erasures_and_retention_hold_across_reopening() {
    use super::{Cursor, ReadError, Types};
    use crate::engine::feed::{FeedMessage, FeedSink};
    let dir = tempfile::tempdir().expect("temp dir");
    let start: DateTime<Utc> = "2026-01-05T08:00:00Z".parse().expect("instant");
    let clock = Clock::manual(start);
    let feed = Feed::open(dir.path(), Duration::days(1), clock.clone()).expect("opens");
    let writer = FeedWriter::start(feed.clone()).expect("starts");
    send(
        &writer,
        vec![
            entry(0, 1, 0, "a"),
            entry(0, 1, 1, "a"),
            entry(1, 5, 0, "b"),
        ],
    );
    // A replay sends the same again, plus one new: only the new one is kept.
    send(
        &writer,
        vec![
            entry(0, 1, 0, "a"),
            entry(0, 1, 1, "a"),
            entry(0, 2, 0, "a"),
        ],
    );
    barrier(&writer);
    let app = ApplicationId(1);
    let page = feed.read(app, None, 10, Types::all()).expect("reads");
    let ids: Vec<String> = page.entries.iter().map(|s| s.id()).collect();
    assert_eq!(ids, ["0-1-0", "0-1-1", "1-5-0", "0-2-0"]);
    assert!(!page.has_more);
    let two = feed.read(app, None, 2, Types::all()).expect("reads");
    assert!(two.has_more);
    let rest = feed
        .read(app, Some(two.next), 10, Types::all())
        .expect("reads");
    assert_eq!(
        rest.entries.iter().map(|s| s.id()).collect::<Vec<_>>(),
        ["1-5-0", "0-2-0"]
    );

    // Erasing "a" at position 3 of partition 0 removes what came before it,
    // not what comes after.
    writer.send(FeedMessage::Erased {
        partition: crate::engine::log::PartitionId(0),
        position: crate::engine::log::Position(3),
        application: app,
        customer: CustomerId::parse("a", "/c").expect("valid"),
    });
    send(&writer, vec![entry(0, 4, 0, "a")]);
    barrier(&writer);
    let left = |f: &Feed| -> Vec<String> {
        f.read(app, None, 10, Types::all())
            .expect("reads")
            .entries
            .iter()
            .map(|s| s.id())
            .collect()
    };
    assert_eq!(left(&feed), ["1-5-0", "0-4-0"]);
    let reopened = Feed::open(dir.path(), Duration::days(1), clock.clone()).expect("reopens");
    assert_eq!(left(&reopened), ["1-5-0", "0-4-0"]);
    assert_eq!(reopened.head(), feed.head());

    // Past the retention: a cursor from before is refused, not skipped.
    let old = Cursor(1);
    clock.advance(Duration::days(1) + Duration::seconds(1));
    feed.trim();
    assert_eq!(
        feed.read(app, Some(old), 10, Types::all()).unwrap_err(),
        ReadError::Gone
    );
    let fresh = feed
        .read(app, None, 10, Types::all())
        .expect("reads from the oldest kept");
    assert!(fresh.entries.is_empty());
    assert!(feed.read(app, Some(fresh.next), 10, Types::all()).is_ok());
    // Pruning is the file writer's job, queued by `trim`: let it finish
    // before another feed opens the same directory.
    let pruned = feed.wal.barrier().expect("the writer takes a barrier");
    let _ = futures_executor::block_on(pruned);
    let reopened = Feed::open(dir.path(), Duration::days(1), clock).expect("reopens");
    assert_eq!(
        reopened.read(app, Some(old), 10, Types::all()).unwrap_err(),
        ReadError::Gone
    );
    assert_eq!(reopened.head(), feed.head());
}

fn golden_feed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-feed-v1.bin")
}

/// The feed's file records (version 1): an entry with every optional field
/// and an erasure mark, stored as `u32 LE length | payload`. Every later
/// build must read them as written; regenerate with `ACHV_WRITE_GOLDEN=1`
/// only when adding a version.
#[test]
fn golden_v1_feed_records_still_read_exactly() {
    use super::model::{EntryV1, FeedRecordV1};
    use super::store::{decode, encode};
    use crate::domain::PeriodEnd;
    let written: DateTime<Utc> = "2026-11-29T03:00:00.123Z".parse().expect("instant");
    let mut e = entry(42, 7, 1, "jane");
    e.event_id = Some(eid(9));
    e.transition.kind = EntryType::Completed;
    e.transition.iteration.status = ProgressStatus::Completed;
    e.transition.iteration.progress = Decimal::new(125, 1);
    e.transition.iteration.end = Some(PeriodEnd {
        end: written + Duration::days(7),
        reported: written + Duration::days(7) - Duration::seconds(1),
    });
    e.transition.iteration.completion = Some(written);
    let records = vec![
        FeedRecordV1::Entry(Box::new(EntryV1::new(&e, written))),
        FeedRecordV1::Erase {
            application: 1,
            customer: "ann".into(),
            partition: 3,
            position: 99,
        },
    ];
    let mut bytes = Vec::new();
    for r in &records {
        let payload = encode(r).expect("encodes");
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&payload);
    }
    if std::env::var("ACHV_WRITE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(golden_feed_path(), &bytes).expect("write the golden feed records");
    }
    let golden = std::fs::read(golden_feed_path()).expect("the golden feed records exist");
    let mut rest = &golden[..];
    let mut read = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("a length")) as usize;
        read.push(decode(&rest[4..4 + len]).expect("decodes"));
        rest = &rest[4 + len..];
    }
    assert_eq!(read, records);
    let FeedRecordV1::Entry(first) = &read[0] else {
        panic!("an entry first")
    };
    assert_eq!(first.to_entry().expect("converts"), (e, written));
    assert_eq!(golden, bytes, "this build writes the same bytes");
}
