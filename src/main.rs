//! The `achievements-engine` binary: parse settings, start logging, serve;
//! on SIGTERM/SIGINT stop accepting, drain, write a final snapshot, exit 0.
//! With a subcommand (`verify`, `inspect`) it runs that operator command on
//! a data directory instead (`ops`) and exits with its code.

use std::process::ExitCode;

use achievements_engine::{config::Cli, http, ops};
use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<ExitCode> {
    let Cli { settings, command } = Cli::parse();
    if let Some(command) = command {
        return Ok(ops::run(command).await);
    }
    achievements_engine::logging::init(settings.log_format);
    let running = http::server::start(&settings)?;
    tracing::info!(addr = %running.addr, data_dir = %settings.data_dir.display(), "listening");
    running.serve_until_shutdown(&settings.data_dir).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
