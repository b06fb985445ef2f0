//! Engine benchmarks without HTTP: events/s through the shards and pair
//! actors, with 10 thousand, 1 million and (with `ACHV_BENCH_LARGE=1`) 10
//! million distinct pairs loaded. The per-event cost at 10 million pairs
//! against 10 thousand is the scale figure in BENCHMARKS.md.
//!
//! Run with `cargo bench --bench engine`. No write-ahead log is attached here
//! (the engine alone); `benches/http.rs` measures with durability on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use achievements_engine::domain::{
    AchievementDraft, CustomerId, EventId, Increase, RecurrencePolicy,
};
use achievements_engine::engine::{
    testing, AchievementEntry, Catalog, Engine, EngineConfig, EventInput,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rust_decimal::Decimal;

const BATCH: usize = 1000;
const IN_FLIGHT: usize = 8;

struct Loaded {
    system: actix_rt::SystemRunner,
    engine: Engine,
    entry: Arc<AchievementEntry>,
    customers: Vec<CustomerId>,
}

fn customer(i: usize) -> CustomerId {
    CustomerId::parse(&format!("customer-{i:09}"), "/integrationId").expect("valid id")
}

fn input(entry: &Arc<AchievementEntry>, customer: CustomerId, id: Option<u64>) -> EventInput {
    EventInput {
        customer,
        entry: entry.clone(),
        increase: Increase {
            delta: Decimal::ONE,
            at: None,
            event_id: id.map(|i| EventId::parse(&format!("e{i}"), "/eventId").expect("short id")),
        },
    }
}

fn load(pairs: usize) -> Loaded {
    load_with(pairs, EngineConfig::default())
}

fn load_with(pairs: usize, config: EngineConfig) -> Loaded {
    let system = actix_rt::System::new();
    let (engine, entry) = system.block_on(async {
        let engine = Engine::start(config, Catalog::default());
        let entry = testing::one_achievement(
            &engine,
            AchievementDraft {
                name: "visits".into(),
                title: "Visits".into(),
                target: Decimal::from(1_000_000_000u64),
                period: Some("1Y".into()),
                recurrence_policy: RecurrencePolicy::OnExpiration,
                ..AchievementDraft::default()
            },
        )
        .await;
        (engine, entry)
    });
    let customers: Vec<CustomerId> = (0..pairs).map(customer).collect();
    let started = Instant::now();
    system.block_on(async {
        for chunk in customers.chunks(10_000) {
            let inputs = chunk
                .iter()
                .map(|c| input(&entry, c.clone(), None))
                .collect();
            engine.increase_batch(inputs).await.expect("loaded");
        }
    });
    eprintln!(
        "loaded {pairs} pairs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Loaded {
        system,
        engine,
        entry,
        customers,
    }
}

/// Sends `n` events in batches of `BATCH`, `IN_FLIGHT` batches at a time,
/// spread over all loaded pairs; returns the elapsed time.
fn run_batches(l: &Loaded, n: u64, offset: &mut usize) -> Duration {
    let batches = (n as usize).div_ceil(BATCH);
    let mut all: Vec<Vec<EventInput>> = Vec::with_capacity(batches);
    for _ in 0..batches {
        let batch = (0..BATCH)
            .map(|_| {
                // A stride that visits every pair in a scattered order.
                *offset = (*offset + 7_919) % l.customers.len();
                input(&l.entry, l.customers[*offset].clone(), None)
            })
            .collect();
        all.push(batch);
    }
    let started = Instant::now();
    l.system.block_on(async {
        let mut pending = all.into_iter();
        loop {
            let wave: Vec<_> = pending.by_ref().take(IN_FLIGHT).collect();
            if wave.is_empty() {
                break;
            }
            let sends = wave.into_iter().map(|b| l.engine.increase_batch(b));
            for r in futures_util::future::join_all(sends).await {
                r.expect("batch applied");
            }
        }
    });
    started.elapsed()
}

/// Sends `n` single events, 256 at a time, each as its own message to the
/// pair's actor (activated on first use).
fn run_singles(l: &Loaded, n: u64, offset: &mut usize) -> Duration {
    let inputs: Vec<EventInput> = (0..n)
        .map(|_| {
            *offset = (*offset + 7_919) % l.customers.len();
            input(&l.entry, l.customers[*offset].clone(), None)
        })
        .collect();
    let started = Instant::now();
    l.system.block_on(async {
        let mut pending = inputs.into_iter();
        loop {
            let wave: Vec<_> = pending.by_ref().take(256).collect();
            if wave.is_empty() {
                break;
            }
            let sends = wave.into_iter().map(|i| l.engine.increase(i));
            for r in futures_util::future::join_all(sends).await {
                r.expect("event applied");
            }
        }
    });
    started.elapsed()
}

fn engine(c: &mut Criterion) {
    let mut sizes = vec![10_000usize, 1_000_000];
    if std::env::var("ACHV_BENCH_LARGE").is_ok_and(|v| v == "1") {
        sizes.push(10_000_000);
    }
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for pairs in sizes {
        let loaded = load(pairs);
        let mut offset = 0;
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(format!("batch events/{pairs} pairs"), |b| {
            b.iter_custom(|iters| run_batches(&loaded, iters * BATCH as u64, &mut offset))
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("single events/{pairs} pairs"), |b| {
            b.iter_custom(|iters| run_singles(&loaded, iters, &mut offset))
        });
        eprintln!(
            "actors active after the single-event run: {}",
            loaded
                .engine
                .stats()
                .actors
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    group.finish();
}

/// Hot pairs (64 customers, each sent events back to back), served by pair
/// actors (the default) or always by their shard (`activate_within: None`):
/// whether an actor of its own still pays for a hot pair now that its timer
/// lives with the shard's.
fn actors(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot pairs");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    for (name, activate_within) in [
        ("with actors", Some(Duration::from_secs(1))),
        ("shard only", None),
    ] {
        let loaded = load_with(
            64,
            EngineConfig {
                activate_within,
                ..EngineConfig::default()
            },
        );
        let mut offset = 0;
        group.bench_function(format!("single events/{name}"), |b| {
            b.iter_custom(|iters| run_singles(&loaded, iters, &mut offset))
        });
        eprintln!(
            "{name}: actors active {}",
            loaded
                .engine
                .stats()
                .actors
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    group.finish();
}

criterion_group!(benches, engine, actors);
criterion_main!(benches);
