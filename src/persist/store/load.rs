//! The snapshot a restore loads: choosing it (the newest that passes its
//! checks and suits the layout), installing its catalog, and loading its
//! pairs into the shards while they are decoded, on a thread of their own.
//! Also how one encoded chunk becomes what the engine loads (cluster mode's
//! partition snapshots).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use futures_executor::block_on;

use super::plan::check_snapshot_head;
use super::restore::bad_record;
use super::{Progress, RestoreReport, SnapshotInfo, StoreError, IN_FLIGHT};
use crate::domain::CustomerId;
use crate::engine::catalog::CatalogState;
use crate::engine::log::{LogError, PartitionId, Position, Record, Stream};
use crate::engine::pair::PairKey;
use crate::engine::shard::PairImage;
use crate::engine::Engine;
use crate::persist::file_log;
use crate::persist::model::PairV5;
use crate::persist::snapshot::{self, Header};

/// The snapshot a restore loads: checked (header, checksum, catalog); its
/// pairs are decoded while they are loaded (`load_pairs`).
pub(super) struct Image {
    id: u64,
    pub(super) header: Header,
    catalog: CatalogState,
    path: std::path::PathBuf,
    checked: snapshot::Checked,
    bytes: u64,
}

/// The newest snapshot that passes its checks and that `usable` accepts.
pub(super) fn newest_snapshot(
    dir: &Path,
    report: &mut RestoreReport,
    usable: impl Fn(&Header) -> Result<(), String>,
) -> Result<Option<Image>, StoreError> {
    for file in snapshot::list(dir)?.iter().rev() {
        match check_snapshot_head(&file.path, &usable) {
            Ok((checked, catalog)) => {
                tracing::info!(
                    id = file.id,
                    pairs = checked.header.pairs,
                    "restoring snapshot"
                );
                report.snapshot = Some(file.id);
                return Ok(Some(Image {
                    id: file.id,
                    header: checked.header.clone(),
                    catalog,
                    path: file.path.clone(),
                    checked,
                    bytes: fs::metadata(&file.path).map_or(0, |m| m.len()),
                }));
            }
            Err(why) => {
                tracing::error!(path = %file.path.display(), error = %why, "skipping an unreadable snapshot");
                report.skipped_snapshots.push((file.id, why));
            }
        }
    }
    Ok(None)
}

/// Installs a snapshot's catalog and pair counter; returns its info.
pub(super) fn install(engine: &Engine, image: &mut Option<Image>) -> Option<SnapshotInfo> {
    let (catalog, info) = match image.as_mut() {
        Some(i) => (
            std::mem::take(&mut i.catalog),
            Some(SnapshotInfo {
                id: i.id,
                created: i.header.created(),
                pairs: i.header.pairs,
                bytes: i.bytes,
                duration: None,
            }),
        ),
        None => (CatalogState::default(), None),
    };
    if let Some(i) = image.as_ref() {
        engine.shared().raise_pair_numbers(i.header.pair_numbers);
    }
    engine.catalog.replace(catalog);
    info
}

/// Replays the catalog's log from `from`; returns the next LSN.
pub(super) fn replay_catalog(
    engine: &Engine,
    catalog_dir: &Path,
    from: u64,
    report: &mut RestoreReport,
) -> Result<u64, StoreError> {
    let mut each = |_: Stream, _: Position, record: Record| -> Result<(), LogError> {
        if let Record::Catalog(r) = record {
            engine.catalog.apply(&r);
            report.catalog_records += 1;
        }
        Ok(())
    };
    let ends = file_log::read_files(
        catalog_dir,
        &[],
        &[(Stream::Catalog, Position(from))],
        &mut each,
    )?;
    Ok((ends.catalog + 1).max(from).max(1))
}

/// Turns a snapshot's pair into what the engine loads, with its partition;
/// `None` when its achievement is gone.
fn image_of(engine: &Engine, pair: PairV5) -> Result<Option<(PartitionId, PairImage)>, StoreError> {
    let Some(entry) = engine
        .catalog
        .read()
        .achievements
        .get(&crate::domain::AchievementId(pair.achievement))
        .cloned()
    else {
        return Ok(None);
    };
    let customer = CustomerId::parse(&pair.customer, "/integrationId")
        .map_err(|e| bad_record("snapshot pair", pair.last_lsn, e.message))?;
    let tracker = pair
        .tracker
        .to_parts()
        .map_err(|e| bad_record("snapshot pair", pair.last_lsn, e))?;
    let partition = engine.partition_of(entry.application_id, &customer);
    Ok(Some((
        partition,
        PairImage {
            key: PairKey {
                achievement: entry.achievement.id,
                customer,
            },
            last: Position(pair.last_lsn),
            tracker,
        },
    )))
}

/// A partition's pairs from one encoded section (`ChunkV5`, or `ChunkV3` when
/// `legacy`), as the engine loads them (cluster mode's partition snapshots are
/// such sections); pairs of deleted achievements are left out.
pub fn decode_chunk(
    engine: &Engine,
    bytes: &[u8],
    legacy: bool,
) -> Result<(PartitionId, Vec<PairImage>), StoreError> {
    let section = |e: String| bad_record("snapshot section", 0, e);
    let (partition, pairs) = if legacy {
        let chunk: crate::persist::model::ChunkV3 =
            crate::persist::codec::decode(bytes).map_err(|e| section(e.to_string()))?;
        let pairs = chunk
            .pairs
            .into_iter()
            .map(PairV5::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| section(e.to_string()))?;
        (chunk.partition, pairs)
    } else {
        let chunk: crate::persist::model::ChunkV5 =
            crate::persist::codec::decode(bytes).map_err(|e| section(e.to_string()))?;
        (chunk.partition, chunk.pairs)
    };
    let mut images = Vec::with_capacity(pairs.len());
    for pair in pairs {
        if let Some((_, image)) = image_of(engine, pair)? {
            images.push(image);
        }
    }
    Ok((PartitionId(partition), images))
}

/// Pairs of an older snapshot gathered per partition before a load.
const LEGACY_LOAD: usize = 1024;

/// Loads a snapshot's pairs into their partitions as they are decoded,
/// several loads in flight, so that the shards insert one chunk while this
/// thread decodes the next; returns the highest position a pair remembers.
///
/// The snapshot passed its checks (checksum, catalog) before anything was
/// installed; pairs that still fail to decode mean the file changed since
/// or was written wrong, and the restore stops rather than fall back to an
/// older snapshot over a partly loaded one.
pub(super) fn load_pairs(
    engine: &Engine,
    image: Option<Image>,
    report: &mut RestoreReport,
) -> Result<u64, StoreError> {
    let Some(image) = image else {
        return Ok(0);
    };
    // Room first: the hash spreads customers evenly over partitions.
    let per = image.header.pairs as usize / engine.partitions() as usize;
    block_on(engine.reserve_pairs(per + per / 8))?;
    let mut floor = 0;
    let mut progress = Progress::new("pairs restored", Some(image.header.pairs));
    let mut buckets: HashMap<PartitionId, Vec<PairImage>> = HashMap::new();
    let mut loading = Vec::new();
    let flush =
        |p: PartitionId, pairs: Vec<PairImage>, loading: &mut Vec<_>| -> Result<(), StoreError> {
            loading.push(engine.load_pairs(p, pairs));
            if loading.len() >= IN_FLIGHT {
                for r in block_on(futures_util::future::join_all(loading.drain(..))) {
                    r?;
                }
            }
            Ok(())
        };
    let mut on_chunk = |partition: Option<u32>, chunk: Vec<PairV5>| -> Result<(), StoreError> {
        // A partitioned snapshot's chunk goes to its partition as it is; an
        // older one's pairs are gathered by partition, in small loads (a
        // large buffer per partition would hold the whole snapshot twice).
        let mut direct = Vec::with_capacity(if partition.is_some() { chunk.len() } else { 0 });
        for pair in chunk {
            progress.advance(1);
            floor = floor.max(pair.last_lsn);
            let Some((p, image)) = image_of(engine, pair)? else {
                continue;
            };
            report.pairs += 1;
            if partition.is_some() {
                direct.push((p, image));
                continue;
            }
            let bucket = buckets.entry(p).or_default();
            bucket.push(image);
            if bucket.len() >= LEGACY_LOAD {
                let batch = std::mem::take(bucket);
                flush(p, batch, &mut loading)?;
            }
        }
        // The partition follows from each pair (the chunk's is the same).
        let mut by_partition: HashMap<PartitionId, Vec<PairImage>> = HashMap::new();
        for (p, image) in direct {
            by_partition.entry(p).or_default().push(image);
        }
        for (p, batch) in by_partition {
            flush(p, batch, &mut loading)?;
        }
        Ok(())
    };
    // One thread decodes the file's sections while this one turns pairs
    // into what the shards load and hands them over: three stages in
    // flight (decode, convert, insert) rather than one after the other.
    let (decoded, read) = std::thread::scope(|scope| -> Result<_, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Option<u32>, Vec<PairV5>)>(4);
        let (path, checked) = (&image.path, &image.checked);
        let reader = std::thread::Builder::new()
            .name("snapshot-decode".into())
            .spawn_scoped(scope, move || {
                snapshot::read_pairs(path, checked, |partition, chunk| {
                    // A closed channel: the loading side stopped on an error.
                    tx.send((partition, chunk))
                        .map_err(|_| snapshot::SnapshotError::Decode("the load stopped".into()))
                })
            })
            .map_err(|e| {
                bad_record(
                    "snapshot",
                    0,
                    format!("cannot start a decoding thread: {e}"),
                )
            })?;
        let mut decoded = Ok(());
        for (partition, chunk) in rx.iter() {
            if let Err(e) = on_chunk(partition, chunk) {
                decoded = Err(e);
                break;
            }
        }
        drop(rx);
        let read = reader.join().unwrap_or_else(|_| {
            Err(snapshot::SnapshotError::Decode(
                "the decoding thread panicked".into(),
            ))
        });
        Ok((decoded, read))
    })?;
    decoded?;
    read.map_err(|e| {
        bad_record(
            "snapshot",
            0,
            format!("its pairs could not be read after it passed its checks: {e}"),
        )
    })?;
    for (p, batch) in buckets {
        if !batch.is_empty() {
            flush(p, batch, &mut loading)?;
        }
    }
    for r in block_on(futures_util::future::join_all(loading)) {
        r?;
    }
    Ok(floor)
}
