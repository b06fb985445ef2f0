//! Authentication extractors: `ManagementKey-v1 <key>` for the management
//! API, `ApiKey-v1 <key>` (one application's integration key) for the
//! integration API. Every failure gets the same 401, with no hint which part
//! was wrong; keys are compared by constant-time digest comparison and never
//! logged.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::error::ApiError;
use super::AppState;
use crate::domain::ApplicationId;
use crate::engine::keys::{digests_equal, hash_key};
use crate::engine::EngineError;

fn credential<'a>(req: &'a HttpRequest, scheme: &str) -> Option<&'a str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (given, key) = value.split_once(' ')?;
    (given == scheme)
        .then_some(key.trim())
        .filter(|k| !k.is_empty())
}

/// The app state, once the engine is ready (503 while it restores).
fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    if !state.engine.is_ready() {
        return Err(
            EngineError::Unavailable("the engine is restoring its state; retry shortly").into(),
        );
    }
    Ok(state)
}

/// A request made with the management key.
pub struct Management;

impl FromRequest for Management {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let state = state(req)?;
            let key = credential(req, "ManagementKey-v1").ok_or_else(ApiError::unauthorized)?;
            if digests_equal(&hash_key(key), &state.management_key_hash) {
                Ok(Management)
            } else {
                Err(ApiError::unauthorized())
            }
        })())
    }
}

/// A request made with an application's integration key.
pub struct Integration(pub ApplicationId);

impl FromRequest for Integration {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let state = state(req)?;
            let key = credential(req, "ApiKey-v1").ok_or_else(ApiError::unauthorized)?;
            state
                .engine
                .catalog
                .authenticate(key)
                .map(Integration)
                .ok_or_else(ApiError::unauthorized)
        })())
    }
}

/// A request that may read one application's data: the management key, or
/// an integration key (of some application: the handler checks which).
pub enum Reader {
    Management,
    Integration(ApplicationId),
}

impl Reader {
    /// Refuses an integration key of another application (403).
    pub fn check(&self, app: ApplicationId) -> Result<(), ApiError> {
        match self {
            Reader::Integration(own) if *own != app => {
                Err(ApiError::forbidden("application", "applicationId"))
            }
            _ => Ok(()),
        }
    }
}

impl FromRequest for Reader {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if credential(req, "ApiKey-v1").is_some() {
            return ready(
                Integration::from_request(req, payload)
                    .into_inner()
                    .map(|Integration(app)| Reader::Integration(app)),
            );
        }
        ready(
            Management::from_request(req, payload)
                .into_inner()
                .map(|_| Reader::Management),
        )
    }
}
