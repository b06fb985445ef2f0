//! What a restore decides before it loads anything, as functions that read
//! and never write: the directory's layout, whether a snapshot passes (its
//! own checks, then the layout's), and where the log is replayed from after
//! the chosen snapshot. `restore` and `migrate` decide with them, and so do
//! the operator commands (`ops`), so what they report is what a restore does.

use std::path::Path;

use super::migrate::has_legacy_files;
use super::{stored_partitions, StoreError};
use crate::engine::catalog::CatalogState;
use crate::persist::snapshot::{self, Covered, Header};

/// How a restore reads a data directory: the partition count it records
/// (`None` for a new directory or one of the earlier layout) and whether it
/// has the earlier layout, which a restore migrates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub stored: Option<u32>,
    pub legacy: bool,
}

/// The layout of a data directory that an engine of `partitions` restores;
/// an error when the directory records another count. Read-only.
pub fn layout(dir: &Path, partitions: u32) -> Result<Layout, StoreError> {
    let stored = stored_partitions(dir)?;
    if let Some(stored) = stored.filter(|s| *s != partitions) {
        return Err(StoreError::Partitions {
            path: dir.to_path_buf(),
            stored,
            configured: partitions,
        });
    }
    let legacy = stored.is_none() && has_legacy_files(dir)?;
    Ok(Layout { stored, legacy })
}

/// What a restore checks before it loads a snapshot: its own checks but
/// the decoding of its pairs (magic, version, lengths, body checksum,
/// catalog), then `usable` on its header. The pairs are decoded while they
/// are loaded (`snapshot::read_pairs`).
pub fn check_snapshot_head(
    path: &Path,
    usable: &dyn Fn(&Header) -> Result<(), String>,
) -> Result<(snapshot::Checked, CatalogState), String> {
    let checked = snapshot::check(path).map_err(|e| e.to_string())?;
    usable(&checked.header)?;
    let state = checked.catalog.to_state().map_err(|e| e.to_string())?;
    Ok((checked, state))
}

/// Whether a partitioned restore of a directory of `partitions` can use a
/// snapshot (the check `restore_partitioned` makes).
pub fn usable_partitioned(partitions: usize) -> impl Fn(&Header) -> Result<(), String> {
    move |h: &Header| match &h.covered {
        Covered::Partitions(p) if p.len() == partitions => Ok(()),
        Covered::Partitions(p) => Err(format!(
            "it covers {} partitions, the directory has {partitions}",
            p.len()
        )),
        Covered::Shards(_) => Err("it is of the earlier layout (by shard)".into()),
    }
}

/// Where a partitioned restore replays from after the snapshot it chose
/// (`None`: no snapshot): the catalog's position and each partition's.
pub fn replay_start(header: Option<&Header>, partitions: usize) -> (u64, Vec<u64>) {
    match header.map(|h| (h.catalog_position, &h.covered)) {
        Some((catalog, Covered::Partitions(p))) => (catalog, p.clone()),
        _ => (0, vec![0; partitions]),
    }
}
