//! Scaffolding for tests, benchmarks and measurement tools: an engine with
//! one application, campaign and achievement, made through the engine's own
//! API. Not part of the service's interface.

use std::sync::Arc;

use super::{AchievementEntry, Engine};
use crate::domain::catalog::CampaignPatch;
use crate::domain::AchievementDraft;

/// Creates an application (UTC), an enabled campaign and the achievement
/// `draft` describes; returns the achievement's entry.
pub async fn one_achievement(engine: &Engine, draft: AchievementDraft) -> Arc<AchievementEntry> {
    let app = engine
        .create_application("app".into(), chrono_tz::UTC, String::new())
        .await
        .expect("an application is created");
    let campaign = engine
        .create_campaign(
            app.id,
            CampaignPatch {
                name: Some("campaign".into()),
                ..CampaignPatch::default()
            },
        )
        .await
        .expect("a campaign is created");
    engine
        .create_achievement(app.id, campaign.id, draft)
        .await
        .expect("the achievement is valid")
}

/// This process's resident memory (`VmRSS`), in bytes, once the allocator
/// has given back what was freed (`settle`); 0 where `/proc/self/status`
/// is not there.
pub fn resident_bytes() -> u64 {
    settle();
    status_bytes("VmRSS:")
}

/// This process's peak resident memory (`VmHWM`), in bytes.
pub fn peak_resident_bytes() -> u64 {
    status_bytes("VmHWM:")
}

fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Has jemalloc return every freed page to the system now, rather than
/// within its decay time, so resident memory counts live data only.
pub fn settle() {
    // `MALLCTL_ARENAS_ALL` (4096): every arena. A command: no value in or
    // out.
    // SAFETY: a NUL-terminated name and null buffers, as mallctl(3) asks
    // of a command.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!(rc, "cannot purge the allocator's arenas");
    }
}
