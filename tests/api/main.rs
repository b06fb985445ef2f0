//! Integration tests through real HTTP: each test starts the server on port 0
//! with a temporary data directory (`helpers::spawn_app`).

mod helpers;

mod erasure;
mod events;
mod faults;
mod fuzz_regressions;
mod history;
mod limits;
mod management;
mod metrics;
mod recovery;
