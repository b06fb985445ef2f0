//! Writing a snapshot: sections appended to a temporary file as they come,
//! the header written last in place, then fsync, rename and an fsync of the
//! directory, so a crash leaves either the whole snapshot or none.
//!
//! The bytes reach the disk a window at a time (`output`), with direct I/O
//! where the filesystem takes it.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::output::Output;
use super::{file_name, HeaderV3, CURRENT_VERSION, MAGIC, PREFIX};
use crate::persist::codec::{self, Crc};
use crate::persist::model::{CatalogV2, ChunkV5};

/// Writes one snapshot.
pub struct SnapshotWriter {
    out: Option<Output>,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    header_len: usize,
    crc: Crc,
    body_len: u64,
    pairs: u64,
}

fn header(partitions: usize) -> HeaderV3 {
    HeaderV3 {
        created_secs: 0,
        created_nanos: 0,
        catalog_position: 0,
        positions: vec![0; partitions],
        pair_numbers: 0,
        pairs: 0,
        body_len: 0,
        body_crc: 0,
    }
}

impl SnapshotWriter {
    /// Starts snapshot `id` of an engine with `partitions` partitions.
    pub fn create(dir: &Path, id: u64, partitions: usize) -> io::Result<SnapshotWriter> {
        Self::create_with(dir, id, partitions, false)
    }

    /// As `create`; through the page cache if `cached` (for tests of the
    /// way filesystems without direct I/O are written).
    pub(super) fn create_with(
        dir: &Path,
        id: u64,
        partitions: usize,
        cached: bool,
    ) -> io::Result<SnapshotWriter> {
        let tmp = dir.join(format!(".snapshot-{id}.tmp"));
        let placeholder = codec::encode_fixed(&header(partitions)).map_err(io::Error::other)?;
        let mut out = Output::create(&tmp, cached)?;
        out.write_all(&MAGIC)?;
        out.write_all(&CURRENT_VERSION.to_le_bytes())?;
        out.write_all(&(placeholder.len() as u32).to_le_bytes())?;
        out.write_all(&placeholder)?;
        out.write_all(&[0u8; 4])?;
        Ok(SnapshotWriter {
            out: Some(out),
            tmp,
            path: dir.join(file_name(id)),
            dir: dir.to_path_buf(),
            header_len: placeholder.len(),
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

    /// Writes a chunk of one partition's pairs.
    pub fn write_chunk(&mut self, chunk: &ChunkV5) -> io::Result<()> {
        let bytes = codec::encode(chunk).map_err(io::Error::other)?;
        self.write_encoded_chunk(&bytes, chunk.pairs.len())
    }

    /// Writes a chunk already encoded as a `ChunkV5` of `pairs` pairs.
    pub fn write_encoded_chunk(&mut self, bytes: &[u8], pairs: usize) -> io::Result<()> {
        self.pairs += pairs as u64;
        self.section(bytes)
    }

    /// Seals the snapshot: header, fsync, rename, fsync of the directory.
    /// `positions` has one entry per partition. Returns the final path, its
    /// size and the number of pairs.
    pub fn finish(
        mut self,
        created: DateTime<Utc>,
        catalog_position: u64,
        positions: Vec<u64>,
        pair_numbers: u64,
    ) -> io::Result<(PathBuf, u64, u64)> {
        let header = HeaderV3 {
            created_secs: created.timestamp(),
            created_nanos: created.timestamp_subsec_nanos(),
            catalog_position,
            positions,
            pair_numbers,
            pairs: self.pairs,
            body_len: self.body_len,
            body_crc: self.crc.clone().finalize(),
        };
        let bytes = codec::encode_fixed(&header).map_err(io::Error::other)?;
        if bytes.len() != self.header_len {
            return Err(io::Error::other("snapshot header changed size"));
        }
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("snapshot already finished"))?;
        let file = out.finish()?;
        let mut sealed = bytes.clone();
        sealed.extend_from_slice(&codec::crc32(&bytes).to_le_bytes());
        file.write_all_at(&sealed, PREFIX as u64)?;
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
