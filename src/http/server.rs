//! Building and starting the HTTP server around a new engine; used by the
//! binary and by the integration tests (`spawn_app`).

use std::net::SocketAddr;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;

use super::AppState;
use crate::config::Settings;
use crate::engine::catalog::hash_key;
use crate::engine::{keys, Catalog, Engine, EngineConfig};

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    pub server: actix_web::dev::Server,
    pub engine: Engine,
    pub management_key: String,
}

/// Prepares the data directory, the engine and the server (bound, not yet
/// awaited). Must be called inside an actix system.
pub fn start(settings: &Settings) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    let (management_key, generated) =
        keys::load_or_create_management_key(settings.management_key.as_deref(), &settings.data_dir)
            .with_context(|| {
                format!(
                    "cannot read or write the management key in {}",
                    settings.data_dir.display()
                )
            })?;
    if generated {
        tracing::info!(
            path = %settings.data_dir.join(keys::MANAGEMENT_KEY_FILE).display(),
            "generated a management key and stored it (mode 0600)"
        );
    }
    let workers = settings.worker_count();
    let engine = Engine::start(
        EngineConfig {
            shards: workers,
            ..EngineConfig::default()
        },
        Catalog::default(),
    );
    let state = web::Data::new(AppState {
        engine: engine.clone(),
        management_key_hash: hash_key(&management_key),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(middleware::Logger::new("%r %s %Dms").log_target("http"))
            .configure(super::configure)
            .default_service(web::to(super::not_found))
    })
    .workers(workers)
    .bind(settings.listen)
    .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = *server
        .addrs()
        .first()
        .context("the server bound no address")?;
    Ok(Running {
        addr,
        server: server.run(),
        engine,
        management_key,
    })
}
