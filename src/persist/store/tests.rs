//! The store in process: a golden snapshot that every later version must
//! still read, and restores that fall back to the previous snapshot when the
//! newest one is damaged.

use std::sync::Arc;

use chrono::TimeZone;
use rust_decimal::Decimal;

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::*;
use crate::domain::catalog::CampaignPatch;
use crate::domain::tracker::{AppliedChange, EventKey, PairTracker, RememberedEvent};
use crate::domain::CustomerId;
use crate::domain::{
    AchievementDraft, ActivationPolicy, EventId, Increase, Outcome, Reason, RecurrencePolicy,
};
use crate::engine::Engine;
use crate::engine::{AchievementEntry, Catalog, EngineConfig, EventInput};
use crate::persist::model::{CatalogV2, IterationV1, PairV5, TimeV1, TrackerV5};
use crate::persist::snapshot::{self, Covered, Header, SnapshotError};

fn config() -> EngineConfig {
    // Fixed, not the machine's core count: the golden file was written by an
    // engine with eight shards.
    EngineConfig {
        shards: 8,
        arbiters: 2,
        ..EngineConfig::default()
    }
}

/// A fresh engine restored from `dir` (off the test's thread, as the server
/// does).
async fn restore(dir: &Path) -> (Engine, Arc<Store>, RestoreReport) {
    restore_with(dir, crate::clock::Clock::system()).await
}

/// A fresh engine reading time from `clock`, restored from `dir`.
async fn restore_with(
    dir: &Path,
    clock: crate::clock::Clock,
) -> (Engine, Arc<Store>, RestoreReport) {
    let engine = Engine::start(EngineConfig { clock, ..config() }, Catalog::default());
    let (e, d) = (engine.clone(), dir.to_path_buf());
    let (store, report) = actix_rt::task::spawn_blocking(move || Store::restore(&e, &d, 3))
        .await
        .expect("restore thread")
        .expect("restore succeeds");
    (engine, Arc::new(store), report)
}

async fn take_snapshot(engine: &Engine, store: &Arc<Store>) -> SnapshotInfo {
    let (e, s) = (engine.clone(), store.clone());
    actix_rt::task::spawn_blocking(move || s.snapshot(&e))
        .await
        .expect("snapshot thread")
        .expect("snapshot succeeds")
}

fn cid(s: &str) -> CustomerId {
    CustomerId::parse(s, "/integrationId").expect("valid customer id")
}

fn eid(s: &str) -> EventId {
    EventId::parse(s, "/eventId").expect("valid event id")
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid instant")
}

async fn increase(
    engine: &Engine,
    entry: &Arc<AchievementEntry>,
    customer: &str,
    delta: &str,
    at: Option<DateTime<Utc>>,
    id: &str,
) -> crate::domain::EventResult {
    engine
        .increase(EventInput {
            customer: cid(customer),
            entry: entry.clone(),
            increase: Increase {
                delta: dec(delta),
                at,
                event_id: Some(eid(id)),
            },
        })
        .await
        .expect("engine answers")
}

/// The current iteration's progress (0 when none).
async fn progress(engine: &Engine, entry: &Arc<AchievementEntry>, customer: &str) -> Decimal {
    let rows = engine
        .customer_progress(
            entry.application_id,
            &cid(customer),
            std::slice::from_ref(entry),
        )
        .await
        .expect("read");
    rows[0].first().map_or(Decimal::ZERO, |i| i.progress)
}

fn entry_named(engine: &Engine, name: &str) -> Arc<AchievementEntry> {
    engine
        .catalog
        .read()
        .achievements
        .values()
        .find(|e| e.achievement.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no achievement {name}"))
}

fn read_all(path: &Path) -> Result<(Header, CatalogV2, Vec<PairV5>), SnapshotError> {
    let mut pairs = Vec::new();
    let (header, catalog) = snapshot::read(path, |_, chunk| {
        pairs.extend(chunk);
        Ok(())
    })?;
    pairs.sort_by(|a, b| (a.achievement, &a.customer).cmp(&(b.achievement, &b.customer)));
    Ok((header, catalog, pairs))
}

/// A pair's remembered events as its tracker holds them (effects stored
/// whole by older versions are compacted when they load).
fn remembered(t: &TrackerV5) -> Vec<RememberedEvent> {
    PairTracker::from_parts(t.to_parts().expect("valid tracker"))
        .to_parts()
        .events
}

fn event_key(id: &str) -> EventKey {
    EventKey::of(&EventId::parse(id, "/eventId").expect("valid id"))
}

/// The keys of `ids`, in the order a pair keeps them.
fn event_keys(ids: &[&str]) -> Vec<EventKey> {
    let mut k: Vec<EventKey> = ids.iter().map(|id| event_key(id)).collect();
    k.sort();
    k
}

// ---------------------------------------------------------------------------
// Golden snapshots (format versions 1 and 2).
// ---------------------------------------------------------------------------

fn golden_path(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/golden-v{version}.snap"))
}

/// Builds the golden state: one application, key and campaign, three
/// achievements (on_completion, one-time with clipping, fixed schedule
/// without progress), overshoot, a rollback, a clip and a duplicate.
async fn build_golden(engine: &Engine) {
    let app = engine
        .create_application(
            "golden".into(),
            chrono_tz::Europe::Berlin,
            "golden snapshot v1".into(),
        )
        .await
        .expect("application");
    engine
        .create_api_key(app.id, "golden-key".into())
        .await
        .expect("api key");
    let campaign = engine
        .create_campaign(
            app.id,
            CampaignPatch {
                name: Some("golden-campaign".into()),
                ..CampaignPatch::default()
            },
        )
        .await
        .expect("campaign");
    let visits = engine
        .create_achievement(
            app.id,
            campaign.id,
            AchievementDraft {
                name: "visits".into(),
                title: "Visits".into(),
                description: "every third visit".into(),
                target: dec("3"),
                recurrence_policy: RecurrencePolicy::OnCompletion,
                ..AchievementDraft::default()
            },
        )
        .await
        .expect("visits");
    let spend = engine
        .create_achievement(
            app.id,
            campaign.id,
            AchievementDraft {
                name: "spend".into(),
                title: "Spend".into(),
                description: String::new(),
                target: dec("100.5"),
                period: Some("100Y".into()),
                recurrence_policy: RecurrencePolicy::NoRecurrence,
                end_progress_on_target: true,
                ..AchievementDraft::default()
            },
        )
        .await
        .expect("spend");
    engine
        .create_achievement(
            app.id,
            campaign.id,
            AchievementDraft {
                name: "weekly".into(),
                title: "Weekly".into(),
                description: "fixed schedule".into(),
                target: dec("7"),
                period: Some("1W_U".into()),
                recurrence_policy: RecurrencePolicy::OnExpiration,
                activation_policy: ActivationPolicy::FixedSchedule,
                fixed_start_date: Some(utc(2024, 1, 1, 0, 0, 0)),
                end_date: Some(utc(2124, 1, 1, 0, 0, 0)),
                allow_rollback_after_completion: true,
                ..AchievementDraft::default()
            },
        )
        .await
        .expect("weekly");

    let t0 = utc(2025, 3, 1, 10, 0, 0);
    let hour = chrono::Duration::hours(1);
    let applied = |r: crate::domain::EventResult| assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    // alice: 2, 4 (completes one, carries 1), 6 (completes two more, opens none).
    applied(increase(engine, &visits, "alice", "2", Some(t0), "v1").await);
    applied(increase(engine, &visits, "alice", "2", Some(t0 + hour), "v2").await);
    applied(increase(engine, &visits, "alice", "5", Some(t0 + hour * 2), "v3").await);
    applied(increase(engine, &visits, "bob", "1", Some(t0), "v4").await);
    let dup = increase(engine, &visits, "alice", "2", Some(t0), "v1").await;
    assert_eq!(dup.outcome, Outcome::Duplicate);
    // bob spends 40.25 + 30, then the 40.25 is rolled back.
    applied(increase(engine, &spend, "bob", "40.25", Some(t0), "s1").await);
    applied(increase(engine, &spend, "bob", "30", Some(t0 + hour), "s2").await);
    let rb = engine
        .rollback(cid("bob"), spend.clone(), eid("s1"))
        .await
        .expect("rollback answers");
    assert_eq!(rb.outcome, Outcome::Applied, "{rb:?}");
    // carol overshoots: clipped at the target.
    applied(increase(engine, &spend, "carol", "200", Some(t0), "s3").await);
}

/// What a golden file holds that depends on when and how it was generated
/// (its creation times, the random API key, the shard a customer hashed
/// to) and on its version; fixed once the file is.
struct Golden {
    version: u32,
    created: (i64, u32),
    app_created: TimeV1,
    key_hash: [u8; 32],
    catalog_position: u64,
    /// Versions 1 and 2: the position of each of the 8 shard logs. Version
    /// 3: the next position of each shard's log, which every partition of
    /// that shard (`p % 8`) was snapshotted at.
    shard_positions: [u64; 8],
    pair_numbers: u64,
    body_len: u64,
    body_crc: u32,
    /// `allowedLatenessSeconds` of visits, spend and weekly.
    lateness: [Option<u64>; 3],
}

const GOLDEN_V1: Golden = Golden {
    version: 1,
    created: (1_795_665_483, 623_000_000),
    app_created: TimeV1 {
        secs: 1_795_665_483,
        nanos: 617_000_000,
    },
    key_hash: [
        22, 39, 107, 147, 53, 129, 189, 235, 240, 12, 204, 14, 140, 155, 240, 134, 10, 83, 139, 34,
        188, 139, 94, 135, 129, 133, 204, 200, 139, 148, 126, 231,
    ],
    // Six catalog records (application, key, campaign, three achievements).
    catalog_position: 7,
    // Eight shard logs; the customers hashed to shards 1, 4 and 7.
    shard_positions: [1, 2, 1, 1, 4, 1, 1, 5],
    pair_numbers: 4,
    body_len: 1471,
    body_crc: 1_441_902_636,
    lateness: [None, None, None],
};

#[test]
fn golden_v1_snapshot_still_reads_exactly() {
    check_golden_reads(&GOLDEN_V1);
}

/// Reads a golden file and checks every value in it.
fn check_golden_reads(g: &Golden) {
    let path = golden_path(g.version);
    let bytes = fs::read(&path).expect("golden file");
    assert_eq!(bytes[8..12], g.version.to_le_bytes(), "format version");
    let (header, catalog, pairs) = read_all(&path).expect("golden snapshot reads");

    // Header.
    assert_eq!(header.catalog_position, g.catalog_position);
    let covered = if g.version < 3 {
        Covered::Shards(g.shard_positions.to_vec())
    } else {
        Covered::Partitions((0..256).map(|p| g.shard_positions[p % 8]).collect())
    };
    assert_eq!(header.covered, covered);
    assert_eq!(header.pair_numbers, g.pair_numbers);
    assert_eq!(header.pairs, 4);
    assert_eq!(header.body_len, g.body_len);
    assert_eq!(header.body_crc, g.body_crc);
    assert_eq!((header.created_secs, header.created_nanos), g.created);

    // Catalog.
    assert_eq!(catalog.next_id, 6);
    assert_eq!(catalog.applications.len(), 1);
    let app = &catalog.applications[0];
    assert_eq!(app.id, 1);
    assert_eq!(app.name, "golden");
    assert_eq!(app.timezone, "Europe/Berlin");
    assert_eq!(app.description, "golden snapshot v1");
    assert_eq!(app.created, g.app_created);
    assert_eq!(catalog.api_keys.len(), 1);
    let key = &catalog.api_keys[0];
    assert_eq!(
        (key.id, key.application_id, key.name.as_str()),
        (2, 1, "golden-key")
    );
    assert_eq!(key.hash, g.key_hash);
    assert_eq!(catalog.campaigns.len(), 1);
    let c = &catalog.campaigns[0];
    assert_eq!(
        (c.id, c.application_id, c.name.as_str()),
        (3, 1, "golden-campaign")
    );
    assert!(c.enabled);
    assert_eq!((c.start_time, c.end_time), (None, None));
    let achievements: Vec<_> = catalog
        .achievements
        .iter()
        .map(|(a2, has_progress)| {
            let a = &a2.v1;
            (
                (
                    a.id,
                    a.campaign_id,
                    a.name.as_str(),
                    a.title.as_str(),
                    a.description.as_str(),
                    Decimal::from(a.target),
                    a.period.as_deref(),
                ),
                (
                    a.recurrence,
                    a.activation,
                    a.fixed_start_date,
                    a.end_date,
                    a.allow_rollback_after_completion,
                    a.end_progress_on_target,
                    *has_progress,
                ),
            )
        })
        .collect();
    let anchor = Some(TimeV1::from(utc(2024, 1, 1, 0, 0, 0)));
    let end = Some(TimeV1::from(utc(2124, 1, 1, 0, 0, 0)));
    assert_eq!(
        achievements,
        vec![
            (
                (
                    4,
                    3,
                    "visits",
                    "Visits",
                    "every third visit",
                    dec("3"),
                    None
                ),
                (2, 0, None, None, false, false, true)
            ),
            (
                (5, 3, "spend", "Spend", "", dec("100.5"), Some("100Y")),
                (0, 0, None, None, false, true, true)
            ),
            (
                (
                    6,
                    3,
                    "weekly",
                    "Weekly",
                    "fixed schedule",
                    dec("7"),
                    Some("1W_U")
                ),
                (1, 1, anchor, end, true, false, false)
            ),
        ]
    );
    let lateness: Vec<_> = catalog
        .achievements
        .iter()
        .map(|(a, _)| a.allowed_lateness_secs)
        .collect();
    assert_eq!(lateness, g.lateness.to_vec());
    for (a, _) in &catalog.achievements {
        assert!(a.to_achievement().is_ok(), "{} validates", a.v1.name);
    }
    assert!(catalog.to_state().is_ok());

    // Pairs, sorted by (achievement, customer).
    let keys: Vec<_> = pairs
        .iter()
        .map(|p| (p.achievement, p.customer.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![(4, "alice"), (4, "bob"), (5, "bob"), (5, "carol")]
    );
    let t0 = TimeV1::from(utc(2025, 3, 1, 10, 0, 0));
    let t1 = TimeV1::from(utc(2025, 3, 1, 11, 0, 0));
    let t2 = TimeV1::from(utc(2025, 3, 1, 12, 0, 0));

    // alice/visits: v2 completes [t0) with 1 carried into a new iteration
    // at t1; v3 completes that one and a third opened at t2 with exactly the
    // target, which stays current (completed); none is open.
    let alice = &pairs[0].tracker;
    let summary = |i: &IterationV1| {
        (
            i.id,
            i.status,
            Decimal::from(i.progress),
            i.start,
            i.end,
            i.completion,
        )
    };
    let base = 1u64 << 24;
    assert_eq!(
        alice.current.as_ref().map(summary),
        Some((base + 2, 2, dec("3"), t2, None, Some(t2)))
    );
    assert_eq!(
        alice.history.iter().map(summary).collect::<Vec<_>>(),
        vec![
            (base + 1, 2, dec("3"), t1, None, Some(t2)),
            (base, 2, dec("3"), t0, None, Some(t1)),
        ]
    );
    assert_eq!(alice.next_seq, 3);
    let alice_events = remembered(alice);
    assert_eq!(
        alice_events.iter().map(|e| e.key).collect::<Vec<_>>(),
        event_keys(&["v1", "v2", "v3"])
    );
    assert!(alice_events.iter().all(|e| !e.rolled_back));

    // bob/visits: one open iteration at 1.
    let bob_visits = pairs[1].tracker.current.as_ref().expect("open iteration");
    assert_eq!(
        (
            bob_visits.status,
            Decimal::from(bob_visits.progress),
            bob_visits.start,
            bob_visits.end
        ),
        (1, dec("1"), t0, None)
    );

    // bob/spend: 40.25 + 30 - 40.25 = 30, in progress, the rollback remembered.
    let bob = &pairs[2].tracker;
    let it = bob.current.as_ref().expect("open iteration");
    assert_eq!(
        (it.status, Decimal::from(it.progress), it.start),
        (1, dec("30"), t0)
    );
    // Exact decimal representation, scale included.
    assert_eq!(it.progress.0, dec("30.00").serialize());
    let end = TimeV1::from(utc(2125, 3, 1, 10, 0, 0));
    assert_eq!(it.end, Some((end, end)));
    assert_eq!(it.completion, None);
    let events: Vec<_> = remembered(bob)
        .iter()
        .map(|e| (e.key, e.rolled_back))
        .collect();
    let mut want = vec![(event_key("s1"), true), (event_key("s2"), false)];
    want.sort();
    assert_eq!(events, want);

    // carol/spend: clipped at the target, completed at t0.
    let carol = &pairs[3].tracker;
    let it = carol.current.as_ref().expect("current iteration");
    assert_eq!(
        (
            it.status,
            Decimal::from(it.progress),
            it.start,
            it.completion
        ),
        (2, dec("100.5"), t0, Some(t0))
    );
    let carol_events = remembered(carol);
    assert_eq!(carol_events.len(), 1);
    assert_eq!(carol_events[0].key, event_key("s3"));
    // It opened the iteration (its start told by the iteration's dates, t0)
    // and completed it.
    assert_eq!(
        carol_events[0].change,
        AppliedChange::One {
            seq: 0,
            delta: dec("100.5"),
            value: dec("100.5"),
            just_completed: true,
            started: true,
        }
    );

    // Tracker ids derive from pair numbers 1..=4 (one per pair, in order).
    let bases: Vec<u64> = pairs.iter().map(|p| p.tracker.tracker_base).collect();
    assert_eq!(bases, vec![1 << 24, 2 << 24, 3 << 24, 4 << 24]);
    assert!(pairs.iter().all(|p| p.tracker.to_parts().is_ok()));
}

#[actix_rt::test]
async fn golden_v1_snapshot_restores_into_a_working_engine() {
    check_golden_restores(&GOLDEN_V1).await;
}

/// Restores a golden file and checks the engine works from it.
async fn check_golden_restores(g: &Golden) {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::copy(
        golden_path(g.version),
        dir.path().join("snapshot-000000000001.snap"),
    )
    .expect("copy");
    // An hour after the file was written, so the event ids it remembers are
    // still within their retention, whenever the test runs.
    let at = DateTime::from_timestamp(g.created.0, g.created.1).expect("instant")
        + chrono::Duration::hours(1);
    let clock = crate::clock::Clock::manual(at);
    let (engine, store, report) = restore_with(dir.path(), clock.clone()).await;
    assert_eq!(report.snapshot, Some(1));
    assert!(report.skipped_snapshots.is_empty());
    assert_eq!(report.pairs, 4);
    assert_eq!((report.catalog_records, report.pair_records), (0, 0));
    // A file of the earlier layout is migrated: a partitioned snapshot
    // replaces it, and the directory records its partition count.
    assert_eq!(report.migrated, g.version < 3);
    let on_disk: Vec<u32> = snapshot::list(dir.path())
        .expect("list")
        .iter()
        .map(|f| snapshot::read_header(&f.path).expect("header").version)
        .collect();
    let expected = if g.version < 3 {
        vec![snapshot::CURRENT_VERSION]
    } else {
        vec![g.version]
    };
    assert_eq!(on_disk, expected);
    assert_eq!(
        fs::read_to_string(dir.path().join("partitions")).expect("partitions file"),
        "256\n"
    );
    drop(store);
    check_golden_engine(g, &engine).await;
    // The restored pairs keep working; new pairs get numbers after the
    // restored ones.
    let spend = entry_named(&engine, "spend");
    let more = increase(&engine, &spend, "zoe", "0.5", None, "s9").await;
    assert_eq!(more.outcome, Outcome::Applied, "{more:?}");
    assert!(engine.shared().pair_numbers() > g.pair_numbers);
    // The migrated directory restores to the same state, and the change
    // made since from its log.
    let (engine, _store, report) = restore_with(dir.path(), clock).await;
    assert!(!report.migrated);
    assert_eq!((report.pairs, report.pair_records), (4, 1));
    check_golden_engine(g, &engine).await;
    assert_eq!(progress(&engine, &spend, "zoe").await, dec("0.5"));
}

/// The golden state, as an engine restored from a golden file serves it.
async fn check_golden_engine(g: &Golden, engine: &Engine) {
    let engine = engine.clone();
    let visits = entry_named(&engine, "visits");
    let spend = entry_named(&engine, "spend");
    assert_eq!(visits.tz, chrono_tz::Europe::Berlin);
    assert!(visits.has_progress());
    assert!(!entry_named(&engine, "weekly").has_progress());
    let lateness = ["visits", "spend", "weekly"].map(|n| {
        entry_named(&engine, n)
            .achievement
            .rules
            .allowed_lateness_secs
    });
    assert_eq!(lateness, g.lateness);
    assert_eq!(progress(&engine, &visits, "bob").await, dec("1"));
    assert_eq!(progress(&engine, &spend, "bob").await, dec("30"));
    assert_eq!(progress(&engine, &spend, "carol").await, dec("100.5"));
    // Idempotency and rollback memory survived.
    let t0 = utc(2025, 3, 1, 10, 0, 0);
    let again = increase(&engine, &spend, "bob", "30", Some(t0), "s2").await;
    assert_eq!(again.outcome, Outcome::Duplicate);
    let again = increase(&engine, &visits, "alice", "5", Some(t0), "v3").await;
    assert_eq!(again.outcome, Outcome::Duplicate);
    let rb = engine
        .rollback(cid("bob"), spend.clone(), eid("s1"))
        .await
        .expect("answer");
    assert_eq!(
        (rb.outcome, rb.reason),
        (Outcome::Rejected, Some(Reason::AlreadyRolledBack))
    );
}

/// Version 2: achievements with a lateness bound, erasure.
mod v2;

// ---------------------------------------------------------------------------
// Falling back to the previous snapshot.
// ---------------------------------------------------------------------------

/// (customer, event id, delta)
type Sent = (String, String, i64);

struct Scenario {
    dir: tempfile::TempDir,
    events: Vec<Sent>,
    older: u64,
    newer: u64,
}

async fn send_phase(engine: &Engine, entry: &Arc<AchievementEntry>, phase: usize) -> Vec<Sent> {
    let mut sent = Vec::new();
    for i in 0..30 {
        let customer = format!("c{}", (i * 7 + phase) % 6);
        let id = format!("p{phase}-e{i}");
        let delta = ((i * 5 + phase * 3) % 9 + 1) as i64;
        let r = increase(engine, entry, &customer, &delta.to_string(), None, &id).await;
        assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
        sent.push((customer, id, delta));
    }
    sent
}

/// The scenarios' achievement: a daily total that recurs on expiration.
async fn total(engine: &Engine) -> Arc<AchievementEntry> {
    crate::engine::testing::one_achievement(
        engine,
        AchievementDraft {
            name: "total".into(),
            title: "Total".into(),
            target: Decimal::from(1_000_000_000),
            period: Some("1D".into()),
            recurrence_policy: RecurrencePolicy::OnExpiration,
            ..AchievementDraft::default()
        },
    )
    .await
}

/// Events, snapshot, events, snapshot, events; all acknowledged.
async fn scenario() -> Scenario {
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine, store, _) = restore(dir.path()).await;
    let entry = total(&engine).await;
    let mut events = send_phase(&engine, &entry, 0).await;
    let older = take_snapshot(&engine, &store).await.id;
    events.extend(send_phase(&engine, &entry, 1).await);
    let newer = take_snapshot(&engine, &store).await.id;
    events.extend(send_phase(&engine, &entry, 2).await);
    assert!(older < newer);
    Scenario {
        dir,
        events,
        older,
        newer,
    }
}

fn snapshot_file(dir: &Path, id: u64) -> PathBuf {
    snapshot::list(dir)
        .expect("list")
        .into_iter()
        .find(|s| s.id == id)
        .expect("snapshot on disk")
        .path
}

/// Everything acknowledged is there, counted once.
async fn assert_complete(engine: &Engine, events: &[Sent]) {
    let entry = entry_named(engine, "total");
    let mut sums = std::collections::BTreeMap::<&str, i64>::new();
    for (c, _, d) in events {
        *sums.entry(c).or_default() += d;
    }
    for (c, sum) in &sums {
        assert_eq!(
            progress(engine, &entry, c).await,
            Decimal::from(*sum),
            "{c}"
        );
    }
    for (c, id, d) in events {
        let r = increase(engine, &entry, c, &d.to_string(), None, id).await;
        assert_eq!(r.outcome, Outcome::Duplicate, "{id} counted again");
    }
    for (c, sum) in &sums {
        assert_eq!(
            progress(engine, &entry, c).await,
            Decimal::from(*sum),
            "{c}"
        );
    }
}

async fn falls_back(corrupt: impl FnOnce(&Path), why: &str) {
    let s = scenario().await;
    corrupt(&snapshot_file(s.dir.path(), s.newer));
    let (engine, _store, report) = restore(s.dir.path()).await;
    assert_eq!(report.snapshot, Some(s.older), "{report:?}");
    assert_eq!(report.skipped_snapshots.len(), 1, "{report:?}");
    assert_eq!(report.skipped_snapshots[0].0, s.newer);
    assert!(
        report.skipped_snapshots[0].1.contains(why),
        "expected {why:?} in {:?}",
        report.skipped_snapshots[0].1
    );
    // The older snapshot holds phase 0; phases 1 and 2 come from the logs.
    assert_eq!(report.catalog_records, 0);
    assert_eq!(report.pair_records, 60);
    assert_complete(&engine, &s.events).await;
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).expect("read snapshot");
    f(&mut bytes);
    fs::write(path, bytes).expect("write snapshot");
}

fn body_start(bytes: &[u8]) -> usize {
    // prefix, header, header CRC
    16 + u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize + 4
}

/// Pairs are decoded while they load, after the snapshot passed its checks
/// (checksum, catalog): a snapshot sealed with a pair section that does not
/// decode (a writer's bug, not damage) stops the restore with an error
/// instead of falling back to an older snapshot over a partly loaded one.
#[actix_rt::test]
async fn a_sealed_snapshot_whose_pairs_do_not_decode_stops_the_restore() {
    let s = scenario().await;
    let path = snapshot_file(s.dir.path(), s.newer);
    let (header, catalog) = snapshot::read(&path, |_, _| Ok(())).expect("a good snapshot");
    let Covered::Partitions(positions) = header.covered.clone() else {
        panic!("a partitioned snapshot");
    };
    fs::remove_file(&path).expect("remove");
    let mut writer =
        snapshot::SnapshotWriter::create(s.dir.path(), s.newer, positions.len()).expect("writer");
    writer.write_catalog(&catalog).expect("catalog");
    writer
        .write_encoded_chunk(&[0xFF; 64], header.pairs as usize)
        .expect("chunk");
    writer
        .finish(
            header.created(),
            header.catalog_position,
            positions,
            header.pair_numbers,
        )
        .expect("sealed");
    assert!(snapshot::check(&path).is_ok(), "it passes the checks");
    let engine = Engine::start(config(), Catalog::default());
    let (e, d) = (engine.clone(), s.dir.path().to_path_buf());
    let result = actix_rt::task::spawn_blocking(move || Store::restore(&e, &d, 3))
        .await
        .expect("restore thread");
    let Err(e) = result else {
        panic!("the restore went on over an undecodable snapshot");
    };
    assert!(e.to_string().contains("after it passed its checks"), "{e}");
}

#[actix_rt::test]
async fn a_newest_snapshot_with_bad_magic_falls_back_to_the_older_one() {
    falls_back(|p| edit(p, |b| b[0] ^= 0xFF), "bad magic").await;
}

#[actix_rt::test]
async fn a_newest_snapshot_with_a_bad_checksum_falls_back_to_the_older_one() {
    falls_back(
        |p| {
            edit(p, |b| {
                let at = (body_start(b) + b.len()) / 2;
                b[at] ^= 0x01;
            })
        },
        "checksum",
    )
    .await;
}

#[actix_rt::test]
async fn a_truncated_newest_snapshot_falls_back_to_the_older_one() {
    falls_back(
        |p| {
            let len = fs::metadata(p).expect("metadata").len();
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .expect("open")
                .set_len(len - 7)
                .expect("truncate");
        },
        "truncated",
    )
    .await;
}

#[actix_rt::test]
async fn a_newest_snapshot_of_a_future_version_falls_back_to_the_older_one() {
    falls_back(
        |p| edit(p, |b| b[8..12].copy_from_slice(&5u32.to_le_bytes())),
        "version 5 is not supported",
    )
    .await;
}

#[actix_rt::test]
async fn with_every_snapshot_damaged_the_logs_alone_rebuild_the_state() {
    let s = scenario().await;
    edit(&snapshot_file(s.dir.path(), s.newer), |b| b[0] ^= 0xFF);
    edit(&snapshot_file(s.dir.path(), s.older), |b| {
        let at = body_start(b) + 2;
        b[at] ^= 0x80;
    });
    let (engine, _store, report) = restore(s.dir.path()).await;
    assert_eq!(report.snapshot, None);
    let skipped: Vec<u64> = report.skipped_snapshots.iter().map(|s| s.0).collect();
    assert_eq!(skipped, vec![s.newer, s.older]);
    assert_eq!(report.catalog_records, 3);
    assert_eq!(report.pair_records, 90);
    assert_complete(&engine, &s.events).await;
}

#[test]
fn a_data_directory_keeps_the_shard_count_it_started_with() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(
        shard_count(dir.path(), 2),
        2,
        "a new directory takes the default"
    );
    for i in 0..8 {
        fs::create_dir_all(dir.path().join("wal").join(format!("shard-{i:03}"))).expect("log dir");
    }
    assert_eq!(shard_count(dir.path(), 2), 8);
    assert_eq!(shard_count(dir.path(), 16), 8);
    assert!(check_dir(dir.path(), 8).is_ok());
    assert!(
        check_dir(dir.path(), 2).is_err(),
        "fewer shards than logs is refused"
    );
}

#[actix_rt::test]
async fn a_data_directory_keeps_the_partition_count_it_was_created_with() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(partition_count(dir.path(), None).expect("new"), 256);
    assert_eq!(partition_count(dir.path(), Some(64)).expect("new"), 64);
    // Created with 64 partitions.
    let engine = Engine::start(
        EngineConfig {
            partitions: 64,
            ..config()
        },
        Catalog::default(),
    );
    let (e, d) = (engine.clone(), dir.path().to_path_buf());
    actix_rt::task::spawn_blocking(move || Store::restore(&e, &d, 3))
        .await
        .expect("restore thread")
        .expect("a new directory takes the configured count");
    assert_eq!(partition_count(dir.path(), None).expect("stored"), 64);
    assert_eq!(partition_count(dir.path(), Some(64)).expect("same"), 64);
    let e = partition_count(dir.path(), Some(256)).expect_err("a different count");
    assert!(
        e.to_string()
            .contains("created with 64 partitions, not 256"),
        "{e}"
    );
    // An engine with another count cannot open it either.
    let other = Engine::start(config(), Catalog::default());
    let d = dir.path().to_path_buf();
    let e = actix_rt::task::spawn_blocking(move || Store::restore(&other, &d, 3).map(|_| ()))
        .await
        .expect("restore thread")
        .expect_err("refused");
    assert!(
        matches!(
            e,
            StoreError::Partitions {
                stored: 64,
                configured: 256,
                ..
            }
        ),
        "{e}"
    );
}

/// Frozen pairs are written to a snapshot as they were live: the same pairs,
/// the same trackers (event ids included), in the same order.
#[actix_rt::test]
async fn a_snapshot_of_frozen_pairs_holds_what_they_held_live() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No actors: a pair an actor holds is not frozen.
    let config = EngineConfig {
        activate_within: None,
        ..config()
    };
    let engine = Engine::start(config, Catalog::default());
    let (e, d) = (engine.clone(), dir.path().to_path_buf());
    let (store, _) = actix_rt::task::spawn_blocking(move || Store::restore(&e, &d, 3))
        .await
        .expect("restore thread")
        .expect("restore succeeds");
    let store = Arc::new(store);
    let entry = total(&engine).await;
    send_phase(&engine, &entry, 0).await;
    let live = take_snapshot(&engine, &store).await.id;
    let frozen = engine
        .freeze_idle(std::time::Duration::ZERO)
        .await
        .expect("froze");
    assert_eq!(frozen, 6, "every customer's pair");
    let after = take_snapshot(&engine, &store).await.id;
    let pairs = |id| {
        let (_, _, pairs) = read_all(&snapshot_file(dir.path(), id)).expect("reads");
        pairs
    };
    let (live, after) = (pairs(live), pairs(after));
    assert_eq!(live.len(), 6);
    assert!(live.iter().all(|p| !p.tracker.events.is_empty()));
    assert_eq!(live, after);
}
