//! Webhooks in a cluster: the list, the positions and the recent attempts
//! kept in a store every node shares (`SharedStore`, on JetStream
//! key-value in `cluster::webhooks`), the list changed by compare-and-set,
//! and one node delivering at a time (`Webhooks::set_delivering`).

use super::*;

/// Where a cluster keeps the webhook list, positions and recent attempts,
/// shared by every node (blocking calls: use from blocking threads).
pub trait SharedStore: Send + Sync {
    /// A document and its revision; `None` when absent.
    fn load(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>, String>;
    /// Replaces a document if it is still at `revision` (0: absent); the
    /// new revision, or `None` when another node changed it first.
    fn replace(&self, name: &str, bytes: &[u8], revision: u64) -> Result<Option<u64>, String>;
    /// Overwrites a document (one writer: the delivering node).
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), String>;
}

/// Tries at a change of the shared list while other nodes change it.
pub(super) const SHARED_ATTEMPTS: usize = 10;

pub(super) fn deliveries_doc(id: WebhookId) -> String {
    format!("deliveries.{}", id.0)
}

impl Shared {
    /// In a cluster: writes a webhook's recent attempts to the shared store,
    /// off the delivery loop (the list is informative). One write at a
    /// time, and only of the newest list: a thread that finds a newer one
    /// leaves it to that one's thread, which writes after it.
    pub(super) fn share_attempts(&self, id: WebhookId, records: &[files::DeliveryRecord]) {
        let (Some(store), Ok(bytes)) = (self.store.get().cloned(), serde_json::to_vec(records))
        else {
            return;
        };
        let number = {
            let mut latest = lock(&self.share_latest);
            let n = latest.entry(id).or_insert(0);
            *n += 1;
            *n
        };
        let (latest, writing) = (self.share_latest.clone(), self.share_writing.clone());
        std::thread::spawn(move || {
            let _writing = lock(&writing);
            if lock(&latest).get(&id) != Some(&number) {
                return;
            }
            if let Err(e) = store.put(&deliveries_doc(id), &bytes) {
                tracing::debug!(error = %e, "cannot share a webhook's attempts");
            }
        });
    }

    /// In a cluster: takes the shared list as it is now (blocking).
    pub(super) fn refresh(&self, registry: &mut Registry) -> Result<(), WebhookError> {
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        match store.load(HOOKS_FILE).map_err(WebhookError::Shared)? {
            Some((bytes, revision)) => self.take(registry, &bytes, revision),
            None => Ok(()),
        }
    }

    /// Replaces the list by a shared version of it (a newer revision only);
    /// positions follow: new webhooks start at their start, deleted ones go.
    pub(super) fn take(
        &self,
        registry: &mut Registry,
        bytes: &[u8],
        revision: u64,
    ) -> Result<(), WebhookError> {
        if revision < self.revision.load(Ordering::Acquire) {
            return Ok(());
        }
        let label = Path::new("cluster:webhooks");
        let file: HooksFile =
            serde_json::from_slice(bytes).map_err(|e| WebhookError::Malformed {
                path: label.to_path_buf(),
                reason: e.to_string(),
            })?;
        *registry = registry_of(label, file)?;
        self.revision.store(revision, Ordering::Release);
        let mut positions = lock(&self.positions);
        positions.retain(|id, _| registry.hooks.contains_key(id));
        for h in registry.hooks.values() {
            positions.entry(h.id).or_insert(h.start);
        }
        Ok(())
    }

    /// In a cluster: the positions and recent attempts the delivering node
    /// stored (blocking), when this node starts delivering.
    pub(crate) fn reload_positions(&self) -> Result<(), WebhookError> {
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        let stored = match store.load(POSITIONS_FILE).map_err(WebhookError::Shared)? {
            Some((bytes, _)) => serde_json::from_slice::<PositionsFile>(&bytes)
                .map(|f| f.positions)
                .map_err(|e| WebhookError::Shared(format!("stored positions: {e}")))?,
            None => BTreeMap::new(),
        };
        let ids: Vec<WebhookId> = {
            let mut positions = lock(&self.positions);
            for (id, p) in positions.iter_mut() {
                if let Some(s) = stored.get(&id.0) {
                    *p = (*p).max(*s);
                }
            }
            positions.keys().copied().collect()
        };
        // The attempts the last deliverer recorded: this node's list goes on
        // from them (and is what it shares from now on), rather than from
        // what it held when it last delivered, if ever.
        for id in ids {
            let Ok(Some((bytes, _))) = store.load(&deliveries_doc(id)) else {
                continue;
            };
            let Ok(records) = serde_json::from_slice::<Vec<files::DeliveryRecord>>(&bytes) else {
                continue;
            };
            let list: VecDeque<Delivery> = records.iter().filter_map(|r| r.to_delivery()).collect();
            lock(&self.deliveries).insert(id, list);
        }
        Ok(())
    }
}

impl Webhooks {
    /// Keeps the list, positions and attempts in a cluster's shared store
    /// from now on (blocking: loads them). Call before `start`; this node
    /// delivers nothing until `set_delivering(true)`.
    pub fn attach_store(&self, store: Arc<dyn SharedStore>) -> Result<(), WebhookError> {
        self.shared.delivering.store(false, Ordering::Release);
        // Once; a retried attach (the store was not answering) reads again.
        let _ = self.shared.store.set(store);
        let mut registry = lock(&self.shared.registry);
        self.shared.refresh(&mut registry)?;
        drop(registry);
        self.shared.reload_positions()
    }

    /// Takes a version of the shared list another node wrote (a watcher
    /// hands them over): deliveries start and stop with it.
    pub fn take_shared(&self, bytes: &[u8], revision: u64) -> Result<(), WebhookError> {
        let mut registry = lock(&self.shared.registry);
        let before: Vec<WebhookId> = registry.hooks.keys().copied().collect();
        self.shared.take(&mut registry, bytes, revision)?;
        let after: Vec<WebhookId> = registry.hooks.keys().copied().collect();
        drop(registry);
        for id in &before {
            if !after.contains(id) {
                let _ = self.commands.send(deliver::Command::Stop(*id));
            }
        }
        for id in after {
            let _ = self.commands.send(deliver::Command::Start(id));
        }
        Ok(())
    }

    /// Makes this node the one delivering (or not); in a cluster one node
    /// at a time delivers, from the positions the last one stored.
    pub fn set_delivering(&self, on: bool) {
        if self.shared.delivering.swap(on, Ordering::AcqRel) != on {
            let _ = self.commands.send(deliver::Command::Deliver(on));
        }
    }
}
