//! `verify`'s look at one log directory (the catalog's, a shard's, the
//! feed's): its segments frame by frame as a restore reads them, the
//! records a restore would replay, and what it would cut off or miss.
//!
//! Owns: the rules that tell harmless findings from lost data in a log (see
//! `ops` for the list); the caller says which records the restore needs
//! (`Wanted`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::report::{Finding, Severity};
use super::scan::{self, Damage};
use crate::persist::model::{decode_catalog_record, decode_shard_record};
use crate::persist::wal::{self, SEGMENT_BYTES};

/// Which records of a log a restore replays, and how it decodes them.
pub enum Wanted {
    /// The catalog's log, from a position.
    Catalog(u64),
    /// A shard's log of the partitioned layout: each partition of the file
    /// from its position.
    Partitions(BTreeMap<u32, u64>),
    /// A shard's log of the earlier layout, from a position.
    Shard(u64),
    /// Not replayed by a restore, only checked frame by frame (the feed).
    FramesOnly,
}

impl Wanted {
    /// The lowest position a restore reads this log from (`None`: it does
    /// not replay it).
    fn lowest(&self) -> Option<u64> {
        match self {
            Wanted::Catalog(p) | Wanted::Shard(p) => Some(*p),
            Wanted::Partitions(m) => m.values().min().copied(),
            Wanted::FramesOnly => None,
        }
    }

    /// The highest: where the log must reach back to at least.
    fn highest(&self) -> Option<u64> {
        match self {
            Wanted::Catalog(p) | Wanted::Shard(p) => Some(*p),
            Wanted::Partitions(m) => m.values().max().copied(),
            Wanted::FramesOnly => None,
        }
    }
}

/// One segment file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentCheck {
    pub file: String,
    pub bytes: u64,
    pub records: u64,
    /// LSNs of its first and last valid record.
    pub lsns: Option<(u64, u64)>,
    pub damage: Option<Damage>,
}

/// Records a restore replays from one stream (a partition, or a shard log
/// of the earlier layout, or the catalog).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replay {
    pub stream: String,
    /// The position the restore replays from.
    pub from: u64,
    pub records: u64,
    /// LSNs of the first and last record replayed.
    pub lsns: Option<(u64, u64)>,
}

/// One log directory.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogCheck {
    pub name: String,
    pub segments: Vec<SegmentCheck>,
    pub replay: Vec<Replay>,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// Counts replayed records per stream.
#[derive(Default)]
struct Tally(BTreeMap<String, Replay>);

impl Tally {
    fn add(&mut self, stream: String, from: u64, lsn: u64) {
        let e = self.0.entry(stream.clone()).or_insert(Replay {
            stream,
            from,
            records: 0,
            lsns: None,
        });
        e.records += 1;
        e.lsns = Some(e.lsns.map_or((lsn, lsn), |(f, _)| (f, lsn)));
    }
}

/// Checks a log directory; findings go to `findings`.
pub fn check(name: &str, dir: &Path, wanted: &Wanted, findings: &mut Vec<Finding>) -> LogCheck {
    let mut out = LogCheck {
        name: name.to_string(),
        segments: Vec::new(),
        replay: Vec::new(),
    };
    let segments = match wal::segments(dir) {
        Ok(s) => s,
        Err(e) => {
            findings.push(Finding::loss(format!(
                "{name}: cannot list {}: {e}",
                dir.display()
            )));
            return out;
        }
    };
    let lowest = wanted.lowest();
    let mut tally = Tally::default();
    if let Wanted::Catalog(from) = wanted {
        tally.0.insert(
            "catalog".into(),
            Replay {
                stream: "catalog".into(),
                from: *from,
                records: 0,
                lsns: None,
            },
        );
    }
    // Restore stops at the first record it cannot decode.
    let mut stopped = false;
    let mut previous: Option<(u64, u64, u64)> = None; // (first name, end LSN, bytes)
    let count = segments.len();
    for (k, (first, path)) in segments.iter().enumerate() {
        let file = file_name(path);
        let seg = match scan::segment(path) {
            Ok(s) => s,
            Err(e) => {
                findings.push(Finding::loss(format!("{name}/{file}: cannot be read: {e}")));
                continue;
            }
        };
        if let Some(needed) = wanted.highest().filter(|_| k == 0).map(|h| h.max(1)) {
            if *first > needed {
                findings.push(Finding::loss(format!(
                    "{name}: the log starts at LSN {first}, but the restore replays it from {needed}: records {needed}..{} are gone",
                    first - 1
                )));
            }
        }
        if let Some((name_before, end, bytes)) = previous {
            let gap_from = end.max(name_before.saturating_sub(1)) + 1;
            if *first > gap_from {
                let what = format!(
                    "{name}: no records numbered {gap_from}..{} (before {file})",
                    first - 1
                );
                if lowest.is_some_and(|l| first - 1 < l) {
                    findings.push(Finding::note(format!(
                        "{what}; the restore does not need them (below where it replays from)"
                    )));
                } else if bytes > SEGMENT_BYTES {
                    findings.push(Finding::loss(format!(
                        "{what}: the segment before was full, so the one that followed it is missing"
                    )));
                } else {
                    findings.push(Finding::note(format!(
                        "{what}: numbering jumps there (a restart numbers on above what a snapshot covered)"
                    )));
                }
            }
        }
        let mut last_lsn = None::<u64>;
        for (lsn, payload) in &seg.records {
            if last_lsn.is_some_and(|l| *lsn <= l) || *lsn < *first {
                findings.push(Finding::loss(format!(
                    "{name}/{file}: LSN {lsn} is out of order (after {}, in a segment starting at {first})",
                    last_lsn.unwrap_or(0)
                )));
            }
            last_lsn = Some(*lsn);
            if stopped {
                continue;
            }
            let result = replay_one(wanted, *lsn, payload, &mut tally);
            if let Err(why) = result {
                stopped = true;
                findings.push(Finding::loss(format!(
                    "{name}/{file}: record LSN {lsn} cannot be decoded ({why}): a restore stops there with an error"
                )));
            }
        }
        if let Some(d) = &seg.damage {
            damage_finding(
                name,
                &file,
                d,
                k + 1 == count,
                lowest,
                segments.get(k + 1).map(|s| s.0),
                findings,
            );
        }
        let end = seg
            .damage
            .as_ref()
            .and_then(|d| d.lsns_after.map(|l| l.1))
            .or(last_lsn)
            .unwrap_or(0);
        previous = Some((*first, end, seg.len));
        out.segments.push(SegmentCheck {
            file,
            bytes: seg.len,
            records: seg.records.len() as u64,
            lsns: seg.records.first().map(|f| (f.0, last_lsn.unwrap_or(f.0))),
            damage: seg.damage,
        });
    }
    out.replay = tally.0.into_values().collect();
    out
}

/// Decodes a record as the restore does (only those at or above where it
/// reads the file from) and counts it for its stream.
fn replay_one(wanted: &Wanted, lsn: u64, payload: &[u8], tally: &mut Tally) -> Result<(), String> {
    match wanted {
        Wanted::Catalog(from) if lsn >= *from => {
            decode_catalog_record(payload).map_err(|e| e.to_string())?;
            tally.add("catalog".into(), *from, lsn);
        }
        Wanted::Partitions(from) if from.values().min().is_some_and(|m| lsn >= *m) => {
            match decode_shard_record(payload).map_err(|e| e.to_string())? {
                (Some(p), _) => {
                    if let Some(start) = from.get(&p.0).filter(|s| lsn >= **s) {
                        tally.add(format!("partition {}", p.0), *start, lsn);
                    }
                }
                (None, _) => {
                    return Err("a record without its partition in a partitioned log".into())
                }
            }
        }
        Wanted::Shard(from) if lsn >= *from => {
            decode_shard_record(payload).map_err(|e| e.to_string())?;
            tally.add("log".into(), *from, lsn);
        }
        _ => {}
    }
    Ok(())
}

fn damage_finding(
    name: &str,
    file: &str,
    d: &Damage,
    newest: bool,
    lowest: Option<u64>,
    next_segment: Option<u64>,
    findings: &mut Vec<Finding>,
) {
    let at = format!(
        "{name}/{file}: {} at byte {} ({} bytes)",
        d.why, d.at_byte, d.bytes
    );
    if newest && !d.is_corruption() {
        findings.push(Finding {
            severity: Severity::Harmless,
            what: format!(
                "{at}: a torn tail, never acknowledged; the restore reads up to it and cuts it off"
            ),
        });
        return;
    }
    // The highest LSN the dropped bytes may hold.
    let upto = d
        .lsns_after
        .map(|l| l.1)
        .or(next_segment.map(|n| n.saturating_sub(1)));
    let after = match d.lsns_after {
        Some((f, l)) => format!("{} valid records (LSN {f}..{l}) follow it", d.frames_after),
        None => "it is not the newest segment".to_string(),
    };
    if let (Some(upto), Some(lowest)) = (upto, lowest) {
        if upto < lowest {
            findings.push(Finding::note(format!(
                "{at}: damaged ({after}), but below where the restore replays from ({lowest})"
            )));
            return;
        }
    }
    findings.push(Finding::loss(format!(
        "{at}: corruption in the middle of the log ({after}); the restore stops reading the segment there and drops them"
    )));
}

#[cfg(test)]
mod tests;
