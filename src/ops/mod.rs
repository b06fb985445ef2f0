//! Operator commands on a data directory, run by the binary instead of the
//! server (`achievements-engine verify|inspect ...`): they read the
//! directory only — nothing in it is created, changed or deleted, and no
//! lock is taken, so they can run next to a server on the same directory
//! (they then see a moment of it).
//!
//! Owns: the subcommands (`Command`), their exit codes and dispatch.
//! `verify` (`verify`, `logs`, `scan`, `report`) says what a restore would
//! load and whether it would lose anything; `inspect` rebuilds one
//! customer's state as a restore would.
//!
//! Both follow the restore's own code, not a second reading of the files:
//! the layout (`store::layout`), the snapshot check and choice
//! (`store::check_snapshot_head`, `usable_partitioned`/`usable_legacy`, newest
//! first), the replay positions (`store::replay_start`) and the valid
//! frames of a segment (`wal::read_segment`); `inspect` loads through
//! `Store::load`, the restore without its writes.
//!
//! # Verify's verdict
//! Exit 0 — a restore loads everything that was acknowledged — when every
//! finding is harmless:
//! - a newer snapshot that fails a check (magic, version, truncation,
//!   checksums, decoding, another partition count or layout) is skipped and
//!   an older one (or none) is loaded: the logs still hold what the skipped
//!   one covered, since a snapshot prunes only records that the oldest kept
//!   snapshot covers;
//! - a torn tail in the newest segment of a log (a frame cut short, or a
//!   damaged frame with no valid frame after it): it was never
//!   acknowledged, and a restore cuts it off;
//! - damage or a gap in the numbering wholly below the positions the
//!   restore replays that log from; a jump in the numbering after a segment
//!   that was not full (a restart numbers on above what a snapshot covered);
//! - leftovers a restore deletes (temporary snapshot files, files of a
//!   finished migration).
//!
//! Exit 1 — data a restore would lose, or a restore that would fail:
//! - a log that starts above the position the restore needs it from (e.g.
//!   the newest snapshot is damaged, the restore falls back to nothing or to
//!   an older one, and the log was pruned past it);
//! - a damaged frame followed by valid frames (corruption in the middle: a
//!   restore stops reading the segment there and drops them), or damage in
//!   a segment that is not its log's newest, unless all of it lies below
//!   where the restore replays from;
//! - a gap in the numbering after a full segment (a segment is missing),
//!   at or above where the restore replays from; records out of order;
//! - a record the restore would decode but cannot (it stops with an error),
//!   a pair of the chosen snapshot it cannot load, an unreadable
//!   `partitions` file or one that disagrees with `--partitions`;
//! - in the feed's log, corruption in the middle (the feed loses entries);
//!   webhook files that are not valid JSON.
//!
//! Exit 2 — a usage error or no such directory. `inspect` exits 0 with the
//! customer, 1 when the customer is unknown or the load fails, 2 as above.

pub mod inspect;
mod logs;
pub mod report;
mod scan;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::engine::EngineError;
use crate::persist::store::StoreError;

/// Nothing lost (`verify`), the customer found (`inspect`).
pub const EXIT_OK: u8 = 0;
/// Data a restore would lose or cannot read; an unknown customer.
pub const EXIT_LOSS: u8 = 1;
/// A usage error; the data directory does not exist.
pub const EXIT_USAGE: u8 = 2;

/// The operator commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Checks every snapshot and log segment of a data directory and says
    /// what a restore would load (exit 0: everything; 1: data lost or
    /// unreadable; 2: usage error or no such directory). Read-only.
    Verify {
        /// The data directory to check.
        #[arg(long)]
        data_dir: PathBuf,
        /// The --partitions the server would run with (only matters for a
        /// directory that does not record its count yet).
        #[arg(long)]
        partitions: Option<u32>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Prints one customer's state as a restore would rebuild it (exit 1:
    /// unknown customer). Read-only.
    Inspect {
        /// The data directory to read.
        #[arg(long)]
        data_dir: PathBuf,
        /// The customer's integration id.
        #[arg(long)]
        customer: String,
        /// Only this application (the same integration id can exist in
        /// several).
        #[arg(long)]
        application: Option<u64>,
        /// As for verify.
        #[arg(long)]
        partitions: Option<u32>,
        /// Print the customer as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("no data directory at {0}")]
    NoDir(PathBuf),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("the restore's load failed: {0}")]
    Store(#[from] StoreError),
    #[error("the engine failed: {0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Failed(String),
}

impl OpsError {
    pub fn exit_code(&self) -> u8 {
        match self {
            OpsError::NoDir(_) | OpsError::Usage(_) => EXIT_USAGE,
            _ => EXIT_LOSS,
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), OpsError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| OpsError::Failed(format!("cannot encode the report: {e}")))?;
    println!("{text}");
    Ok(())
}

async fn execute(command: Command) -> Result<u8, OpsError> {
    match command {
        Command::Verify {
            data_dir,
            partitions,
            json,
        } => {
            let report = verify::verify(&data_dir, partitions)?;
            if json {
                print_json(&report)?;
            } else {
                print!("{report}");
            }
            Ok(report.exit_code)
        }
        Command::Inspect {
            data_dir,
            customer,
            application,
            partitions,
            json,
        } => {
            let view = inspect::inspect(&data_dir, &customer, application, partitions).await?;
            if json {
                print_json(&view)?;
            } else {
                print!("{view}");
            }
            Ok(EXIT_OK)
        }
    }
}

/// Runs a command; what it prints goes to stdout, errors to stderr. Must be
/// called inside an actix system (`inspect` starts an engine).
pub async fn run(command: Command) -> ExitCode {
    match execute(command).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
