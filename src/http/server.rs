//! Building and starting the HTTP server around a new engine, restoring the
//! engine's state in the background (`/readyz` answers 503 until done) and
//! taking periodic snapshots; used by the binary and by the integration tests
//! (`spawn_app`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context as _;

use super::AppState;
use crate::clock::Clock;
use crate::cluster::{ClusterConfig, Service};
use crate::config::Settings;
use crate::engine::keys::hash_key;
use crate::engine::{keys, Catalog, Engine, EngineConfig};
use crate::feed::webhooks::{DeliveryConfig, Webhooks, WEBHOOKS_DIR};
use crate::feed::{Feed, FeedWriter};
use crate::persist::store::{self, Store};

/// The feed's directory inside the data directory.
pub const FEED_DIR: &str = "feed";

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    pub server: actix_web::dev::Server,
    pub engine: Engine,
    pub management_key: String,
    /// Set once the restore finished.
    pub store: Arc<OnceLock<Arc<Store>>>,
    /// Resolves when the restore finished (with its error, if it failed).
    pub restored: tokio::sync::oneshot::Receiver<Result<(), String>>,
    /// Stops the periodic snapshots.
    pub stopping: Arc<AtomicBool>,
    /// The cluster node, in cluster mode.
    pub cluster: Option<Arc<Service>>,
}

/// Prepares the data directory, the engine and the server (bound, not yet
/// awaited), and starts the restore. Must be called inside an actix system.
pub fn start(settings: &Settings) -> anyhow::Result<Running> {
    start_with_clock(settings, Clock::system())
}

/// Like [`start`], with the engine reading "now" from `clock` (a manual
/// clock lets tests move time instead of sleeping).
pub fn start_with_clock(settings: &Settings, clock: Clock) -> anyhow::Result<Running> {
    let clustered = settings.cluster.is_some();
    let config = EngineConfig {
        clock,
        // In a cluster the data directory holds no log: partitions and
        // shards come from the flags (the cluster checks the count).
        shards: if clustered {
            settings.worker_count()
        } else {
            store::shard_count(&settings.data_dir, settings.worker_count())
        },
        partitions: if clustered {
            settings
                .partitions
                .unwrap_or(crate::engine::partition::DEFAULT_PARTITIONS)
        } else {
            store::partition_count(&settings.data_dir, settings.partitions)?
        },
        arbiters: settings.worker_count(),
        queue_capacity: settings.queue_capacity as usize,
        limits: crate::domain::Limits {
            idempotency_retention: chrono::Duration::seconds(
                i64::try_from(settings.idempotency_retention_secs).unwrap_or(i64::MAX),
            ),
            history_cap: settings.history_cap as usize,
            ..crate::domain::Limits::default()
        },
        ..EngineConfig::default()
    };
    store::check_dir(&settings.data_dir, config.shards)?;
    let (management_key, generated) =
        keys::load_or_create_management_key(settings.management_key.as_deref(), &settings.data_dir)
            .with_context(|| {
                format!(
                    "cannot read or write the management key in {}",
                    settings.data_dir.display()
                )
            })?;
    let workers = settings.worker_count();
    let engine = Engine::start(config, Catalog::default());
    engine.set_ready(false);
    // The feed hears every change from the restore's replay on.
    let feed = Feed::open(
        &settings.data_dir.join(FEED_DIR),
        chrono::Duration::seconds(i64::try_from(settings.feed_retention_secs).unwrap_or(i64::MAX)),
        engine.clock().clone(),
    )
    .with_context(|| {
        format!(
            "cannot open the achievement event feed in {}",
            settings.data_dir.display()
        )
    })?;
    let writer = FeedWriter::start(feed.clone()).context("cannot start the feed writer")?;
    // Deliveries start at once: what the feed holds is durable already.
    let webhooks = Webhooks::open(
        &settings.data_dir.join(WEBHOOKS_DIR),
        feed.clone(),
        engine.clock().clone(),
        DeliveryConfig::new(settings.webhook_retry_hours, settings.webhook_allow_private),
    )
    .with_context(|| {
        format!(
            "cannot open the webhooks in {}",
            settings.data_dir.display()
        )
    })?;
    // In a cluster one node at a time delivers (the cluster says which).
    if settings.cluster.is_some() {
        webhooks.set_delivering(false);
    }
    webhooks.start()?;
    let webhooks = Arc::new(webhooks);
    let (done, restored) = tokio::sync::oneshot::channel();
    let mut done = Some(done);
    let (management_key, cluster) = match &settings.cluster {
        None => (management_key, None),
        Some(urls) => {
            let done = done.take();
            let service = Service::spawn(
                ClusterConfig {
                    urls: urls.clone(),
                    node_id: settings.node_id.clone().unwrap_or_default(),
                    address: String::new(),
                    partitions: engine.partitions(),
                    replicas: usize::from(settings.replicas),
                    lease: Duration::from_secs(settings.lease_secs),
                    wait: Duration::from_millis(settings.request_timeout_ms),
                    feed_retention: Duration::from_secs(settings.feed_retention_secs),
                    snapshot_every: Duration::from_secs(if settings.snapshot_interval > 0 {
                        settings.snapshot_interval
                    } else {
                        60
                    }),
                },
                engine.clone(),
                feed.clone(),
                writer.clone(),
                webhooks.clone(),
                settings.management_key.clone(),
                management_key,
                move |joined| {
                    if let Err(e) = &joined {
                        tracing::error!(error = %e, "cannot join the cluster; the node will not become ready");
                    }
                    if let Some(done) = done {
                        let _ = done.send(joined);
                    }
                },
            )?;
            let key = service.management_key.clone();
            if settings.management_key.is_none() {
                keys::write_management_key(&settings.data_dir, &key).with_context(|| {
                    format!(
                        "cannot write the management key in {}",
                        settings.data_dir.display()
                    )
                })?;
            }
            (key, Some(Arc::new(service)))
        }
    };
    if generated && cluster.is_none() {
        tracing::info!(
            path = %settings.data_dir.join(keys::MANAGEMENT_KEY_FILE).display(),
            "generated a management key and stored it (mode 0600)"
        );
    }
    // A single node's feed hears its engine; a cluster node's follows the
    // cluster's feed stream (and its engine publishes to it).
    if cluster.is_none() {
        engine
            .attach_feed(writer)
            .context("cannot attach the feed")?;
    }
    let store_cell: Arc<OnceLock<Arc<Store>>> = Arc::new(OnceLock::new());
    let state = web::Data::new(AppState {
        engine: engine.clone(),
        management_key_hash: hash_key(&management_key),
        store: store_cell.clone(),
        metrics: Arc::new(super::metrics::Metrics::new()),
        feed,
        webhooks: webhooks.clone(),
        cluster: cluster.clone(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(middleware::from_fn(super::json::header_limit))
            .wrap(middleware::from_fn(super::metrics::track_requests))
            .configure(super::configure)
            .default_service(web::to(super::not_found))
    })
    .workers(workers)
    .max_connections(settings.max_connections as usize)
    .client_request_timeout(Duration::from_millis(settings.request_timeout_ms))
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(Duration::from_millis(settings.request_timeout_ms))
    // The binary handles SIGTERM/SIGINT itself: actix's own handling stops
    // the whole actix system, shards included, before the final snapshot.
    .disable_signals()
    .bind(settings.listen)
    .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = *server
        .addrs()
        .first()
        .context("the server bound no address")?;
    let stopping = Arc::new(AtomicBool::new(false));
    if let Some(service) = &cluster {
        service.begin(addr);
    } else {
        let done = done.take().context("the restore started twice")?;
        let engine = engine.clone();
        let dir = settings.data_dir.clone();
        let keep = settings.snapshot_keep as usize;
        let interval = settings.snapshot_interval;
        let cell = store_cell.clone();
        let stopping = stopping.clone();
        std::thread::Builder::new()
            .name("restore".into())
            .spawn(move || match Store::restore(&engine, &dir, keep) {
                Ok((store, _)) => {
                    let store = Arc::new(store);
                    let _ = cell.set(store.clone());
                    engine.set_ready(true);
                    let _ = done.send(Ok(()));
                    if interval > 0 {
                        periodic_snapshots(engine, store, Duration::from_secs(interval), stopping);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "restore failed; the engine will not become ready");
                    let _ = done.send(Err(e.to_string()));
                }
            })
            .context("cannot start the restore thread")?;
    }
    Ok(Running {
        addr,
        server: server.run(),
        engine,
        management_key,
        store: store_cell,
        restored,
        stopping,
        cluster,
    })
}

fn periodic_snapshots(
    engine: Engine,
    store: Arc<Store>,
    every: Duration,
    stopping: Arc<AtomicBool>,
) {
    let step = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    while !stopping.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited < every {
            continue;
        }
        waited = Duration::ZERO;
        if let Err(e) = store.snapshot(&engine) {
            tracing::error!(error = %e, "periodic snapshot failed");
        }
    }
}

impl Running {
    /// Serves until SIGTERM/SIGINT (or a failed restore): stops accepting,
    /// drains the requests in flight, writes a final snapshot. An error when
    /// the restore failed.
    pub async fn serve_until_shutdown(self, data_dir: &std::path::Path) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
        let restored = self.restored;
        let on_failure = handle.clone();
        actix_web::rt::spawn(async move {
            if let Ok(Err(e)) = restored.await {
                let _ = failed_tx.send(e);
                on_failure.stop(false).await;
            }
        });
        let cluster = self.cluster.clone();
        actix_web::rt::spawn(async move {
            shutdown_signal().await;
            if let Some(cluster) = cluster {
                // Partitions first, while this node still serves: requests
                // it accepted meanwhile are answered by the new owners.
                tracing::info!(
                    "shutting down: handing the partitions over, then draining requests"
                );
                cluster.leave().await;
            } else {
                tracing::info!("shutting down: draining requests, then a final snapshot");
            }
            handle.stop(true).await;
        });
        self.server.await?;
        self.stopping.store(true, Ordering::Relaxed);
        if let Some(cluster) = &self.cluster {
            // Also after a failed join or an early stop (nothing to hand
            // over then).
            cluster.leave().await;
        }
        if let Ok(e) = failed_rx.await {
            if self.cluster.is_some() {
                anyhow::bail!("cannot join the cluster: {e}");
            }
            anyhow::bail!("cannot restore from {}: {e}", data_dir.display());
        }
        if let Some(store) = self.store.get().cloned() {
            let engine = self.engine.clone();
            match actix_web::rt::task::spawn_blocking(move || store.snapshot(&engine)).await {
                Ok(Ok(info)) => {
                    tracing::info!(id = info.id, pairs = info.pairs, "final snapshot written")
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "final snapshot failed; the log still holds every change")
                }
                Err(e) => tracing::error!(error = %e, "final snapshot panicked"),
            }
        }
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
