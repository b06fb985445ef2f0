//! Memory of remembered `eventId`s: loads N pairs with K events each,
//! once without ids and once with a unique id per event (`order-<customer>-<k>`,
//! as clients send them), each in a fresh process, and reports resident
//! memory per pair and the increment per remembered id, with the pairs live
//! and then frozen (as the shards' sweep leaves idle pairs).
//!
//! `cargo run --release --example event_id_memory -- [pairs] [events per pair]`
//! (defaults 100,000 and 10).

use std::process::Command;

use achievements_engine::domain::{
    AchievementDraft, CustomerId, EventId, Increase, RecurrencePolicy,
};
use achievements_engine::engine::{testing, Catalog, Engine, EngineConfig, EventInput};
use rust_decimal::Decimal;

/// Loads the pairs in this process; returns the RSS growth in bytes, with
/// the pairs live and then frozen.
fn load(pairs: usize, events: usize, with_ids: bool) -> anyhow::Result<(u64, u64)> {
    actix_rt::System::new().block_on(async move {
        let engine = Engine::start(EngineConfig::default(), Catalog::default());
        let entry = testing::one_achievement(
            &engine,
            AchievementDraft {
                name: "orders".into(),
                title: "Orders".into(),
                target: Decimal::from(1_000_000_000u64),
                period: Some("1W".into()),
                recurrence_policy: RecurrencePolicy::OnExpiration,
                ..AchievementDraft::default()
            },
        )
        .await;
        let customers: Vec<CustomerId> = (0..pairs)
            .map(|i| CustomerId::parse(&format!("customer-{i:09}"), "/integrationId"))
            .collect::<Result<_, _>>()?;
        let start = testing::resident_bytes();
        for k in 0..events {
            for chunk in customers.chunks(10_000) {
                let batch = chunk
                    .iter()
                    .map(|c| -> anyhow::Result<EventInput> {
                        let event_id = with_ids
                            .then(|| EventId::parse(&format!("order-{c}-{k}"), "/eventId"))
                            .transpose()?;
                        Ok(EventInput {
                            customer: c.clone(),
                            entry: entry.clone(),
                            increase: Increase {
                                delta: Decimal::ONE,
                                at: None,
                                event_id,
                            },
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                engine
                    .increase_batch(batch)
                    .await?
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?;
            }
        }
        let live = testing::resident_bytes().saturating_sub(start);
        // What the shards' sweep does to pairs idle for a minute, at once.
        engine.freeze_idle(std::time::Duration::ZERO).await?;
        let frozen = testing::resident_bytes().saturating_sub(start);
        Ok((live, frozen))
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--phase") {
        let with_ids = args[2] == "ids";
        let (pairs, events) = (args[3].parse()?, args[4].parse()?);
        let (live, frozen) = load(pairs, events, with_ids)?;
        println!("{live} {frozen}");
        return Ok(());
    }
    let pairs: usize = args
        .get(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let events: usize = args.get(2).map(|a| a.parse()).transpose()?.unwrap_or(10);
    let phase = |kind: &str| -> anyhow::Result<(u64, u64)> {
        let out = Command::new(std::env::current_exe()?)
            .args(["--phase", kind, &pairs.to_string(), &events.to_string()])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout)?;
        let mut figures = text.split_whitespace().map(str::parse::<u64>);
        match (figures.next(), figures.next()) {
            (Some(live), Some(frozen)) => Ok((live?, frozen?)),
            _ => anyhow::bail!("{kind}: no figures in {text:?}"),
        }
    };
    let (plain, plain_frozen) = phase("plain")?;
    let (ids, ids_frozen) = phase("ids")?;
    let remembered = (pairs * events) as u64;
    println!("| measure | live | frozen |\n|---|---|---|");
    println!("| pairs × events per pair | {pairs} × {events} | |");
    println!(
        "| RSS growth per pair, no ids | {} bytes | {} bytes |",
        plain / pairs as u64,
        plain_frozen / pairs as u64
    );
    println!(
        "| RSS growth per pair, an id per event | {} bytes | {} bytes |",
        ids / pairs as u64,
        ids_frozen / pairs as u64
    );
    println!(
        "| memory per remembered eventId (incremental) | {} bytes | {} bytes |",
        ids.saturating_sub(plain) / remembered,
        ids_frozen.saturating_sub(plain_frozen) / remembered
    );
    Ok(())
}
