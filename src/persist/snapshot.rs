//! Snapshot files: a versioned, checksummed binary image of the engine.
//!
//! Layout: `magic "ACHVSNAP" | version u32 LE | header length u32 LE |
//! header | header CRC-32 u32 LE | body`. The header (fixed-width encoding,
//! so it can be written last in place) holds the creation time, the log
//! positions the snapshot covers, counts, the body length and its CRC-32; its
//! own CRC makes a damaged log position an error rather than a silent skip. The body is a sequence of
//! length-prefixed sections: the catalog, then chunks of pairs.
//!
//! Writing is crash-safe: a temporary file in the same directory, fsync,
//! rename into place, fsync of the directory. Reading checks magic, version,
//! length and checksum before decoding anything; each format version keeps
//! its reader.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{self, Crc};
use super::model::{CatalogV1, CatalogV2, PairV1};

pub const MAGIC: [u8; 8] = *b"ACHVSNAP";
/// Version 1: the first format.
pub const VERSION_1: u32 = 1;
/// Version 2: achievements carry `allowedLatenessSeconds` (`CatalogV2`);
/// the header and the pairs are as in version 1.
pub const VERSION_2: u32 = 2;
/// The version this build writes.
pub const CURRENT_VERSION: u32 = VERSION_2;
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

/// Header of a version 1 snapshot.
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

impl HeaderV1 {
    pub fn created(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.created_secs, self.created_nanos).unwrap_or_default()
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

/// Writes one snapshot.
pub struct SnapshotWriter {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    header_len: usize,
    crc: Crc,
    body_len: u64,
    pairs: u64,
}

impl SnapshotWriter {
    /// Starts a snapshot with id `id` for `shards` shard logs.
    pub fn create(dir: &Path, id: u64, shards: usize) -> io::Result<SnapshotWriter> {
        let tmp = dir.join(format!(".snapshot-{id}.tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let placeholder = HeaderV1 {
            created_secs: 0,
            created_nanos: 0,
            catalog_lsn: 0,
            shard_lsns: vec![0; shards],
            pair_numbers: 0,
            pairs: 0,
            body_len: 0,
            body_crc: 0,
        };
        let header = codec::encode_fixed(&placeholder).map_err(io::Error::other)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&MAGIC)?;
        out.write_all(&CURRENT_VERSION.to_le_bytes())?;
        out.write_all(&(header.len() as u32).to_le_bytes())?;
        out.write_all(&header)?;
        out.write_all(&[0u8; 4])?;
        Ok(SnapshotWriter {
            out: Some(out),
            tmp,
            path: dir.join(file_name(id)),
            dir: dir.to_path_buf(),
            header_len: header.len(),
            crc: Crc::new(),
            body_len: 0,
            pairs: 0,
        })
    }

    fn section(&mut self, bytes: &[u8]) -> io::Result<()> {
        let len = (bytes.len() as u32).to_le_bytes();
        self.crc.update(&len);
        self.crc.update(bytes);
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io::Error::other("snapshot already finished"))?;
        out.write_all(&len)?;
        out.write_all(bytes)?;
        self.body_len += 4 + bytes.len() as u64;
        Ok(())
    }

    pub fn write_catalog(&mut self, catalog: &CatalogV2) -> io::Result<()> {
        let bytes = codec::encode(catalog).map_err(io::Error::other)?;
        self.section(&bytes)
    }

    /// Writes a chunk of pairs already encoded as `Vec<PairV1>`.
    pub fn write_chunk(&mut self, encoded: &[u8], pairs: usize) -> io::Result<()> {
        self.pairs += pairs as u64;
        self.section(encoded)
    }

    /// Seals the snapshot: header, fsync, rename, fsync of the directory.
    /// Returns the final path and size.
    pub fn finish(
        mut self,
        created: DateTime<Utc>,
        catalog_lsn: u64,
        shard_lsns: Vec<u64>,
        pair_numbers: u64,
    ) -> io::Result<(PathBuf, u64, u64)> {
        let header = HeaderV1 {
            created_secs: created.timestamp(),
            created_nanos: created.timestamp_subsec_nanos(),
            catalog_lsn,
            shard_lsns,
            pair_numbers,
            pairs: self.pairs,
            body_len: self.body_len,
            body_crc: self.crc.clone().finalize(),
        };
        let bytes = codec::encode_fixed(&header).map_err(io::Error::other)?;
        if bytes.len() != self.header_len {
            return Err(io::Error::other("snapshot header changed size"));
        }
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("snapshot already finished"))?;
        out.flush()?;
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(PREFIX as u64))?;
        file.write_all(&bytes)?;
        file.write_all(&codec::crc32(&bytes).to_le_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        File::open(&self.dir)?.sync_all()?;
        let size = (PREFIX + self.header_len + 4) as u64 + self.body_len;
        Ok((self.path.clone(), size, self.pairs))
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        // An abandoned write leaves no temporary file (a no-op after rename).
        let _ = fs::remove_file(&self.tmp);
    }
}

fn read_prefix(r: &mut impl Read) -> Result<(u32, Vec<u8>), SnapshotError> {
    let mut prefix = [0u8; PREFIX];
    r.read_exact(&mut prefix).map_err(eof_is_truncation)?;
    if prefix[..8] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    let header_len = u32::from_le_bytes([prefix[12], prefix[13], prefix[14], prefix[15]]) as usize;
    if version != VERSION_1 && version != VERSION_2 {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    if header_len > 1 << 20 {
        return Err(SnapshotError::Decode("header too long".into()));
    }
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header).map_err(eof_is_truncation)?;
    let mut crc = [0u8; 4];
    r.read_exact(&mut crc).map_err(eof_is_truncation)?;
    if u32::from_le_bytes(crc) != codec::crc32(&header) {
        return Err(SnapshotError::HeaderChecksum);
    }
    Ok((version, header))
}

fn eof_is_truncation(e: io::Error) -> SnapshotError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        SnapshotError::Truncated
    } else {
        SnapshotError::Io(e)
    }
}

/// Reads and checks a snapshot's header (not its body).
pub fn read_header(path: &Path) -> Result<HeaderV1, SnapshotError> {
    let mut r = BufReader::new(File::open(path)?);
    let (_, header) = read_prefix(&mut r)?;
    codec::decode_fixed(&header).map_err(|e| SnapshotError::Decode(e.to_string()))
}

/// Reads a whole snapshot after checking it: first a pass that verifies the
/// length and checksum of the body, then a pass that decodes it, giving each
/// chunk of pairs to `on_pairs`. Nothing is decoded from a file that fails
/// its checks.
pub fn read(
    path: &Path,
    mut on_pairs: impl FnMut(Vec<PairV1>) -> Result<(), SnapshotError>,
) -> Result<(HeaderV1, CatalogV2), SnapshotError> {
    let header = read_header(path)?;
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let (version, raw) = read_prefix(&mut r)?;
    let body_start = (PREFIX + raw.len() + 4) as u64;
    // A corrupt header may claim any length: no overflow, just truncation.
    let body_end = body_start
        .checked_add(header.body_len)
        .ok_or(SnapshotError::Truncated)?;
    if total < body_end {
        return Err(SnapshotError::Truncated);
    }
    if total > body_end {
        return Err(SnapshotError::Decode(
            "trailing bytes after the body".into(),
        ));
    }
    // Pass 1: checksum.
    let mut crc = Crc::new();
    let mut left = header.body_len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        r.read_exact(&mut buf[..n]).map_err(eof_is_truncation)?;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
    if crc.finalize() != header.body_crc {
        return Err(SnapshotError::Checksum);
    }
    // Pass 2: decode.
    r.seek(SeekFrom::Start(body_start))?;
    let mut left = header.body_len;
    let mut next_section = |r: &mut BufReader<File>| -> Result<Option<Vec<u8>>, SnapshotError> {
        if left == 0 {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        r.read_exact(&mut len).map_err(eof_is_truncation)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_SECTION || (len as u64 + 4) > left {
            return Err(SnapshotError::Decode("section length out of range".into()));
        }
        let mut bytes = vec![0u8; len];
        r.read_exact(&mut bytes).map_err(eof_is_truncation)?;
        left -= 4 + len as u64;
        Ok(Some(bytes))
    };
    let catalog_bytes = next_section(&mut r)?
        .ok_or_else(|| SnapshotError::Decode("missing catalog section".into()))?;
    let decode_err = |e: codec::CodecError| SnapshotError::Decode(e.to_string());
    // The one section whose type differs between versions.
    let catalog: CatalogV2 = if version == VERSION_1 {
        codec::decode::<CatalogV1>(&catalog_bytes)
            .map_err(decode_err)?
            .into()
    } else {
        codec::decode(&catalog_bytes).map_err(decode_err)?
    };
    let mut pairs = 0u64;
    while let Some(bytes) = next_section(&mut r)? {
        let chunk: Vec<PairV1> =
            codec::decode(&bytes).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        pairs += chunk.len() as u64;
        on_pairs(chunk)?;
    }
    if pairs != header.pairs {
        return Err(SnapshotError::Decode(format!(
            "header counts {} pairs, body holds {pairs}",
            header.pairs
        )));
    }
    Ok((header, catalog))
}

#[cfg(test)]
mod tests;
