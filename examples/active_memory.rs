//! Memory of active pairs: loads N pairs (passive: served by their shards),
//! then sends each pair two single events in quick succession, which gives
//! it an actor, and reports resident memory per passive and per active pair.
//!
//! `cargo run --release --example active_memory -- 200000`

use std::sync::atomic::Ordering;
use std::time::Instant;

use achievements_engine::domain::{AchievementDraft, CustomerId, Increase, RecurrencePolicy};
use achievements_engine::engine::{testing, Catalog, Engine, EngineConfig, EventInput};
use rust_decimal::Decimal;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    actix_rt::System::new().block_on(async move {
        let engine = Engine::start(EngineConfig::default(), Catalog::default());
        let entry = testing::one_achievement(
            &engine,
            AchievementDraft {
                name: "visits".into(),
                title: "Visits".into(),
                target: Decimal::from(1_000_000_000u64),
                period: Some("1W".into()),
                recurrence_policy: RecurrencePolicy::OnExpiration,
                ..AchievementDraft::default()
            },
        )
        .await;
        let customers: Vec<CustomerId> = (0..n)
            .map(|i| CustomerId::parse(&format!("customer-{i:09}"), "/integrationId"))
            .collect::<Result<_, _>>()?;
        let input = |c: &CustomerId| EventInput {
            customer: c.clone(),
            entry: entry.clone(),
            increase: Increase {
                delta: Decimal::ONE,
                at: None,
                event_id: None,
            },
        };
        let start = testing::resident_bytes();
        for chunk in customers.chunks(10_000) {
            engine
                .increase_batch(chunk.iter().map(input).collect())
                .await?
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
        }
        let passive = testing::resident_bytes();
        let started = Instant::now();
        // A message within a second of the previous one activates the pair.
        for chunk in customers.chunks(256) {
            let sends = chunk.iter().map(|c| engine.increase(input(c)));
            for r in futures_util::future::join_all(sends).await {
                r?;
            }
        }
        let actors = engine.stats().actors.load(Ordering::Relaxed).max(0) as u64;
        let active = testing::resident_bytes();
        println!("| measure | value |\n|---|---|");
        println!("| pairs | {n} |");
        println!(
            "| RSS growth per passive pair | {} bytes |",
            (passive - start) / n as u64
        );
        println!(
            "| actors activated | {actors} (in {:.1} s) |",
            started.elapsed().as_secs_f64()
        );
        if let Some(extra) = active.saturating_sub(passive).checked_div(actors) {
            println!("| RSS growth per activation | {extra} bytes |");
            println!(
                "| memory per active pair (passive + activation) | {} bytes |",
                (passive - start) / n as u64 + extra
            );
        }
        Ok(())
    })
}
