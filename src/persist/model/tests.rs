//! Property tests of the on-disk model: encode → decode round trips through
//! the codec, and decoders (values, snapshots, log segments) that never panic
//! on arbitrary bytes.

use std::fs;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::*;
use crate::domain::effects::Effect;
use crate::domain::period::PeriodEnd;
use crate::domain::tracker::{AppliedChange, EventKey, RememberedEvent, TrackerParts};
use crate::domain::{
    AchievementId, CustomerId, EventId, Increase, Iteration, ProgressStatus, ProgressTrackerId,
};
use crate::engine::log::{ChangeOp, PairChange};
use crate::persist::codec;
use crate::persist::snapshot::{self, HeaderV1, SnapshotWriter};
use crate::persist::wal;

// ---- strategies ----

fn decimal() -> impl Strategy<Value = Decimal> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        0u32..=28,
    )
        .prop_map(|(lo, mid, hi, neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale))
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (
        -8_000_000_000_000i64..8_000_000_000_000,
        0u32..1_000_000_000,
    )
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range"))
}

fn event_id() -> impl Strategy<Value = EventId> {
    "\\PC{1,128}".prop_map(|s| EventId::parse(&s, "/eventId").expect("valid event id"))
}

fn customer_id() -> impl Strategy<Value = CustomerId> {
    "[a-zA-Z0-9]\\PC{0,60}"
        .prop_map(|s| CustomerId::parse(&s, "/integrationId").expect("valid customer id"))
}

fn status() -> impl Strategy<Value = ProgressStatus> {
    prop_oneof![
        Just(ProgressStatus::NotStarted),
        Just(ProgressStatus::InProgress),
        Just(ProgressStatus::Completed),
        Just(ProgressStatus::Expired),
    ]
}

fn iteration() -> impl Strategy<Value = Iteration> {
    (
        any::<u64>(),
        status(),
        decimal(),
        instant(),
        proptest::option::of((instant(), instant())),
        proptest::option::of(instant()),
    )
        .prop_map(|(id, status, progress, start, end, completion)| Iteration {
            id: ProgressTrackerId(id),
            status,
            progress,
            start,
            end: end.map(|(end, reported)| PeriodEnd { end, reported }),
            completion,
        })
}

fn effect() -> impl Strategy<Value = Effect> {
    prop_oneof![
        (
            any::<u64>(),
            decimal(),
            instant(),
            proptest::option::of(instant())
        )
            .prop_map(|(t, target, start, end)| Effect::Start {
                tracker: ProgressTrackerId(t),
                target,
                start,
                end,
            }),
        (any::<u64>(), decimal(), decimal(), decimal(), any::<bool>()).prop_map(
            |(t, delta, value, target, just_completed)| Effect::Increase {
                tracker: ProgressTrackerId(t),
                delta,
                value,
                target,
                just_completed,
            }
        ),
        (any::<u64>(), decimal(), decimal(), decimal()).prop_map(
            |(t, decrease_by, current, target)| Effect::Rollback {
                tracker: ProgressTrackerId(t),
                decrease_by,
                current,
                target,
            }
        ),
    ]
}

fn applied_change() -> impl Strategy<Value = AppliedChange> {
    prop_oneof![
        (
            any::<u32>(),
            decimal(),
            decimal(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(seq, delta, value, just_completed, started)| AppliedChange::One {
                    seq,
                    delta,
                    value,
                    just_completed,
                    started,
                }
            ),
        vec(effect(), 0..4).prop_map(AppliedChange::Effects),
    ]
}

fn remembered_event() -> impl Strategy<Value = RememberedEvent> {
    (
        any::<u64>(),
        -8_000_000_000_000_000i64..8_000_000_000_000_000,
        any::<bool>(),
        applied_change(),
    )
        .prop_map(|(key, ms, rolled_back, change)| RememberedEvent {
            key: EventKey(key),
            arrived: DateTime::from_timestamp_millis(ms).expect("in range"),
            rolled_back,
            change,
        })
}

fn applied_event_v1() -> impl Strategy<Value = (EventId, AppliedEventV1)> {
    (
        event_id(),
        instant().prop_map(TimeV1::from),
        vec(effect(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(id, arrived, effects, rolled_back)| {
            let v1 = AppliedEventV1 {
                event_id: id.as_str().to_string(),
                arrived,
                effects: effects.iter().map(Into::into).collect(),
                rolled_back,
            };
            (id, v1)
        })
}

fn tracker_parts() -> impl Strategy<Value = TrackerParts> {
    (
        any::<u64>(),
        any::<u32>(),
        proptest::option::of(iteration()),
        vec(iteration(), 0..4),
        vec(remembered_event(), 0..4),
    )
        .prop_map(
            |(tracker_base, next_seq, current, history, events)| TrackerParts {
                tracker_base,
                next_seq,
                current,
                history,
                events,
            },
        )
}

fn pair_v5() -> impl Strategy<Value = PairV5> {
    (any::<u64>(), any::<String>(), any::<u64>(), tracker_parts()).prop_map(
        |(achievement, customer, last_lsn, parts)| PairV5 {
            achievement,
            customer,
            last_lsn,
            tracker: TrackerV5::from(&parts),
        },
    )
}

/// A version 1 pair (what older snapshots hold) and its events' ids.
fn pair_v1() -> impl Strategy<Value = (PairV1, Vec<EventId>)> {
    (
        any::<u64>(),
        any::<String>(),
        any::<u64>(),
        tracker_parts(),
        vec(applied_event_v1(), 0..4),
    )
        .prop_map(|(achievement, customer, last_lsn, parts, events)| {
            let v5 = TrackerV5::from(&parts);
            let ids = events.iter().map(|(id, _)| id.clone()).collect();
            let pair = PairV1 {
                achievement,
                customer,
                last_lsn,
                tracker: TrackerV1 {
                    tracker_base: v5.tracker_base,
                    next_seq: v5.next_seq,
                    current: v5.current,
                    history: v5.history,
                    events: events.into_iter().map(|(_, e)| e).collect(),
                },
            };
            (pair, ids)
        })
}

fn time_v1() -> impl Strategy<Value = TimeV1> {
    (any::<i64>(), any::<u32>()).prop_map(|(secs, nanos)| TimeV1 { secs, nanos })
}

fn decimal_v1() -> impl Strategy<Value = DecimalV1> {
    any::<[u8; 16]>().prop_map(DecimalV1)
}

/// Any values at all, valid for the engine or not: the codec must carry them.
fn catalog_record_v1() -> impl Strategy<Value = CatalogRecordV1> {
    let achievement = (
        (any::<u64>(), any::<u64>(), time_v1(), any::<String>()),
        (any::<String>(), any::<String>(), decimal_v1()),
        (
            proptest::option::of(any::<String>()),
            any::<u8>(),
            any::<u8>(),
        ),
        (
            proptest::option::of(time_v1()),
            proptest::option::of(time_v1()),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (id, campaign_id, created, name),
                (title, description, target),
                (period, recurrence, activation),
                (fixed_start_date, end_date, allow, clip),
            )| AchievementV1 {
                id,
                campaign_id,
                created,
                name,
                title,
                description,
                target,
                period,
                recurrence,
                activation,
                fixed_start_date,
                end_date,
                allow_rollback_after_completion: allow,
                end_progress_on_target: clip,
            },
        );
    prop_oneof![
        (
            any::<u64>(),
            time_v1(),
            any::<String>(),
            any::<String>(),
            any::<String>()
        )
            .prop_map(|(id, created, name, timezone, description)| {
                CatalogRecordV1::PutApplication(ApplicationV1 {
                    id,
                    created,
                    name,
                    timezone,
                    description,
                })
            }),
        (
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u64>(),
            any::<String>(),
            time_v1()
        )
            .prop_map(|(hash, id, application_id, name, created)| {
                CatalogRecordV1::PutApiKey(ApiKeyV1 {
                    hash,
                    id,
                    application_id,
                    name,
                    created,
                })
            }),
        (
            any::<u64>(),
            any::<u64>(),
            time_v1(),
            any::<String>(),
            any::<bool>(),
            proptest::option::of(time_v1()),
            proptest::option::of(time_v1())
        )
            .prop_map(
                |(id, application_id, created, name, enabled, start_time, end_time)| {
                    CatalogRecordV1::PutCampaign(CampaignV1 {
                        id,
                        application_id,
                        created,
                        name,
                        enabled,
                        start_time,
                        end_time,
                    })
                }
            ),
        achievement.prop_map(CatalogRecordV1::PutAchievement),
        any::<u64>().prop_map(CatalogRecordV1::DeleteAchievement),
    ]
}

fn pair_record_v1() -> impl Strategy<Value = PairRecordV1> {
    let op = prop_oneof![
        (
            decimal_v1(),
            proptest::option::of(time_v1()),
            proptest::option::of(any::<String>())
        )
            .prop_map(|(delta, at, event_id)| PairOpV1::Increase {
                delta,
                at,
                event_id
            }),
        any::<String>().prop_map(|event_id| PairOpV1::Rollback { event_id }),
    ];
    (
        any::<u64>(),
        any::<String>(),
        any::<u64>(),
        time_v1(),
        any::<bool>(),
        op,
    )
        .prop_map(
            |(achievement, customer, pair_number, now, campaign_running, op)| PairRecordV1 {
                achievement,
                customer,
                pair_number,
                now,
                campaign_running,
                op,
            },
        )
}

/// A pair record as the engine makes it (valid ids and instants).
fn pair_record() -> impl Strategy<Value = PairChange> {
    let op = prop_oneof![
        (
            decimal(),
            proptest::option::of(instant()),
            proptest::option::of(event_id())
        )
            .prop_map(|(delta, at, event_id)| ChangeOp::Increase(Increase {
                delta,
                at,
                event_id
            })),
        event_id().prop_map(ChangeOp::Rollback),
    ];
    (
        any::<u64>(),
        customer_id(),
        any::<u64>(),
        instant(),
        any::<bool>(),
        op,
    )
        .prop_map(
            |(achievement, customer, pair_number, now, campaign_running, op)| PairChange {
                achievement: AchievementId(achievement),
                customer,
                pair_number,
                now,
                campaign_running,
                op,
            },
        )
}

/// Catalog records the engine can make: valid names, zones and rules.
fn valid_catalog_record() -> impl Strategy<Value = CatalogRecordV1> {
    let zone = prop_oneof![
        Just("UTC"),
        Just("Europe/Berlin"),
        Just("America/New_York"),
        Just("Asia/Kolkata"),
    ];
    let rules =
        prop_oneof![
            // (recurrence, activation, period, fixed start)
            (
                0u8..=2,
                prop_oneof![
                    Just("1D"),
                    Just("2W"),
                    Just("3M_U"),
                    Just("1.5h"),
                    Just("10s"),
                    Just("1Y"),
                    Just("5D_D")
                ]
            )
                .prop_map(|(r, p)| (r, 0u8, Some(p.to_string()), None)),
            Just((2u8, 0u8, None, None)),
            (instant(), prop_oneof![Just("1W_U"), Just("1M"), Just("7D")]).prop_map(
                |(anchor, p)| (1u8, 1u8, Some(p.to_string()), Some(TimeV1::from(anchor)))
            ),
        ];
    prop_oneof![
        (any::<u64>(), instant(), "\\PC{0,40}", zone, "\\PC{0,40}").prop_map(
            |(id, created, name, tz, description)| {
                CatalogRecordV1::PutApplication(ApplicationV1 {
                    id,
                    created: created.into(),
                    name,
                    timezone: tz.to_string(),
                    description,
                })
            }
        ),
        (
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u64>(),
            "\\PC{0,40}",
            instant()
        )
            .prop_map(|(hash, id, application_id, name, created)| {
                CatalogRecordV1::PutApiKey(ApiKeyV1 {
                    hash,
                    id,
                    application_id,
                    name,
                    created: created.into(),
                })
            }),
        (
            any::<u64>(),
            "[a-zA-Z][a-zA-Z0-9_]{1,30}",
            "[a-zA-Z][a-zA-Z0-9 ]{0,30}",
            1i64..1_000_000_000,
            0u32..6,
            rules,
            instant(),
        )
            .prop_map(
                |(id, name, title, mantissa, scale, (r, a, period, fixed), created)| {
                    CatalogRecordV1::PutAchievement(AchievementV1 {
                        id,
                        campaign_id: id ^ 1,
                        created: created.into(),
                        name,
                        title,
                        description: String::new(),
                        target: Decimal::new(mantissa, scale).into(),
                        period,
                        recurrence: r,
                        activation: a,
                        fixed_start_date: fixed,
                        end_date: None,
                        allow_rollback_after_completion: false,
                        end_progress_on_target: false,
                    })
                }
            ),
        any::<u64>().prop_map(CatalogRecordV1::DeleteAchievement),
    ]
}

// ---- round trips ----

fn round_trip<T>(value: &T) -> T
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let bytes = codec::encode(value).expect("encodes");
    let back: T = codec::decode(&bytes).expect("decodes");
    // Byte-identical when encoded again (scale, sign and order kept).
    assert_eq!(codec::encode(&back).expect("encodes"), bytes);
    back
}

proptest! {
    #[test]
    fn tracker_parts_round_trip(parts in tracker_parts()) {
        let back = round_trip(&TrackerV5::from(&parts));
        let restored = back.to_parts().expect("valid parts convert back");
        prop_assert_eq!(&restored, &parts);
        // Exact decimals, not just equal values (e.g. 30.00 stays 30.00).
        let progress = |p: &TrackerParts| p.history.iter().map(|i| i.progress.serialize()).collect::<Vec<_>>();
        prop_assert_eq!(progress(&restored), progress(&parts));
    }

    #[test]
    fn pair_v5_round_trips(pair in pair_v5()) {
        prop_assert_eq!(round_trip(&pair), pair.clone());
        let chunk = vec![pair.clone(), pair];
        prop_assert_eq!(round_trip(&chunk), chunk);
    }

    #[test]
    fn a_version_1_pair_reads_as_version_5_with_its_ids_as_keys((pair, ids) in pair_v1()) {
        let v1 = round_trip(&pair);
        let v5 = PairV5::try_from(v1.clone()).expect("valid pair converts");
        prop_assert_eq!((v5.achievement, &v5.customer, v5.last_lsn), (pair.achievement, &pair.customer, pair.last_lsn));
        prop_assert_eq!(&v5.tracker.current, &pair.tracker.current);
        prop_assert_eq!(&v5.tracker.history, &pair.tracker.history);
        let parts = v5.tracker.to_parts().expect("converts");
        prop_assert_eq!(parts.events.len(), ids.len());
        for (id, old) in ids.iter().zip(&v1.tracker.events) {
            let e = parts.events.iter().find(|e| e.key == EventKey::of(id)).expect("every id kept");
            prop_assert_eq!(e.rolled_back, old.rolled_back);
            prop_assert_eq!(e.arrived.timestamp_millis(), old.arrived.to_time().expect("time").timestamp_millis());
            let effects: Vec<Effect> = old.effects.iter().map(|e| e.to_effect().expect("effect")).collect();
            prop_assert_eq!(&e.change, &AppliedChange::Effects(effects));
        }
    }

    #[test]
    fn catalog_record_v1_round_trips(record in catalog_record_v1()) {
        prop_assert_eq!(round_trip(&record), record);
    }

    #[test]
    fn pair_record_v1_round_trips(record in pair_record_v1()) {
        prop_assert_eq!(round_trip(&record), record);
    }

    #[test]
    fn engine_pair_records_survive_the_log(record in pair_record()) {
        let v1 = PairRecordV1::from(&record);
        let back = round_trip(&v1).to_change().expect("valid record converts back");
        prop_assert_eq!(PairRecordV1::from(&back), v1);
        prop_assert_eq!(back.customer, record.customer);
        prop_assert_eq!(back.now, record.now);
    }

    #[test]
    fn valid_catalog_records_survive_the_log(record in valid_catalog_record()) {
        let back = round_trip(&record).to_record().expect("valid record converts back");
        prop_assert_eq!(CatalogRecordV1::from(&back), record);
    }
}

// ---- arbitrary bytes never panic ----

/// Decodes `bytes` as every stored type and converts what decodes.
fn decode_everything(bytes: &[u8]) {
    if let Ok(p) = codec::decode::<PairV1>(bytes) {
        let _ = PairV5::try_from(p).map(|p| p.tracker.to_parts());
    }
    if let Ok(chunk) = codec::decode::<Vec<PairV1>>(bytes) {
        for p in chunk {
            let _ = PairV5::try_from(p).map(|p| p.tracker.to_parts());
        }
    }
    if let Ok(r) = codec::decode::<CatalogRecordV1>(bytes) {
        let _ = r.to_record();
    }
    if let Ok(r) = codec::decode::<PairRecordV1>(bytes) {
        let _ = r.to_change();
    }
    if let Ok(c) = codec::decode::<ChunkV3>(bytes) {
        for p in c.pairs {
            let _ = PairV5::try_from(p).map(|p| p.tracker.to_parts());
        }
    }
    if let Ok(c) = codec::decode::<ChunkV5>(bytes) {
        for p in c.pairs {
            let _ = p.tracker.to_parts();
        }
    }
    let _ = decode_shard_record(bytes);
    let _ = decode_catalog_record(bytes);
    if let Ok(c) = codec::decode::<CatalogV1>(bytes) {
        let _ = c.to_state();
    }
    let _ = codec::decode_fixed::<HeaderV1>(bytes);
}

fn sample_record() -> PairRecordV1 {
    PairRecordV1 {
        achievement: 4,
        customer: "customer".into(),
        pair_number: 9,
        now: TimeV1 {
            secs: 1_700_000_000,
            nanos: 0,
        },
        campaign_running: true,
        op: PairOpV1::Increase {
            delta: Decimal::new(125, 2).into(),
            at: None,
            event_id: Some("e-1".into()),
        },
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn damaged_encodings_never_panic_the_decoders(
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = codec::encode(&sample_record()).expect("encodes");
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        decode_everything(&bytes);
        let keep = cut.index(bytes.len() + 1);
        decode_everything(&bytes[..keep]);
    }
}

// ---- snapshot and log files of garbage ----

fn sample_snapshot(dir: &Path) -> Vec<u8> {
    let mut w = SnapshotWriter::create(dir, 1, 2).expect("create");
    w.write_catalog(&CatalogV2 {
        next_id: 3,
        applications: Vec::new(),
        api_keys: Vec::new(),
        campaigns: Vec::new(),
        achievements: Vec::new(),
    })
    .expect("catalog");
    let parts = TrackerParts {
        tracker_base: 1 << 24,
        next_seq: 1,
        ..TrackerParts::default()
    };
    let pairs = vec![PairV5 {
        achievement: 4,
        customer: "c".into(),
        last_lsn: 2,
        tracker: TrackerV5::from(&parts),
    }];
    w.write_chunk(&ChunkV5 {
        partition: 1,
        pairs,
    })
    .expect("chunk");
    let (path, _, _) = w
        .finish(
            DateTime::from_timestamp(1_700_000_000, 0).expect("instant"),
            1,
            vec![1, 3],
            1,
        )
        .expect("finish");
    fs::read(path).expect("read")
}

fn header_v1() -> impl Strategy<Value = HeaderV1> {
    (
        any::<i64>(),
        any::<u32>(),
        any::<u64>(),
        vec(any::<u64>(), 0..10),
        any::<u64>(),
        any::<u64>(),
        prop_oneof![any::<u64>(), 0u64..64, Just(u64::MAX), Just(u64::MAX - 20)],
        any::<u32>(),
    )
        .prop_map(
            |(
                created_secs,
                created_nanos,
                catalog_lsn,
                shard_lsns,
                pair_numbers,
                pairs,
                body_len,
                body_crc,
            )| {
                HeaderV1 {
                    created_secs,
                    created_nanos,
                    catalog_lsn,
                    shard_lsns,
                    pair_numbers,
                    pairs,
                    body_len,
                    body_crc,
                }
            },
        )
}

/// A file that may look like a snapshot to some depth.
fn snapshot_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Plain garbage.
        vec(any::<u8>(), 0..256),
        // Right magic and version, garbage after.
        (1u32..=3, any::<u32>(), vec(any::<u8>(), 0..256)).prop_map(
            |(version, header_len, rest)| {
                let mut b = snapshot::MAGIC.to_vec();
                b.extend_from_slice(&version.to_le_bytes());
                b.extend_from_slice(&(header_len % 300).to_le_bytes());
                b.extend(rest);
                b
            }
        ),
        // A well-formed header with any numbers in it, then garbage.
        (header_v1(), vec(any::<u8>(), 0..256)).prop_map(|(header, rest)| {
            let h = codec::encode_fixed(&header).expect("encodes");
            let mut b = snapshot::MAGIC.to_vec();
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&(h.len() as u32).to_le_bytes());
            b.extend(h);
            b.extend(rest);
            b
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn snapshot_read_never_panics_on_garbage(bytes in snapshot_like()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("snapshot-000000000001.snap");
        fs::write(&path, &bytes).expect("write");
        let _ = snapshot::read_header(&path);
        let _ = snapshot::read(&path, |_, chunk| {
            for p in chunk {
                let _ = p.tracker.to_parts();
            }
            Ok(())
        });
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_never_a_panic(
        flips in vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let good = sample_snapshot(dir.path());
        let unchecked = unchecked_header_bytes(&good);
        let mut bytes = good.clone();
        let mut only_unchecked = !truncate;
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        } else {
            for (at, x) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= x;
                only_unchecked &= unchecked.contains(&i);
            }
        }
        let path = dir.path().join("snapshot-000000000002.snap");
        fs::write(&path, &bytes).expect("write");
        let result = snapshot::read(&path, |_, _| Ok(()));
        // Any change to the checked parts of a sealed snapshot is caught (a
        // flip here always changes a byte; a cut always drops one). Changes
        // to the header's numbers are not (see the ignored test below).
        if !only_unchecked {
            prop_assert!(result.is_err(), "a damaged snapshot was accepted");
        }
    }

    #[test]
    fn read_segment_never_panics_on_garbage(bytes in vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("00000000000000000001.wal");
        fs::write(&path, &bytes).expect("write");
        let (records, valid) = wal::read_segment(&path).expect("a readable file is no I/O error");
        prop_assert!(valid <= bytes.len() as u64);
        let framed: u64 = records.iter().map(|(_, p)| 16 + p.len() as u64).sum();
        prop_assert_eq!(framed, valid);
    }

    #[test]
    fn valid_frames_before_garbage_are_all_read(
        payloads in vec(vec(any::<u8>(), 0..64), 0..6),
        garbage in vec(any::<u8>(), 0..128),
    ) {
        let mut bytes = Vec::new();
        let expected: Vec<(u64, Vec<u8>)> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i as u64 + 1, p))
            .collect();
        for (lsn, p) in &expected {
            wal::frame(&mut bytes, *lsn, p);
        }
        let prefix = bytes.len() as u64;
        bytes.extend(garbage);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("00000000000000000001.wal");
        fs::write(&path, &bytes).expect("write");
        let (records, valid) = wal::read_segment(&path).expect("read");
        prop_assert!(valid >= prefix);
        prop_assert!(records.len() >= expected.len());
        prop_assert_eq!(&records[..expected.len()], &expected[..]);
    }
}

/// Offsets (in the file) of the header fields that no check covers: created
/// time, catalog position, the partition positions, pair numbers.
/// (Fixed-width header after the 16-byte prefix: secs 8, nanos 4,
/// catalog position 8, partition count 8, positions 8 each, pair_numbers 8,
/// pairs 8, body_len 8, body_crc 4.)
fn unchecked_header_bytes(file: &[u8]) -> Vec<usize> {
    let shards = u64::from_le_bytes(file[36..44].try_into().expect("8 bytes")) as usize;
    let values_end = 44 + 8 * shards;
    (16..36).chain(44..values_end + 8).collect()
}

/// A flipped bit in `catalog_lsn` (or a shard LSN) would be a plausible
/// number; the header's own CRC turns it into an error.
#[test]
fn a_damaged_header_number_is_detected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bytes = sample_snapshot(dir.path());
    bytes[28] ^= 0x40; // catalog position 1 → 65
    let path = dir.path().join("snapshot-000000000002.snap");
    fs::write(&path, &bytes).expect("write");
    let result = snapshot::read(&path, |_, _| Ok(()));
    assert!(
        result.is_err(),
        "accepted with header {:?}",
        result.map(|r| r.0)
    );
}

#[test]
fn the_borrowed_pair_record_encodes_to_the_same_bytes_as_the_owned_one() {
    use crate::engine::log::{ChangeOpRef, PairChangeRef};
    let customer = CustomerId::parse("jane+promo@example.com", "/integrationId").unwrap();
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 123_000_000).unwrap();
    let inc = Increase {
        delta: rust_decimal::Decimal::new(125, 2),
        at: Some(now),
        event_id: Some(EventId::parse("pos-1", "/eventId").unwrap()),
    };
    let id = EventId::parse("pos-2", "/eventId").unwrap();
    for (op, owned_op, running) in [
        (
            ChangeOpRef::Increase(&inc),
            ChangeOp::Increase(inc.clone()),
            true,
        ),
        (
            ChangeOpRef::Rollback(&id),
            ChangeOp::Rollback(id.clone()),
            false,
        ),
    ] {
        let change = PairChangeRef {
            achievement: AchievementId(4),
            customer: &customer,
            pair_number: 9,
            now,
            campaign_running: running,
            op,
        };
        let owned = PairRecordV1::from(&PairChange {
            achievement: AchievementId(4),
            customer: customer.clone(),
            pair_number: 9,
            now,
            campaign_running: running,
            op: owned_op,
        });
        let bytes = codec::encode(&PairRecordRefV1::from(&change)).unwrap();
        assert_eq!(bytes, codec::encode(&owned).unwrap());
        assert_eq!(codec::decode::<PairRecordV1>(&bytes).unwrap(), owned);
    }
}

/// Version 2: achievements with a lateness bound, erasure records, versioned
/// log payloads that still read version 1.
mod v2;
