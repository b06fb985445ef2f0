//! Reading one log segment as a restore does, then looking at what the
//! restore would not read: the bytes after the valid frames.
//!
//! Owns: the classification of a segment's damage. The valid frames are
//! exactly `wal::read_segment`'s (what `wal::read_from`, and so a restore,
//! reads). After them, a restore reads nothing more of the segment and
//! opening the log cuts the rest off. What is cut off is one of:
//! - a torn tail: bytes after which no valid frame follows (a frame cut
//!   short, a frame of zeros or garbage at the end). Its records were never
//!   acknowledged (an append answers only after `fdatasync`), so cutting it
//!   off loses nothing;
//! - corruption: a damaged frame followed by valid frames. Those frames were
//!   written after the damaged one and are dropped with it.

use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::persist::codec;
use crate::persist::wal::{self, MAX_RECORD_BYTES};

const FRAME_HEADER: usize = 16;

/// What follows the valid frames of a segment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Damage {
    /// Offset of the first byte a restore does not read.
    pub at_byte: u64,
    /// Bytes from there to the end of the file.
    pub bytes: u64,
    /// Valid frames found after the damage: records a restore drops. None
    /// means a torn tail.
    pub frames_after: u64,
    /// The LSNs of those frames (first, last), when there are any.
    pub lsns_after: Option<(u64, u64)>,
    /// What is wrong with the first frame not read.
    pub why: String,
}

impl Damage {
    /// Whether valid records follow the damage (corruption in the middle).
    pub fn is_corruption(&self) -> bool {
        self.frames_after > 0
    }
}

/// A segment as a restore reads it.
pub struct Segment {
    pub records: Vec<wal::Record>,
    pub len: u64,
    pub damage: Option<Damage>,
}

/// Reads a segment: its valid frames (as a restore does) and what follows.
pub fn segment(path: &Path) -> io::Result<Segment> {
    let (records, valid) = wal::read_segment(path)?;
    let bytes = fs::read(path)?;
    let len = bytes.len() as u64;
    let rest = bytes.get(valid as usize..).unwrap_or_default();
    let damage = (!rest.is_empty()).then(|| {
        let last = records.last().map_or(0, |r| r.0);
        classify(rest, valid, last)
    });
    Ok(Segment {
        records,
        len,
        damage,
    })
}

/// A frame at the start of `bytes`: its LSN, its length in bytes, and
/// whether its checksum holds; `None` when it is cut short.
fn frame_at(bytes: &[u8]) -> Option<(u64, usize, bool)> {
    let header = bytes.get(..FRAME_HEADER)?;
    let lsn = u64::from_le_bytes(header[0..8].try_into().ok()?);
    let len = u32::from_le_bytes(header[8..12].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[12..16].try_into().ok()?);
    if len > MAX_RECORD_BYTES {
        return Some((lsn, usize::MAX, false));
    }
    let payload = bytes.get(FRAME_HEADER..FRAME_HEADER + len)?;
    let mut check = codec::Crc::new();
    check.update(&header[0..8]);
    check.update(payload);
    Some((lsn, FRAME_HEADER + len, check.finalize() == crc))
}

/// Whether a valid frame that could follow LSN `last` starts here.
fn valid_after(bytes: &[u8], last: u64) -> Option<usize> {
    match frame_at(bytes) {
        Some((lsn, size, true)) if lsn > last && lsn - last < 1 << 40 => Some(size),
        _ => None,
    }
}

/// The valid frames chained from `bytes[0]` on: (count, first, last LSN).
fn chain(mut bytes: &[u8], mut last: u64) -> (u64, Option<(u64, u64)>) {
    let (mut n, mut first) = (0, None);
    while let Some(size) = valid_after(bytes, last) {
        let lsn = u64::from_le_bytes(bytes[0..8].try_into().unwrap_or_default());
        first.get_or_insert(lsn);
        (n, last) = (n + 1, lsn);
        bytes = &bytes[size..];
    }
    (n, first.map(|f| (f, last)))
}

fn classify(rest: &[u8], at: u64, last: u64) -> Damage {
    let why = match frame_at(rest) {
        _ if rest.iter().all(|b| *b == 0) => "zero bytes".to_string(),
        None => "a frame cut short".to_string(),
        Some((_, usize::MAX, _)) => "a frame with an impossible length".to_string(),
        Some((lsn, _, _)) => format!("a frame (LSN field {lsn}) whose checksum does not match"),
    };
    let mut damage = Damage {
        at_byte: at,
        bytes: rest.len() as u64,
        frames_after: 0,
        lsns_after: None,
        why,
    };
    // Where the damaged frame says it ends first (a flipped payload byte),
    // then every later offset (a damaged length).
    let declared = match frame_at(rest) {
        Some((_, size, _)) if size != usize::MAX => Some(size),
        _ => None,
    };
    let starts = declared.into_iter().chain(1..rest.len());
    for start in starts {
        if start >= rest.len() {
            continue;
        }
        if valid_after(&rest[start..], last).is_some() {
            let (n, lsns) = chain(&rest[start..], last);
            damage.frames_after = n;
            damage.lsns_after = lsns;
            if declared.is_none() {
                damage.why = "a damaged frame (its length field is wrong)".into();
            }
            break;
        }
    }
    damage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(lsns: &[u64]) -> Vec<u8> {
        let mut buf = Vec::new();
        for lsn in lsns {
            wal::frame(&mut buf, *lsn, format!("payload {lsn}").as_bytes());
        }
        buf
    }

    fn scan(bytes: &[u8]) -> Segment {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("00000000000000000001.wal");
        fs::write(&path, bytes).expect("write");
        segment(&path).expect("scan")
    }

    #[test]
    fn damage_is_told_apart_from_a_torn_tail() {
        let whole = frames(&[1, 2, 3, 4]);
        let second = 16 + "payload 1".len();
        let cases: Vec<(&str, Vec<u8>, usize, Option<u64>)> = vec![
            ("intact", whole.clone(), 4, None),
            (
                "cut inside the last frame",
                whole[..whole.len() - 3].to_vec(),
                3,
                Some(0),
            ),
            (
                "cut inside a header",
                whole[..second + 5].to_vec(),
                1,
                Some(0),
            ),
            (
                "zeros after the frames",
                [whole.clone(), vec![0; 40]].concat(),
                4,
                Some(0),
            ),
            (
                "a flipped payload byte in the second frame",
                {
                    let mut b = whole.clone();
                    b[second + 20] ^= 0x10;
                    b
                },
                1,
                Some(2),
            ),
            (
                "a flipped length byte in the second frame",
                {
                    let mut b = whole.clone();
                    b[second + 9] ^= 0x40;
                    b
                },
                1,
                Some(2),
            ),
            (
                "a flipped byte in the last frame",
                {
                    let mut b = whole.clone();
                    let n = b.len();
                    b[n - 2] ^= 0x01;
                    b
                },
                3,
                Some(0),
            ),
        ];
        for (name, bytes, records, after) in cases {
            let s = scan(&bytes);
            assert_eq!(s.records.len(), records, "{name}: records read");
            assert_eq!(s.damage.as_ref().map(|d| d.frames_after), after, "{name}");
            if let Some(d) = &s.damage {
                assert_eq!(d.at_byte + d.bytes, bytes.len() as u64, "{name}");
            }
        }
        let flipped = {
            let mut b = whole.clone();
            b[second + 20] ^= 0x10;
            scan(&b)
        };
        let damage = flipped.damage.expect("damage");
        assert_eq!(damage.at_byte, second as u64);
        assert_eq!(damage.lsns_after, Some((3, 4)));
        assert!(damage.why.contains("checksum"), "{}", damage.why);
    }
}
