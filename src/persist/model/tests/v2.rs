//! Version 2 of the on-disk model: round trips, and version 1 payloads read
//! by the same decoders (a log may hold both).

use super::*;
use crate::domain::ApplicationId;
use crate::persist::model::v2::{LOG_VERSION, VERSIONED};

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

proptest! {
    #[test]
    fn valid_catalog_records_v2_survive_the_log(
        record in valid_catalog_record(),
        secs in lateness(),
    ) {
        let record = with_lateness(record, secs);
        let bytes = encode_record(&record).expect("encodes");
        prop_assert_eq!(&bytes[..2], &[VERSIONED, LOG_VERSION][..]);
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
    fn version_1_pair_records_still_read(record in pair_record()) {
        let v1 = PairRecordV1::from(&record);
        let bytes = codec::encode(&v1).expect("encodes");
        prop_assert_ne!(bytes[0], VERSIONED);
        let ShardRecord::Pair(back) = decode_shard_record(&bytes).expect("decodes") else {
            panic!("a version 1 payload is a pair record");
        };
        prop_assert_eq!(PairRecordV1::from(&back), v1);
    }

    #[test]
    fn erasures_survive_the_log(e in erasure()) {
        let bytes = encode_record(&ShardRecordRefV2::Erase(&EraseV2::from(&e))).expect("encodes");
        let ShardRecord::Erase(back) = decode_shard_record(&bytes).expect("decodes") else {
            panic!("an erasure reads back as one");
        };
        prop_assert_eq!(back, e);
    }

    #[test]
    fn pair_records_v2_survive_the_log(record in pair_record()) {
        let owned = ShardRecordV2::Pair(PairRecordV1::from(&record));
        let bytes = encode_record(&owned).expect("encodes");
        let ShardRecord::Pair(back) = decode_shard_record(&bytes).expect("decodes") else {
            panic!("a pair record reads back as one");
        };
        prop_assert_eq!(ShardRecordV2::Pair(PairRecordV1::from(&back)), owned);
    }

    #[test]
    fn log_payload_decoders_never_panic(bytes in vec(any::<u8>(), 0..256), versioned in any::<bool>()) {
        let mut payload = if versioned { vec![VERSIONED, 2] } else { Vec::new() };
        payload.extend(bytes);
        let _ = decode_shard_record(&payload);
        let _ = decode_catalog_record(&payload);
    }
}

#[test]
fn the_borrowed_shard_record_encodes_to_the_same_bytes_as_the_owned_one() {
    use crate::domain::{EventId, Increase};
    let customer = CustomerId::parse("jane", "/integrationId").unwrap();
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap();
    let inc = Increase {
        delta: Decimal::new(3, 0),
        at: None,
        event_id: Some(EventId::parse("e", "/eventId").unwrap()),
    };
    let borrowed = ShardRecordRefV2::Pair(PairRecordRefV1::increase(
        AchievementId(4),
        &customer,
        9,
        now,
        true,
        &inc,
    ));
    let owned = ShardRecordV2::Pair(PairRecordV1::from(&PairRecord {
        achievement: AchievementId(4),
        customer: customer.clone(),
        pair_number: 9,
        now,
        campaign_running: true,
        op: PairRecordOp::Increase(inc.clone()),
    }));
    assert_eq!(
        encode_record(&borrowed).unwrap(),
        encode_record(&owned).unwrap()
    );
}

#[test]
fn unknown_log_versions_are_refused_not_misread() {
    let bytes = encode_record(&CatalogRecordV2::DeleteAchievement(7)).unwrap();
    let mut future = bytes.clone();
    future[1] = 3;
    let e = decode_catalog_record(&future).unwrap_err();
    assert!(e.to_string().contains("version 3"), "{e}");
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
