//! Secrets: generating and hashing integration keys and the management key,
//! and loading or creating the management key file in the data directory.

use std::fs;
use std::io::Write;
use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// File in the data directory that holds a generated management key.
pub const MANAGEMENT_KEY_FILE: &str = "management.key";

/// SHA-256 of a secret key (keys are stored hashed).
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Constant-time equality of two digests.
pub fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random secret: 32 random bytes, hex-encoded.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The management key: the configured one, else the one stored in the data
/// directory, else a new one written there with mode 0600. Returns the key and
/// whether it was generated now.
pub fn load_or_create_management_key(
    configured: Option<&str>,
    data_dir: &Path,
) -> std::io::Result<(String, bool)> {
    if let Some(key) = configured.filter(|k| !k.is_empty()) {
        return Ok((key.to_string(), false));
    }
    let path = data_dir.join(MANAGEMENT_KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(k) if !k.trim().is_empty() => return Ok((k.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = generate_secret();
    write_management_key(data_dir, &key)?;
    Ok((key, true))
}

/// Stores the management key in the data directory (mode 0600).
pub fn write_management_key(data_dir: &Path, key: &str) -> std::io::Result<()> {
    let path = data_dir.join(MANAGEMENT_KEY_FILE);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    file.write_all(key.as_bytes())?;
    file.sync_all()
}
