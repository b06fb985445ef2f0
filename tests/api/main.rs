//! Integration tests through real HTTP: each test starts the server on port 0
//! with a temporary data directory (`helpers::spawn_app`, or
//! `helpers::seeded` for a server with an application, its key and a
//! campaign); `common` holds the small helpers the files share.

mod common;
mod helpers;

mod console;
mod erasure;
mod events;
mod faults;
mod feed;
mod fuzz_regressions;
mod history;
mod limits;
mod logs;
mod management;
mod metrics;
mod ops;
mod preview;
mod recovery;
