use std::io::Write as _;
use std::time::Instant;

use super::*;

fn payloads(dir: &Path, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    read_from(dir, from, |lsn, p| out.push((lsn, p.to_vec()))).expect("readable log");
    out
}

fn append(wal: &Wal, records: Vec<(u64, Vec<u8>)>) {
    let done = wal.append(records).expect("queued");
    futures_executor::block_on(done)
        .expect("writer answered")
        .expect("durable");
}

#[test]
fn appended_records_read_back_in_order_from_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), 1, 16, OnFailure::Retain).unwrap();
    append(&wal, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
    append(&wal, vec![(3, vec![]), (4, vec![7; 100_000])]);
    let all = payloads(dir.path(), 0);
    assert_eq!(all.len(), 4);
    assert_eq!(all[0], (1, b"one".to_vec()));
    assert_eq!(all[3].1.len(), 100_000);
    assert_eq!(payloads(dir.path(), 3).len(), 2);
    assert_eq!(last_lsn(dir.path()).unwrap(), 4);
    assert_eq!(wal.stats.durable_lsn.load(Ordering::Relaxed), 4);
}

#[test]
fn a_torn_tail_is_ignored_and_cut_off_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(dir.path(), 1, 16, OnFailure::Retain).unwrap();
        append(&wal, vec![(1, b"kept".to_vec()), (2, b"kept too".to_vec())]);
    }
    let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
    let full = fs::metadata(&path).unwrap().len();
    // A third frame cut in the middle, as a crash during write leaves it.
    let mut torn = Vec::new();
    frame(&mut torn, 3, b"never acknowledged");
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&torn[..torn.len() - 5]).unwrap();
    drop(f);
    assert_eq!(payloads(dir.path(), 0).len(), 2);
    let wal = Wal::open(dir.path(), 3, 16, OnFailure::Retain).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        full,
        "torn tail cut off"
    );
    append(&wal, vec![(3, b"after".to_vec())]);
    let all = payloads(dir.path(), 0);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], (3, b"after".to_vec()));
}

#[test]
fn a_flipped_byte_ends_the_segment_at_the_last_good_frame() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(dir.path(), 1, 16, OnFailure::Retain).unwrap();
        append(&wal, (1..=3).map(|i| (i, vec![i as u8; 10])).collect());
    }
    let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let second_payload = 2 * FRAME_HEADER + 10 + 3;
    bytes[second_payload] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let all = payloads(dir.path(), 0);
    assert_eq!(all, vec![(1, vec![1; 10])]);
}

#[test]
fn pruning_deletes_only_closed_segments_below_the_position() {
    let dir = tempfile::tempdir().unwrap();
    for (first, last) in [(1u64, 10u64), (11, 20)] {
        let wal = Wal::open(dir.path(), first, 16, OnFailure::Retain).unwrap();
        append(&wal, (first..=last).map(|i| (i, vec![1])).collect());
    }
    let wal = Wal::open(dir.path(), 21, 16, OnFailure::Retain).unwrap();
    assert_eq!(segments(dir.path()).unwrap().len(), 3);
    wal.prune(15);
    append(&wal, vec![(21, vec![2])]);
    let left: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
    assert_eq!(
        left,
        vec![11, 21],
        "the segment from 11 still holds records 15..20"
    );
    assert_eq!(payloads(dir.path(), 15).first().map(|r| r.0), Some(15));
}

fn try_append(wal: &Wal, records: Vec<(u64, Vec<u8>)>) -> Result<(), WalError> {
    let done = wal.append(records)?;
    futures_executor::block_on(done).expect("writer answered")
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn failed_writes_are_refused_held_and_written_once_the_disk_works() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), 1, 16, OnFailure::Retain).unwrap();
    append(&wal, vec![(1, b"before".to_vec())]);
    wal.fail_writes(true);
    assert!(matches!(
        try_append(&wal, vec![(2, b"in memory".to_vec())]),
        Err(WalError::Io(_))
    ));
    assert!(wal.is_degraded());
    assert!(matches!(
        try_append(&wal, vec![(3, b"also in memory".to_vec())]),
        Err(WalError::Degraded)
    ));
    assert_eq!(
        payloads(dir.path(), 0).len(),
        1,
        "nothing unwritten is on disk"
    );
    assert_eq!(wal.stats.durable_lsn.load(Ordering::Relaxed), 1);
    wal.fail_writes(false);
    wait_until("recovery", || !wal.is_degraded());
    append(&wal, vec![(4, b"after".to_vec())]);
    let lsns: Vec<u64> = payloads(dir.path(), 0).iter().map(|r| r.0).collect();
    assert_eq!(
        lsns,
        vec![1, 2, 3, 4],
        "held records written in order first"
    );
    assert!(wal.stats.errors.load(Ordering::Relaxed) >= 1);
}

#[test]
fn a_discarding_log_drops_what_it_could_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), 1, 16, OnFailure::Discard).unwrap();
    wal.fail_writes(true);
    assert!(try_append(&wal, vec![(1, b"refused".to_vec())]).is_err());
    assert!(!wal.is_degraded(), "a discarding log stays usable");
    wal.fail_writes(false);
    append(&wal, vec![(1, b"accepted".to_vec())]);
    assert_eq!(payloads(dir.path(), 0), vec![(1, b"accepted".to_vec())]);
}
