//! `verify`: what a restore of a data directory would load, and whether it
//! would lose anything, without changing the directory.
//!
//! Owns: the walk over the directory's files in the order a restore takes
//! them — the layout (`store::layout`), the snapshots newest first through
//! the restore's own check (`store::check_snapshot_head` with the restore's
//! `usable` test), the replay positions of the chosen one
//! (`store::replay_start`), then each log (`logs`) and the other state files.
//! The rules deciding the verdict are listed in `ops`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use super::logs::{self, LogCheck, Wanted};
use super::report::{Finding, Report, SnapshotCheck, SnapshotStatus};
use super::OpsError;
use crate::domain::CustomerId;
use crate::engine::keys::MANAGEMENT_KEY_FILE;
use crate::engine::partition::DEFAULT_PARTITIONS;
use crate::feed::webhooks::WEBHOOKS_DIR;
use crate::http::server::FEED_DIR;
use crate::persist::snapshot::{self, Header, SnapshotError};
use crate::persist::store::{self, Layout};

/// Checks a data directory. `partitions` is the `--partitions` the server
/// would be started with (it only matters for a directory that does not
/// record its count).
pub fn verify(dir: &Path, partitions: Option<u32>) -> Result<Report, OpsError> {
    if !dir.is_dir() {
        return Err(OpsError::NoDir(dir.to_path_buf()));
    }
    let mut findings = Vec::new();
    let stored = store::stored_partitions(dir).unwrap_or_else(|e| {
        findings.push(Finding::loss(format!("a restore refuses to start: {e}")));
        None
    });
    let count = stored.or(partitions).unwrap_or(DEFAULT_PARTITIONS);
    let layout = store::layout(dir, partitions.unwrap_or(count)).unwrap_or_else(|e| {
        findings.push(Finding::loss(format!("a restore refuses to start: {e}")));
        Layout {
            stored,
            legacy: false,
        }
    });
    let root = if layout.legacy {
        store::legacy_dir(dir)
    } else {
        store::log_dir(dir)
    };
    let shards = store::shard_logs(&root).unwrap_or(0);
    let (snapshots, chosen) = check_snapshots(dir, &layout, count as usize, &mut findings)?;
    let header = chosen.as_ref();
    let (catalog_from, wanted): (u64, Vec<Wanted>) = if layout.legacy {
        let (catalog, from) = store::legacy_replay_start(header);
        let wanted = (0..shards)
            .map(|i| Wanted::Shard(from.get(i).copied().unwrap_or(0)))
            .collect();
        (catalog, wanted)
    } else {
        let (catalog, positions) = store::replay_start(header, count as usize);
        let wanted = (0..shards)
            .map(|i| {
                let mine = positions
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| p % shards == i);
                Wanted::Partitions(
                    mine.map(|(p, pos)| (p as u32, *pos))
                        .collect::<BTreeMap<_, _>>(),
                )
            })
            .collect();
        (catalog, wanted)
    };
    let mut logs = vec![logs::check(
        "catalog",
        &root.join("catalog"),
        &Wanted::Catalog(catalog_from),
        &mut findings,
    )];
    for (i, wanted) in wanted.iter().enumerate() {
        let name = format!("shard-{i:03}");
        logs.push(logs::check(
            &name,
            &store::shard_dir(&root, i),
            wanted,
            &mut findings,
        ));
    }
    let feed = logs::check(
        "feed",
        &dir.join(FEED_DIR),
        &Wanted::FramesOnly,
        &mut findings,
    );
    if snapshots.is_empty() && logs.iter().all(|l| l.segments.is_empty()) {
        findings.push(Finding::note(
            "no snapshot and no log: a restore starts empty (is this the right directory?)".into(),
        ));
    }
    let files = other_files(dir, &layout, &mut findings);
    Ok(Report::new(ReportParts {
        data_dir: dir.display().to_string(),
        layout: if layout.legacy {
            "earlier (logs by shard under wal/); a restore migrates it".into()
        } else {
            "partitioned".into()
        },
        partitions: count,
        partitions_recorded: stored.is_some(),
        shards,
        snapshots,
        logs,
        feed,
        files,
        findings,
    }))
}

/// The parts of a report, before its verdict.
pub struct ReportParts {
    pub data_dir: String,
    pub layout: String,
    pub partitions: u32,
    pub partitions_recorded: bool,
    pub shards: usize,
    pub snapshots: Vec<SnapshotCheck>,
    pub logs: Vec<LogCheck>,
    pub feed: LogCheck,
    pub files: Vec<FileCheck>,
    pub findings: Vec<Finding>,
}

/// Every snapshot, newest first, checked as the restore checks them; the
/// header of the one it would load.
fn check_snapshots(
    dir: &Path,
    layout: &Layout,
    partitions: usize,
    findings: &mut Vec<Finding>,
) -> Result<(Vec<SnapshotCheck>, Option<Header>), OpsError> {
    let files = snapshot::list(dir).map_err(|e| OpsError::Io(dir.to_path_buf(), e))?;
    let partitioned = store::usable_partitioned(partitions);
    let usable = |h: &Header| {
        if layout.legacy {
            store::usable_legacy(h)
        } else {
            partitioned(h)
        }
    };
    let mut out = Vec::new();
    let mut chosen: Option<(u64, Header)> = None;
    for file in files.iter().rev() {
        let name = file
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let bytes = fs::metadata(&file.path).map_or(0, |m| m.len());
        let header = snapshot::read_header(&file.path).ok();
        // A directory marked partitioned: a restore deletes snapshots of the
        // earlier layout (left by a migration) before it looks.
        if layout.stored.is_some()
            && header
                .as_ref()
                .is_some_and(|h| h.version < snapshot::VERSION_3)
        {
            findings.push(Finding::note(format!(
                "{name}: of the earlier layout, left by a finished migration; a restore deletes it"
            )));
            out.push(SnapshotCheck::of(
                file.id,
                name,
                bytes,
                header.as_ref(),
                SnapshotStatus::Leftover,
                None,
            ));
            continue;
        }
        // As a restore: the checks without the pairs choose the snapshot;
        // its pairs are decoded while it is loaded, and a failure then
        // stops the restore.
        let mut unloadable = None;
        let head = store::check_snapshot_head(&file.path, &usable);
        if let Ok((checked, _)) = &head {
            let read = snapshot::read_pairs(&file.path, checked, |_, pairs| {
                for pair in pairs {
                    let why = CustomerId::parse(&pair.customer, "/integrationId")
                        .err()
                        .map(|e| e.message.to_string())
                        .or_else(|| pair.tracker.to_parts().err().map(|e| e.to_string()));
                    if let Some(why) = why.filter(|_| unloadable.is_none()) {
                        unloadable = Some(format!("pair of customer {:?}: {why}", pair.customer));
                    }
                }
                Ok(())
            });
            if let Err(e) = read {
                unloadable.get_or_insert(format!("pair section that cannot be decoded ({e})"));
            }
        }
        let result = head.map(|(checked, _)| checked.header);
        let status = match (&result, &chosen) {
            (Ok(_), None) => SnapshotStatus::Chosen,
            (Ok(_), Some(_)) => SnapshotStatus::Older,
            (Err(_), None) => SnapshotStatus::Skipped,
            (Err(_), Some(_)) => SnapshotStatus::DamagedOlder,
        };
        let error = result.as_ref().err().map(|why| explain(&file.path, why));
        match (&status, &error) {
            (SnapshotStatus::Skipped, Some(why)) => findings.push(Finding::harmless(format!(
                "{name} is skipped by a restore: {why}"
            ))),
            (SnapshotStatus::DamagedOlder, Some(why)) => findings.push(Finding::note(format!(
                "{name} (older than the one a restore loads) is damaged: {why}"
            ))),
            _ => {}
        }
        if let (SnapshotStatus::Chosen, Some(why)) = (&status, &unloadable) {
            findings.push(Finding::loss(format!(
                "{name}: a restore loads it but stops with an error on a {why}"
            )));
        }
        out.push(SnapshotCheck::of(
            file.id,
            name,
            bytes,
            header.as_ref(),
            status,
            error,
        ));
        if let (Ok(h), None) = (result, &chosen) {
            chosen = Some((file.id, h));
        }
    }
    if chosen.is_none() && !out.is_empty() {
        findings.push(Finding::harmless(
            "no snapshot can be loaded: a restore rebuilds everything from the logs alone"
                .to_string(),
        ));
    }
    Ok((out, chosen.map(|c| c.1)))
}

/// A snapshot error with where it is, when the file says.
fn explain(path: &Path, why: &str) -> String {
    let checksum = SnapshotError::Checksum.to_string();
    if why != checksum {
        return why.to_string();
    }
    let Ok(bytes) = fs::read(path) else {
        return why.to_string();
    };
    let header_len = bytes
        .get(12..16)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b: [u8; 4]| u32::from_le_bytes(b) as usize);
    let start = 16 + header_len + 4;
    format!(
        "{why} (the damage is somewhere in body bytes {start}..{})",
        bytes.len()
    )
}

/// A state file other than snapshots and logs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCheck {
    pub file: String,
    pub state: String,
}

fn other_files(dir: &Path, layout: &Layout, findings: &mut Vec<Finding>) -> Vec<FileCheck> {
    let mut out = Vec::new();
    let mut add = |file: &str, state: String| {
        out.push(FileCheck {
            file: file.to_string(),
            state,
        })
    };
    match layout.stored {
        Some(n) => add(store::PARTITIONS_FILE, format!("{n} partitions")),
        None => add(
            store::PARTITIONS_FILE,
            "absent: the count comes from --partitions (default 256), and a restore writes the file".into(),
        ),
    }
    let key = dir.join(MANAGEMENT_KEY_FILE);
    match fs::read_to_string(&key) {
        Ok(k) if !k.trim().is_empty() => add(MANAGEMENT_KEY_FILE, "present".into()),
        Ok(_) => add(
            MANAGEMENT_KEY_FILE,
            "empty: the server generates a new key unless one is given".into(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => add(
            MANAGEMENT_KEY_FILE,
            "absent: the server generates one unless one is given".into(),
        ),
        Err(e) => {
            findings.push(Finding::loss(format!(
                "{MANAGEMENT_KEY_FILE}: cannot be read: {e}"
            )));
            add(MANAGEMENT_KEY_FILE, format!("unreadable: {e}"));
        }
    }
    for file in ["webhooks.json", "positions.json"] {
        let path = dir.join(WEBHOOKS_DIR).join(file);
        let name = format!("{WEBHOOKS_DIR}/{file}");
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(_) => add(&name, "valid JSON".into()),
                Err(e) => {
                    findings.push(Finding::loss(format!(
                        "{name}: not valid JSON ({e}): the server cannot load it"
                    )));
                    add(&name, format!("invalid: {e}"));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                findings.push(Finding::loss(format!("{name}: cannot be read: {e}")));
                add(&name, format!("unreadable: {e}"));
            }
        }
    }
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(".snapshot-") && name.ends_with(".tmp") {
            findings.push(Finding::note(format!(
                "{name}: left by an interrupted snapshot; a restore deletes it"
            )));
        }
    }
    if layout.stored.is_some() && store::legacy_dir(dir).exists() {
        findings.push(Finding::note(
            "wal/: logs of the earlier layout, left by a finished migration; a restore deletes them".into(),
        ));
    }
    out
}
