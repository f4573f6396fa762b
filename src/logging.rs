//! The binary's logs: `tracing` events on stderr (stdout stays the command's output), as
//! human-readable lines or one JSON object per line, filtered by `RUST_LOG`.
//!
//! Without `RUST_LOG`, Jiuzhu's own crates log at `info` and every other crate at `warn`.
//! `RUST_LOG` replaces that default completely (`RUST_LOG=debug` shows what a node does:
//! ticks, timer batches, group commits, deliveries). The engine and adapters log ids
//! (instance, effect, task, timer, node), unit paths, counts and durations only: never a
//! payload, form data or state, so no name, ID number or account reaches a log.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// What the filter is without `RUST_LOG`.
pub const DEFAULT_FILTER: &str =
    "warn,jiuzhu=info,jiuzhu_engine=info,jiuzhu_adapters=info,jiuzhu_rules=info";

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, with its spans' fields.
    #[default]
    Human,
    /// One JSON object per event (`timestamp`, `level`, `fields`, `target`, `span`, `spans`).
    Json,
}

/// Installs the process's subscriber. A `RUST_LOG` that does not parse is reported on
/// stderr and the default filter is used, so a typo never silences the warnings.
pub fn init(format: LogFormat) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .unwrap_or_else(|error| {
                eprintln!("warning: RUST_LOG is not a valid filter ({error}); using the default");
                EnvFilter::new(DEFAULT_FILTER)
            }),
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second subscriber can only come from a test harness; the first one stays.
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_parses_and_keeps_jiuzhu_at_info() {
        let filter = EnvFilter::try_new(DEFAULT_FILTER).map(|f| f.to_string());
        let filter = filter.unwrap_or_default();
        assert!(filter.contains("jiuzhu_engine=info"), "{filter}");
        assert!(
            filter.starts_with("warn") || filter.contains(",warn"),
            "{filter}"
        );
    }
}
