//! `inspect`: one customer's state as a restore would rebuild it.
//!
//! Owns: the read-only load and the customer's view. The state is not
//! recomputed here: an engine is started in this process without HTTP, a
//! log, a feed or webhooks, and `Store::load` fills it through the restore's
//! own path (the same snapshot choice, the same replay; only the writes a
//! restore makes afterwards — cutting torn tails, starting a segment,
//! migrating, marking the partition count — are left out). The customer's
//! pairs are then read through the engine's snapshot walk
//! (`snapshot_begin`/`snapshot_chunk`), which hands over whole trackers:
//! iterations, history and remembered event ids.
//!
//! Limits (idempotency retention, history cap) are the defaults; replayed
//! records carry their results, so they do not depend on them.

use std::path::Path;

use serde::Serialize;

use super::OpsError;
use crate::clock::Clock;
use crate::domain::{ApplicationId, CustomerId, Iteration};
use crate::engine::log::PartitionId;
use crate::engine::shard::PairImage;
use crate::engine::{Catalog, Engine, EngineConfig};
use crate::persist::store::{self, Store};

/// Pairs per walk step.
const CHUNK: usize = 4096;

/// One iteration of a customer's progress.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IterationView {
    pub tracker_id: u64,
    /// As of now (an iteration whose period ended reads as expired).
    pub status: String,
    pub progress: String,
    pub start: String,
    pub end: Option<String>,
    pub completion: Option<String>,
}

/// A customer's progress in one achievement.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AchievementView {
    pub id: u64,
    pub name: String,
    pub title: String,
    pub campaign_id: u64,
    pub campaign: String,
    pub target: String,
    pub current: Option<IterationView>,
    /// Past iterations, newest first.
    pub history: Vec<IterationView>,
    pub remembered_event_ids: usize,
    /// The log position of the pair's last change.
    pub last_position: u64,
}

/// The customer in one application.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationView {
    pub id: u64,
    pub name: String,
    pub partition: u32,
    pub achievements: Vec<AchievementView>,
}

/// What `inspect` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    pub customer: String,
    pub snapshot: Option<u64>,
    pub replayed_records: u64,
    pub applications: Vec<ApplicationView>,
}

/// Loads the directory as a restore would and reads one customer's pairs
/// (in one application, or in every application that has them).
pub async fn inspect(
    dir: &Path,
    customer: &str,
    application: Option<u64>,
    partitions: Option<u32>,
) -> Result<CustomerView, OpsError> {
    if !dir.is_dir() {
        return Err(OpsError::NoDir(dir.to_path_buf()));
    }
    let customer = CustomerId::parse(customer, "/integrationId")
        .map_err(|e| OpsError::Usage(format!("--customer: {}", e.message)))?;
    let config = EngineConfig {
        shards: store::shard_count(dir, 1),
        partitions: store::partition_count(dir, partitions)?,
        arbiters: 1,
        clock: Clock::system(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, Catalog::default());
    let (e, d) = (engine.clone(), dir.to_path_buf());
    let report = actix_rt::task::spawn_blocking(move || Store::load(&e, &d))
        .await
        .map_err(|e| OpsError::Failed(format!("the load stopped: {e}")))??;
    let now = engine.now();
    let apps: Vec<(ApplicationId, String)> = engine
        .catalog
        .read()
        .applications
        .values()
        .filter(|a| application.is_none_or(|want| a.id.0 == want))
        .map(|a| (a.id, a.name.clone()))
        .collect();
    let mut view = CustomerView {
        customer: customer.as_str().to_string(),
        snapshot: report.snapshot,
        replayed_records: report.pair_records,
        applications: Vec::new(),
    };
    for (app, name) in apps {
        let partition = engine.partition_of(app, &customer);
        let pairs = customer_pairs(&engine, partition, &customer).await?;
        let catalog = engine.catalog.read();
        let mut achievements: Vec<AchievementView> = pairs
            .into_iter()
            .filter_map(|pair| {
                let entry = catalog.achievements.get(&pair.key.achievement)?;
                (entry.application_id == app).then(|| achievement_view(entry, pair, now))
            })
            .collect();
        achievements.sort_by_key(|a| a.id);
        if !achievements.is_empty() {
            view.applications.push(ApplicationView {
                id: app.0,
                name,
                partition: partition.0,
                achievements,
            });
        }
    }
    if view.applications.is_empty() {
        let scope = application.map_or_else(String::new, |a| format!(" in application {a}"));
        return Err(OpsError::NotFound(format!(
            "no customer {:?}{scope} in {} (no progress in any achievement)",
            customer.as_str(),
            dir.display()
        )));
    }
    Ok(view)
}

/// The customer's pairs in one partition, through the snapshot walk.
async fn customer_pairs(
    engine: &Engine,
    partition: PartitionId,
    customer: &CustomerId,
) -> Result<Vec<PairImage>, OpsError> {
    let mut found = Vec::new();
    let begin = engine.snapshot_begin(partition).await?;
    let mut from = 0;
    loop {
        let chunk = engine
            .snapshot_chunk(partition, from, CHUNK, begin.token)
            .await?;
        let (next, done) = (chunk.next, chunk.done);
        found.extend(
            chunk
                .into_images()
                .into_iter()
                .filter(|p| &p.key.customer == customer),
        );
        from = next;
        if done {
            return Ok(found);
        }
    }
}

fn iteration_view(i: &Iteration, now: chrono::DateTime<chrono::Utc>) -> IterationView {
    IterationView {
        tracker_id: i.id.0,
        status: i.status_at(now).as_str().to_string(),
        progress: i.progress.normalize().to_string(),
        start: i.start.to_rfc3339(),
        end: i.end.as_ref().map(|e| e.end.to_rfc3339()),
        completion: i.completion.map(|c| c.to_rfc3339()),
    }
}

fn achievement_view(
    entry: &crate::engine::AchievementEntry,
    pair: PairImage,
    now: chrono::DateTime<chrono::Utc>,
) -> AchievementView {
    let a = &entry.achievement;
    let mut history: Vec<IterationView> = pair
        .tracker
        .history
        .iter()
        .map(|i| iteration_view(i, now))
        .collect();
    history.reverse();
    AchievementView {
        id: a.id.0,
        name: a.name.clone(),
        title: a.title.clone(),
        campaign_id: entry.campaign.id.0,
        campaign: entry.campaign.name.clone(),
        target: a.rules.target.normalize().to_string(),
        current: pair
            .tracker
            .current
            .as_ref()
            .map(|i| iteration_view(i, now)),
        history,
        remembered_event_ids: pair.tracker.events.len(),
        last_position: pair.last.0,
    }
}

impl std::fmt::Display for CustomerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self
            .snapshot
            .map_or_else(|| "no snapshot".to_string(), |s| format!("snapshot {s}"));
        writeln!(
            f,
            "customer {:?} (as a restore rebuilds it: {snapshot} + {} log records replayed)",
            self.customer, self.replayed_records
        )?;
        for app in &self.applications {
            writeln!(
                f,
                "\napplication {} {:?} (partition {})",
                app.id, app.name, app.partition
            )?;
            for a in &app.achievements {
                writeln!(
                    f,
                    "  achievement {} {:?} (campaign {} {:?}), target {}",
                    a.id, a.name, a.campaign_id, a.campaign, a.target
                )?;
                match &a.current {
                    Some(i) => writeln!(f, "    current: {}", line(i, &a.target))?,
                    None => writeln!(f, "    current: none")?,
                }
                writeln!(f, "    history: {} past iterations", a.history.len())?;
                for i in &a.history {
                    writeln!(f, "      {}", line(i, &a.target))?;
                }
                writeln!(
                    f,
                    "    remembered event ids: {}; last change at log position {}",
                    a.remembered_event_ids, a.last_position
                )?;
            }
        }
        Ok(())
    }
}

fn line(i: &IterationView, target: &str) -> String {
    format!(
        "#{} {} progress {} / {target}, started {}, ends {}, completed {}",
        i.tracker_id,
        i.status,
        i.progress,
        i.start,
        i.end.as_deref().unwrap_or("never"),
        i.completion.as_deref().unwrap_or("-"),
    )
}
