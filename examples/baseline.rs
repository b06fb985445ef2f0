//! The bare baseline server for the HTTP benchmarks (see
//! `achievements_engine::http::baseline`): the engine's request decoding and
//! a fixed answer, no engine behind it. With `--log FILE`, each answer
//! waits until the request's body is durable in FILE (group commit, as
//! `achievements_engine::http::baseline::GroupCommit` says).
//!
//! ```sh
//! cargo run --release --example baseline -- --listen 127.0.0.1:8081 --workers 2
//! cargo run --release --example baseline -- --log /tmp/baseline.log
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "baseline",
    about = "Bare actix-web baseline for the HTTP benchmarks"
)]
struct Args {
    /// Address to bind (port 0 picks any free port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// HTTP workers (default: number of CPUs).
    #[arg(long)]
    workers: Option<usize>,
    /// Answer each request only once its body is durable in this file.
    #[arg(long)]
    log: Option<PathBuf>,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (addr, server) = match &args.log {
        Some(log) => achievements_engine::http::baseline::start_durable(args.listen, workers, log)?,
        None => achievements_engine::http::baseline::start(args.listen, workers)?,
    };
    let durable = args
        .log
        .as_ref()
        .map_or(String::new(), |l| format!(", durable in {}", l.display()));
    eprintln!("baseline listening on {addr} with {workers} workers{durable}");
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        handle.stop(true).await;
    });
    server.await
}
