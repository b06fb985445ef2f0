//! The webhooks' files (format version 1, JSON) in `<data>/webhooks/`: the
//! list of webhooks (secrets included, so mode 0600) and their delivery
//! positions, each written to a temp file, fsynced, renamed and the
//! directory fsynced.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::deliver::{Delivery, DeliveryStatus};
use super::{
    parse_types, parse_url, Registry, Secret, Webhook, WebhookError, WebhookId, FORMAT_VERSION,
};
use crate::domain::ApplicationId;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct HooksFile {
    pub(super) version: u32,
    pub(super) next_id: u64,
    pub(super) webhooks: Vec<HookRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct HookRecord {
    pub(super) id: u64,
    pub(super) application: u64,
    pub(super) url: String,
    pub(super) types: Vec<String>,
    pub(super) secret: String,
    pub(super) created: DateTime<Utc>,
    pub(super) disabled: bool,
    pub(super) start: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PositionsFile {
    pub(super) version: u32,
    /// Webhook id → the seq of the last entry acknowledged or given up.
    pub(super) positions: BTreeMap<u64, u64>,
}

impl From<&Webhook> for HookRecord {
    fn from(h: &Webhook) -> Self {
        HookRecord {
            id: h.id.0,
            application: h.application.0,
            url: h.url.to_string(),
            types: h.types.iter().map(|t| t.as_str().to_string()).collect(),
            secret: h.secret.expose().to_string(),
            created: h.created,
            disabled: h.disabled,
            start: h.start,
        }
    }
}

impl HookRecord {
    pub(super) fn to_webhook(&self) -> Result<Webhook, String> {
        let bad = |what: &str, why: String| format!("webhook {}: {what}: {why}", self.id);
        if self.id == 0 {
            return Err("a webhook has id 0".into());
        }
        Ok(Webhook {
            id: WebhookId(self.id),
            application: ApplicationId(self.application),
            url: parse_url(&self.url).map_err(|e| bad("url", e))?,
            types: parse_types(Some(&self.types)).map_err(|e| bad("types", e.message))?,
            secret: Secret::parse(&self.secret).map_err(|e| bad("secret", e.to_string()))?,
            created: self.created,
            disabled: self.disabled,
            start: self.start,
        })
    }
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, WebhookError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(WebhookError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| WebhookError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

pub(super) fn check_version(path: &Path, version: u32) -> Result<(), WebhookError> {
    if version == FORMAT_VERSION {
        return Ok(());
    }
    Err(WebhookError::Malformed {
        path: path.to_path_buf(),
        reason: format!(
            "format version {version} is not supported (this build reads {FORMAT_VERSION})"
        ),
    })
}

/// Writes `bytes` as `dir/name`: a temp file, fsynced, renamed over the old
/// one, the directory fsynced. `private`: mode 0600 (it holds secrets).
pub(super) fn write_atomically(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    private: bool,
) -> Result<(), WebhookError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let io = |source| WebhookError::Io {
        path: path.clone(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    #[cfg(unix)]
    if private {
        // `mode` applies only to a file it creates; a leftover temp file
        // keeps its mode otherwise.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io)?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// A delivery attempt as a cluster's shared store keeps it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeliveryRecord {
    event_id: Option<String>,
    attempt: u32,
    status: String,
    response_status: Option<u16>,
    error: Option<String>,
    at: DateTime<Utc>,
}

impl From<&Delivery> for DeliveryRecord {
    fn from(d: &Delivery) -> Self {
        DeliveryRecord {
            event_id: d.event_id.clone(),
            attempt: d.attempt,
            status: d.status.as_str().to_owned(),
            response_status: d.response_status,
            error: d.error.clone(),
            at: d.at,
        }
    }
}

impl DeliveryRecord {
    pub(super) fn to_delivery(&self) -> Option<Delivery> {
        Some(Delivery {
            event_id: self.event_id.clone(),
            attempt: self.attempt,
            status: DeliveryStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == self.status)?,
            response_status: self.response_status,
            error: self.error.clone(),
            at: self.at,
        })
    }
}

/// The list a file (or the cluster's shared store) holds, checked.
pub(super) fn registry_of(path: &Path, file: HooksFile) -> Result<Registry, WebhookError> {
    check_version(path, file.version)?;
    let malformed = |reason: String| WebhookError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let mut registry = Registry {
        next_id: file.next_id,
        hooks: BTreeMap::new(),
    };
    for record in &file.webhooks {
        let hook = record.to_webhook().map_err(malformed)?;
        if hook.id.0 >= file.next_id {
            return Err(malformed(format!(
                "webhook {} is not below nextId {}",
                hook.id.0, file.next_id
            )));
        }
        if registry.hooks.insert(hook.id, hook).is_some() {
            return Err(malformed(format!("webhook {} is listed twice", record.id)));
        }
    }
    Ok(registry)
}
