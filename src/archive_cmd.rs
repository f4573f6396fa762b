//! `jiuzhu archive`: finished cases older than an age move into the archive tables, a batch
//! per transaction (`jiuzhu_engine::store::archive`); and the same run in the node's loop
//! (`run`/`serve --archive-after-days`). `docs/archives.md`.

use anyhow::Result;
use serde_json::json;

use crate::errors::CliError;
use crate::lifecycle::Session;
use crate::output::short_id;

/// Cases a batch moves unless told otherwise.
pub const DEFAULT_BATCH: u32 = 500;

/// How often the node's loop archives (the first time at its start).
const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Dry runs count candidates up to this many.
const DRY_RUN_LIMIT: u32 = 100_000;

#[derive(clap::Args, Debug)]
pub struct ArchiveArgs {
    /// Archive the cases that ended (completed or terminated) more than this many days ago.
    #[arg(long, value_name = "DAYS")]
    pub older_than: u32,
    /// Cases moved per transaction.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH)]
    pub batch: u32,
    /// List what would move; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The node loop's archiving: cases older than `after_days`, checked hourly.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveSchedule {
    pub after_days: u32,
    pub batch: u32,
    last: Option<std::time::Instant>,
}

impl ArchiveSchedule {
    /// `--archive-after-days`: none without it; zero days is refused (it would archive
    /// cases that ended a moment ago).
    pub fn from_flag(after_days: Option<u32>) -> Result<Option<ArchiveSchedule>> {
        match after_days {
            None => Ok(None),
            Some(0) => Err(CliError::usage(
                "invalid_argument",
                "--archive-after-days must be at least 1",
            )
            .into()),
            Some(after_days) => Ok(Some(ArchiveSchedule {
                after_days,
                batch: DEFAULT_BATCH,
                last: None,
            })),
        }
    }

    /// Archives when an hour has passed since the last time (or never ran); the cases moved.
    pub async fn tick(&mut self, session: &Session) -> Result<usize> {
        if self.last.is_some_and(|last| last.elapsed() < EVERY) {
            return Ok(0);
        }
        self.last = Some(std::time::Instant::now());
        let batches = session
            .engine
            .archive_finished(age(self.after_days), self.batch)
            .await?;
        Ok(batches.iter().map(|b| b.instances.len()).sum())
    }
}

fn age(days: u32) -> chrono::Duration {
    chrono::Duration::days(i64::from(days))
}

/// `jiuzhu archive --older-than DAYS [--batch N] [--dry-run] [--json]`.
pub async fn run(session: &Session, args: &ArchiveArgs) -> Result<i32> {
    if args.batch == 0 {
        return Err(CliError::usage("invalid_argument", "--batch must be at least 1").into());
    }
    let engine = &session.engine;
    let cutoff = engine.now() - age(args.older_than);
    if args.dry_run {
        let ids = engine
            .store
            .archive_candidates(cutoff, DRY_RUN_LIMIT)
            .await?;
        if args.json {
            println!(
                "{}",
                json!({ "dry_run": true, "would_archive": ids.len(), "cutoff": cutoff.to_rfc3339() })
            );
        } else {
            println!(
                "would archive {} case(s) that ended before {}",
                ids.len(),
                cutoff.to_rfc3339()
            );
            for id in ids.iter().take(20) {
                println!("  {}", short_id(id));
            }
            if ids.len() > 20 {
                println!("  …");
            }
        }
        return Ok(0);
    }
    let batches = engine
        .archive_finished(age(args.older_than), args.batch)
        .await?;
    let cases: usize = batches.iter().map(|b| b.instances.len()).sum();
    let history: u64 = batches.iter().map(|b| b.history_rows).sum();
    if args.json {
        println!(
            "{}",
            json!({
                "archived": cases, "batches": batches.len(), "history_rows": history,
                "archived_total": engine.store.archived_count().await?,
            })
        );
    } else {
        println!(
            "archived {cases} case(s) with {history} history row(s) in {} batch(es)",
            batches.len()
        );
    }
    Ok(0)
}
