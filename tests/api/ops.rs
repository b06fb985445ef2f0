//! The operator commands against the real binary: `verify` and `inspect` on
//! data directories made from the golden fixtures, written by a real server
//! (`recovery::Server`), and damaged copies of those.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::recovery::{api_auth, create_catalog, Server, Setup};

/// What a command printed and its exit code.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_achievements-engine"))
        .args(args)
        .env_remove("ACHV_DATA_DIR")
        .output()
        .expect("run the binary");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn verify(dir: &Path) -> Run {
    run(&["verify", "--data-dir", &dir.display().to_string()])
}

fn verify_json(dir: &Path) -> (i32, Value) {
    let r = run(&["verify", "--data-dir", &dir.display().to_string(), "--json"]);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", r.stdout, r.stderr));
    (r.code, v)
}

fn inspect_json(dir: &Path, customer: &str) -> (i32, Option<Value>, String) {
    let r = run(&[
        "inspect",
        "--data-dir",
        &dir.display().to_string(),
        "--customer",
        customer,
        "--json",
    ]);
    (r.code, serde_json::from_str(&r.stdout).ok(), r.stderr)
}

/// Every file under `dir` with its contents.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            out.push((path.clone(), fs::read(&path).expect("read file")));
        }
    }
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            fs::copy(&path, &target).expect("copy file");
        }
    }
}

fn golden(version: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/golden-v{version}.snap"));
    fs::copy(fixture, dir.path().join("snapshot-000000000001.snap")).expect("copy golden");
    dir
}

/// The progress of a customer's current iteration in a named achievement.
fn progress_in(view: &Value, achievement: &str) -> Option<String> {
    view["applications"]
        .as_array()?
        .iter()
        .flat_map(|a| a["achievements"].as_array().cloned().unwrap_or_default())
        .find(|a| a["name"] == achievement)
        .and_then(|a| a["current"]["progress"].as_str().map(str::to_string))
}

#[test]
fn golden_directories_verify_clean_and_inspect_their_customers() {
    for version in 1..=4 {
        let dir = golden(version);
        let before = tree(dir.path());
        let r = verify(dir.path());
        assert_eq!(r.code, 0, "v{version}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains("a restore loads snapshot-000000000001.snap (4 pairs)"),
            "v{version}: {}",
            r.stdout
        );
        let (code, v) = verify_json(dir.path());
        assert_eq!(code, 0);
        assert_eq!(v["exitCode"], 0);
        assert_eq!(v["snapshots"][0]["status"], "chosen");
        assert_eq!(v["snapshots"][0]["version"], version);
        assert_eq!(v["snapshots"][0]["pairs"], 4);
        assert_eq!(
            v["layout"].as_str().map(|l| l.starts_with("earlier")),
            Some(version < 3)
        );

        let (code, view, err) = inspect_json(dir.path(), "bob");
        assert_eq!(code, 0, "v{version}: {err}");
        let view = view.expect("inspect prints JSON");
        assert_eq!(progress_in(&view, "spend").as_deref(), Some("30"), "{view}");
        assert_eq!(progress_in(&view, "visits").as_deref(), Some("1"), "{view}");
        let (code, view, _) = inspect_json(dir.path(), "carol");
        assert_eq!(code, 0);
        assert_eq!(
            progress_in(&view.expect("JSON"), "spend").as_deref(),
            Some("100.5")
        );
        // Read-only: nothing created, changed or deleted (a restore would
        // write `partitions`, open logs and migrate versions 1 and 2).
        assert_eq!(
            tree(dir.path()),
            before,
            "v{version}: the directory changed"
        );
    }
}

#[test]
fn usage_errors_and_unknown_customers_have_their_exit_codes() {
    let missing = tempfile::tempdir().expect("temp dir").path().join("nope");
    let dir = golden(4);
    let d = dir.path().display().to_string();
    let m = missing.display().to_string();
    let cases: [(&[&str], i32, &str); 5] = [
        (&["verify", "--data-dir", &m], 2, "no data directory"),
        (
            &["inspect", "--data-dir", &m, "--customer", "bob"],
            2,
            "no data directory",
        ),
        (&["verify"], 2, "--data-dir"),
        (
            &["inspect", "--data-dir", &d, "--customer", "nobody"],
            1,
            "no customer \"nobody\"",
        ),
        (
            &[
                "inspect",
                "--data-dir",
                &d,
                "--customer",
                "bob",
                "--application",
                "999",
            ],
            1,
            "in application 999",
        ),
    ];
    for (args, code, says) in cases {
        let r = run(args);
        assert_eq!(r.code, code, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
}

fn send(server: &Server, key: &str, customer: &str, delta: i64, id: &str) {
    let r = server.call(
        "POST",
        "/v1/progress_events",
        Some(&api_auth(key)),
        Some(json!({
            "integrationId": customer,
            "achievementName": "drill_total",
            "delta": delta,
            "eventId": id,
        })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

fn snapshot_now(server: &Server) {
    let r = server.mgmt("POST", "/v1/admin/snapshots", None);
    assert!(r.status < 300, "{}", r.body);
}

/// A directory written by the binary: ann 1 and bob 10, snapshot 1, ann 2,
/// snapshot 2, then ann 4, bob 20 and cid 7, then `kill -9` — the last
/// three are only in the logs.
fn written_by_a_server() -> (tempfile::TempDir, Setup) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut server = Server::start(
        &data,
        &dir.path().join("log"),
        &["--snapshot-interval", "0"],
    );
    let setup = create_catalog(&server);
    send(&server, &setup.key, "ann", 1, "a1");
    send(&server, &setup.key, "bob", 10, "b1");
    snapshot_now(&server);
    send(&server, &setup.key, "ann", 2, "a2");
    snapshot_now(&server);
    send(&server, &setup.key, "ann", 4, "a3");
    send(&server, &setup.key, "bob", 20, "b2");
    send(&server, &setup.key, "cid", 7, "c1");
    server.kill9();
    (dir, setup)
}

/// The largest shard log segment: it holds at least three of the six
/// events, one of the last three after its first frame.
fn largest_segment(data: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in fs::read_dir(data.join("log")).expect("log dir").flatten() {
        if !entry.file_name().to_string_lossy().starts_with("shard-") {
            continue;
        }
        for seg in fs::read_dir(entry.path()).expect("shard dir").flatten() {
            let len = seg.metadata().expect("metadata").len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, seg.path()));
            }
        }
    }
    best.expect("a shard segment").1
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).expect("read");
    f(&mut bytes);
    fs::write(path, bytes).expect("write");
}

#[test]
fn a_directory_written_by_the_server_and_its_damaged_copies() {
    let (dir, setup) = written_by_a_server();
    let data = dir.path().join("data");
    let before = tree(&data);
    let (code, v) = verify_json(&data);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["snapshots"][0]["status"], "chosen");
    let replayed: u64 = v["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .flat_map(|l| l["replay"].as_array().cloned().unwrap_or_default())
        .filter(|r| {
            r["stream"]
                .as_str()
                .is_some_and(|s| s.starts_with("partition"))
        })
        .map(|r| r["records"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(replayed, 3, "phase 2's three events are replayed: {v:#}");
    let (code, view, err) = inspect_json(&data, "ann");
    assert_eq!(code, 0, "{err}");
    let view = view.expect("JSON");
    assert_eq!(
        progress_in(&view, "drill_total").as_deref(),
        Some("7"),
        "{view:#}"
    );
    let ach = &view["applications"][0]["achievements"][0];
    assert_eq!(ach["rememberedEventIds"], 3);
    assert_eq!(ach["id"], setup.achievement);
    assert_eq!(view["applications"][0]["id"], setup.application);
    // Read-only: the torn tail a kill may leave is not cut, no segment is
    // started, nothing is written.
    assert_eq!(tree(&data), before, "the directory changed");

    let segment = largest_segment(&data);
    let seg = segment.strip_prefix(&data).expect("inside").to_path_buf();
    let (torn, flipped) = (seg.clone(), seg);
    // (damage, exit code, what the text report must say)
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage, i32, &str)> =
        vec![
        (
            "a torn tail",
            Box::new(move |d: &Path| {
                let f = fs::OpenOptions::new().write(true).open(d.join(&torn)).expect("open");
                let len = f.metadata().expect("metadata").len();
                f.set_len(len - 5).expect("truncate");
            }),
            0,
            "a torn tail, never acknowledged",
        ),
        (
            "a flipped byte in the first frame of a segment",
            // Frame header (16 bytes), then the payload.
            Box::new(move |d: &Path| edit(&d.join(&flipped), |b| b[20] ^= 0x20)),
            1,
            "corruption in the middle of the log",
        ),
        (
            "a flipped byte in the newest snapshot",
            Box::new(|d: &Path| {
                edit(&d.join("snapshot-000000000002.snap"), |b| {
                    let n = b.len();
                    b[n - 10] ^= 0x01
                })
            }),
            0,
            "snapshot-000000000002.snap is skipped by a restore: snapshot checksum does not match",
        ),
        (
            "both snapshots damaged (the logs still start at 1)",
            Box::new(|d: &Path| {
                for id in [1, 2] {
                    edit(&d.join(format!("snapshot-{id:012}.snap")), |b| b[0] ^= 0xFF);
                }
            }),
            0,
            "a restore loads no snapshot",
        ),
    ];
    for (name, damage, code, says) in cases {
        let copy = tempfile::tempdir().expect("temp dir");
        copy_tree(&data, copy.path());
        damage(copy.path());
        let r = verify(copy.path());
        assert_eq!(r.code, code, "{name}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains(says),
            "{name}: expected {says:?} in\n{}",
            r.stdout
        );
        if name.contains("newest snapshot") {
            assert!(
                r.stdout
                    .contains("a restore loads snapshot-000000000001.snap"),
                "{name}: falls back to the older one:\n{}",
                r.stdout
            );
        }
        // What a restore of the copy holds: ann's progress without the
        // records the damage drops.
        let (code, view, err) = inspect_json(copy.path(), "ann");
        assert_eq!(code, 0, "{name}: {err}");
        let ann = progress_in(&view.expect("JSON"), "drill_total");
        if name.contains("snapshot") {
            assert_eq!(ann.as_deref(), Some("7"), "{name}");
        }
    }
}

/// Two runs with `--snapshot-keep 1`: the second run's snapshot replaces the
/// first and prunes the log before it. With that snapshot damaged, a
/// restore has nothing to start from and the log no longer reaches back:
/// exit 1. The same damage with the log intact (one run) loses nothing.
#[test]
fn a_damaged_snapshot_loses_data_only_when_the_log_was_pruned_past_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = dir.path().join("log");
    let keep = ["--snapshot-interval", "0", "--snapshot-keep", "1"];
    let mut server = Server::start(&data, &log, &keep);
    let setup = create_catalog(&server);
    send(&server, &setup.key, "ann", 5, "a1");
    server.terminate(Duration::from_secs(20));
    let damage = |d: &Path| {
        let snap = crate::recovery::snapshot_ids(d);
        let newest = d.join(format!(
            "snapshot-{:012}.snap",
            snap.last().expect("a snapshot")
        ));
        edit(&newest, |b| b[0] ^= 0xFF);
    };
    let once = tempfile::tempdir().expect("temp dir");
    copy_tree(&data, once.path());
    damage(once.path());
    let r = verify(once.path());
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("bad magic"), "{}", r.stdout);

    let mut server = Server::start(&data, &log, &keep);
    send(&server, &setup.key, "ann", 6, "a2");
    // A snapshot now prunes the log (in the background) up to it.
    snapshot_now(&server);
    let first = data.join("log/catalog/00000000000000000001.wal");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!first.exists(), "the catalog's first segment was pruned");
    server.terminate(Duration::from_secs(20));
    let (code, _) = verify_json(&data);
    assert_eq!(code, 0);
    damage(&data);
    let r = verify(&data);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("are gone"), "{}", r.stdout);
}
