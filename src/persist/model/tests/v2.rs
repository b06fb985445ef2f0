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
