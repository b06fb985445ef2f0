//! The `achievements-engine` binary: parse settings, start logging, serve.

use achievements_engine::{config::Settings, http};
use actix_web::{App, HttpServer};
use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let server = HttpServer::new(|| App::new().configure(http::configure))
        .workers(settings.worker_count())
        .bind(settings.listen)?;
    for addr in server.addrs() {
        tracing::info!(%addr, "listening");
    }
    server.run().await?;
    Ok(())
}
