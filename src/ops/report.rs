//! `verify`'s report: its parts, its verdict and exit code, and its text
//! form (the JSON form is the same struct through serde).
//!
//! Owns: `Report`, `Finding` and how they read.

use std::fmt;

use serde::Serialize;

use super::logs::LogCheck;
use super::verify::{FileCheck, ReportParts};
use crate::persist::snapshot::{Covered, Header};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Worth knowing; changes nothing.
    Note,
    /// Something a restore skips or cuts off without losing acknowledged
    /// data.
    Harmless,
    /// Data a restore would lose, or a restore that would fail.
    Loss,
}

/// One thing `verify` found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub what: String,
}

impl Finding {
    pub fn note(what: String) -> Finding {
        Finding {
            severity: Severity::Note,
            what,
        }
    }

    pub fn harmless(what: String) -> Finding {
        Finding {
            severity: Severity::Harmless,
            what,
        }
    }

    pub fn loss(what: String) -> Finding {
        Finding {
            severity: Severity::Loss,
            what,
        }
    }
}

/// What a restore does with a snapshot.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum SnapshotStatus {
    /// The newest that passes the checks: the restore loads it.
    Chosen,
    /// Newer than the chosen one and failing a check: skipped.
    Skipped,
    /// Older than the chosen one and valid: not read.
    Older,
    /// Older than the chosen one and damaged: not read either.
    DamagedOlder,
    /// Of the earlier layout in a migrated directory: deleted.
    Leftover,
}

/// One snapshot file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotCheck {
    pub id: u64,
    pub file: String,
    pub bytes: u64,
    pub status: SnapshotStatus,
    pub version: Option<u32>,
    pub created: Option<String>,
    pub pairs: Option<u64>,
    /// Partitions (or shard logs, before version 3) it covers.
    pub partitions: Option<usize>,
    pub catalog_position: Option<u64>,
    pub error: Option<String>,
}

impl SnapshotCheck {
    pub fn of(
        id: u64,
        file: String,
        bytes: u64,
        header: Option<&Header>,
        status: SnapshotStatus,
        error: Option<String>,
    ) -> SnapshotCheck {
        SnapshotCheck {
            id,
            file,
            bytes,
            status,
            version: header.map(|h| h.version),
            created: header.map(|h| h.created().to_rfc3339()),
            pairs: header.map(|h| h.pairs),
            partitions: header.map(|h| match &h.covered {
                Covered::Partitions(p) | Covered::Shards(p) => p.len(),
            }),
            catalog_position: header.map(|h| h.catalog_position),
            error,
        }
    }
}

/// Everything `verify` found, and its verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub data_dir: String,
    pub layout: String,
    pub partitions: u32,
    pub partitions_recorded: bool,
    pub shards: usize,
    /// Newest first.
    pub snapshots: Vec<SnapshotCheck>,
    /// The catalog's log, then each shard's.
    pub logs: Vec<LogCheck>,
    pub feed: LogCheck,
    pub files: Vec<FileCheck>,
    pub findings: Vec<Finding>,
    pub verdict: String,
    pub exit_code: u8,
}

impl Report {
    pub fn new(p: ReportParts) -> Report {
        let loss = p.findings.iter().any(|f| f.severity == Severity::Loss);
        let (verdict, exit_code) = if loss {
            (
                "DATA AT RISK: a restore would lose data or fail (see the findings marked LOSS)",
                1,
            )
        } else {
            ("OK: a restore loads everything that was acknowledged", 0)
        };
        Report {
            data_dir: p.data_dir,
            layout: p.layout,
            partitions: p.partitions,
            partitions_recorded: p.partitions_recorded,
            shards: p.shards,
            snapshots: p.snapshots,
            logs: p.logs,
            feed: p.feed,
            files: p.files,
            findings: p.findings,
            verdict: verdict.to_string(),
            exit_code,
        }
    }

    /// The snapshot a restore loads.
    pub fn chosen(&self) -> Option<&SnapshotCheck> {
        self.snapshots
            .iter()
            .find(|s| s.status == SnapshotStatus::Chosen)
    }
}

fn lsns(l: Option<(u64, u64)>) -> String {
    l.map_or_else(|| "-".into(), |(a, b)| format!("{a}..{b}"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data directory: {}", self.data_dir)?;
        let recorded = if self.partitions_recorded {
            "recorded"
        } else {
            "not recorded yet"
        };
        writeln!(
            f,
            "layout: {}; {} partitions ({recorded}); {} shard logs",
            self.layout, self.partitions, self.shards
        )?;
        writeln!(f, "\nsnapshots (newest first):")?;
        if self.snapshots.is_empty() {
            writeln!(f, "  none")?;
        }
        for s in &self.snapshots {
            let what = match s.status {
                SnapshotStatus::Chosen => "LOADED",
                SnapshotStatus::Skipped => "SKIPPED",
                SnapshotStatus::Older => "valid, older (not read)",
                SnapshotStatus::DamagedOlder => "DAMAGED, older (not read)",
                SnapshotStatus::Leftover => "leftover (deleted by a restore)",
            };
            write!(f, "  {}  {what}", s.file)?;
            if let (Some(v), Some(c), Some(pairs), Some(parts)) =
                (s.version, &s.created, s.pairs, s.partitions)
            {
                write!(
                    f,
                    ": version {v}, created {c}, {pairs} pairs, {parts} partitions"
                )?;
            }
            if let Some(e) = &s.error {
                write!(f, ": {e}")?;
            }
            writeln!(f)?;
        }
        match self.chosen() {
            Some(s) => writeln!(
                f,
                "\na restore loads {} ({} pairs), then replays:",
                s.file,
                s.pairs.unwrap_or(0)
            )?,
            None => writeln!(
                f,
                "\na restore loads no snapshot and replays the logs from their start:"
            )?,
        }
        let mut total = 0;
        for log in &self.logs {
            for r in log
                .replay
                .iter()
                .filter(|r| r.records > 0 || r.stream == "catalog")
            {
                total += r.records;
                let stream = if r.stream == "log" {
                    log.name.clone()
                } else {
                    r.stream.clone()
                };
                writeln!(
                    f,
                    "  {stream:<16} {} records from position {} (LSN {}){}",
                    r.records,
                    r.from,
                    lsns(r.lsns),
                    if r.stream.starts_with("partition") {
                        format!(" in {}", log.name)
                    } else {
                        String::new()
                    }
                )?;
            }
        }
        writeln!(f, "  {total} log records in all")?;
        writeln!(f, "\nlogs:")?;
        for log in self.logs.iter().chain(std::iter::once(&self.feed)) {
            let records: u64 = log.segments.iter().map(|s| s.records).sum();
            let first = log.segments.iter().find_map(|s| s.lsns).map(|l| l.0);
            let last = log.segments.iter().rev().find_map(|s| s.lsns).map(|l| l.1);
            writeln!(
                f,
                "  {:<10} {} segments, {records} records, LSN {}",
                log.name,
                log.segments.len(),
                lsns(first.zip(last))
            )?;
        }
        writeln!(f, "\nother files:")?;
        for file in &self.files {
            writeln!(f, "  {:<24} {}", file.file, file.state)?;
        }
        writeln!(f, "\nfindings:")?;
        if self.findings.is_empty() {
            writeln!(f, "  none")?;
        }
        let mut findings: Vec<&Finding> = self.findings.iter().collect();
        findings.sort_by_key(|x| std::cmp::Reverse(x.severity));
        for x in findings {
            let tag = match x.severity {
                Severity::Loss => "LOSS",
                Severity::Harmless => "harmless",
                Severity::Note => "note",
            };
            writeln!(f, "  [{tag}] {}", x.what)?;
        }
        writeln!(f, "\nverdict: {} (exit {})", self.verdict, self.exit_code)
    }
}
