//! Errors of the domain: bad input tied to the field it came from.
//!
//! Owns: `FieldError` (a JSON pointer plus a sentence) and `DomainError` (an
//! event that can never be applied, whatever the state). The HTTP layer maps
//! both to Talon.One's error shape; nothing here knows about HTTP.

use std::fmt;

/// One invalid field: where it is (a JSON pointer such as `/target`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

impl std::error::Error for FieldError {}

/// An increase that is malformed for this achievement (a 400, not a business
/// rejection): applying it would break an invariant of the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("delta must be greater than zero")]
    NonPositiveDelta,
    #[error("progress would exceed the largest supported amount")]
    Overflow,
    #[error("delta would complete more than {0} iterations in one event")]
    TooManyIterations(u64),
    #[error("this customer has used up the iterations one pair can hold")]
    TrackerIdsExhausted,
    #[error("timestamp is outside the supported range of dates")]
    DateOutOfRange,
}

impl DomainError {
    /// The request field the error is about.
    pub fn pointer(&self) -> &'static str {
        match self {
            DomainError::DateOutOfRange => "/timestamp",
            _ => "/delta",
        }
    }
}
