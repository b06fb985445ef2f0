//! The one place that knows the binary codec (bincode 2 through serde), so it
//! can be swapped without touching the formats built on it.
//!
//! Owns: the codec configuration, encode/decode with a size limit, and the
//! CRC-32 used by snapshots and the write-ahead log.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decoding never allocates more than this for one value (guards against
/// corrupt length prefixes).
pub const DECODE_LIMIT: usize = 512 * 1024 * 1024;

/// Errors of the codec.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encoding failed: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decoding failed: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Fixed-width integers: the encoded size of a value does not depend on its
/// numbers (used for headers rewritten in place).
fn fixed_config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_fixed_int_encoding()
        .with_limit::<DECODE_LIMIT>()
}

/// Bytes reserved before a value is encoded: a log record fits. bincode's
/// serde encoder starts from an empty vector and grows it 8, 16, 32, …
/// bytes at a time; for the log's records that was four or five
/// reallocations each, 3–4 % of the server's time under batch load.
const ENCODE_START: usize = 128;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_after(&[], value)
}

/// Encodes a value after some bytes (a version mark), in one buffer.
pub fn encode_after<T: Serialize>(prefix: &[u8], value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(prefix.len() + ENCODE_START);
    out.extend_from_slice(prefix);
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(CodecError::Encode)?;
    Ok(out)
}

/// Decodes a value that must fill `bytes` exactly.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(CodecError::Decode)?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

pub fn encode_fixed<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, fixed_config()).map_err(CodecError::Encode)
}

pub fn decode_fixed<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, fixed_config()).map_err(CodecError::Decode)?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

/// CRC-32 (IEEE) of some bytes.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// A running CRC-32.
pub type Crc = crc32fast::Hasher;
