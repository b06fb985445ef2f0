//! The rules of `logs::check` on small logs built frame by frame from the
//! golden shard log's records (real payloads that decode).

use std::fs;
use std::path::Path;

use super::*;

/// The golden v4 shard log's payloads (`u32 LE length | payload`).
fn payloads() -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-shard-log-v4.bin");
    let bytes = fs::read(path).expect("golden shard log");
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        out.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    out
}

/// How a frame is written.
#[derive(Clone, Copy)]
enum F {
    Ok(u64),
    /// Its checksum does not match.
    Bad(u64),
    /// Its payload does not decode.
    Garbage(u64),
    /// Cut short (only its header and half its payload).
    Cut(u64),
}

fn write_log(dir: &Path, segments: &[(u64, &[F])]) {
    let payloads = payloads();
    fs::create_dir_all(dir).expect("log dir");
    for (first, frames) in segments {
        let mut buf = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let payload = &payloads[i % payloads.len()];
            match *f {
                F::Ok(lsn) => wal::frame(&mut buf, lsn, payload),
                F::Garbage(lsn) => wal::frame(&mut buf, lsn, b"not a record"),
                F::Bad(lsn) => {
                    let at = buf.len() + 20;
                    wal::frame(&mut buf, lsn, payload);
                    buf[at] ^= 0x01;
                }
                F::Cut(lsn) => {
                    let mut one = Vec::new();
                    wal::frame(&mut one, lsn, payload);
                    buf.extend_from_slice(&one[..16 + payload.len() / 2]);
                }
            }
        }
        fs::write(dir.join(format!("{first:020}.wal")), buf).expect("segment");
    }
}

/// A case: its name, the segments (first LSN, frames), where the restore
/// replays from, the worst severity found, what a finding says, and the
/// records replayed.
type Case<'a> = (
    &'a str,
    Vec<(u64, &'a [F])>,
    u64,
    Option<Severity>,
    &'a str,
    u64,
);

#[test]
fn findings_follow_the_rules() {
    use F::*;
    // (case, segments, the restore replays from, worst severity, the
    // finding says, records replayed)
    let cases: Vec<Case> = vec![
        (
            "contiguous",
            vec![(1, &[Ok(1), Ok(2), Ok(3)]), (4, &[Ok(4), Ok(5)])],
            1,
            None,
            "",
            5,
        ),
        (
            "starts above where it is needed",
            vec![(4, &[Ok(4), Ok(5)])],
            2,
            Some(Severity::Loss),
            "records 2..3 are gone",
            2,
        ),
        (
            "starts where the snapshot covers",
            vec![(4, &[Ok(4), Ok(5)])],
            4,
            None,
            "",
            2,
        ),
        (
            "a jump after a segment that was not full",
            vec![(1, &[Ok(1), Ok(2)]), (10, &[Ok(10)])],
            1,
            Some(Severity::Note),
            "numbering jumps",
            3,
        ),
        (
            "a gap below the replay",
            vec![(1, &[Ok(1), Ok(2)]), (10, &[Ok(10)])],
            10,
            Some(Severity::Note),
            "does not need them",
            1,
        ),
        (
            "corruption in the middle",
            vec![(1, &[Ok(1), Bad(2), Ok(3)]), (4, &[Ok(4)])],
            1,
            Some(Severity::Loss),
            "corruption in the middle",
            2,
        ),
        (
            "corruption below the replay",
            vec![(1, &[Ok(1), Bad(2), Ok(3)]), (4, &[Ok(4)])],
            4,
            Some(Severity::Note),
            "below where the restore replays from (4)",
            1,
        ),
        (
            "a torn tail in the newest segment",
            vec![(1, &[Ok(1)]), (2, &[Ok(2), Cut(3)])],
            1,
            Some(Severity::Harmless),
            "torn tail",
            2,
        ),
        (
            "a cut frame in an older segment",
            vec![(1, &[Ok(1), Cut(2)]), (3, &[Ok(3)])],
            1,
            Some(Severity::Loss),
            "not the newest segment",
            2,
        ),
        (
            "an undecodable record it replays",
            vec![(1, &[Ok(1), Garbage(2), Ok(3)])],
            1,
            Some(Severity::Loss),
            "LSN 2 cannot be decoded",
            1,
        ),
        (
            "an undecodable record below the replay",
            vec![(1, &[Ok(1), Garbage(2), Ok(3)])],
            3,
            None,
            "",
            1,
        ),
        (
            "out of order",
            vec![(1, &[Ok(1), Ok(3), Ok(2)])],
            1,
            Some(Severity::Loss),
            "out of order",
            3,
        ),
    ];
    for (case, segments, from, worst, says, replayed) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        write_log(dir.path(), &segments);
        let mut findings = Vec::new();
        let log = check("shard-000", dir.path(), &Wanted::Shard(from), &mut findings);
        let top = findings.iter().map(|f| f.severity).max();
        assert_eq!(top, worst, "{case}: {findings:?}");
        assert!(
            says.is_empty() || findings.iter().any(|f| f.what.contains(says)),
            "{case}: {findings:?}"
        );
        let records: u64 = log.replay.iter().map(|r| r.records).sum();
        assert_eq!(records, replayed, "{case}: {:?}", log.replay);
    }
}

#[test]
fn the_feed_is_checked_frame_by_frame_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Retention removed the feed's first segments: not a loss.
    write_log(dir.path(), &[(50, &[F::Ok(50), F::Bad(51), F::Ok(52)])]);
    let mut findings = Vec::new();
    let log = check("feed", dir.path(), &Wanted::FramesOnly, &mut findings);
    assert!(log.replay.is_empty());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].severity, Severity::Loss);
    assert!(
        findings[0].what.contains("1 valid records (LSN 52..52)"),
        "{findings:?}"
    );
}
