//! The `jiuzhu` command: thin wiring of the engine, rules and adapters crates.

mod assess_cmd;
mod bench;
mod diagram_cmd;
mod incidents_cmd;
mod lifecycle;
mod load_cmd;
mod logging;
mod payments_cmd;
mod test_cmd;
mod validate_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// mimalloc, not the C library's allocator: a step builds and drops many small JSON and map
/// nodes, on several threads at once, and glibc's malloc spent about 40 % of the timer-firing
/// thread's time in its own bookkeeping (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: the 16th option of `mi_option_t` in mimalloc.h (v3). The sys
/// crate exports no constant for it; a test checks that this is the option whose default
/// is v3's purge delay.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long the allocator keeps freed memory before giving it back to the system. mimalloc
/// v3 keeps it a second; a timer-firing node frees what a thousand firings in flight held
/// many times a second, and with a million timers pending its peak RSS went to 130–150 MiB
/// that way, against 108 MiB with 10 ms (v2's default), at the same firing rate
/// (BENCHMARKS.md). 0 (purge at once) cost a quarter of the rate.
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 10;

fn tune_allocator() {
    // SAFETY: sets one integer option of the allocator; no pointer is passed, and
    // mimalloc's options may be set at any time from any thread.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS);
    }
}

#[derive(Parser)]
#[command(
    name = "jiuzhu",
    version,
    about = "Jiuzhu (救助): a durable workflow engine for social assistance",
    after_help = "Logs go to stderr. RUST_LOG filters them (default: info for jiuzhu's crates, \
                  warn for others; RUST_LOG=debug shows ticks, timer batches, group commits and \
                  deliveries). Logs carry ids, counts and durations, never personal data."
)]
struct Cli {
    /// How log lines on stderr are written: `human` lines or one `json` object per line.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Human)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seed a fresh database with the procedures and demo cases, then show the queues.
    Demo {
        /// Seed and show the queues, then exit instead of serving.
        #[arg(long)]
        seed_only: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Assess a household's eligibility and amount (spec/assess.md); prints one JSON object.
    Assess {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        case: PathBuf,
        /// Rule files that replace the shipped ones (a folder of *.yaml).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Add a trace: each rule that fired, its inputs and result, with Chinese labels.
        #[arg(long)]
        explain: bool,
    },
    /// Store every definition of the project; a changed one gets a new version.
    Deploy {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Start a case of PROCESS with start data from FILE (JSON or YAML).
    Start {
        process: String,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long = "as")]
        user: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// The queue of USER: claimable and claimed tasks in their units for their roles, due date first.
    Tasks {
        #[arg(long = "as")]
        user: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Claim a task so nobody else completes it.
    Claim {
        task: String,
        #[arg(long = "as")]
        user: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Complete a task with form data from FILE.
    Complete {
        task: String,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long = "as")]
        user: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Deliver message NAME (objection, withdraw, extend, …) to an instance.
    Message {
        instance: String,
        name: String,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long = "as")]
        user: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// An instance: state, variables, open tasks, timers.
    Show {
        instance: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// The audit trail of an instance; --verify checks its hash chain.
    History {
        instance: String,
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// The scheduler: fire due timers and start due cron schedules (every second, or --once).
    Run {
        #[arg(long)]
        once: bool,
        /// Notification channels (SMTP, webhook) and retry settings; default: JIUZHU_NOTIFY_* variables.
        #[arg(long)]
        notify_config: Option<PathBuf>,
        /// The monthly run's schedule and bank-file settings (default: 09:00 on the 5th).
        #[arg(long)]
        payments_config: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Effects the dispatcher gave up on, with the last error, attempts and times.
    Incidents {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u32,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Put a dead effect back in the outbox with a fresh attempt budget.
    Retry {
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Measure the engine on a fixed workload (dibao-lite, timers, inbox); prints one JSON object.
    Bench(bench::BenchArgs),
    /// Deployments, active cases per process, open tasks, pending timers, the oldest due timer's lag.
    Status {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Drive N dibao cases to their end, one `ack` line per committed step (crash testing).
    #[command(hide = true)]
    Load {
        #[arg(long)]
        instances: usize,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Payments: monthly run and bank file, gateway, the bank's results, the monthly report.
    Payments {
        #[command(subcommand)]
        command: payments_cmd::PaymentsCommand,
        #[command(flatten)]
        options: payments_cmd::PaymentsOptions,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Check process definitions; every problem as file:line:column: CODE: message.
    Validate {
        /// Definition files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print a process as a Mermaid flowchart (labels in Chinese).
    Diagram {
        /// A process id or a path to a .yaml definition.
        process: String,
        #[arg(long, default_value = "processes")]
        definitions: PathBuf,
    },
    /// Run scenario files against a fresh engine with a manual clock.
    Test {
        /// Where process ids are looked up.
        #[arg(long, default_value = "processes")]
        definitions: PathBuf,
        /// A policy parameter file for every rule step (default: the project's, by date and unit).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Scenario files or folders (searched recursively for *.scenario.yaml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// Which database and which definitions a lifecycle command uses.
#[derive(clap::Args)]
struct DbArgs {
    /// Database: a SQLite file path or `postgres://…` (default: $JIUZHU_DB, else data/jiuzhu.db).
    #[arg(long)]
    db: Option<String>,
    #[arg(long, default_value = "processes")]
    definitions: PathBuf,
}

fn main() -> ExitCode {
    restore_sigpipe();
    tune_allocator();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    logging::init(cli.log_format);
    // Every event of the command on this thread carries its name (`block_on` polls the
    // command's future here; the tasks it spawns log with their own spans).
    let span = tracing::info_span!("command", name = matches.subcommand_name().unwrap_or(""));
    let _entered = span.enter();
    let started = std::time::Instant::now();
    tracing::debug!("command started");
    let code = match cli.command {
        Command::Assess {
            policy,
            case,
            rules,
            explain,
        } => assess_cmd::run(&policy, &case, rules.as_deref(), explain),
        Command::Demo { seed_only, db } => {
            lifecycle_cmd(&db, async |s| lifecycle::demo(s, seed_only).await)
        }
        Command::Deploy { db } => lifecycle_cmd(&db, async |s| lifecycle::deploy(s).await),
        Command::Start {
            process,
            data,
            user,
            db,
        } => lifecycle_cmd(&db, async |s| {
            lifecycle::start(s, &process, data.as_deref(), &user).await
        }),
        Command::Tasks { user, db } => {
            lifecycle_cmd(&db, async |s| lifecycle::tasks(s, &user).await)
        }
        Command::Claim { task, user, db } => {
            lifecycle_cmd(&db, async |s| lifecycle::claim(s, &task, &user).await)
        }
        Command::Complete {
            task,
            data,
            user,
            db,
        } => lifecycle_cmd(&db, async |s| {
            lifecycle::complete(s, &task, data.as_deref(), &user).await
        }),
        Command::Message {
            instance,
            name,
            data,
            user,
            db,
        } => lifecycle_cmd(&db, async |s| {
            lifecycle::message(s, &instance, &name, data.as_deref(), user.as_deref()).await
        }),
        Command::Show { instance, db } => {
            lifecycle_cmd(&db, async |s| lifecycle::show(s, &instance).await)
        }
        Command::History {
            instance,
            verify,
            db,
        } => lifecycle_cmd(&db, async |s| {
            lifecycle::history(s, &instance, verify).await
        }),
        Command::Run {
            once,
            notify_config,
            payments_config,
            db,
        } => lifecycle_cmd(&db, async |s| {
            lifecycle::run(
                s,
                once,
                notify_config.as_deref(),
                payments_config.as_deref(),
            )
            .await
        }),
        Command::Incidents {
            json,
            limit,
            offset,
            db,
        } => lifecycle_cmd(&db, async |s| {
            incidents_cmd::incidents(&s.engine.store, json, limit, offset).await
        }),
        Command::Retry { id, db } => lifecycle_cmd(&db, async |s| {
            incidents_cmd::retry(&s.engine.store, &id, s.engine.now()).await
        }),
        Command::Status { db } => lifecycle_cmd(&db, async |s| lifecycle::status(s).await),
        Command::Load { instances, db } => load_cmd::run(
            &lifecycle::database_url(db.db.as_deref()),
            &db.definitions,
            instances,
        ),
        Command::Bench(args) => bench::run(args),
        Command::Payments {
            command,
            options,
            db,
        } => lifecycle_cmd(&db, async |s| {
            payments_cmd::run(s, &command, &options).await
        }),
        Command::Validate { paths } => validate_cmd::run(&paths),
        Command::Diagram {
            process,
            definitions,
        } => diagram_cmd::run(&process, &definitions),
        Command::Test {
            definitions,
            policy,
            paths,
        } => test_cmd::run(&definitions, policy.as_deref(), &paths),
    };
    tracing::debug!(code, elapsed = ?started.elapsed(), "command finished");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// `jiuzhu tasks --as x | head` should end quietly when `head` has read enough, as
/// other command-line tools do, instead of panicking on a broken pipe: Rust ignores
/// SIGPIPE by default, so restore the default action.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; it only resets
    // the disposition of one signal to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Opens the database and runs one lifecycle command on a tokio runtime.
fn lifecycle_cmd(
    args: &DbArgs,
    command: impl AsyncFnOnce(&lifecycle::Session) -> anyhow::Result<i32>,
) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async {
        let session = match lifecycle::Session::open(args.db.as_deref(), &args.definitions).await {
            Ok(session) => session,
            Err(e) => {
                eprintln!("error: {e:#}");
                return 2;
            }
        };
        let code = match command(&session).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        };
        session.engine.store.close().await;
        code
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads and sets one integer option, as `tune_allocator` does.
        let (default, set) = unsafe {
            let default = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS);
            let set = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, default);
            (default, set)
        };
        // Option 15 is the purge delay: v3's default of a second (unless the environment
        // sets MIMALLOC_PURGE_DELAY), and it takes the value set.
        let from_env = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|value| value.parse::<std::ffi::c_long>().ok());
        assert_eq!(default, from_env.unwrap_or(1000));
        assert_eq!(set, ALLOCATOR_PURGE_DELAY_MS);
    }
}
