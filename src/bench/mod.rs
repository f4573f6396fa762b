//! `jiuzhu bench`: measures the engine on fixed workloads, beside the peers in
//! `bench/peers/`, and prints ONE JSON object per run on stdout.
//!
//! Every mode goes through the real engine path (the pure core, the store commit with its
//! version check and hash chain, tasks, timers, outbox) on a fresh database that is removed
//! afterwards. Only seeding large tables takes a bulk path (`Store::bench_seed`), because a
//! million pending timers are the setting of a measurement, not the thing measured.

mod archive;
mod dibao_lite;
mod http;
mod http_client;
mod inbox;
mod nodes;
mod nodes_proc;
mod nodes_serve;
mod province;
mod setup;
mod timers;

use std::path::PathBuf;

pub use setup::SyncArg;

/// `jiuzhu bench MODE [options]`.
#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: BenchMode,
}

#[derive(clap::Subcommand)]
pub enum BenchMode {
    /// The peers' dibao-lite workload: start → verify → assess → (review) → approve → pay.
    DibaoLite(dibao_lite::Args),
    /// Fire 100,000 timers due at once among a million pending.
    Timers(timers::Args),
    /// One user's queue query among a million open tasks.
    Inbox(inbox::Args),
    /// The API: 64 clients completing cases beside the engine directly; the queue page.
    Http(http::Args),
    /// Policy simulation over a province-sized table of decided cases.
    Province(province::Args),
    /// Archive N finished cases; today's queue page and case show before and after.
    Archive(archive::Args),
    /// 1, 2, 3 … `jiuzhu run` and `jiuzhu serve` nodes on one PostgreSQL database.
    Nodes(nodes::Args),
}

/// Where a bench runs; shared by every mode.
#[derive(clap::Args, Clone, Debug)]
pub struct DbOptions {
    /// A SQLite file to create (it must not exist; it is removed afterwards) or a
    /// `postgres://` URL (a fresh database is created on that server and dropped afterwards).
    /// Default: a new SQLite file in the temporary directory.
    #[arg(long)]
    pub db: Option<String>,
    /// SQLite durability per commit: `full` (fsync each commit, the default) or `normal`
    /// (SpiffWorkflow's setting in the peers' bench).
    #[arg(long, value_enum, default_value_t = SyncArg::Full)]
    pub synchronous: SyncArg,
    /// The bench process definitions; policies come from the project folder above them.
    #[arg(long, default_value = "processes/bench")]
    pub definitions: PathBuf,
}

/// Runs one bench and prints its JSON; the exit code is 0 on success, 1 on failure.
pub fn run(args: BenchArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::errors::emit(
                "runtime",
                &format!("cannot start the async runtime: {e}"),
                &[],
            );
            return 1;
        }
    };
    let outcome = runtime.block_on(async {
        match args.mode {
            BenchMode::DibaoLite(args) => dibao_lite::run(&args).await,
            BenchMode::Timers(args) => timers::run(&args).await,
            BenchMode::Inbox(args) => inbox::run(&args).await,
            BenchMode::Http(args) => http::run(&args).await,
            BenchMode::Province(args) => province::run(&args).await,
            BenchMode::Archive(args) => archive::run(&args).await,
            BenchMode::Nodes(args) => nodes::run(&args).await,
        }
    });
    match outcome {
        Ok(report) => {
            println!("{report}");
            0
        }
        Err(e) => crate::errors::report(&e),
    }
}

/// Rounds a rate or duration for the report (these are measurements, never money).
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
