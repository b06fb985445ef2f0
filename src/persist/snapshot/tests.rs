use super::*;
use crate::persist::model::{CatalogV2, ChunkV5, DecimalV1, PairV5, TimeV1, TrackerV5};
use chrono::DateTime;
use std::fs;
use std::path::{Path, PathBuf};

fn catalog() -> CatalogV2 {
    CatalogV2 {
        next_id: 7,
        applications: Vec::new(),
        api_keys: Vec::new(),
        campaigns: Vec::new(),
        achievements: Vec::new(),
    }
}

fn pair(i: u64) -> PairV5 {
    PairV5 {
        achievement: 4,
        customer: format!("customer-{i}"),
        last_lsn: i,
        tracker: TrackerV5 {
            tracker_base: i << 24,
            next_seq: 1,
            current: Some(crate::persist::model::IterationV1 {
                id: i << 24,
                status: 1,
                progress: DecimalV1::from(rust_decimal::Decimal::new(15, 1)),
                start: TimeV1 {
                    secs: 1_700_000_000,
                    nanos: 0,
                },
                end: None,
                completion: None,
            }),
            history: Vec::new(),
            events: Vec::new(),
        },
    }
}

fn write(dir: &Path, id: u64, pairs: u64) -> PathBuf {
    let mut w = SnapshotWriter::create(dir, id, 2).unwrap();
    w.write_catalog(&catalog()).unwrap();
    let all: Vec<PairV5> = (0..pairs).map(pair).collect();
    for (i, chunk) in all.chunks(3).enumerate() {
        w.write_chunk(&ChunkV5 {
            partition: (i % 2) as u32,
            pairs: chunk.to_vec(),
        })
        .unwrap();
    }
    let created = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
    w.finish(created, 11, vec![3, 4], 99).unwrap().0
}

fn read_all(path: &Path) -> Result<(Header, CatalogV2, Vec<PairV5>), SnapshotError> {
    let mut pairs = Vec::new();
    let (h, c) = read(path, |partition, chunk| {
        assert!(
            partition.is_some(),
            "chunks since version 3 name their partition"
        );
        pairs.extend(chunk);
        Ok(())
    })?;
    Ok((h, c, pairs))
}

#[test]
fn a_snapshot_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), 1, 10);
    let (h, c, pairs) = read_all(&path).unwrap();
    assert_eq!(h.version, CURRENT_VERSION);
    assert_eq!(h.catalog_position, 11);
    assert_eq!(h.covered, Covered::Partitions(vec![3, 4]));
    assert_eq!(h.pair_numbers, 99);
    assert_eq!(h.pairs, 10);
    assert_eq!(h.created().timestamp_subsec_nanos(), 5);
    assert_eq!(c, catalog());
    assert_eq!(pairs, (0..10).map(pair).collect::<Vec<_>>());
    assert!(list(dir.path())
        .unwrap()
        .iter()
        .all(|s| !s.path.to_string_lossy().ends_with(".tmp")));
}

#[test]
fn corruption_is_detected_with_its_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), 1, 10);
    let good = fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x55;
    fs::write(&path, &flipped).unwrap();
    assert!(matches!(read_all(&path), Err(SnapshotError::Checksum)));

    fs::write(&path, &good[..good.len() - 7]).unwrap();
    assert!(matches!(read_all(&path), Err(SnapshotError::Truncated)));

    let mut magic = good.clone();
    magic[0] = b'X';
    fs::write(&path, &magic).unwrap();
    assert!(matches!(read_all(&path), Err(SnapshotError::BadMagic)));

    let mut future = good.clone();
    future[8..12].copy_from_slice(&99u32.to_le_bytes());
    fs::write(&path, &future).unwrap();
    assert!(matches!(
        read_all(&path),
        Err(SnapshotError::UnsupportedVersion(99))
    ));

    fs::write(&path, &good[..10]).unwrap();
    assert!(matches!(read_all(&path), Err(SnapshotError::Truncated)));
}

#[test]
fn only_the_newest_are_kept_and_temporaries_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    for id in 1..=5 {
        write(dir.path(), id, 1);
    }
    fs::write(dir.path().join(".snapshot-9.tmp"), b"partial").unwrap();
    remove_temporaries(dir.path()).unwrap();
    let kept = retain_newest(dir.path(), 3).unwrap();
    assert_eq!(kept.iter().map(|s| s.id).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn an_abandoned_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut w = SnapshotWriter::create(dir.path(), 1, 1).unwrap();
        w.write_catalog(&catalog()).unwrap();
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_snapshot_written_window_by_window_reads_back_whole() {
    // Chunks of ~70 KB, ~12 MB in all: several windows go to the disk along
    // the way, directly or through the page cache.
    for cached in [false, true] {
        written_window_by_window(cached);
    }
}

fn written_window_by_window(cached: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SnapshotWriter::create_with(dir.path(), 1, 2, cached).unwrap();
    w.write_catalog(&catalog()).unwrap();
    let big = |i: u64| PairV5 {
        customer: format!("{i:0>64}"),
        ..pair(i)
    };
    let all: Vec<PairV5> = (0..120_000).map(big).collect();
    for (i, chunk) in all.chunks(700).enumerate() {
        w.write_chunk(&ChunkV5 {
            partition: (i % 2) as u32,
            pairs: chunk.to_vec(),
        })
        .unwrap();
    }
    let created = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
    let (path, size, pairs) = w.finish(created, 11, vec![3, 4], 99).unwrap();
    assert!(size > 3 * super::output::WINDOW as u64, "{size} bytes");
    assert_eq!(pairs, 120_000);
    let (h, _, back) = read_all(&path).unwrap();
    assert_eq!(h.pairs, 120_000);
    assert_eq!(back, all);
}
