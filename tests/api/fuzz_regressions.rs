//! Inputs the fuzzers found (crashes, hangs) or that cover an interesting
//! path, replayed through the fuzz targets' own harness
//! (`fuzz/src/lib.rs`, included below): every stored input must return
//! normally. Inputs live in `tests/fixtures/fuzz/<target>/`, one file each;
//! `scripts/fuzz.sh` runs the fuzzers themselves.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

// The harness mirrors request shapes whose fields it does not all read.
#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod harness;

/// Feeds every stored input of `target` to `run`; fails naming each input
/// that panics.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no stored inputs in {}", dir.display());
    let mut failed = Vec::new();
    for path in &files {
        let data = fs::read(path).expect("stored input");
        if panic::catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "inputs that panic: {failed:#?}");
}

#[test]
fn fuzz_period_inputs_return() {
    replay("period", harness::period);
}

#[test]
fn fuzz_json_decode_inputs_return() {
    replay("json_decode", harness::json_decode);
}

#[test]
fn fuzz_snapshot_read_inputs_return() {
    replay("snapshot_read", harness::snapshot_read);
}

#[test]
fn fuzz_wal_read_inputs_return() {
    replay("wal_read", harness::wal_read);
}
