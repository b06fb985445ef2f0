//! Standard Webhooks signatures: a webhook's secret, the HMAC-SHA256 key it
//! stands for, and the `webhook-signature` value over `id.timestamp.body`.
//!
//! Owns: `Secret` (generated or given; never printed: its `Debug` shows
//! `***`) and `Secret::sign`. Pure: no I/O and no clock (the timestamp is a
//! parameter).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// A secret of this form carries its key as base64 after the prefix.
pub const SECRET_PREFIX: &str = "whsec_";
/// The longest secret accepted (characters).
pub const MAX_SECRET_LEN: usize = 256;
/// Random bytes in a generated key.
const GENERATED_KEY_BYTES: usize = 24;

/// Why a given secret is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret must be 1 to {MAX_SECRET_LEN} characters")]
    Length,
    #[error("a secret starting with whsec_ must continue with the key in standard base64")]
    NotBase64,
}

/// A webhook's secret: its text (shown once, stored in the webhooks file)
/// and the HMAC key it stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    text: String,
    key: Vec<u8>,
}

impl Secret {
    /// A new random secret: `whsec_` + base64 of 24 random bytes.
    pub fn generate() -> Secret {
        let mut key = vec![0u8; GENERATED_KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        Secret {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(&key)),
            key,
        }
    }

    /// A secret given by a client: 1 to 256 characters. After `whsec_` the
    /// key is the base64-decoded rest (as Standard Webhooks libraries read
    /// it); otherwise the key is the text's UTF-8 bytes.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        if text.is_empty() || text.chars().count() > MAX_SECRET_LEN {
            return Err(SecretError::Length);
        }
        let key = match text.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .ok()
                .filter(|k| !k.is_empty())
                .ok_or(SecretError::NotBase64)?,
            None => text.as_bytes().to_vec(),
        };
        Ok(Secret {
            text: text.to_string(),
            key,
        })
    }

    /// The secret's text, for the one answer that shows it and the file
    /// that keeps it. Nothing else should call this.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The `webhook-signature` header: `v1,` + base64 of
    /// HMAC-SHA256(key, "{id}.{timestamp}.{body}").
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries
    /// (standard-webhooks/standard-webhooks, libraries/rust `test_sign`).
    #[test]
    fn the_standard_webhooks_test_vector_signs_the_same() {
        let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            secret.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                br#"{"email":"test@example.com","username":"test_user"}"#,
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    /// A plain secret is its own key; the value was computed with Python's
    /// `hmac` module: base64(hmac.new(b"plain secret",
    /// b'1-2-0.1700000000.{"a":1}', sha256).digest()).
    #[test]
    fn a_plain_secret_is_used_as_its_bytes() {
        let secret = Secret::parse("plain secret").unwrap();
        assert_eq!(
            secret.sign("1-2-0", 1_700_000_000, br#"{"a":1}"#),
            "v1,0GJrajQgkyijp/nE/Ffhy3meSjFFZp/8Jvcqt/kfi5U="
        );
    }

    #[test]
    fn generated_secrets_are_prefixed_random_and_read_back() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_ne!(a, b);
        let text = a.expose().strip_prefix(SECRET_PREFIX).expect("prefix");
        assert_eq!(STANDARD.decode(text).unwrap().len(), GENERATED_KEY_BYTES);
        assert_eq!(Secret::parse(a.expose()).unwrap(), a);
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert_eq!(Secret::parse(""), Err(SecretError::Length));
        assert_eq!(Secret::parse(&"x".repeat(257)), Err(SecretError::Length));
        assert!(Secret::parse(&"é".repeat(256)).is_ok());
        assert_eq!(Secret::parse("whsec_"), Err(SecretError::NotBase64));
        assert_eq!(
            Secret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::parse("hunter2-hunter2").unwrap();
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
    }
}
