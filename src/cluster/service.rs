//! A cluster node's own thread: the Tokio runtime its tasks run on (the
//! NATS connection, the catalog follower, the ownership loop and the
//! partition tasks), started beside the HTTP server and stopped after it.
//!
//! Owns: `Service` (spawn, the node once it joined, the graceful leave).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;

use super::node::{set_runtime, ClusterConfig, Node};
use crate::engine::Engine;
use crate::feed::{Feed, FeedWriter, Webhooks};

/// How long joining may take before the server gives up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);

/// A node running on its own thread.
pub struct Service {
    /// The management key every node of the cluster uses.
    pub management_key: String,
    node: Arc<OnceLock<Node>>,
    leave: Mutex<Option<oneshot::Sender<oneshot::Sender<()>>>>,
    begin: Mutex<Option<oneshot::Sender<std::net::SocketAddr>>>,
}

impl Service {
    /// Starts the node's thread and waits until it knows the cluster's
    /// management key (`given`, else the one the cluster holds, else
    /// `candidate`, which then becomes the cluster's). Joining starts with
    /// `begin` and goes on in the background; `joined` is told how it
    /// ended (the engine is ready once it succeeded).
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        config: ClusterConfig,
        engine: Engine,
        feed: Arc<Feed>,
        writer: Arc<FeedWriter>,
        webhooks: Arc<Webhooks>,
        given: Option<String>,
        candidate: String,
        joined: impl FnOnce(Result<(), String>) + Send + 'static,
    ) -> anyhow::Result<Service> {
        let node: Arc<OnceLock<Node>> = Arc::default();
        let (key_tx, key_rx) = std::sync::mpsc::channel();
        let (leave_tx, leave_rx) = oneshot::channel::<oneshot::Sender<()>>();
        let (begin_tx, begin_rx) = oneshot::channel::<std::net::SocketAddr>();
        let mut config = config;
        let cell = node.clone();
        std::thread::Builder::new()
            .name("cluster".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = key_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                set_runtime(runtime.handle().clone());
                runtime.block_on(async move {
                    let key = Node::management_key(&config, given.as_deref(), candidate)
                        .await
                        .map_err(|e| e.to_string());
                    let failed = key.is_err();
                    let _ = key_tx.send(key);
                    if failed {
                        return;
                    }
                    // The address the HTTP server bound (port 0 picks one).
                    let Ok(address) = begin_rx.await else { return };
                    config.address = address.to_string();
                    if config.node_id.is_empty() {
                        config.node_id = config.address.clone();
                    }
                    let started = tokio::time::timeout(
                        JOIN_TIMEOUT,
                        Node::start(config, engine.clone(), feed, writer, webhooks),
                    )
                    .await;
                    let node = match started {
                        Ok(Ok(node)) => node,
                        Ok(Err(e)) => return joined(Err(e.to_string())),
                        Err(_) => return joined(Err("joining the cluster took too long".into())),
                    };
                    let _ = cell.set(node.clone());
                    engine.set_ready(true);
                    joined(Ok(()));
                    if let Ok(done) = leave_rx.await {
                        node.leave().await;
                        let _ = done.send(());
                    }
                });
            })?;
        let key = key_rx
            .recv_timeout(JOIN_TIMEOUT)
            .map_err(|_| {
                anyhow::anyhow!("the NATS cluster did not answer within {JOIN_TIMEOUT:?}")
            })?
            .map_err(|e| anyhow::anyhow!("cannot join the cluster: {e}"))?;
        Ok(Service {
            management_key: key,
            node,
            leave: Mutex::new(Some(leave_tx)),
            begin: Mutex::new(Some(begin_tx)),
        })
    }

    /// Joins, once the HTTP server listens at `address` (also the node's
    /// id unless one was given).
    pub fn begin(&self, address: std::net::SocketAddr) {
        if let Some(tx) = self.begin.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(address);
        }
    }

    /// The node, once it joined.
    pub fn node(&self) -> Option<&Node> {
        self.node.get()
    }

    /// Hands every partition over and leaves (bounded: what is not handed
    /// over in time waits for its lease instead).
    pub async fn leave(&self) {
        let tx = self.leave.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = tx {
            let (done_tx, done_rx) = oneshot::channel();
            if tx.send(done_tx).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(30), done_rx).await;
            }
        }
    }
}
