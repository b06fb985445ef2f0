//! Persistence benchmarks: snapshot encode/write and read/decode of one
//! million pairs, and write-ahead log appends with group commit.
//!
//! Run with `cargo bench --bench persist`; the figures are in
//! docs/persistence-figures.md. Files go to a temporary directory under
//! `PERSIST_BENCH_DIR` if set, else under cargo's target tmp directory (a
//! real disk, so fsync costs what it costs; not /dev/shm).
//!
//! Snapshot reads run against a file the page cache holds (it was just
//! written): they measure checksum + decode, not the disk.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use achievements_engine::persist::codec;
use achievements_engine::persist::model::{
    CatalogV1, ChangeV5, ChunkV5, DecimalV1, IterationV1, PairOpV1, PairRecordV1, PairV5,
    RememberedV5, TimeV1, TrackerV5,
};
use achievements_engine::persist::snapshot::{self, SnapshotWriter};
use achievements_engine::persist::wal::{OnFailure, Wal};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use futures_executor::block_on;
use rust_decimal::Decimal;

const PAIRS: usize = 1_000_000;
/// Pairs per snapshot section, as `Store::snapshot` writes them.
const CHUNK_PAIRS: usize = 2048;
/// Partitions of the snapshot (the default count).
const PARTITIONS: usize = 256;
/// Concurrent appenders in the group-commit benchmarks.
const APPENDERS: usize = 64;

fn bench_dir() -> tempfile::TempDir {
    let base: PathBuf = std::env::var_os("PERSIST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("bench directory");
    tempfile::tempdir_in(base).expect("temporary directory")
}

fn time(secs: i64) -> TimeV1 {
    TimeV1 { secs, nanos: 0 }
}

fn dec(d: Decimal) -> DecimalV1 {
    d.into()
}

/// One pair as a busy engine holds it: a current daily iteration in
/// progress; every tenth pair also remembers three applied event ids (as
/// keys, with what each did) for idempotency and rollback.
fn pair(i: usize) -> PairV5 {
    let day = Utc
        .with_ymd_and_hms(2025, 6, 1, 0, 0, 0)
        .single()
        .expect("valid date")
        .timestamp();
    let tracker = ((i as u64) + 1) << 24;
    let progress = Decimal::from((i % 50) as u64 + 1);
    let events = if i.is_multiple_of(10) {
        (0..3)
            .map(|k| RememberedV5 {
                key: (i as u64) << 8 | k as u64,
                arrived_ms: (day + 3600 + k) * 1000 + 123,
                change: ChangeV5::One {
                    seq: 0,
                    delta: dec(Decimal::ONE),
                    value: dec(progress),
                    just_completed: false,
                    started: false,
                },
                rolled_back: false,
            })
            .collect()
    } else {
        Vec::new()
    };
    PairV5 {
        achievement: 3,
        customer: format!("customer-{i:08}"),
        last_lsn: i as u64 + 1,
        tracker: TrackerV5 {
            tracker_base: tracker,
            next_seq: 1,
            current: Some(IterationV1 {
                id: tracker,
                status: 1,
                progress: dec(progress),
                start: time(day),
                end: Some((time(day + 86_400), time(day + 86_399))),
                completion: None,
            }),
            history: Vec::new(),
            events,
        },
    }
}

fn catalog() -> CatalogV1 {
    CatalogV1 {
        next_id: 4,
        applications: Vec::new(),
        api_keys: Vec::new(),
        campaigns: Vec::new(),
        achievements: Vec::new(),
    }
}

/// Writes a snapshot of `pairs` the way `Store::snapshot` does (encode each
/// chunk, write it, finish with fsync + rename + directory fsync).
fn write_snapshot(dir: &std::path::Path, id: u64, pairs: &[PairV5]) -> (PathBuf, u64) {
    let mut writer = SnapshotWriter::create(dir, id, PARTITIONS).expect("create snapshot");
    writer.write_catalog(&catalog().into()).expect("catalog");
    for (i, chunk) in pairs.chunks(CHUNK_PAIRS).enumerate() {
        writer
            .write_chunk(&ChunkV5 {
                partition: (i % PARTITIONS) as u32,
                pairs: chunk.to_vec(),
            })
            .expect("write chunk");
    }
    let (path, size, _) = writer
        .finish(Utc::now(), 1, vec![1; PARTITIONS], pairs.len() as u64)
        .expect("finish snapshot");
    (path, size)
}

fn snapshots(c: &mut Criterion) {
    let started = Instant::now();
    let pairs: Vec<PairV5> = (0..PAIRS).map(pair).collect();
    let dir = bench_dir();
    let (path, size) = write_snapshot(dir.path(), 1, &pairs);
    println!(
        "snapshot of {PAIRS} pairs: {size} bytes ({:.1} bytes/pair); built in {:.1?}",
        size as f64 / PAIRS as f64,
        started.elapsed()
    );
    let encoded: Vec<Vec<u8>> = pairs
        .chunks(CHUNK_PAIRS)
        .map(|chunk| codec::encode(&chunk).expect("encode chunk"))
        .collect();

    let mut group = c.benchmark_group("snapshot_1M");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(PAIRS as u64));

    // The whole write path: encode chunks, buffered writes, fsync, rename.
    let next_id = AtomicU64::new(2);
    group.bench_function("write (encode + write + fsync)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let (written, _) = write_snapshot(dir.path(), id, black_box(&pairs));
                total += t.elapsed();
                std::fs::remove_file(written).expect("remove snapshot");
            }
            total
        })
    });
    // Its CPU part alone.
    group.bench_function("encode only (chunks of 2048)", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for chunk in black_box(&pairs).chunks(CHUNK_PAIRS) {
                bytes += codec::encode(&chunk).expect("encode chunk").len();
            }
            bytes
        })
    });
    // The whole read path: checksum pass + decode pass.
    group.bench_function("read (checksum + decode)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            snapshot::read(black_box(&path), |_, chunk| {
                n += chunk.len();
                black_box(chunk);
                Ok(())
            })
            .expect("read snapshot");
            assert_eq!(n, PAIRS);
            n
        })
    });
    // Its decode part alone, from memory.
    group.bench_function("decode only (chunks of 2048)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for bytes in black_box(&encoded) {
                let chunk: Vec<PairV5> = codec::decode(bytes).expect("decode chunk");
                n += chunk.len();
            }
            n
        })
    });
    group.finish();

    let mut group = c.benchmark_group("snapshot_1M_checksum");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(size));
    // The checksum pass over the body alone (page cache → CRC-32).
    group.bench_function("crc32 of the file", |b| {
        b.iter(|| {
            let body = std::fs::read(black_box(&path)).expect("read file");
            codec::crc32(&body)
        })
    });
    group.finish();
}

/// A realistic pair log record (an increase with an event id).
fn record_payload(i: u64) -> Vec<u8> {
    codec::encode(&PairRecordV1 {
        achievement: 3,
        customer: format!("customer-{:08}", i % 1_000_000),
        pair_number: i,
        now: TimeV1 {
            secs: 1_750_000_000,
            nanos: 5,
        },
        campaign_running: true,
        op: PairOpV1::Increase {
            delta: dec(Decimal::ONE),
            at: None,
            event_id: Some(format!("evt-{i:012}")),
        },
    })
    .expect("encode record")
}

/// What one benchmark made its log do.
struct WalTally {
    records: u64,
    elapsed: Duration,
    fsyncs_before: u64,
    bytes_before: u64,
    micros_before: u64,
}

impl WalTally {
    fn new(wal: &Wal) -> WalTally {
        WalTally {
            records: 0,
            elapsed: Duration::ZERO,
            fsyncs_before: wal.stats.fsyncs.load(Ordering::Relaxed),
            bytes_before: wal.stats.bytes.load(Ordering::Relaxed),
            micros_before: wal.stats.fsync_micros.load(Ordering::Relaxed),
        }
    }

    fn print(&self, name: &str, wal: &Wal) {
        let fsyncs = wal.stats.fsyncs.load(Ordering::Relaxed) - self.fsyncs_before;
        let bytes = wal.stats.bytes.load(Ordering::Relaxed) - self.bytes_before;
        let micros = wal.stats.fsync_micros.load(Ordering::Relaxed) - self.micros_before;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        println!(
            "wal/{name}: {} records in {:.2?} over {fsyncs} write+fdatasync groups; \
             {:.1} records/fsync, {:.0} records/s, {:.2} MB/s, mean write+fdatasync {:.0} µs",
            self.records,
            self.elapsed,
            self.records as f64 / fsyncs.max(1) as f64,
            self.records as f64 / secs,
            bytes as f64 / secs / 1e6,
            micros as f64 / fsyncs.max(1) as f64,
        );
    }
}

fn wal(c: &mut Criterion) {
    let dir = bench_dir();
    let wal = Wal::open(dir.path(), 1, 1 << 20, OnFailure::Retain).expect("open log");
    let lsn = Arc::new(AtomicU64::new(1));
    let payload = record_payload(42);
    println!(
        "wal record: {} bytes payload + 16 bytes frame header",
        payload.len()
    );

    let mut group = c.benchmark_group("wal");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));

    // Latency of one durable append: queue one record, wait for its fsync.
    group.throughput(Throughput::Elements(1));
    let mut tally = WalTally::new(&wal);
    group.bench_function("append 1 record, awaited", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let n = lsn.fetch_add(1, Ordering::Relaxed);
                let durable = wal.append(vec![(n, payload.clone())]).expect("queue");
                block_on(durable).expect("writer").expect("durable");
            }
            let e = t.elapsed();
            tally.records += iters;
            tally.elapsed += e;
            e
        })
    });
    tally.print("append 1 record, awaited", &wal);

    // 64 appends (one record each) queued from one thread, then awaited:
    // the writer takes whatever queued while it was busy as one group.
    group.throughput(Throughput::Elements(APPENDERS as u64));
    let mut tally = WalTally::new(&wal);
    group.bench_function("64 queued appends, then awaited", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let waits: Vec<_> = (0..APPENDERS)
                    .map(|_| {
                        let n = lsn.fetch_add(1, Ordering::Relaxed);
                        wal.append(vec![(n, payload.clone())]).expect("queue")
                    })
                    .collect();
                for durable in waits {
                    block_on(durable).expect("writer").expect("durable");
                }
            }
            let e = t.elapsed();
            tally.records += iters * APPENDERS as u64;
            tally.elapsed += e;
            e
        })
    });
    tally.print("64 queued appends, then awaited", &wal);

    // 64 threads, each appending one record and awaiting it, over and over:
    // how a shard's callers look to the log. One iteration = one record.
    group.throughput(Throughput::Elements(1));
    let mut tally = WalTally::new(&wal);
    group.bench_function("64 threads, each append awaited", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(APPENDERS as u64);
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..APPENDERS {
                    s.spawn(|| {
                        for _ in 0..per_thread {
                            let n = lsn.fetch_add(1, Ordering::Relaxed);
                            let durable = wal.append(vec![(n, payload.clone())]).expect("queue");
                            block_on(durable).expect("writer").expect("durable");
                        }
                    });
                }
            });
            let e = t.elapsed();
            tally.records += per_thread * APPENDERS as u64;
            tally.elapsed += e;
            // Report the time of `iters` records (a few more were written).
            e.mul_f64(iters as f64 / (per_thread * APPENDERS as u64) as f64)
        })
    });
    tally.print("64 threads, each append awaited", &wal);

    // A shard's batch: 2048 records in one append (what `increase_batch`
    // queues per shard), awaited.
    group.throughput(Throughput::Elements(2048));
    let mut tally = WalTally::new(&wal);
    group.bench_function("one append of 2048 records, awaited", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let records = (0..2048)
                    .map(|_| (lsn.fetch_add(1, Ordering::Relaxed), payload.clone()))
                    .collect();
                let durable = wal.append(records).expect("queue");
                block_on(durable).expect("writer").expect("durable");
            }
            let e = t.elapsed();
            tally.records += iters * 2048;
            tally.elapsed += e;
            e
        })
    });
    tally.print("one append of 2048 records, awaited", &wal);
    group.finish();
}

criterion_group!(benches, snapshots, wal);
criterion_main!(benches);
