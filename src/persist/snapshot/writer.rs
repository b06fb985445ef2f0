//! Writing a snapshot: sections appended to a temporary file as they come,
//! the header written last in place, then fsync, rename and an fsync of the
//! directory, so a crash leaves either the whole snapshot or none.
//!
//! The file is written back as it grows (`Writeback`): every `WINDOW` bytes
//! the kernel is told to start writing the new window and the writer waits
//! for the one before, so at most two windows are dirty at a time. Without
//! it a snapshot left ~100 MB dirty for the final fsync, and the logs'
//! fdatasyncs queued behind it (p99 of ingestion 11× while a snapshot of a
//! million pairs was written).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{file_name, HeaderV3, CURRENT_VERSION, MAGIC, PREFIX};
use crate::persist::codec::{self, Crc};
use crate::persist::model::{CatalogV2, ChunkV5};

/// Bytes written back at a time. Each window is one burst of writes queued
/// at the disk, and a log's fdatasync that comes while it is in flight
/// waits behind it: 1 MiB is about a millisecond of this disk's time, 4 MiB
/// put several milliseconds into the p99 of ingestion during snapshots.
pub(super) const WINDOW: u64 = 1 << 20;

/// Incremental writeback of a file being appended to.
#[derive(Default)]
struct Writeback {
    /// Where the window being written back starts, and where the next one
    /// does.
    previous: u64,
    next: u64,
}

impl Writeback {
    /// After the file reached `len` bytes (all handed to the kernel).
    fn advance(&mut self, file: &File, len: u64) {
        if len < self.next + WINDOW {
            return;
        }
        start_writeback(file, self.next, len - self.next);
        // Wait for the window before: its pages are clean afterwards.
        wait_writeback(file, self.previous, self.next - self.previous);
        self.previous = self.next;
        self.next = len;
    }
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor and a range; the call only schedules I/O.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(target_os = "linux")]
fn wait_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return;
    }
    // SAFETY: as above; it waits for the range's I/O.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
    }
}

// Elsewhere the final fsync does all of it.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}
#[cfg(not(target_os = "linux"))]
fn wait_writeback(_: &File, _: u64, _: u64) {}

/// Writes one snapshot.
pub struct SnapshotWriter {
    out: Option<BufWriter<File>>,
    writeback: Writeback,
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
        let tmp = dir.join(format!(".snapshot-{id}.tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let placeholder = codec::encode_fixed(&header(partitions)).map_err(io::Error::other)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&MAGIC)?;
        out.write_all(&CURRENT_VERSION.to_le_bytes())?;
        out.write_all(&(placeholder.len() as u32).to_le_bytes())?;
        out.write_all(&placeholder)?;
        out.write_all(&[0u8; 4])?;
        Ok(SnapshotWriter {
            out: Some(out),
            writeback: Writeback::default(),
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
        // What the buffer holds is not in the file yet: counted from what
        // it has handed over.
        let handed =
            (PREFIX + self.header_len + 4) as u64 + self.body_len - out.buffer().len() as u64;
        self.writeback.advance(out.get_ref(), handed);
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
