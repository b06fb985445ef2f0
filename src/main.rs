//! The `achievements-engine` binary: parse settings, start logging, serve;
//! on SIGTERM/SIGINT stop accepting, drain, write a final snapshot, exit 0.

use achievements_engine::{config::Settings, http};
use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    achievements_engine::logging::init(settings.log_format);
    let running = http::server::start(&settings)?;
    tracing::info!(addr = %running.addr, data_dir = %settings.data_dir.display(), "listening");
    running.serve_until_shutdown(&settings.data_dir).await?;
    tracing::info!("stopped");
    Ok(())
}
