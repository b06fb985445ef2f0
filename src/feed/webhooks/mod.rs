//! Webhooks: receivers that get the feed's entries POSTed to them
//! (API.md "Achievement events", Standard Webhooks).
//!
//! Owns: the registry of webhooks (validated `NewWebhook`s, ids that are
//! never reused), its files in `<data>/webhooks/` (the list, secrets
//! included, mode 0600; each webhook's delivery position) or, in a cluster,
//! a `SharedStore` every node uses (the same documents, the list changed by
//! compare-and-set; one node delivers at a time, `set_delivering`), and
//! `Webhooks`, the handle the HTTP layer holds. Delivery itself (one loop per webhook on
//! a dedicated thread, retries, records of attempts, stats) is in
//! `deliver`, signatures in `sign`, the address policy in `address`.
//!
//! A new webhook starts at the feed's head when it is created: it gets the
//! entries stored after that, never the backlog. Reads the feed; the engine
//! and the HTTP layer know nothing of this module's insides.

pub mod address;
pub mod deliver;
mod files;
mod shared;
pub mod sign;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use url::Url;

use super::{Feed, Types};
use crate::clock::Clock;
use crate::domain::{ApplicationId, EntryType, FieldError};
pub use deliver::{Delivery, DeliveryConfig, DeliveryStatus, WebhookStats};
use files::{
    check_version, read_json, registry_of, write_atomically, HookRecord, HooksFile, PositionsFile,
};
pub use shared::SharedStore;
use shared::{deliveries_doc, SHARED_ATTEMPTS};
pub use sign::Secret;

/// The webhooks' directory inside the data directory.
pub const WEBHOOKS_DIR: &str = "webhooks";
const HOOKS_FILE: &str = "webhooks.json";
const POSITIONS_FILE: &str = "positions.json";
/// The version of both files' format.
const FORMAT_VERSION: u32 = 1;
/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// A webhook's id: positive, unique, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebhookId(pub u64);

/// A registered webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: WebhookId,
    pub application: ApplicationId,
    pub url: Url,
    /// What it receives, in `EntryType::ALL` order; never empty.
    pub types: Vec<EntryType>,
    pub secret: Secret,
    pub created: DateTime<Utc>,
    /// Its receiver answered 410: it delivers no more.
    pub disabled: bool,
    /// The feed's head when it was created: delivery starts after it.
    pub start: u64,
}

impl Webhook {
    /// Its types as a feed filter.
    pub fn filter(&self) -> Types {
        self.types.iter().fold(Types::all(), |t, k| t.with(*k))
    }
}

/// What a client asks for, validated.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: Url,
    pub types: Vec<EntryType>,
    pub secret: Secret,
}

/// Checks a webhook target: an absolute http(s) URL with a host, no
/// credentials, no fragment, at most `MAX_URL_LEN` characters. (Whether its
/// address may be contacted is `address`'s question.)
pub fn parse_url(raw: &str) -> Result<Url, String> {
    const WHAT: &str = "url must be an absolute http or https URL";
    if raw.len() > MAX_URL_LEN {
        return Err(format!("url must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw.trim()).map_err(|e| format!("{WHAT} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{WHAT}, not {}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{WHAT} with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url must not carry credentials (user:password@); receivers check the webhook-signature header instead".into());
    }
    if url.fragment().is_some() {
        return Err("url must not have a fragment (#…)".into());
    }
    Ok(url)
}

/// Reads `types`: absent or empty means every type; duplicates collapse.
pub fn parse_types(raw: Option<&[String]>) -> Result<Vec<EntryType>, FieldError> {
    let mut wanted = Vec::new();
    for (i, name) in raw.unwrap_or_default().iter().enumerate() {
        let t = EntryType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EntryType::ALL.iter().map(|t| t.as_str()).collect();
            FieldError::new(
                format!("/types/{i}"),
                format!(
                    "'{name}' is not an entry type; types must be among {}",
                    known.join(", ")
                ),
            )
        })?;
        wanted.push(t);
    }
    Ok(EntryType::ALL
        .into_iter()
        .filter(|t| wanted.is_empty() || wanted.contains(t))
        .collect())
}

impl NewWebhook {
    /// Validates a request; every invalid field is reported. Without a
    /// secret one is generated.
    pub fn parse(
        url: &str,
        types: Option<&[String]>,
        secret: Option<&str>,
    ) -> Result<NewWebhook, Vec<FieldError>> {
        let url = parse_url(url).map_err(|m| FieldError::new("/url", m));
        let types = parse_types(types);
        let secret = secret
            .map(Secret::parse)
            .transpose()
            .map_err(|e| FieldError::new("/secret", e.to_string()));
        match (url, types, secret) {
            (Ok(url), Ok(types), Ok(secret)) => Ok(NewWebhook {
                url,
                types,
                secret: secret.unwrap_or_else(Secret::generate),
            }),
            (url, types, secret) => Err([url.err(), types.err(), secret.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
    }
}

/// What can go wrong with the webhooks' files or thread.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is malformed: {reason} (fix or remove the file; removing the webhooks file forgets every webhook)")]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot start webhook deliveries: {0}")]
    Start(String),
    /// The cluster's shared store failed.
    #[error("the cluster's webhook store failed: {0}")]
    Shared(String),
    /// Another node changed the list meanwhile, again and again.
    #[error("the webhook list kept changing on other nodes; retry")]
    Conflict,
}

// ---------------------------------------------------------------------------
// The registry and the handle.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Registry {
    next_id: u64,
    hooks: BTreeMap<WebhookId, Webhook>,
}

/// What the HTTP handle and the delivery thread share.
pub(crate) struct Shared {
    dir: PathBuf,
    pub(crate) feed: Arc<Feed>,
    pub(crate) clock: Clock,
    pub(crate) config: DeliveryConfig,
    /// Held while the webhooks file is written, so writes keep their order.
    registry: Mutex<Registry>,
    /// Held while the positions file is written.
    positions: Mutex<BTreeMap<WebhookId, u64>>,
    /// Positions moved since the file was written.
    positions_dirty: AtomicBool,
    /// Recent attempts per webhook, oldest first.
    deliveries: Mutex<HashMap<WebhookId, VecDeque<Delivery>>>,
    pub(crate) stats: WebhookStats,
    /// In a cluster: the shared store, the list's revision in it, and
    /// whether this node is the one delivering.
    store: std::sync::OnceLock<Arc<dyn SharedStore>>,
    revision: std::sync::atomic::AtomicU64,
    pub(crate) delivering: AtomicBool,
    /// Sharing a webhook's attempts: the newest list's number per webhook,
    /// and a lock held while one is written, so an older list never lands
    /// after a newer one.
    share_latest: Arc<Mutex<HashMap<WebhookId, u64>>>,
    share_writing: Arc<Mutex<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn save_hooks(&self, registry: &Registry) -> Result<(), WebhookError> {
        let file = HooksFile {
            version: FORMAT_VERSION,
            next_id: registry.next_id,
            webhooks: registry.hooks.values().map(HookRecord::from).collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| WebhookError::Malformed {
            path: self.dir.join(HOOKS_FILE),
            reason: e.to_string(),
        })?;
        if let Some(store) = self.store.get() {
            let revision = self.revision.load(Ordering::Acquire);
            return match store.replace(HOOKS_FILE, &bytes, revision) {
                Ok(Some(next)) => {
                    self.revision.store(next, Ordering::Release);
                    Ok(())
                }
                Ok(None) => Err(WebhookError::Conflict),
                Err(e) => Err(WebhookError::Shared(e)),
            };
        }
        write_atomically(&self.dir, HOOKS_FILE, &bytes, true)
    }

    /// Writes the positions file (blocking: call from a blocking task).
    pub(crate) fn save_positions(&self) -> Result<(), WebhookError> {
        let positions = lock(&self.positions);
        self.positions_dirty.store(false, Ordering::Relaxed);
        let file = PositionsFile {
            version: FORMAT_VERSION,
            positions: positions.iter().map(|(id, p)| (id.0, *p)).collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| WebhookError::Malformed {
            path: self.dir.join(POSITIONS_FILE),
            reason: e.to_string(),
        })?;
        let written = match self.store.get() {
            Some(store) => store
                .put(POSITIONS_FILE, &bytes)
                .map_err(WebhookError::Shared),
            None => write_atomically(&self.dir, POSITIONS_FILE, &bytes, false),
        };
        if written.is_err() {
            self.positions_dirty.store(true, Ordering::Relaxed);
        }
        written
    }

    pub(crate) fn positions_dirty(&self) -> bool {
        self.positions_dirty.load(Ordering::Relaxed)
    }

    /// Where a webhook's delivery stands (the last seq handled).
    pub(crate) fn position(&self, id: WebhookId) -> Option<u64> {
        lock(&self.positions).get(&id).copied()
    }

    /// Moves a webhook's position (in memory; `save_positions` makes it
    /// durable). A deleted webhook's position is not brought back.
    pub(crate) fn set_position(&self, id: WebhookId, seq: u64) {
        if let Some(p) = lock(&self.positions).get_mut(&id) {
            if *p != seq {
                *p = seq;
                self.positions_dirty.store(true, Ordering::Relaxed);
            }
        }
    }

    /// An active webhook.
    pub(crate) fn active(&self, id: WebhookId) -> Option<Webhook> {
        lock(&self.registry)
            .hooks
            .get(&id)
            .filter(|h| !h.disabled)
            .cloned()
    }

    pub(crate) fn active_ids(&self) -> Vec<WebhookId> {
        lock(&self.registry)
            .hooks
            .values()
            .filter(|h| !h.disabled)
            .map(|h| h.id)
            .collect()
    }

    /// Marks a webhook disabled (its receiver answered 410) and writes the
    /// list (blocking).
    pub(crate) fn disable(&self, id: WebhookId) -> Result<(), WebhookError> {
        let mut registry = lock(&self.registry);
        let mut saved = Err(WebhookError::Conflict);
        for _ in 0..SHARED_ATTEMPTS {
            self.refresh(&mut registry)?;
            let Some(hook) = registry.hooks.get_mut(&id) else {
                return Ok(());
            };
            hook.disabled = true;
            saved = self.save_hooks(&registry);
            if !matches!(saved, Err(WebhookError::Conflict)) {
                break;
            }
        }
        if saved.is_err() {
            // Disabled in memory for now; the next start retries it.
            tracing::error!(
                webhook = id.0,
                "could not persist that a webhook is disabled"
            );
        }
        saved
    }

    /// Records an attempt, keeping the last `deliver::DELIVERIES_KEPT` (in
    /// a cluster also in the shared store, for every node's list).
    pub(crate) fn record(&self, id: WebhookId, delivery: Delivery) {
        self.stats.count(delivery.status);
        let mut all = lock(&self.deliveries);
        let list = all.entry(id).or_default();
        list.push_back(delivery);
        while list.len() > deliver::DELIVERIES_KEPT {
            list.pop_front();
        }
        if self.store.get().is_some() {
            let records: Vec<files::DeliveryRecord> = list.iter().map(Into::into).collect();
            drop(all);
            self.share_attempts(id, &records);
        }
    }
}

/// The webhooks: registry, files and the delivery thread. Dropping it stops
/// the deliveries.
pub struct Webhooks {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<deliver::Command>,
    /// Taken by `start`.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<deliver::Command>>>,
}

impl Webhooks {
    /// Opens (or creates) `dir` and loads the webhooks and their positions;
    /// malformed files are an error. Delivers nothing until `start`.
    pub fn open(
        dir: &Path,
        feed: Arc<Feed>,
        clock: Clock,
        config: DeliveryConfig,
    ) -> Result<Webhooks, WebhookError> {
        let io = |source| WebhookError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let hooks_path = dir.join(HOOKS_FILE);
        let registry = match read_json::<HooksFile>(&hooks_path)? {
            Some(file) => registry_of(&hooks_path, file)?,
            None => Registry {
                next_id: 1,
                hooks: BTreeMap::new(),
            },
        };
        let positions_path = dir.join(POSITIONS_FILE);
        let mut stored = BTreeMap::new();
        if let Some(file) = read_json::<PositionsFile>(&positions_path)? {
            check_version(&positions_path, file.version)?;
            stored = file.positions;
        }
        // A webhook without a stored position has delivered nothing yet;
        // positions of webhooks no longer listed are dropped.
        let positions = registry
            .hooks
            .values()
            .map(|h| (h.id, stored.get(&h.id.0).copied().unwrap_or(h.start)))
            .collect();
        let (commands, receiver) = mpsc::unbounded_channel();
        Ok(Webhooks {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                feed,
                clock,
                config,
                registry: Mutex::new(registry),
                positions: Mutex::new(positions),
                positions_dirty: AtomicBool::new(false),
                deliveries: Mutex::new(HashMap::new()),
                stats: WebhookStats::default(),
                store: std::sync::OnceLock::new(),
                revision: std::sync::atomic::AtomicU64::new(0),
                delivering: AtomicBool::new(true),
                share_latest: Arc::default(),
                share_writing: Arc::default(),
            }),
            commands,
            receiver: Mutex::new(Some(receiver)),
        })
    }

    /// Starts the delivery thread (once; later calls do nothing).
    pub fn start(&self) -> Result<(), WebhookError> {
        let Some(receiver) = lock(&self.receiver).take() else {
            return Ok(());
        };
        deliver::spawn(self.shared.clone(), receiver)
    }

    /// Registers a webhook of `app` (blocking: writes the list). It starts
    /// at the feed's current head.
    pub fn create(&self, app: ApplicationId, new: NewWebhook) -> Result<Webhook, WebhookError> {
        let mut registry = lock(&self.shared.registry);
        let mut attempts = 0;
        let hook = loop {
            attempts += 1;
            self.shared.refresh(&mut registry)?;
            let id = WebhookId(registry.next_id);
            let hook = Webhook {
                id,
                application: app,
                url: new.url.clone(),
                types: new.types.clone(),
                secret: new.secret.clone(),
                created: self.shared.clock.now(),
                disabled: false,
                start: self.shared.feed.head(),
            };
            // The id is used up even if the write fails: ids are never reused.
            registry.next_id += 1;
            registry.hooks.insert(id, hook.clone());
            match self.shared.save_hooks(&registry) {
                Ok(()) => break hook,
                Err(WebhookError::Conflict) if attempts < SHARED_ATTEMPTS => {
                    registry.hooks.remove(&id);
                }
                Err(e) => {
                    registry.hooks.remove(&id);
                    return Err(e);
                }
            }
        };
        let id = hook.id;
        drop(registry);
        lock(&self.shared.positions).insert(id, hook.start);
        tracing::info!(
            application = app.0,
            webhook = id.0,
            host = hook.url.host_str().unwrap_or(""),
            "webhook created"
        );
        let _ = self.commands.send(deliver::Command::Start(id));
        Ok(hook)
    }

    /// The webhooks of `app`, by id.
    pub fn list(&self, app: ApplicationId) -> Vec<Webhook> {
        lock(&self.shared.registry)
            .hooks
            .values()
            .filter(|h| h.application == app)
            .cloned()
            .collect()
    }

    /// A webhook of `app`.
    pub fn get(&self, app: ApplicationId, id: WebhookId) -> Option<Webhook> {
        lock(&self.shared.registry)
            .hooks
            .get(&id)
            .filter(|h| h.application == app)
            .cloned()
    }

    /// Removes a webhook of `app` (blocking: writes the list); `false` if
    /// `app` has no such webhook. Its deliveries stop.
    pub fn delete(&self, app: ApplicationId, id: WebhookId) -> Result<bool, WebhookError> {
        let mut registry = lock(&self.shared.registry);
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.shared.refresh(&mut registry)?;
            let Some(hook) = registry.hooks.remove(&id) else {
                return Ok(false);
            };
            if hook.application != app {
                registry.hooks.insert(id, hook);
                return Ok(false);
            }
            match self.shared.save_hooks(&registry) {
                Ok(()) => break,
                Err(WebhookError::Conflict) if attempts < SHARED_ATTEMPTS => {
                    registry.hooks.insert(id, hook);
                }
                Err(e) => {
                    registry.hooks.insert(id, hook);
                    return Err(e);
                }
            }
        }
        drop(registry);
        let _ = self.commands.send(deliver::Command::Stop(id));
        lock(&self.shared.positions).remove(&id);
        lock(&self.shared.deliveries).remove(&id);
        self.shared.stats.forget(id);
        // A stale position left in the file is dropped at the next open.
        if let Err(e) = self.shared.save_positions() {
            tracing::warn!(error = %e, "could not rewrite webhook positions after a delete");
        }
        tracing::info!(application = app.0, webhook = id.0, "webhook deleted");
        Ok(true)
    }

    /// Recent delivery attempts of a webhook of `app`, newest first; `None`
    /// if `app` has no such webhook.
    pub fn deliveries(&self, app: ApplicationId, id: WebhookId) -> Option<Vec<Delivery>> {
        self.get(app, id)?;
        if let Some(store) = self.shared.store.get() {
            // The delivering node's record of them (blocking).
            if !self.shared.delivering.load(Ordering::Acquire) {
                let loaded = store.load(&deliveries_doc(id)).ok().flatten();
                let records: Vec<files::DeliveryRecord> = loaded
                    .and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok())
                    .unwrap_or_default();
                return Some(
                    records
                        .iter()
                        .rev()
                        .filter_map(|r| r.to_delivery())
                        .collect(),
                );
            }
        }
        let all = lock(&self.shared.deliveries);
        Some(
            all.get(&id)
                .map(|l| l.iter().rev().cloned().collect())
                .unwrap_or_default(),
        )
    }

    /// Where a webhook's delivery stands: the feed seq of the last entry
    /// acknowledged or given up (or passed over: not of its application or
    /// types).
    pub fn position(&self, id: WebhookId) -> Option<u64> {
        self.shared.position(id)
    }

    /// Checks that a new webhook's URL may be contacted (resolving its
    /// name) under this server's address policy.
    pub async fn check_url(&self, url: &Url) -> Result<(), String> {
        address::check_url(url, self.shared.config.allow_private).await
    }

    /// Delivery counters and gauges (for metrics).
    pub fn stats(&self) -> &WebhookStats {
        &self.shared.stats
    }
}

#[cfg(test)]
mod tests;
