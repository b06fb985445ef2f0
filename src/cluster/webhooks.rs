//! Webhooks in a cluster: the list, the delivery positions and the recent
//! attempts live in KV bucket `ACHV_WEBHOOKS`, shared by every node; one
//! node at a time delivers — the owner of partition 0, so deliveries move
//! with a lease like everything else and resume from the stored positions
//! (re-delivering at most what was in flight, as after a restart).
//!
//! Owns: `KvWebhookStore` (the webhooks' `SharedStore` on the bucket:
//! blocking calls run on the node's runtime) and `follow_webhooks` (every
//! node takes each new version of the list as it is stored).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;

use super::streams::ClusterError;
use crate::feed::webhooks::SharedStore;
use crate::feed::Webhooks;

pub const WEBHOOKS_BUCKET: &str = "ACHV_WEBHOOKS";
/// The list's key (the single node's file name, as keys allow it).
const LIST_KEY: &str = "webhooks.json";

/// Opens (or creates) the bucket.
pub async fn bucket(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, ClusterError> {
    if let Ok(kv) = js.get_key_value(WEBHOOKS_BUCKET).await {
        return Ok(kv);
    }
    js.create_key_value(kv::Config {
        bucket: WEBHOOKS_BUCKET.into(),
        history: 1,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await
    .map_err(|e| ClusterError::JetStream {
        what: "key-value bucket creation",
        reason: e.to_string(),
    })
}

/// The shared store on the bucket.
pub struct KvWebhookStore {
    kv: kv::Store,
    runtime: tokio::runtime::Handle,
}

impl KvWebhookStore {
    pub fn new(kv: kv::Store, runtime: tokio::runtime::Handle) -> Arc<KvWebhookStore> {
        Arc::new(KvWebhookStore { kv, runtime })
    }
}

impl SharedStore for KvWebhookStore {
    fn load(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>, String> {
        let entry = self
            .runtime
            .block_on(self.kv.entry(name))
            .map_err(|e| e.to_string())?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| (e.value.to_vec(), e.revision)))
    }

    fn replace(&self, name: &str, bytes: &[u8], revision: u64) -> Result<Option<u64>, String> {
        let value = Bytes::copy_from_slice(bytes);
        if revision == 0 {
            return match self.runtime.block_on(self.kv.create(name, value)) {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(e.to_string()),
            };
        }
        match self.runtime.block_on(self.kv.update(name, value, revision)) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        self.runtime
            .block_on(self.kv.put(name, Bytes::copy_from_slice(bytes)))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Hands every stored version of the list to this node's webhooks; runs
/// for the node's life.
pub async fn follow_webhooks(kv: kv::Store, webhooks: Arc<Webhooks>) {
    loop {
        let mut updates = match kv.watch(LIST_KEY).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the webhook list; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(Ok(entry)) = updates.next().await {
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let webhooks = webhooks.clone();
            let taken = tokio::task::spawn_blocking(move || {
                webhooks.take_shared(&entry.value, entry.revision)
            })
            .await;
            if let Ok(Err(e)) = taken {
                tracing::error!(error = %e, "a stored webhook list cannot be read");
            }
        }
    }
}
