//! Log output: `tracing` events as readable text or as one JSON object per
//! line (`--log-format`), to standard output, filtered by `RUST_LOG`
//! (default `info`). Colour codes only when standard output is a terminal,
//! so that a file or a pipe gets plain text.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        // Fields of the enclosing spans (the request's id, route…) are in
        // `span` and `spans`, the event's own in `fields`.
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}
