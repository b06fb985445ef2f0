//! Snapshot files: a versioned, checksummed binary image of the engine.
//!
//! Layout: `magic "ACHVSNAP" | version u32 LE | header length u32 LE |
//! header | header CRC-32 u32 LE | body`. The header (fixed-width encoding,
//! so it can be written last in place) holds the creation time, the log
//! positions the snapshot covers, counts, the body length and its CRC-32; its
//! own CRC makes a damaged log position an error rather than a silent skip.
//! The body is a sequence of length-prefixed sections: the catalog, then
//! chunks of pairs.
//!
//! Versions: 1 and 2 cover shard logs (a position per shard) and hold chunks
//! of pairs; 2 carries `allowedLatenessSeconds` in the catalog. 3 covers
//! partitions (a position per partition) and each chunk names its partition.
//! 4 is 3 with pairs of model version 5 (remembered event ids as keys).
//! This build writes 4 and reads all four.
//!
//! Owns: the format, the files of a directory (names, listing, retention,
//! leftovers) and the common header. Writing is in `writer` (crash-safe:
//! temporary file, fsync, rename, fsync of the directory), reading in
//! `reader` (checks magic, version, length and checksum before decoding).

mod output;
mod reader;
mod writer;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use reader::{check, read, read_header, read_pairs, Checked};
pub use writer::SnapshotWriter;

pub const MAGIC: [u8; 8] = *b"ACHVSNAP";
/// Version 1: the first format.
pub const VERSION_1: u32 = 1;
/// Version 2: achievements carry `allowedLatenessSeconds` (`CatalogV2`).
pub const VERSION_2: u32 = 2;
/// Version 3: positions and chunks by partition.
pub const VERSION_3: u32 = 3;
/// Version 4: pairs remember event ids as keys (`ChunkV5`).
pub const VERSION_4: u32 = 4;
/// The version this build writes.
pub const CURRENT_VERSION: u32 = VERSION_4;
const PREFIX: usize = 16;
/// Largest section (catalog or chunk of pairs).
const MAX_SECTION: usize = 256 * 1024 * 1024;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("not a snapshot file (bad magic number)")]
    BadMagic,
    #[error("snapshot format version {0} is not supported by this build")]
    UnsupportedVersion(u32),
    #[error("snapshot is truncated")]
    Truncated,
    #[error("snapshot checksum does not match its body")]
    Checksum,
    #[error("snapshot header checksum does not match the header")]
    HeaderChecksum,
    #[error("snapshot cannot be decoded: {0}")]
    Decode(String),
}

/// Header of a version 1 or 2 snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeaderV1 {
    pub created_secs: i64,
    pub created_nanos: u32,
    /// Catalog log records with LSN below this are in the snapshot.
    pub catalog_lsn: u64,
    /// Per shard log: records below this LSN are in the snapshot; records
    /// from it on may be, which each pair's `last_lsn` tells.
    pub shard_lsns: Vec<u64>,
    /// The highest pair number handed out.
    pub pair_numbers: u64,
    pub pairs: u64,
    pub body_len: u64,
    pub body_crc: u32,
}

/// Header of a version 3 snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeaderV3 {
    pub created_secs: i64,
    pub created_nanos: u32,
    /// Catalog records below this position are in the snapshot.
    pub catalog_position: u64,
    /// Per partition: records below this position are in the snapshot;
    /// records from it on may be, which each pair's last position tells.
    pub positions: Vec<u64>,
    /// The highest pair number handed out.
    pub pair_numbers: u64,
    pub pairs: u64,
    pub body_len: u64,
    pub body_crc: u32,
}

/// What a snapshot's positions cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Covered {
    /// Versions 1 and 2: a position per shard log.
    Shards(Vec<u64>),
    /// Version 3: a position per partition.
    Partitions(Vec<u64>),
}

/// A snapshot's header, whatever its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub created_secs: i64,
    pub created_nanos: u32,
    pub catalog_position: u64,
    pub covered: Covered,
    pub pair_numbers: u64,
    pub pairs: u64,
    pub body_len: u64,
    pub body_crc: u32,
}

impl Header {
    pub fn created(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.created_secs, self.created_nanos).unwrap_or_default()
    }
}

impl From<HeaderV1> for Header {
    fn from(h: HeaderV1) -> Self {
        Header {
            version: VERSION_1,
            created_secs: h.created_secs,
            created_nanos: h.created_nanos,
            catalog_position: h.catalog_lsn,
            covered: Covered::Shards(h.shard_lsns),
            pair_numbers: h.pair_numbers,
            pairs: h.pairs,
            body_len: h.body_len,
            body_crc: h.body_crc,
        }
    }
}

impl From<HeaderV3> for Header {
    fn from(h: HeaderV3) -> Self {
        Header {
            version: VERSION_3,
            created_secs: h.created_secs,
            created_nanos: h.created_nanos,
            catalog_position: h.catalog_position,
            covered: Covered::Partitions(h.positions),
            pair_numbers: h.pair_numbers,
            pairs: h.pairs,
            body_len: h.body_len,
            body_crc: h.body_crc,
        }
    }
}

/// A snapshot on disk.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub id: u64,
    pub path: PathBuf,
}

fn file_name(id: u64) -> String {
    format!("snapshot-{id:012}.snap")
}

/// The snapshots in a directory, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<SnapshotFile>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("snapshot-"))
            .and_then(|n| n.strip_suffix(".snap"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(id) = id {
            out.push(SnapshotFile { id, path });
        }
    }
    out.sort_by_key(|s| s.id);
    Ok(out)
}

/// Deletes leftovers of interrupted writes.
pub fn remove_temporaries(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".snapshot-") && n.ends_with(".tmp"))
        {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Keeps the newest `keep` snapshots; returns the ones kept.
pub fn retain_newest(dir: &Path, keep: usize) -> io::Result<Vec<SnapshotFile>> {
    let mut all = list(dir)?;
    let cut = all.len().saturating_sub(keep.max(1));
    for old in all.drain(..cut) {
        fs::remove_file(&old.path)?;
    }
    Ok(all)
}

#[cfg(test)]
mod tests;
