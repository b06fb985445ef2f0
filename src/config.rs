//! Command-line flags and environment variables → validated `Settings`.
//!
//! Every flag can also be given as `ACHV_<NAME>` (API.md "Running").
//! `Cli` is the whole command line: these settings to serve with, or an
//! operator command (`ops`) to run instead.

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

    /// How long an applied eventId is remembered for idempotency (seconds;
    /// default 7 days). Also bounds how far back a rollback can reach.
    #[arg(long, env = "ACHV_IDEMPOTENCY_RETENTION_SECS", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    pub idempotency_retention_secs: u64,

    /// Past iterations kept per (customer, achievement) pair.
    #[arg(long, env = "ACHV_HISTORY_CAP", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub history_cap: u32,

    /// Events admitted in flight per shard; beyond it writes get 429 with
    /// Retry-After.
    #[arg(long, env = "ACHV_QUEUE_CAPACITY", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub queue_capacity: u32,

    /// Partitions customers are spread over (default 256 for a new data
    /// directory). Fixed when the directory is created: a different value
    /// later is a startup error.
    #[arg(long, env = "ACHV_PARTITIONS", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub partitions: Option<u32>,

    /// HTTP workers and actor arbiters (default: number of CPUs).
    #[arg(long, env = "ACHV_WORKERS", value_parser = clap::value_parser!(u16).range(1..=512))]
    pub workers: Option<u16>,

    /// Open connections each HTTP worker accepts; beyond it new connections
    /// wait in the listen backlog until one closes.
    #[arg(long, env = "ACHV_MAX_CONNECTIONS", default_value_t = 25_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Milliseconds a client has to send a request's head (and to finish
    /// after the server asked to close); a client that stalls longer gets
    /// 408 and is disconnected. Also the idle keep-alive time.
    #[arg(long, env = "ACHV_REQUEST_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub request_timeout_ms: u64,

    /// How long achievement events stay in the feed (seconds; default 7
    /// days). A cursor older than that gets 410.
    #[arg(long, env = "ACHV_FEED_RETENTION_SECS", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    pub feed_retention_secs: u64,

    /// How long a webhook delivery is retried before it is recorded as
    /// failed and skipped (hours).
    #[arg(long, env = "ACHV_WEBHOOK_RETRY_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub webhook_retry_hours: u32,

    /// Joins a cluster: comma-separated `nats://host:port` of a NATS
    /// JetStream cluster. Without it the node runs alone on its data
    /// directory.
    #[arg(long, env = "ACHV_CLUSTER")]
    pub cluster: Option<String>,

    /// This node's name in the cluster (default: the listen address).
    #[arg(long, env = "ACHV_NODE_ID")]
    pub node_id: Option<String>,

    /// Copies JetStream keeps of each partition's log, the catalog and the
    /// snapshots (default 3; 1 for a single NATS server).
    #[arg(long, env = "ACHV_REPLICAS", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,

    /// Seconds a dead node's partitions wait before another node takes
    /// them over.
    #[arg(long, env = "ACHV_LEASE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub lease_secs: u64,

    /// Log lines as readable text (`text`; coloured only on a terminal) or
    /// one JSON object per line (`json`, for log shippers).
    #[arg(long, env = "ACHV_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Allow webhooks to loopback, private and link-local addresses (off:
    /// such targets are refused, also when a name resolves to one).
    #[arg(long, env = "ACHV_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The command line: serve with `settings`, or run `command` instead.
#[derive(Debug, Clone, Parser)]
#[command(name = "achievements-engine", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<crate::ops::Command>,
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
