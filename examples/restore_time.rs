//! How long a snapshot and a restore take, how big the snapshot is, and how
//! much memory a pair costs.
//!
//! `cargo run --release --example restore_time -- [pairs]` (default
//! 1,000,000). The data directory is a temporary directory under
//! `RESTORE_TIME_DIR` if set, else the system's temporary directory.
//!
//! 1. In one actix system: start an engine, restore an empty data directory,
//!    create an application, a campaign and a daily `on_expiration`
//!    achievement, load `pairs` customers with `increase_batch` (10,000
//!    distinct customers per batch, delta 1, a few batches in flight), then
//!    take a snapshot.
//! 2. In a new actix system with a new engine: restore from that directory.
//! 3. The same restore in a fresh process (so its memory is not mixed with
//!    what phase 1 left in the allocator).
//! 4. Phases of a restore timed alone (snapshot read, conversion, log scan).
//!
//! `RESTORE_TIME_KEEP=1` keeps the data directory; `restore_time
//! --restore-only <dir>` then restores it alone (e.g. under `perf`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use achievements_engine::domain::{AchievementDraft, CustomerId, Increase, RecurrencePolicy};
use achievements_engine::engine::testing;
use achievements_engine::engine::{Catalog, Engine, EngineConfig, EventInput};
use achievements_engine::persist::model::PairV5;
use achievements_engine::persist::snapshot;
use achievements_engine::persist::store::Store;
use achievements_engine::persist::wal;
use actix::System;
use anyhow::{bail, Context};
use futures_util::StreamExt;
use rust_decimal::Decimal;

const BATCH: usize = 10_000;
/// Batches in flight while loading.
const IN_FLIGHT: usize = 4;

/// (VmRSS once the allocator settled, VmHWM) of this process, in bytes.
fn memory() -> (u64, u64) {
    (testing::resident_bytes(), testing::peak_resident_bytes())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_bytes(&path)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

struct Loaded {
    load: Duration,
    rss_before: u64,
    rss_after: u64,
    pairs_in_engine: i64,
    wal_bytes: u64,
    snapshot: Duration,
    snapshot_bytes: u64,
    snapshot_pairs: u64,
    hwm_after_snapshot: u64,
    /// Freezing every pair (idle pairs are frozen by the shards' sweep in
    /// time; here at once), the RSS after it, and a snapshot of the frozen
    /// pairs.
    freeze: Duration,
    rss_frozen: u64,
    snapshot_frozen: Duration,
}

async fn load_and_snapshot(n: usize, dir: PathBuf) -> anyhow::Result<Loaded> {
    let engine = Engine::start(EngineConfig::default(), Catalog::default());
    let (store, _) = {
        let (engine, dir) = (engine.clone(), dir.clone());
        actix_rt::task::spawn_blocking(move || Store::restore(&engine, &dir, 2)).await??
    };
    let store = Arc::new(store);
    let entry = testing::one_achievement(
        &engine,
        AchievementDraft {
            name: "daily".into(),
            title: "Daily".into(),
            target: Decimal::from(1_000_000),
            period: Some("1D".into()),
            recurrence_policy: RecurrencePolicy::OnExpiration,
            ..AchievementDraft::default()
        },
    )
    .await;

    let (rss_before, _) = memory();
    let started = Instant::now();
    let batches = (0..n).step_by(BATCH).map(|first| {
        let inputs: Vec<EventInput> = (first..(first + BATCH).min(n))
            .map(|i| EventInput {
                customer: CustomerId::parse(&format!("customer-{i:08}"), "/integrationId")
                    .expect("valid customer id"),
                entry: entry.clone(),
                increase: Increase {
                    delta: Decimal::ONE,
                    at: None,
                    event_id: None,
                },
            })
            .collect();
        let engine = engine.clone();
        async move { engine.increase_batch(inputs).await }
    });
    let mut answers = futures_util::stream::iter(batches).buffer_unordered(IN_FLIGHT);
    let mut failed = 0usize;
    while let Some(answer) = answers.next().await {
        failed += answer?.iter().filter(|r| r.is_err()).count();
    }
    let load = started.elapsed();
    if failed > 0 {
        bail!("{failed} increases failed while loading");
    }
    let (rss_after, _) = memory();
    let pairs_in_engine = engine
        .stats()
        .pairs
        .load(std::sync::atomic::Ordering::Relaxed);
    let wal_bytes = dir_bytes(&dir.join("log"));

    let started = Instant::now();
    let info = {
        let (engine, store) = (engine.clone(), store.clone());
        actix_rt::task::spawn_blocking(move || store.snapshot(&engine)).await??
    };
    let snapshot = started.elapsed();
    let (_, hwm_after_snapshot) = memory();

    let started = Instant::now();
    let frozen = engine.freeze_idle(Duration::ZERO).await?;
    let freeze = started.elapsed();
    if frozen != n {
        bail!("{frozen} of {n} pairs were frozen");
    }
    let (rss_frozen, _) = memory();
    let started = Instant::now();
    {
        let (engine, store) = (engine.clone(), store.clone());
        actix_rt::task::spawn_blocking(move || store.snapshot(&engine)).await??
    };
    let snapshot_frozen = started.elapsed();
    Ok(Loaded {
        load,
        rss_before,
        rss_after,
        pairs_in_engine,
        wal_bytes,
        snapshot,
        snapshot_bytes: info.bytes,
        snapshot_pairs: info.pairs,
        hwm_after_snapshot,
        freeze,
        rss_frozen,
        snapshot_frozen,
    })
}

struct Restored {
    restore: Duration,
    pairs: u64,
    pair_records: u64,
    pairs_in_engine: i64,
    rss_before: u64,
    rss_after: u64,
    hwm: u64,
    sample_progress: Decimal,
}

async fn restore(dir: PathBuf) -> anyhow::Result<Restored> {
    let engine = Engine::start(EngineConfig::default(), Catalog::default());
    let (rss_before, _) = memory();
    let started = Instant::now();
    let (store, report) = {
        let (engine, dir) = (engine.clone(), dir.clone());
        actix_rt::task::spawn_blocking(move || Store::restore(&engine, &dir, 2)).await??
    };
    let restore = started.elapsed();
    let (rss_after, hwm) = memory();
    let pairs_in_engine = engine
        .stats()
        .pairs
        .load(std::sync::atomic::Ordering::Relaxed);
    // Check that one customer's progress came back.
    let entry = engine
        .catalog
        .read()
        .achievements
        .values()
        .next()
        .cloned()
        .context("no achievement restored")?;
    let customer = CustomerId::parse("customer-00000000", "/integrationId")?;
    let rows = engine
        .customer_progress(
            entry.application_id,
            &customer,
            std::slice::from_ref(&entry),
        )
        .await?;
    let sample_progress = rows[0].first().map_or(Decimal::ZERO, |i| i.progress);
    drop(store);
    Ok(Restored {
        restore,
        pairs: report.pairs,
        pair_records: report.pair_records,
        pairs_in_engine,
        rss_before,
        rss_after,
        hwm,
        sample_progress,
    })
}

/// Runs a future in a new actix system, then stops the system (its
/// arbiters, shards and log writers end).
fn in_system<T>(fut: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    let sys = System::new();
    let out = sys.block_on(fut);
    System::current().stop();
    sys.run()?;
    // Let arbiter and log writer threads finish dropping their state.
    std::thread::sleep(Duration::from_millis(300));
    Ok(out)
}

/// Times the parts of a restore that do not need an engine.
struct Phases {
    read: Duration,
    read_convert: Duration,
    wal_scan: Duration,
    wal_records: u64,
}

fn phases(dir: &Path) -> anyhow::Result<Phases> {
    let file = snapshot::list(dir)?
        .pop()
        .context("no snapshot in the directory")?;
    let started = Instant::now();
    let mut n = 0usize;
    snapshot::read(&file.path, |_, chunk| {
        n += chunk.len();
        Ok(())
    })?;
    let read = started.elapsed();

    let started = Instant::now();
    let mut converted = 0usize;
    snapshot::read(&file.path, |_, chunk: Vec<PairV5>| {
        for pair in chunk {
            let customer = CustomerId::parse(&pair.customer, "/integrationId")
                .map_err(|e| snapshot::SnapshotError::Decode(e.message))?;
            let parts = pair
                .tracker
                .to_parts()
                .map_err(|e| snapshot::SnapshotError::Decode(e.to_string()))?;
            std::hint::black_box((customer, parts));
            converted += 1;
        }
        Ok(())
    })?;
    let read_convert = started.elapsed();

    let started = Instant::now();
    let mut wal_records = 0u64;
    for entry in std::fs::read_dir(dir.join("log"))? {
        let log = entry?.path();
        wal::read_from(&log, 0, |_, _| wal_records += 1)?;
    }
    let wal_scan = started.elapsed();
    Ok(Phases {
        read,
        read_convert,
        wal_scan,
        wal_records,
    })
}

/// `--restore-only <dir>`: phase 3, in a child process; prints one line.
fn restore_only(dir: PathBuf) -> anyhow::Result<()> {
    let r = in_system(restore(dir))??;
    println!(
        "RESTORE {} {} {} {} {}",
        r.restore.as_secs_f64(),
        r.pairs,
        r.rss_before,
        r.rss_after,
        r.hwm
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--restore-only") {
        let dir = args.get(1).context("--restore-only needs a directory")?;
        return restore_only(PathBuf::from(dir));
    }
    let n: usize = match args.first() {
        Some(a) => a
            .replace('_', "")
            .parse()
            .context("pairs must be a number")?,
        None => 1_000_000,
    };
    let base = std::env::var_os("RESTORE_TIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)?;
    let tmp = tempfile::tempdir_in(&base)?;
    let dir = tmp.path().to_path_buf();
    // RESTORE_TIME_KEEP=1 keeps the data directory (to profile
    // `--restore-only <dir>` afterwards).
    let _tmp = if std::env::var_os("RESTORE_TIME_KEEP").is_some() {
        let _ = tmp.keep();
        None
    } else {
        Some(tmp)
    };
    println!(
        "restore_time: {n} pairs, data dir {}, {} cpus",
        dir.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Phase 1.
    let (rss_start, _) = memory();
    let loaded = in_system(load_and_snapshot(n, dir.clone()))??;
    let (rss_after_phase1, _) = memory();

    // Phase 2.
    let restored = in_system(restore(dir.clone()))??;
    if restored.pairs != n as u64 || restored.sample_progress != Decimal::ONE {
        bail!(
            "restore gave {} pairs (expected {n}), customer-00000000 at {}",
            restored.pairs,
            restored.sample_progress
        );
    }

    // Phase 3.
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--restore-only")
        .arg(&dir)
        .output()?;
    if !out.status.success() {
        bail!(
            "fresh-process restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let fresh: Vec<f64> = line
        .lines()
        .find_map(|l| l.strip_prefix("RESTORE "))
        .context("no figures from the fresh-process restore")?
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
        .collect();
    let (fresh_secs, fresh_pairs, fresh_rss0, fresh_rss1, fresh_hwm) =
        (fresh[0], fresh[1], fresh[2], fresh[3], fresh[4]);

    // Phase 4.
    let p = phases(&dir)?;

    let per_pair = |bytes: u64| bytes as f64 / n as f64;
    let rss_grown = loaded.rss_after.saturating_sub(loaded.rss_before);
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| pairs | {n} |");
    println!(
        "| load: {n} increases via increase_batch ({BATCH}/batch, {IN_FLIGHT} in flight) | {:.2} s ({:.0} pairs/s) |",
        loaded.load.as_secs_f64(),
        n as f64 / loaded.load.as_secs_f64()
    );
    println!(
        "| pairs in engine after load | {} |",
        loaded.pairs_in_engine
    );
    println!(
        "| write-ahead log after load | {:.1} MiB ({:.1} bytes/pair) |",
        mib(loaded.wal_bytes),
        per_pair(loaded.wal_bytes)
    );
    println!(
        "| RSS before / after load | {:.1} MiB / {:.1} MiB |",
        mib(loaded.rss_before),
        mib(loaded.rss_after)
    );
    println!(
        "| RSS growth per pair (load) | {:.0} bytes |",
        per_pair(rss_grown)
    );
    println!(
        "| snapshot: store.snapshot | {:.2} s ({:.0} pairs/s) |",
        loaded.snapshot.as_secs_f64(),
        loaded.snapshot_pairs as f64 / loaded.snapshot.as_secs_f64()
    );
    println!(
        "| freeze every pair: engine.freeze_idle | {:.2} s |",
        loaded.freeze.as_secs_f64()
    );
    println!(
        "| RSS after freezing / growth per frozen pair | {:.1} MiB / {:.0} bytes |",
        mib(loaded.rss_frozen),
        per_pair(loaded.rss_frozen.saturating_sub(loaded.rss_before))
    );
    println!(
        "| snapshot of the frozen pairs | {:.2} s |",
        loaded.snapshot_frozen.as_secs_f64()
    );
    println!(
        "| snapshot size | {} bytes = {:.1} MiB ({:.1} bytes/pair) |",
        loaded.snapshot_bytes,
        mib(loaded.snapshot_bytes),
        per_pair(loaded.snapshot_bytes)
    );
    println!(
        "| peak RSS after snapshot (VmHWM) | {:.1} MiB |",
        mib(loaded.hwm_after_snapshot)
    );
    println!(
        "| RSS at start / after phase 1 ended | {:.1} MiB / {:.1} MiB |",
        mib(rss_start),
        mib(rss_after_phase1)
    );
    println!(
        "| restore, new system in same process | {:.2} s ({:.0} pairs/s; {} log records replayed) |",
        restored.restore.as_secs_f64(),
        restored.pairs as f64 / restored.restore.as_secs_f64(),
        restored.pair_records
    );
    println!(
        "| same: pairs in engine, RSS before / after, VmHWM | {} , {:.1} / {:.1} MiB, {:.1} MiB |",
        restored.pairs_in_engine,
        mib(restored.rss_before),
        mib(restored.rss_after),
        mib(restored.hwm)
    );
    println!(
        "| restore, fresh process | {:.2} s ({:.0} pairs/s) |",
        fresh_secs,
        fresh_pairs / fresh_secs
    );
    println!(
        "| fresh process: RSS before / after restore, VmHWM | {:.1} / {:.1} MiB, {:.1} MiB |",
        mib(fresh_rss0 as u64),
        mib(fresh_rss1 as u64),
        mib(fresh_hwm as u64)
    );
    println!(
        "| fresh process: RSS growth per restored pair | {:.0} bytes |",
        (fresh_rss1 - fresh_rss0) / fresh_pairs
    );
    println!(
        "| phase alone: snapshot::read (checksum + decode) | {:.2} s |",
        p.read.as_secs_f64()
    );
    println!(
        "| phase alone: snapshot::read + CustomerId::parse + to_parts | {:.2} s |",
        p.read_convert.as_secs_f64()
    );
    println!(
        "| phase alone: wal::read_from over all logs ({} records) | {:.2} s |",
        p.wal_records,
        p.wal_scan.as_secs_f64()
    );
    Ok(())
}
