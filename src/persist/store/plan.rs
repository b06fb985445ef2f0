//! What a restore decides before it loads anything, as functions that read
//! and never write: the directory's layout, whether a snapshot passes (its
//! own checks, then the layout's), and where the log is replayed from after
//! the chosen snapshot. `restore` and `migrate` decide with them, and so do
//! the operator commands (`ops`), so what they report is what a restore does.

use std::path::Path;

use super::migrate::has_legacy_files;
use super::{stored_partitions, StoreError};
use crate::engine::catalog::CatalogState;
use crate::persist::model::PairV5;
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

/// Reads one snapshot as a restore does: its own checks (magic, version,
/// lengths, checksums, decoding), then `usable` on its header, then its
/// catalog; the pairs go to `on_pairs` as they are decoded. The error says
/// why a restore would skip it. Read-only, also for `ops verify`.
pub fn check_snapshot(
    path: &Path,
    usable: &dyn Fn(&Header) -> Result<(), String>,
    on_pairs: impl FnMut(Option<u32>, Vec<PairV5>) -> Result<(), snapshot::SnapshotError>,
) -> Result<(Header, CatalogState), String> {
    snapshot::read(path, on_pairs)
        .map_err(|e| e.to_string())
        .and_then(|(header, catalog)| {
            usable(&header)?;
            let state = catalog.to_state().map_err(|e| e.to_string())?;
            Ok((header, state))
        })
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
