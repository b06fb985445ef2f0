//! A snapshot file appended one window at a time.
//!
//! Owns: the file's bytes on their way to the disk. Appends gather in an
//! aligned buffer of `WINDOW` bytes; each full window goes to the disk in
//! one write. Where the filesystem takes direct I/O (`O_DIRECT`), the write
//! goes from the buffer to the disk without the page cache: copying a
//! snapshot into newly allocated cache pages was the largest single cost of
//! writing one (about 30 % of a 10 M-pair snapshot's CPU time, in
//! `copy_folio_from_iter_atomic`), and the pages then pushed out the data a
//! running engine reads. Where it does not (tmpfs, other systems), the
//! window is written through the cache and its writeback started, and the
//! window before it is waited for, so at most two windows are dirty at a
//! time and a log's fdatasync never queues behind a whole snapshot.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Bytes handed to the disk at a time. Each window is one burst of writes
/// queued at the disk, and a log's fdatasync that comes while it is in
/// flight waits behind it: 1 MiB is about a millisecond of this disk's
/// time, 4 MiB put several milliseconds into the p99 of ingestion during
/// snapshots.
pub(super) const WINDOW: usize = 1 << 20;

/// Direct I/O wants buffers, offsets and lengths aligned to the device's
/// logical block: 4096 covers every common one.
const ALIGN: usize = 4096;

#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; ALIGN]);

/// The aligned buffer of one window.
struct Window {
    blocks: Vec<Block>,
    filled: usize,
}

impl Window {
    fn new() -> Window {
        Window {
            blocks: vec![Block([0; ALIGN]); WINDOW / ALIGN],
            filled: 0,
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `Block` is plain bytes with no padding (`repr(C)`, one
        // array), so the vector's blocks are `WINDOW` initialised bytes in
        // a row; the borrow of `self` keeps them alive and unshared.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.blocks.as_mut_ptr().cast::<u8>(),
                self.blocks.len() * ALIGN,
            )
        }
    }
}

/// How the windows reach the disk.
enum Mode {
    Direct,
    /// Through the page cache, written back as it goes: the window being
    /// written back starts at `previous`.
    Cached {
        previous: u64,
    },
}

pub(super) struct Output {
    file: File,
    window: Window,
    /// Where the window's first byte goes in the file.
    offset: u64,
    mode: Mode,
}

impl Output {
    /// Creates (or truncates) the file; with direct I/O unless `cached` or
    /// the filesystem refuses it.
    pub fn create(path: &Path, cached: bool) -> io::Result<Output> {
        let open = |direct: bool| {
            let mut options = OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(target_os = "linux")]
            if direct {
                use std::os::unix::fs::OpenOptionsExt;
                options.custom_flags(libc::O_DIRECT);
            }
            options.open(path)
        };
        let direct = if cfg!(target_os = "linux") && !cached {
            open(true).ok()
        } else {
            None
        };
        let (file, mode) = match direct {
            Some(file) => (file, Mode::Direct),
            None => (open(false)?, Mode::Cached { previous: 0 }),
        };
        Ok(Output {
            file,
            window: Window::new(),
            offset: 0,
            mode,
        })
    }

    /// Whether the windows bypass the page cache.
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        matches!(self.mode, Mode::Direct)
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.offset + self.window.filled as u64
    }

    pub fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let filled = self.window.filled;
            let n = (WINDOW - filled).min(bytes.len());
            self.window.bytes()[filled..filled + n].copy_from_slice(&bytes[..n]);
            self.window.filled += n;
            bytes = &bytes[n..];
            if self.window.filled == WINDOW {
                self.write_window(WINDOW)?;
                self.offset += WINDOW as u64;
                self.window.filled = 0;
            }
        }
        Ok(())
    }

    /// Writes the window's first `len` bytes (a multiple of `ALIGN`) at its
    /// offset.
    fn write_window(&mut self, len: usize) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let offset = self.offset;
        let written = self.file.write_all_at(&self.window.bytes()[..len], offset);
        match (&mut self.mode, written) {
            (Mode::Direct, Ok(())) => Ok(()),
            // Opened with direct I/O, refused at the first write (some
            // filesystems accept the flag and not the I/O): the rest goes
            // through the cache.
            (Mode::Direct, Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!("direct I/O refused for a snapshot; writing through the cache");
                self.file = self.reopen()?;
                self.mode = Mode::Cached { previous: offset };
                self.write_window(len)
            }
            (Mode::Cached { previous }, Ok(())) => {
                let end = offset + len as u64;
                start_writeback(&self.file, offset, end - offset);
                // Wait for the window before: its pages are clean afterwards.
                wait_writeback(&self.file, *previous, offset - *previous);
                *previous = offset;
                Ok(())
            }
            (_, Err(e)) => Err(e),
        }
    }

    /// The same file without direct I/O.
    fn reopen(&self) -> io::Result<File> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
            OpenOptions::new().write(true).open(path)
        }
        #[cfg(not(target_os = "linux"))]
        self.file.try_clone()
    }

    /// Writes what is left, trims the file to what was appended and
    /// returns it without direct I/O (for writes in place), not yet synced.
    pub fn finish(mut self) -> io::Result<File> {
        let len = self.len();
        let filled = self.window.filled;
        if filled > 0 {
            // Direct I/O writes whole blocks: the last one is padded, and
            // the padding cut off below.
            let padded = filled.div_ceil(ALIGN) * ALIGN;
            self.window.bytes()[filled..padded].fill(0);
            self.write_window(padded)?;
        }
        let file = match self.mode {
            Mode::Direct => self.reopen()?,
            Mode::Cached { .. } => self.file,
        };
        file.set_len(len)?;
        Ok(file)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends pieces of assorted sizes (some across windows), finishes
    /// and reads the file back.
    fn round_trip(cached: bool, total: usize) -> (bool, Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out");
        let mut out = Output::create(&path, cached).expect("create");
        let mut expected = Vec::with_capacity(total);
        let mut x: u32 = 7;
        let mut sizes = [1usize, 3, 4095, 4096, 4097, 70_000, WINDOW - 5, WINDOW, 11]
            .into_iter()
            .cycle();
        while expected.len() < total {
            let n = sizes.next().expect("cycle").min(total - expected.len());
            let piece: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            out.write_all(&piece).expect("write");
            expected.extend_from_slice(&piece);
            assert_eq!(out.len(), expected.len() as u64);
        }
        let direct = out.is_direct();
        let file = out.finish().expect("finish");
        file.sync_all().expect("sync");
        (direct, expected, std::fs::read(&path).expect("read"))
    }

    #[test]
    fn what_is_appended_is_the_file_exactly_direct_or_cached() {
        for cached in [false, true] {
            for total in [0, 1, 4096, WINDOW, WINDOW + 1, 3 * WINDOW + 12_345] {
                let (direct, expected, read) = round_trip(cached, total);
                if cached {
                    assert!(!direct);
                }
                assert_eq!(read.len(), expected.len(), "cached {cached}, {total} bytes");
                assert!(read == expected, "cached {cached}, {total} bytes differ");
            }
        }
    }

    #[test]
    fn the_finished_file_takes_writes_in_place() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out");
        let mut out = Output::create(&path, false).expect("create");
        out.write_all(&[1u8; 10_000]).expect("write");
        let file = out.finish().expect("finish");
        // Unaligned, which direct I/O would refuse.
        file.write_all_at(&[9, 9, 9], 17).expect("in place");
        file.sync_all().expect("sync");
        let read = std::fs::read(&path).expect("read");
        assert_eq!(read.len(), 10_000);
        assert_eq!(&read[15..22], &[1, 1, 9, 9, 9, 1, 1]);
    }
}
