//! Command-line flags and environment variables → validated `Settings`.
//!
//! Every flag can also be given as `ACHV_<NAME>` (API.md "Running").

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The engine's settings.
#[derive(Debug, Clone, Parser)]
#[command(name = "achievements-engine", version, about)]
pub struct Settings {
    /// Address to bind (port 0 picks any free port; the bound address is logged).
    #[arg(long, env = "ACHV_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory for snapshots and the write-ahead log.
    #[arg(long, env = "ACHV_DATA_DIR", default_value = "snapshots")]
    pub data_dir: PathBuf,

    /// Management API key; generated and stored in the data directory when absent.
    #[arg(long, env = "ACHV_MANAGEMENT_KEY", hide_env_values = true)]
    pub management_key: Option<String>,

    /// Seconds between periodic snapshots; 0 = only on demand and at shutdown.
    #[arg(long, env = "ACHV_SNAPSHOT_INTERVAL", default_value_t = 60)]
    pub snapshot_interval: u64,

    /// How many snapshots to keep on disk (older ones are deleted).
    #[arg(long, env = "ACHV_SNAPSHOT_KEEP", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub snapshot_keep: u32,

    /// Events admitted in flight per shard; beyond it writes get 429 with
    /// Retry-After.
    #[arg(long, env = "ACHV_QUEUE_CAPACITY", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub queue_capacity: u32,

    /// HTTP workers and actor arbiters (default: number of CPUs).
    #[arg(long, env = "ACHV_WORKERS", value_parser = clap::value_parser!(u16).range(1..=512))]
    pub workers: Option<u16>,
}

impl Settings {
    /// The number of workers to run.
    pub fn worker_count(&self) -> usize {
        self.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        )
    }
}
