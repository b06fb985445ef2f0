//! Reading a snapshot of any supported version: the prefix and header are
//! checked first, then the whole body's length and checksum, and only then
//! is anything decoded, chunk by chunk.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::{
    Header, HeaderV1, HeaderV3, SnapshotError, MAGIC, MAX_SECTION, PREFIX, VERSION_1, VERSION_3,
    VERSION_4,
};
use crate::persist::codec::{self, Crc};
use crate::persist::model::{CatalogV1, CatalogV2, ChunkV3, ChunkV5, PairV1, PairV5};

fn read_prefix(r: &mut impl Read) -> Result<(u32, Vec<u8>), SnapshotError> {
    let mut prefix = [0u8; PREFIX];
    r.read_exact(&mut prefix).map_err(eof_is_truncation)?;
    if prefix[..8] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    let header_len = u32::from_le_bytes([prefix[12], prefix[13], prefix[14], prefix[15]]) as usize;
    if !(VERSION_1..=VERSION_4).contains(&version) {
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

fn decode_err(e: codec::CodecError) -> SnapshotError {
    SnapshotError::Decode(e.to_string())
}

fn decode_header(version: u32, bytes: &[u8]) -> Result<Header, SnapshotError> {
    let mut header: Header = if version >= VERSION_3 {
        codec::decode_fixed::<HeaderV3>(bytes)
            .map_err(decode_err)?
            .into()
    } else {
        codec::decode_fixed::<HeaderV1>(bytes)
            .map_err(decode_err)?
            .into()
    };
    header.version = version;
    Ok(header)
}

/// Reads and checks a snapshot's header (not its body).
pub fn read_header(path: &Path) -> Result<Header, SnapshotError> {
    let mut r = BufReader::new(File::open(path)?);
    let (version, header) = read_prefix(&mut r)?;
    decode_header(version, &header)
}

/// Pairs of model version 1 as version 5.
fn upgrade(pairs: Vec<PairV1>) -> Result<Vec<PairV5>, SnapshotError> {
    pairs
        .into_iter()
        .map(PairV5::try_from)
        .collect::<Result<_, _>>()
        .map_err(|e| SnapshotError::Decode(e.to_string()))
}

/// A snapshot that passed every check but the decoding of its pairs: its
/// prefix, header, lengths and body checksum, and its catalog section.
#[derive(Debug)]
pub struct Checked {
    pub header: Header,
    pub catalog: CatalogV2,
    /// Where the pair sections start, and how many bytes they take.
    pairs_at: u64,
    pairs_len: u64,
}

/// Checks a snapshot without decoding its pairs: the prefix and header,
/// the body's length and checksum (one pass over the file), then the
/// catalog section. Nothing of a file that fails is used.
pub fn check(path: &Path) -> Result<Checked, SnapshotError> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let (version, raw) = read_prefix(&mut r)?;
    let header = decode_header(version, &raw)?;
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
    r.seek(SeekFrom::Start(body_start))?;
    let mut sections = Sections {
        r,
        left: header.body_len,
    };
    let catalog_bytes = sections
        .next()?
        .ok_or_else(|| SnapshotError::Decode("missing catalog section".into()))?;
    // The catalog's type differs between versions 1 and 2.
    let catalog: CatalogV2 = if version == VERSION_1 {
        codec::decode::<CatalogV1>(&catalog_bytes)
            .map_err(decode_err)?
            .into()
    } else {
        codec::decode(&catalog_bytes).map_err(decode_err)?
    };
    Ok(Checked {
        pairs_at: body_end - sections.left,
        pairs_len: sections.left,
        header,
        catalog,
    })
}

/// The length-prefixed sections of a body.
struct Sections {
    r: BufReader<File>,
    left: u64,
}

impl Sections {
    fn next(&mut self) -> Result<Option<Vec<u8>>, SnapshotError> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        self.r.read_exact(&mut len).map_err(eof_is_truncation)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_SECTION || (len as u64 + 4) > self.left {
            return Err(SnapshotError::Decode("section length out of range".into()));
        }
        let mut bytes = vec![0u8; len];
        self.r.read_exact(&mut bytes).map_err(eof_is_truncation)?;
        self.left -= 4 + len as u64;
        Ok(Some(bytes))
    }
}

/// Decodes the pairs of a checked snapshot, giving each chunk to `on_pairs`
/// with its partition (`None` before version 3) as it is decoded, so that a
/// restore loads one chunk while the next is read. The file was checked
/// (`check`); an error here means it changed since, or was written wrong.
pub fn read_pairs(
    path: &Path,
    checked: &Checked,
    mut on_pairs: impl FnMut(Option<u32>, Vec<PairV5>) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let header = &checked.header;
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(checked.pairs_at))?;
    let mut sections = Sections {
        r: BufReader::with_capacity(1 << 20, file),
        left: checked.pairs_len,
    };
    let partitions = match &header.covered {
        super::Covered::Partitions(p) => p.len(),
        super::Covered::Shards(_) => 0,
    };
    let mut pairs = 0u64;
    while let Some(bytes) = sections.next()? {
        let (partition, chunk) = match header.version {
            VERSION_4 => {
                let chunk: ChunkV5 = codec::decode(&bytes).map_err(decode_err)?;
                (Some(chunk.partition), chunk.pairs)
            }
            VERSION_3 => {
                let chunk: ChunkV3 = codec::decode(&bytes).map_err(decode_err)?;
                (Some(chunk.partition), upgrade(chunk.pairs)?)
            }
            _ => (None, upgrade(codec::decode(&bytes).map_err(decode_err)?)?),
        };
        if let Some(p) = partition.filter(|p| *p as usize >= partitions) {
            return Err(SnapshotError::Decode(format!(
                "a chunk of partition {p} in a snapshot of {partitions}"
            )));
        }
        pairs += chunk.len() as u64;
        on_pairs(partition, chunk)?;
    }
    if pairs != header.pairs {
        return Err(SnapshotError::Decode(format!(
            "header counts {} pairs, body holds {pairs}",
            header.pairs
        )));
    }
    Ok(())
}

/// Reads a whole snapshot after checking it (`check`, then `read_pairs`):
/// nothing is decoded from a file that fails its checks.
pub fn read(
    path: &Path,
    on_pairs: impl FnMut(Option<u32>, Vec<PairV5>) -> Result<(), SnapshotError>,
) -> Result<(Header, CatalogV2), SnapshotError> {
    let checked = check(path)?;
    read_pairs(path, &checked, on_pairs)?;
    Ok((checked.header, checked.catalog))
}
