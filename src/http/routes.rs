//! Route registration that remembers what it registered, so that a test can
//! hold the list against the OpenAPI document (every route documented).

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};

/// Registers routes on an actix-web app and lists them.
pub struct Routes<'a> {
    cfg: &'a mut web::ServiceConfig,
    listed: Vec<(Method, String)>,
}

impl<'a> Routes<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig) -> Self {
        Routes {
            cfg,
            listed: Vec::new(),
        }
    }

    /// Registers `handler` for `method` on `path` (an actix pattern such as
    /// `/v1/applications/{applicationId}`, which is also OpenAPI's form).
    pub fn add<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.cfg
            .route(path, web::method(method.clone()).to(handler));
        self.listed.push((method, path.to_string()));
        self
    }

    pub fn get<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, handler)
    }

    pub fn post<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, handler)
    }

    pub fn put<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::PUT, path, handler)
    }

    pub fn delete<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::DELETE, path, handler)
    }

    /// What was registered, in order.
    pub fn listed(&self) -> &[(Method, String)] {
        &self.listed
    }
}
