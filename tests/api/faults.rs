//! Disk faults: with the data directory on a tiny tmpfs that fills up, the
//! engine keeps serving reads, answers writes with 503 instead of
//! acknowledging what it could not persist, and recovers by itself when space
//! comes back. Needs root (to mount tmpfs); skipped elsewhere.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("data");
        std::fs::create_dir_all(&path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { path, _dir: dir })
    }

    /// Fills the file system; returns the filler's path.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free(path: &Path) {
    std::fs::remove_file(path).expect("remove filler");
}

#[actix_web::test]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let Some(fs) = Tmpfs::mount("4m") else {
        eprintln!("skipped: cannot mount tmpfs here (needs root)");
        return;
    };
    let data = fs.path.clone();
    let app = spawn_app_with(|s| s.data_dir = data).await;
    let (application, key) = app.application("UTC").await;
    let campaign = app.campaign(application, json!({})).await;
    app.achievement(
        application,
        campaign,
        json!({"name": "full", "target": 1000, "period": "1W", "recurrencePolicy": "on_expiration"}),
    )
    .await;
    let event = |id: &str| json!({"integrationId": "c1", "achievementName": "full", "delta": 1, "eventId": id});
    assert_eq!(app.event(&key, event("e1")).await.status, 200);

    let filler = fs.fill();
    // The log's last page may still have room for a few records; the first
    // write that meets the full disk is refused, and so is every change
    // after it while the disk stays full.
    let mut accepted = 1;
    let mut first_refused = None;
    for i in 0..2000 {
        let a = app.event(&key, event(&format!("fill-{i}"))).await;
        if a.status == 200 {
            accepted += 1;
        } else {
            first_refused = Some((format!("fill-{i}"), a));
            break;
        }
    }
    let (held, refused) = first_refused.expect("a full disk refuses writes");
    assert_error(&refused, 503, None);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("disk"),
        "{}",
        refused.text
    );
    let again = app.event(&key, event("e3")).await;
    assert_error(&again, 503, None);
    let batch = app
        .integ(
            &key,
            "POST",
            "/v1/progress_events/batch",
            Some(json!({"events": [event("e4")]})),
        )
        .await;
    assert_error(&batch, 503, None);
    let snapshot = app.mgmt("POST", "/v1/admin/snapshots", None).await;
    assert!(snapshot.status >= 500, "{}", snapshot.text);
    // Reads keep working.
    let read = app
        .integ(&key, "GET", "/v1/customer_profiles/c1/achievements", None)
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        app.raw("GET", "/healthz", Auth::None, None).await.status,
        200
    );

    free(&filler);
    eventually("writes to work again", async || {
        app.event(&key, event("e5")).await.status == 200
    })
    .await;
    // The held event reached memory before its write failed and was written
    // once the disk worked: a retry is a duplicate. e3/e4 were refused before
    // they changed anything.
    assert_eq!(
        app.event(&key, event(&held)).await.json()["outcome"],
        "duplicate"
    );
    assert_eq!(
        app.event(&key, event("e3")).await.json()["outcome"],
        "applied"
    );
    let progress = app
        .integ(&key, "GET", "/v1/customer_profiles/c1/achievements", None)
        .await
        .json();
    // accepted + held + e5 + e3
    assert_eq!(
        progress["data"][0]["currentProgress"]["progress"],
        json!(accepted + 3)
    );
    let snapshot = app.mgmt("POST", "/v1/admin/snapshots", None).await;
    assert_eq!(snapshot.status, 201, "{}", snapshot.text);
}
