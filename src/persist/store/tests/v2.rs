//! Versions 2 to 4 in the store: their golden files (the state of version
//! 1 with an achievement's lateness bound and an erased customer; version 4
//! is what this build writes, so its generator is here), the
//! migration of the earlier layout's logs, and erasures that survive
//! restarts from the log and from snapshots.

use super::*;
use crate::persist::codec;

/// The golden state of version 1, then what version 2 added: a lateness
/// bound on `weekly` (editable while the campaign runs) and a customer whose
/// progress was erased, so the snapshot must not hold them. The golden files
/// of versions 2 and 3 hold this state.
async fn build_golden_v2(engine: &Engine) {
    build_golden(engine).await;
    let weekly = entry_named(engine, "weekly");
    engine
        .update_achievement(
            weekly.application_id,
            weekly.achievement.campaign_id,
            weekly.achievement.id,
            &crate::domain::AchievementPatch {
                allowed_lateness_secs: Some(Some(3600)),
                ..Default::default()
            },
        )
        .await
        .expect("the bound may change while the campaign runs");
    let visits = entry_named(engine, "visits");
    let t0 = utc(2025, 3, 1, 10, 0, 0);
    let r = increase(engine, &visits, "dave", "2", Some(t0), "d1").await;
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    let erased = engine
        .erase_customer(visits.application_id, cid("dave"))
        .await
        .expect("erasure");
    assert_eq!(erased, 1);
}

#[actix_rt::test]
async fn golden_v4_snapshot_is_generated_from_a_deterministic_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine, store, report) = restore(dir.path()).await;
    assert_eq!(report.snapshot, None);
    build_golden_v2(&engine).await;
    let info = take_snapshot(&engine, &store).await;
    assert_eq!(info.pairs, 4);
    let path = snapshot::list(dir.path()).expect("list")[0].path.clone();
    let (header, catalog, pairs) = read_all(&path).expect("the new snapshot reads back");
    assert_eq!(header.pairs, 4);
    // dave's pair took number 5, and its erasure 6 for whatever comes next.
    assert_eq!(header.pair_numbers, 6);
    assert_eq!(catalog.achievements.len(), 3);
    let progress: Vec<_> = pairs
        .iter()
        .map(|p| {
            (
                p.customer.as_str(),
                p.tracker
                    .current
                    .as_ref()
                    .map(|i| Decimal::from(i.progress)),
            )
        })
        .collect();
    assert_eq!(
        progress,
        vec![
            ("alice", Some(dec("3"))),
            ("bob", Some(dec("1"))),
            ("bob", Some(dec("30"))),
            ("carol", Some(dec("100.5"))),
        ]
    );
    if std::env::var("ACHV_WRITE_GOLDEN").as_deref() == Ok("1") {
        fs::create_dir_all(golden_path(4).parent().expect("parent")).expect("fixtures dir");
        fs::copy(&path, golden_path(4)).expect("write the golden snapshot");
        println!("wrote {}", golden_path(4).display());
    }
}

const GOLDEN_V2: Golden = Golden {
    version: 2,
    created: (1_795_911_699, 924_000_000),
    app_created: TimeV1 {
        secs: 1_795_911_699,
        nanos: 918_000_000,
    },
    key_hash: [
        187, 167, 247, 243, 178, 70, 244, 12, 152, 219, 142, 66, 98, 218, 246, 153, 75, 237, 253,
        96, 157, 7, 53, 196, 63, 9, 222, 187, 105, 186, 2, 182,
    ],
    // Six records as in version 1, and the bound set on weekly.
    catalog_position: 8,
    // dave hashed to shard 6: his event and its erasure.
    shard_positions: [1, 2, 1, 1, 4, 1, 3, 5],
    pair_numbers: 6,
    body_len: 1477,
    body_crc: 2_590_858_882,
    lateness: [None, None, Some(3600)],
};

const GOLDEN_V3: Golden = Golden {
    version: 3,
    created: (1_795_914_280, 811_000_000),
    app_created: TimeV1 {
        secs: 1_795_914_280,
        nanos: 798_000_000,
    },
    key_hash: [
        237, 213, 65, 228, 123, 41, 35, 151, 105, 13, 154, 254, 122, 51, 106, 36, 64, 115, 255,
        116, 194, 64, 244, 215, 136, 3, 99, 59, 205, 233, 234, 14,
    ],
    catalog_position: 8,
    // Partition p was snapshotted at its shard's (p % 8) next position.
    shard_positions: [5, 1, 1, 6, 1, 1, 2, 1],
    pair_numbers: 6,
    body_len: 1480,
    body_crc: 2_153_858_224,
    lateness: [None, None, Some(3600)],
};

/// Version 4: the state of version 3, its pairs' event ids as keys (1,281
/// body bytes against 1,480).
const GOLDEN_V4: Golden = Golden {
    version: 4,
    created: (1_795_941_156, 351_000_000),
    app_created: TimeV1 {
        secs: 1_795_941_156,
        nanos: 343_000_000,
    },
    key_hash: [
        252, 185, 74, 144, 194, 217, 245, 32, 47, 13, 126, 125, 90, 177, 202, 0, 72, 206, 189, 246,
        224, 224, 165, 7, 7, 179, 24, 201, 8, 109, 35, 133,
    ],
    catalog_position: 8,
    shard_positions: [5, 1, 1, 6, 1, 1, 2, 1],
    pair_numbers: 6,
    body_len: 1281,
    body_crc: 658_404_068,
    lateness: [None, None, Some(3600)],
};

#[test]
fn golden_v4_snapshot_still_reads_exactly() {
    check_golden_reads(&GOLDEN_V4);
}

#[actix_rt::test]
async fn golden_v4_snapshot_restores_into_a_working_engine() {
    check_golden_restores(&GOLDEN_V4).await;
}

#[test]
fn golden_v3_snapshot_still_reads_exactly() {
    check_golden_reads(&GOLDEN_V3);
}

#[actix_rt::test]
async fn golden_v3_snapshot_restores_into_a_working_engine() {
    check_golden_restores(&GOLDEN_V3).await;
}

#[test]
fn golden_v2_snapshot_still_reads_exactly() {
    check_golden_reads(&GOLDEN_V2);
}

#[actix_rt::test]
async fn golden_v2_snapshot_restores_into_a_working_engine() {
    check_golden_restores(&GOLDEN_V2).await;
}

// ---------------------------------------------------------------------------
// Erasure across restarts.
// ---------------------------------------------------------------------------

/// Two applications; jane has progress in both of app 1's achievements and
/// in app 2's, joe in app 1's first.
struct Tenants {
    first: Arc<AchievementEntry>,
    second: Arc<AchievementEntry>,
    other_app: Arc<AchievementEntry>,
}

async fn tenants(engine: &Engine) -> Tenants {
    let make = |name: &'static str| AchievementDraft {
        name: name.into(),
        title: name.into(),
        target: dec("100"),
        period: Some("1W".into()),
        recurrence_policy: RecurrencePolicy::OnExpiration,
        ..AchievementDraft::default()
    };
    let first = crate::engine::testing::one_achievement(engine, make("first")).await;
    let second = engine
        .create_achievement(
            first.application_id,
            first.achievement.campaign_id,
            make("second"),
        )
        .await
        .expect("second achievement");
    let other_app = crate::engine::testing::one_achievement(engine, make("elsewhere")).await;
    assert_ne!(other_app.application_id, first.application_id);
    for (entry, customer, id) in [
        (&first, "jane", "j1"),
        (&second, "jane", "j2"),
        (&other_app, "jane", "j3"),
        (&first, "joe", "o1"),
    ] {
        let r = increase(engine, entry, customer, "5", None, id).await;
        assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    }
    Tenants {
        first,
        second,
        other_app,
    }
}

/// The engine's view after a restart: the same achievements by name.
fn reopened(engine: &Engine) -> Tenants {
    Tenants {
        first: entry_named(engine, "first"),
        second: entry_named(engine, "second"),
        other_app: entry_named(engine, "elsewhere"),
    }
}

async fn assert_jane_erased(engine: &Engine, t: &Tenants) {
    assert_eq!(progress(engine, &t.first, "jane").await, Decimal::ZERO);
    assert_eq!(progress(engine, &t.second, "jane").await, Decimal::ZERO);
    assert_eq!(progress(engine, &t.first, "joe").await, dec("5"));
    assert_eq!(progress(engine, &t.other_app, "jane").await, dec("5"));
    let keys = engine.export_keys(&t.first).await.expect("keys");
    let customers: Vec<&str> = keys.iter().flatten().map(CustomerId::as_str).collect();
    assert_eq!(customers, vec!["joe"]);
}

/// jane's first tracker id in an achievement.
async fn tracker_of(engine: &Engine, entry: &Arc<AchievementEntry>, customer: &str) -> u64 {
    let rows = engine
        .customer_progress(
            entry.application_id,
            &cid(customer),
            std::slice::from_ref(entry),
        )
        .await
        .expect("read");
    rows[0].first().expect("an iteration").id.0
}

#[actix_rt::test]
async fn an_erasure_after_a_snapshot_is_replayed_from_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine, store, _) = restore(dir.path()).await;
    let t = tenants(&engine).await;
    let before = tracker_of(&engine, &t.first, "jane").await;
    take_snapshot(&engine, &store).await;
    let erased = engine
        .erase_customer(t.first.application_id, cid("jane"))
        .await
        .expect("erasure");
    assert_eq!(erased, 2);
    assert_jane_erased(&engine, &t).await;
    // Erasing again (or an unknown customer) erases nothing and is fine.
    let again = engine
        .erase_customer(t.first.application_id, cid("jane"))
        .await;
    assert_eq!(again.expect("idempotent"), 0);
    let nobody = engine
        .erase_customer(t.first.application_id, cid("nobody"))
        .await;
    assert_eq!(nobody.expect("unknown customer"), 0);

    // A restart without a newer snapshot: the snapshot holds jane, the log
    // erases her.
    let (engine, store, report) = restore(dir.path()).await;
    assert!(report.pair_records >= 1, "{report:?}");
    let t = reopened(&engine);
    assert_jane_erased(&engine, &t).await;
    // Her old event id is forgotten with her: the same event applies anew,
    // with new progress tracker ids.
    let r = increase(&engine, &t.first, "jane", "7", None, "j1").await;
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    let after = tracker_of(&engine, &t.first, "jane").await;
    assert_ne!(after, before);
    assert_eq!(progress(&engine, &t.first, "jane").await, dec("7"));

    // Another restart from the same snapshot replays the erasure and then
    // her new progress, under the number it was given.
    drop(store);
    let (engine, _store, _) = restore(dir.path()).await;
    let t = reopened(&engine);
    assert_eq!(progress(&engine, &t.first, "jane").await, dec("7"));
    assert_eq!(tracker_of(&engine, &t.first, "jane").await, after);
    assert_eq!(progress(&engine, &t.second, "jane").await, Decimal::ZERO);
    let dup = increase(&engine, &t.first, "jane", "7", None, "j1").await;
    assert_eq!(dup.outcome, Outcome::Duplicate);
}

#[actix_rt::test]
async fn a_snapshot_after_an_erasure_does_not_hold_the_customer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine, store, _) = restore(dir.path()).await;
    let t = tenants(&engine).await;
    engine
        .erase_customer(t.first.application_id, cid("jane"))
        .await
        .expect("erasure");
    let info = take_snapshot(&engine, &store).await;
    // joe, and jane in the other application.
    assert_eq!(info.pairs, 2);
    let (_, _, pairs) = read_all(&snapshot_file(dir.path(), info.id)).expect("reads");
    let held: Vec<(u64, &str)> = pairs
        .iter()
        .map(|p| (p.achievement, p.customer.as_str()))
        .collect();
    assert_eq!(
        held,
        vec![
            (t.first.achievement.id.0, "joe"),
            (t.other_app.achievement.id.0, "jane"),
        ]
    );
    let (engine, _store, report) = restore(dir.path()).await;
    assert_eq!(report.pairs, 2);
    let t = reopened(&engine);
    assert_jane_erased(&engine, &t).await;
}

#[actix_rt::test]
async fn an_active_pair_is_erased_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine, _store, _) = restore(dir.path()).await;
    let t = tenants(&engine).await;
    // Messages less than a second apart give the pair an actor.
    for id in ["a1", "a2", "a3"] {
        increase(&engine, &t.first, "jane", "1", None, id).await;
    }
    assert!(
        engine
            .stats()
            .actors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    engine
        .erase_customer(t.first.application_id, cid("jane"))
        .await
        .expect("erasure");
    assert_eq!(progress(&engine, &t.first, "jane").await, Decimal::ZERO);
    // The actor serves the fresh pair.
    let r = increase(&engine, &t.first, "jane", "2", None, "a1").await;
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(progress(&engine, &t.first, "jane").await, dec("2"));
    let (engine, _store, _) = restore(dir.path()).await;
    assert_eq!(
        progress(&engine, &entry_named(&engine, "first"), "jane").await,
        dec("2")
    );
}

#[actix_rt::test]
async fn logs_of_the_earlier_layout_written_in_versions_1_and_2_are_migrated() {
    use crate::persist::model::{
        AchievementV1, ApplicationV1, CampaignV1, CatalogRecordV1, PairOpV1, PairRecordV1,
        ShardRecordV2, VERSIONED,
    };
    use crate::persist::wal::{OnFailure, Wal};
    let dir = tempfile::tempdir().expect("temp dir");
    let t = TimeV1::from(utc(2025, 3, 1, 10, 0, 0));
    let bare = |r: &CatalogRecordV1| codec::encode(r).expect("encodes");
    let catalog = [
        bare(&CatalogRecordV1::PutApplication(ApplicationV1 {
            id: 1,
            created: t,
            name: "old".into(),
            timezone: "UTC".into(),
            description: String::new(),
        })),
        bare(&CatalogRecordV1::PutCampaign(CampaignV1 {
            id: 2,
            application_id: 1,
            created: t,
            name: "c".into(),
            enabled: true,
            start_time: None,
            end_time: None,
        })),
        bare(&CatalogRecordV1::PutAchievement(AchievementV1 {
            id: 3,
            campaign_id: 2,
            created: t,
            name: "total".into(),
            title: "Total".into(),
            description: String::new(),
            target: dec("100").into(),
            period: None,
            recurrence: 2,
            activation: 0,
            fixed_start_date: None,
            end_date: None,
            allow_rollback_after_completion: false,
            end_progress_on_target: false,
        })),
    ];
    // The earlier layout: `wal/catalog` and `wal/shard-<i>`.
    let old = dir.path().join("wal");
    let wal = Wal::open(&old.join("catalog"), 1, 16, OnFailure::Discard).expect("open");
    let records = catalog
        .into_iter()
        .zip(1..)
        .map(|(b, lsn)| (lsn, b))
        .collect();
    wal.append(records)
        .expect("queue")
        .await
        .expect("written")
        .expect("durable");

    // A customer's records, in version 1 and then version 2, in the log of
    // the shard the earlier layout gave it.
    let pair = |delta: &str, id: &str| PairRecordV1 {
        achievement: 3,
        customer: "ann".into(),
        pair_number: 1,
        // Recent, so the event ids are still remembered.
        now: TimeV1::from(Utc::now()),
        campaign_running: true,
        op: PairOpV1::Increase {
            delta: dec(delta).into(),
            at: None,
            event_id: Some(id.into()),
        },
    };
    let v1 = codec::encode(&pair("2", "a")).expect("encodes");
    let v2 = codec::encode_after(&[VERSIONED, 2], &ShardRecordV2::Pair(pair("3", "b")))
        .expect("encodes");
    let wal = Wal::open(&old.join("shard-005"), 1, 16, OnFailure::Retain).expect("open");
    wal.append(vec![(1, v1), (2, v2)])
        .expect("queue")
        .await
        .expect("written")
        .expect("durable");
    for i in 0..8 {
        fs::create_dir_all(old.join(format!("shard-{i:03}"))).expect("log dir");
    }

    let (engine, _store, report) = restore(dir.path()).await;
    assert!(report.migrated);
    assert_eq!((report.catalog_records, report.pair_records), (3, 2));
    let total = entry_named(&engine, "total");
    assert_eq!(total.achievement.rules.allowed_lateness_secs, None);
    assert_eq!(progress(&engine, &total, "ann").await, dec("5"));
    let dup = increase(&engine, &total, "ann", "2", None, "a").await;
    assert_eq!(dup.outcome, Outcome::Duplicate);
    // The old files are gone; the migration's snapshot holds everything.
    assert!(!old.exists());
    let more = increase(&engine, &total, "ann", "1", None, "c").await;
    assert_eq!(more.outcome, Outcome::Applied);

    let (engine, _store, report) = restore(dir.path()).await;
    assert!(!report.migrated);
    assert_eq!(
        (report.pairs, report.catalog_records, report.pair_records),
        (1, 0, 1)
    );
    assert_eq!(progress(&engine, &total, "ann").await, dec("6"));
    let dup = increase(&engine, &total, "ann", "3", None, "b").await;
    assert_eq!(dup.outcome, Outcome::Duplicate);
}
