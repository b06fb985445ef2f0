//! Versions 2 and 3 of the on-disk model: round trips through the log
//! payload codec, and version 1 payloads read by the same decoders (a log
//! may hold every version).

use super::*;
use crate::domain::ApplicationId;
use crate::domain::CustomerId;
use crate::engine::log::{
    ChangeOpRef, Erasure, Expiry, PairChangeRef, PartitionId, Record, RecordRef,
};
use chrono::DateTime;

fn lateness() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), (0u64..=3_155_760_000).prop_map(Some)]
}

fn erasure() -> impl Strategy<Value = Erasure> {
    (any::<u64>(), customer_id(), vec(any::<u64>(), 0..6)).prop_map(
        |(application, customer, achievements)| Erasure {
            application: ApplicationId(application),
            customer,
            achievements: achievements.into_iter().map(AchievementId).collect(),
        },
    )
}

fn with_lateness(record: CatalogRecordV1, secs: Option<u64>) -> CatalogRecordV2 {
    match CatalogRecordV2::from(record) {
        CatalogRecordV2::PutAchievement(mut a) => {
            a.allowed_lateness_secs = secs;
            CatalogRecordV2::PutAchievement(a)
        }
        other => other,
    }
}

fn borrowed(change: &PairChange) -> PairChangeRef<'_> {
    PairChangeRef {
        achievement: change.achievement,
        customer: &change.customer,
        pair_number: change.pair_number,
        now: change.now,
        campaign_running: change.campaign_running,
        op: match &change.op {
            ChangeOp::Increase(inc) => ChangeOpRef::Increase(inc),
            ChangeOp::Rollback(id) => ChangeOpRef::Rollback(id),
        },
    }
}

proptest! {
    #[test]
    fn catalog_records_survive_the_log(record in valid_catalog_record(), secs in lateness()) {
        let record = with_lateness(record, secs);
        let engine_record = record.to_record().expect("valid");
        let bytes = encode_catalog_record(&engine_record).expect("encodes");
        prop_assert_eq!(&bytes[..2], &[VERSIONED, CATALOG_LOG_VERSION][..]);
        let back = decode_catalog_record(&bytes).expect("decodes");
        prop_assert_eq!(CatalogRecordV2::from(&back), record);
        if let CatalogRecord::PutAchievement(a) = &back {
            prop_assert_eq!(a.rules.allowed_lateness_secs, secs);
        }
    }

    #[test]
    fn version_1_catalog_records_still_read(record in valid_catalog_record()) {
        let bytes = codec::encode(&record).expect("encodes");
        // A bare version 1 payload never looks versioned.
        prop_assert_ne!(bytes[0], VERSIONED);
        let back = decode_catalog_record(&bytes).expect("decodes");
        prop_assert_eq!(CatalogRecordV1::from(&back), record.clone());
        if let CatalogRecord::PutAchievement(a) = &back {
            prop_assert_eq!(a.rules.allowed_lateness_secs, None);
        }
    }

    #[test]
    fn pair_records_survive_the_log_with_their_partition(change in pair_record(), p in any::<u32>()) {
        let bytes = encode_partition_record(PartitionId(p), &RecordRef::Pair(borrowed(&change)))
            .expect("encodes");
        prop_assert_eq!(&bytes[..2], &[VERSIONED, SHARD_LOG_VERSION][..]);
        let (partition, back) = decode_shard_record(&bytes).expect("decodes");
        prop_assert_eq!(partition, Some(PartitionId(p)));
        prop_assert_eq!(back, Record::Pair(change));
    }

    #[test]
    fn erasures_survive_the_log(e in erasure(), p in any::<u32>()) {
        let bytes = encode_partition_record(PartitionId(p), &RecordRef::Erase(&e)).expect("encodes");
        let (partition, back) = decode_shard_record(&bytes).expect("decodes");
        prop_assert_eq!(partition, Some(PartitionId(p)));
        prop_assert_eq!(back, Record::Erase(e));
    }

    #[test]
    fn expiries_survive_the_log(
        secs in 0i64..4_000_000_000,
        pairs in vec((any::<u64>(), "[a-z0-9]{1,30}"), 0..20),
        p in any::<u32>(),
    ) {
        let e = Expiry {
            at: DateTime::from_timestamp(secs, 0).expect("in range"),
            pairs: pairs
                .into_iter()
                .map(|(a, c)| (AchievementId(a), CustomerId::parse(&c, "/c").expect("valid")))
                .collect(),
        };
        let bytes = encode_partition_record(PartitionId(p), &RecordRef::Expire(&e)).expect("encodes");
        prop_assert_eq!(&bytes[..2], &[VERSIONED, 4][..]);
        let (partition, back) = decode_shard_record(&bytes).expect("decodes");
        prop_assert_eq!(partition, Some(PartitionId(p)));
        prop_assert_eq!(back, Record::Expire(e));
    }

    #[test]
    fn version_3_shard_records_still_read(change in pair_record(), e in erasure(), p in any::<u32>()) {
        let erase = EraseV2::from(&e);
        for (record, expected) in [
            (ShardRecordRefV2::Pair((&borrowed(&change)).into()), Record::Pair(change.clone())),
            (ShardRecordRefV2::Erase(&erase), Record::Erase(e.clone())),
        ] {
            let v3 = codec::encode_after(
                &[VERSIONED, 3],
                &PartitionRecordRefV3 { partition: p, record },
            )
            .expect("encodes");
            prop_assert_eq!(decode_shard_record(&v3).expect("decodes"), (Some(PartitionId(p)), expected));
        }
    }

    #[test]
    fn version_1_and_2_shard_records_still_read_without_a_partition(change in pair_record(), e in erasure()) {
        let v1 = codec::encode(&PairRecordV1::from(&change)).expect("encodes");
        prop_assert_ne!(v1[0], VERSIONED);
        prop_assert_eq!(decode_shard_record(&v1).expect("decodes"), (None, Record::Pair(change.clone())));
        let v2 = codec::encode_after(&[VERSIONED, 2], &ShardRecordV2::Erase(EraseV2::from(&e))).expect("encodes");
        prop_assert_eq!(decode_shard_record(&v2).expect("decodes"), (None, Record::Erase(e)));
    }

    #[test]
    fn log_payload_decoders_never_panic(bytes in vec(any::<u8>(), 0..256), version in 0u8..6) {
        let mut payload = if version > 0 { vec![VERSIONED, version] } else { Vec::new() };
        payload.extend(bytes);
        let _ = decode_shard_record(&payload);
        let _ = decode_catalog_record(&payload);
    }
}

#[test]
fn a_catalog_record_in_a_partition_stream_is_refused() {
    let record = CatalogRecord::DeleteAchievement(AchievementId(7));
    assert!(encode_partition_record(PartitionId(1), &RecordRef::Catalog(&record)).is_err());
}

#[test]
fn unknown_log_versions_are_refused_not_misread() {
    let record = CatalogRecord::DeleteAchievement(AchievementId(7));
    let mut future = encode_catalog_record(&record).unwrap();
    future[1] = 9;
    let e = decode_catalog_record(&future).unwrap_err();
    assert!(e.to_string().contains("version 9"), "{e}");
    assert!(decode_shard_record(&future).is_err());
    assert!(decode_catalog_record(&[VERSIONED]).is_err());
}

#[test]
fn a_version_1_catalog_becomes_version_2_without_bounds() {
    let v1 = CatalogV1 {
        next_id: 9,
        applications: Vec::new(),
        api_keys: Vec::new(),
        campaigns: Vec::new(),
        achievements: Vec::new(),
    };
    let v2 = CatalogV2::from(v1);
    assert_eq!(v2.next_id, 9);
    assert!(v2.to_state().is_ok());
}

/// Records of every kind a version 4 shard log holds, fixed.
fn golden_v4_records() -> Vec<(PartitionId, Record)> {
    use crate::domain::{EventId, Increase};
    use crate::engine::log::{ChangeOp, PairChange};
    let t = |s: i64| DateTime::from_timestamp(1_795_911_699 + s, 5_000_000).expect("in range");
    let customer = |s: &str| CustomerId::parse(s, "/integrationId").expect("valid");
    let id = |s: &str| EventId::parse(s, "/eventId").expect("valid");
    vec![
        (
            PartitionId(7),
            Record::Pair(PairChange {
                achievement: AchievementId(4),
                customer: customer("jane"),
                pair_number: 3,
                now: t(0),
                campaign_running: true,
                op: ChangeOp::Increase(Increase {
                    delta: "2.5".parse().expect("decimal"),
                    at: Some(t(-86_400)),
                    event_id: Some(id("pos-1")),
                }),
            }),
        ),
        (
            PartitionId(7),
            Record::Pair(PairChange {
                achievement: AchievementId(4),
                customer: customer("jane"),
                pair_number: 3,
                now: t(1),
                campaign_running: false,
                op: ChangeOp::Rollback(id("pos-1")),
            }),
        ),
        (
            PartitionId(200),
            Record::Erase(Erasure {
                application: ApplicationId(1),
                customer: customer("ann"),
                achievements: vec![AchievementId(4), AchievementId(9)],
            }),
        ),
        (
            PartitionId(7),
            Record::Expire(Expiry {
                at: t(604_800),
                pairs: vec![
                    (AchievementId(4), customer("jane")),
                    (AchievementId(9), customer("bob")),
                ],
            }),
        ),
    ]
}

fn golden_v4_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-shard-log-v4.bin")
}

/// A version 4 shard log's records, stored as `u32 LE length | payload`:
/// every later build must read them as they were written. Regenerate with
/// `ACHV_WRITE_GOLDEN=1` only when adding a new version (never to make this
/// pass).
#[test]
fn golden_v4_shard_log_records_still_read_exactly() {
    let records = golden_v4_records();
    let mut bytes = Vec::new();
    for (p, record) in &records {
        let r = match record {
            Record::Pair(c) => RecordRef::Pair(borrowed(c)),
            Record::Erase(e) => RecordRef::Erase(e),
            Record::Expire(e) => RecordRef::Expire(e),
            Record::Catalog(c) => RecordRef::Catalog(c),
        };
        let payload = encode_partition_record(*p, &r).expect("encodes");
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&payload);
    }
    if std::env::var("ACHV_WRITE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(golden_v4_path(), &bytes).expect("write the golden log records");
    }
    let golden = std::fs::read(golden_v4_path()).expect("the golden v4 log records exist");
    let mut rest = &golden[..];
    let mut read = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("a length")) as usize;
        let (partition, record) = decode_shard_record(&rest[4..4 + len]).expect("decodes");
        read.push((partition.expect("version 4 names the partition"), record));
        rest = &rest[4 + len..];
    }
    assert_eq!(read, records);
    // This build writes the same bytes (the format did not drift).
    assert_eq!(golden, bytes);
}
