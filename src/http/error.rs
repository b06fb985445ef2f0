//! The one HTTP error type and its code table: every 4xx/5xx body has
//! Talon.One's error shape, with a JSON pointer or a parameter name saying
//! where the problem is. A 500 never carries internals (they are logged).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::FieldError;
use crate::engine::EngineError;

/// Where an error points: into the body or at a query/path parameter.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    Pointer(String),
    Parameter(String),
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorItem {
    pub title: String,
    pub details: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub errors: Vec<ErrorItem>,
    pub retry_after: Option<u32>,
}

/// Talon.One's error shape: every 4xx and 5xx answer has this body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorResponse)]
pub struct ErrorBody<'a> {
    message: &'a str,
    errors: &'a [ErrorItem],
    #[serde(rename = "StatusCode")]
    status_code: u16,
}

fn title_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not found",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload too large",
        415 => "Unsupported media type",
        429 => "Too many requests",
        503 => "Service unavailable",
        _ => "Internal server error",
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>, source: Option<Source>) -> ApiError {
        let message = message.into();
        ApiError {
            status,
            errors: vec![ErrorItem {
                title: title_of(status).to_string(),
                details: message.clone(),
                source,
            }],
            message,
            retry_after: None,
        }
    }

    /// 400 about a body field.
    pub fn pointer(pointer: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            message,
            Some(Source::Pointer(pointer.into())),
        )
    }

    /// 400 about a query or path parameter.
    pub fn parameter(name: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            message,
            Some(Source::Parameter(name.into())),
        )
    }

    /// 400 listing several invalid fields.
    pub fn fields(errors: &[FieldError]) -> ApiError {
        let message = match errors {
            [one] => format!("{}: {}", field_name(&one.pointer), one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
            errors: errors
                .iter()
                .map(|e| ErrorItem {
                    title: "Invalid field".to_string(),
                    details: format!("{}: {}", field_name(&e.pointer), e.message),
                    source: Some(Source::Pointer(e.pointer.clone())),
                })
                .collect(),
            retry_after: None,
        }
    }

    /// Prefixes every pointer (for errors inside a batch element).
    pub fn nested(mut self, prefix: &str) -> ApiError {
        for item in &mut self.errors {
            if let Some(Source::Pointer(p)) = &mut item.source {
                *p = format!("{prefix}{p}");
            }
        }
        self
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or invalid credentials",
            Some(Source::Parameter("Authorization".into())),
        )
    }

    pub fn forbidden(what: &str, parameter: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this key may not access that {what}"),
            Some(Source::Parameter(parameter.into())),
        )
    }

    /// 410: what was asked for is no longer kept.
    pub fn gone(message: impl Into<String>, parameter: &str) -> ApiError {
        ApiError::new(
            StatusCode::GONE,
            message,
            Some(Source::Parameter(parameter.into())),
        )
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
            None,
        )
    }
}

/// The field name a pointer ends with, for messages.
fn field_name(pointer: &str) -> &str {
    pointer
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("body")
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(ErrorBody {
            message: &self.message,
            errors: &self.errors,
            status_code: self.status.as_u16(),
        })
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(errors) => ApiError::fields(&errors),
            EngineError::NotFound { what, parameter } => ApiError::new(
                StatusCode::NOT_FOUND,
                format!("{what} not found"),
                Some(Source::Parameter(parameter.into())),
            ),
            EngineError::Conflict { pointer, message } => ApiError::new(
                StatusCode::CONFLICT,
                message,
                Some(Source::Pointer(pointer.into())),
            ),
            EngineError::Overloaded => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "the engine is busy; retry after a second",
                    None,
                )
            },
            EngineError::Unavailable(why) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why, None)
            },
            EngineError::Internal(what) => {
                tracing::error!(error = what, "internal error");
                ApiError::internal()
            }
        }
    }
}
