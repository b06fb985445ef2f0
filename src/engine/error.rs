//! The engine's error type: what can go wrong when the HTTP layer asks the
//! engine for something. Mapped to HTTP statuses in one place (`http::error`).

use crate::domain::{DomainError, FieldError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// Bad input, with the fields it concerns (400).
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// An unknown entity (404); `parameter` names the path/query parameter.
    #[error("{what} not found")]
    NotFound {
        what: &'static str,
        parameter: &'static str,
    },
    /// A unique name already taken (409).
    #[error("{message}")]
    Conflict {
        pointer: &'static str,
        message: String,
    },
    /// A shard's queue is full (429); retry later.
    #[error("the engine is busy; retry later")]
    Overloaded,
    /// The engine cannot take the request now (503): not ready, or shutting down.
    #[error("{0}")]
    Unavailable(&'static str),
    /// A bug or a lost actor (500); details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl EngineError {
    pub fn not_found(what: &'static str, parameter: &'static str) -> EngineError {
        EngineError::NotFound { what, parameter }
    }

    pub fn field(pointer: &str, message: impl Into<String>) -> EngineError {
        EngineError::Invalid(vec![FieldError::new(pointer, message)])
    }
}

impl From<DomainError> for EngineError {
    fn from(e: DomainError) -> Self {
        EngineError::field(e.pointer(), e.to_string())
    }
}
