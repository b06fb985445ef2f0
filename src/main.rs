//! The `achievements-engine` binary: parse settings, start logging, serve;
//! on SIGTERM/SIGINT stop accepting, drain, write a final snapshot, exit 0.

use std::sync::atomic::Ordering;

use achievements_engine::{config::Settings, http};
use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let running = http::server::start(&settings)?;
    tracing::info!(addr = %running.addr, data_dir = %settings.data_dir.display(), "listening");
    let handle = running.server.handle();
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    let restored = running.restored;
    let on_failure = handle.clone();
    actix_web::rt::spawn(async move {
        if let Ok(Err(e)) = restored.await {
            let _ = failed_tx.send(e);
            on_failure.stop(false).await;
        }
    });
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining requests, then a final snapshot");
        handle.stop(true).await;
    });
    running.server.await?;
    running.stopping.store(true, Ordering::Relaxed);
    if let Ok(e) = failed_rx.await {
        anyhow::bail!("cannot restore from {}: {e}", settings.data_dir.display());
    }
    if let Some(store) = running.store.get().cloned() {
        let engine = running.engine.clone();
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
    tracing::info!("stopped");
    Ok(())
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
