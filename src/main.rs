//! The `jiuzhu` command: thin wiring of the engine, rules and adapters crates.

mod archive_cmd;
mod assess_cmd;
mod audit_cmd;
mod bench;
mod calendar_check;
mod cases_cmd;
mod cli_args;
mod correct_cmd;
mod diagram_cmd;
mod errors;
mod incidents_cmd;
mod lifecycle;
mod load_batch_cmd;
mod load_cmd;
mod load_payments_cmd;
mod logging;
mod output;
mod payments_cmd;
mod reserve_cmd;
mod reveal_log;
mod serve_cmd;
mod simulate;
mod test_cmd;
mod tokens_cmd;
mod users_cmd;
mod validate_cmd;
mod views;

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
    after_help = "The project folder is --project, else $JIUZHU_HOME, else the current folder or the \
nearest one above it holding processes/; the database is data/jiuzhu.db in it unless --db or \
JIUZHU_DB names another. Exit codes: 0 done, 1 refused or failed, 2 bad input or usage. \
Docs: README.md and docs/ (case-format.md, assessment.md, procedures.md, scenarios.md). \
Logs go to stderr. RUST_LOG filters them (default: info for jiuzhu's crates, warn for others; \
RUST_LOG=debug shows ticks, timer batches, group commits and deliveries). Logs carry ids, \
counts and durations, never personal data."
)]
struct Cli {
    #[command(flatten)]
    global: cli_args::GlobalArgs,
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
    },
    /// Assess a household's eligibility and amount (docs/assessment.md); prints one JSON object.
    Assess {
        /// The policy parameter file (standards, rates, caps) to assess under.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// The case file: household members, income, assets (docs/case-format.md).
        #[arg(long, value_name = "FILE")]
        case: PathBuf,
        /// Rule files that replace the shipped ones (a folder of *.yaml).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Add a trace: each rule that fired, its inputs and result, with Chinese labels.
        #[arg(long)]
        explain: bool,
    },
    /// Store every definition of the project; a changed one gets a new version (creates the database).
    Deploy,
    /// Start a case of PROCESS as USER with start data (docs/procedures.md lists each one's variables).
    Start {
        /// The procedure's id: dibao, tekun, temporary_aid, low_income, …
        process: String,
        /// Start data: a JSON or YAML file, `-` for standard input, or inline JSON '{"a": 1}'.
        #[arg(long, value_name = "FILE|-|JSON")]
        data: Option<String>,
        /// The user acting (an id of org.yaml).
        #[arg(long = "as", value_name = "USER")]
        user: String,
        /// The unit the case belongs to: the user's own (default) or one below it.
        #[arg(long, value_name = "UNIT")]
        unit: Option<String>,
    },
    /// The queue of USER: claimable and claimed tasks in their units for their roles, due date first.
    Tasks {
        /// The user whose queue to show (an id of org.yaml).
        #[arg(long = "as", value_name = "USER")]
        user: String,
        /// Show applicants' names unmasked.
        #[arg(long)]
        reveal: bool,
    },
    /// Claim a task so nobody else completes it.
    Claim {
        /// The task id, its short form (as `tasks` prints it) or a unique part of it.
        task: String,
        /// The user claiming it (an id of org.yaml).
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Release a claimed task (its holder, or a head of the unit).
    Unclaim {
        /// The task id, its short form (as `tasks` prints it) or a unique part of it.
        task: String,
        /// The user releasing it (an id of org.yaml).
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Hand a task to another user (a head of the unit).
    Reassign {
        /// The task id, its short form (as `tasks` prints it) or a unique part of it.
        task: String,
        /// The user who gets the task (an id of org.yaml).
        #[arg(long, value_name = "USER")]
        to: String,
        /// The head handing it over (an id of org.yaml).
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Hand a task you hold to a named colleague (e.g. while on leave).
    Delegate {
        /// The task id, its short form (as `tasks` prints it) or a unique part of it.
        task: String,
        /// The colleague who gets the task (an id of org.yaml).
        #[arg(long, value_name = "USER")]
        to: String,
        /// The user handing it on (an id of org.yaml).
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Complete a task with form data.
    Complete {
        /// The task id, its short form (as `tasks` prints it) or a unique part of it.
        task: String,
        /// Form data: a JSON or YAML file, `-` for standard input, or inline JSON '{"complete": true}'.
        #[arg(long, value_name = "FILE|-|JSON")]
        data: Option<String>,
        /// The user completing it (an id of org.yaml).
        #[arg(long = "as", value_name = "USER")]
        user: String,
    },
    /// Deliver message NAME (objection, withdraw, extend, …) to a case.
    Message {
        /// The case id, its short form or a unique part of it.
        instance: String,
        /// The message, as the procedure names it (docs/procedures.md).
        name: String,
        /// Message data: a JSON or YAML file, `-` for standard input, or inline JSON.
        #[arg(long, value_name = "FILE|-|JSON")]
        data: Option<String>,
        /// The user sending it, if a person does (an id of org.yaml).
        #[arg(long = "as", value_name = "USER")]
        user: Option<String>,
    },
    /// Correct a case's data (`--set PATH=JSON`, a `--reason`), recorded in its history.
    Correct(correct_cmd::CorrectArgs),
    /// A case: state, variables, open tasks, timers (personal data masked).
    Show {
        /// The case id, its short form or a unique part of it.
        instance: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Show personal data unmasked (the output says so).
        #[arg(long)]
        reveal: bool,
    },
    /// The audit trail of a case as a timeline in local time; --verify checks its hash chain.
    History {
        /// The case id, its short form or a unique part of it.
        instance: String,
        /// Check the hash chain: exit 1 if any row was altered.
        #[arg(long)]
        verify: bool,
        /// Print a JSON array of the rows instead of text.
        #[arg(long)]
        json: bool,
        /// Show personal data unmasked (the output says so).
        #[arg(long)]
        reveal: bool,
    },
    /// List and search cases by procedure, status, unit, applicant name or ID number.
    Cases(cases_cmd::CasesArgs),
    /// The scheduler: fire due timers and start due cron schedules (every second until
    /// Ctrl-C/SIGTERM, or --once).
    Run {
        /// One round (timers, cron, payment run, outbox), then exit.
        #[arg(long)]
        once: bool,
        /// Notification channels (SMTP, webhook) and retry settings; default: JIUZHU_NOTIFY_* variables.
        #[arg(long, value_name = "FILE")]
        notify_config: Option<PathBuf>,
        /// The monthly run's schedule and bank-file settings (default: 09:00 on the 5th).
        #[arg(long, value_name = "FILE")]
        payments_config: Option<PathBuf>,
        /// Archive cases that ended more than this many days ago, hourly (default: never).
        #[arg(long, value_name = "DAYS")]
        archive_after_days: Option<u32>,
    },
    /// Move cases that ended more than --older-than DAYS ago into the archive tables, a batch
    /// per transaction; show, history --verify and cases still find them (docs/archives.md).
    Archive(archive_cmd::ArchiveArgs),
    /// Effects the dispatcher gave up on, with the last error, attempts and times.
    Incidents {
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
        /// At most this many incidents.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Skip this many first (for the next page).
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// Retry an incident: a dead effect (back in the outbox), a parked timer, or a case's
    /// failed rule step (run again as `--as USER`, after the data was corrected).
    Retry {
        /// The incident's id, as `incidents` prints it.
        id: String,
        /// The user retrying a case's rule step (an id of org.yaml; as for `correct`).
        #[arg(long = "as", value_name = "USER")]
        user: Option<String>,
    },
    /// Measure the engine on a fixed workload (dibao-lite, timers, inbox); prints one JSON object.
    Bench(bench::BenchArgs),
    /// Re-assess every decided case under a proposed policy file beside the policy in force:
    /// who gains, loses, loses or gains eligibility, and the cost (docs/simulate-policy.md).
    /// Writes nothing.
    SimulatePolicy(simulate::Args),
    /// Deployments, active cases per process, open tasks, pending timers, the oldest due timer's lag.
    Status,
    /// Drive N dibao cases to their end, one `ack` line per committed step (crash testing).
    #[command(hide = true)]
    Load {
        /// How many cases to drive.
        #[arg(long)]
        instances: usize,
    },
    /// Run a heating aid batch over N recipients, printing its progress (crash testing).
    #[command(hide = true)]
    LoadBatch {
        /// How many recipients' benefits to seed.
        #[arg(long)]
        recipients: usize,
    },
    /// Seed N benefits, run a month page by page and write its bank file, printing the
    /// progress (crash testing).
    #[command(hide = true)]
    LoadPayments {
        /// How many benefits to seed.
        #[arg(long)]
        benefits: usize,
        /// Benefits per page of the run.
        #[arg(long, default_value_t = 10_000)]
        page: usize,
        /// Folder for the bank file.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Payments: monthly run and bank file, gateway, the bank's results, the monthly report.
    Payments {
        #[command(subcommand)]
        command: payments_cmd::PaymentsCommand,
        #[command(flatten)]
        options: payments_cmd::PaymentsOptions,
    },
    /// The township reserve fund: replenish a township's reserve, show balances and entries.
    Reserve {
        #[command(subcommand)]
        command: reserve_cmd::ReserveCommand,
    },
    /// Serve the HTTP API, with the scheduler and the outbox dispatcher, until Ctrl-C/SIGTERM.
    Serve {
        #[command(flatten)]
        args: serve_cmd::ServeArgs,
    },
    /// The server's users: add, set-password, disable, enable, list.
    Users {
        #[command(subcommand)]
        command: users_cmd::UsersCommand,
    },
    /// The audit trail of every case: verify its keyed hash chain, seal cases from before the key.
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// API tokens for machine clients: create, revoke, list.
    Tokens {
        #[command(subcommand)]
        command: tokens_cmd::TokensCommand,
    },
    /// Check process definitions; every problem as file:line:column: CODE: message.
    Validate {
        /// Definition files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print a process as a Mermaid flowchart (labels in Chinese).
    Diagram {
        /// A process id (looked up in the definitions folder) or a path to a .yaml definition.
        process: String,
    },
    /// Run scenario files against a fresh engine with a manual clock (docs/scenarios.md).
    Test {
        /// A policy parameter file for every rule step (default: the project's, by date and unit).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Scenario files or folders (searched recursively for *.scenario.yaml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// How a command uses the database.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// May create a missing SQLite file (deploy, demo).
    Create,
    /// Writes an existing database.
    Write,
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
    let global = &cli.global;
    let code = match cli.command {
        Command::Assess {
            policy,
            case,
            rules,
            explain,
        } => assess_cmd::run(&policy, &case, rules.as_deref(), explain),
        Command::Demo { seed_only } => lifecycle_cmd(global, Access::Create, async |s| {
            lifecycle::demo(s, seed_only).await
        }),
        Command::Deploy => {
            lifecycle_cmd(global, Access::Create, async |s| lifecycle::deploy(s).await)
        }
        Command::Start {
            process,
            data,
            user,
            unit,
        } => lifecycle_cmd(global, Access::Write, async |s| {
            lifecycle::start(s, &process, data.as_deref(), &user, unit.as_deref()).await
        }),
        Command::Tasks { user, reveal } => read_cmd(global, async |s| {
            reveal_log::tasks(s, reveal, &user).await?;
            views::tasks(&s.view(reveal), &user).await
        }),
        Command::Claim { task, user } => lifecycle_cmd(global, Access::Write, async |s| {
            lifecycle::claim(s, &task, &user).await
        }),
        Command::Unclaim { task, user } => lifecycle_cmd(global, Access::Write, async |s| {
            lifecycle::unclaim(s, &task, &user).await
        }),
        Command::Reassign { task, to, user } => lifecycle_cmd(global, Access::Write, async |s| {
            lifecycle::hand_on(s, &task, &user, &to, true).await
        }),
        Command::Delegate { task, to, user } => lifecycle_cmd(global, Access::Write, async |s| {
            lifecycle::hand_on(s, &task, &user, &to, false).await
        }),
        Command::Complete { task, data, user } => lifecycle_cmd(global, Access::Write, async |s| {
            lifecycle::complete(s, &task, data.as_deref(), &user).await
        }),
        Command::Message {
            instance,
            name,
            data,
            user,
        } => lifecycle_cmd(global, Access::Write, async |s| {
            lifecycle::message(s, &instance, &name, data.as_deref(), user.as_deref()).await
        }),
        Command::Correct(args) => lifecycle_cmd(global, Access::Write, async |s| {
            correct_cmd::run(s, &args).await
        }),
        Command::Show {
            instance,
            json,
            reveal,
        } => read_cmd(global, async |s| {
            reveal_log::case(s, reveal, "case", &instance).await?;
            views::show(&s.view(reveal), &instance, json).await
        }),
        Command::History {
            instance,
            verify,
            json,
            reveal,
        } => read_cmd(global, async |s| {
            reveal_log::case(s, reveal, "history", &instance).await?;
            views::history(&s.view(reveal), &instance, verify, json).await
        }),
        Command::Cases(args) => read_cmd(global, async |s| {
            reveal_log::cases(s, &args).await?;
            cases_cmd::run(&s.view(args.reveal), &args).await
        }),
        Command::Run {
            once,
            notify_config,
            payments_config,
            archive_after_days,
        } => lifecycle_cmd(global, Access::Write, async |s| {
            let archive = archive_cmd::ArchiveSchedule::from_flag(archive_after_days)?;
            lifecycle::run(
                s,
                once,
                notify_config.as_deref(),
                payments_config.as_deref(),
                archive,
            )
            .await
        }),
        Command::Archive(args) => lifecycle_cmd(global, Access::Write, async |s| {
            archive_cmd::run(s, &args).await
        }),
        Command::Incidents {
            json,
            limit,
            offset,
        } => read_cmd(global, async |s| {
            incidents_cmd::incidents(&s.store, json, limit, offset).await
        }),
        Command::Retry { id, user } => lifecycle_cmd(global, Access::Write, async |s| {
            incidents_cmd::retry(s, &id, user.as_deref()).await
        }),
        Command::Status => read_cmd(global, async |s| views::status(&s.view(false)).await),
        Command::Load { instances } => match global.paths() {
            Ok(paths) => load_cmd::run(&paths.db, &paths.definitions, instances),
            Err(e) => errors::report(&e),
        },
        Command::LoadBatch { recipients } => match global.paths() {
            Ok(paths) => load_batch_cmd::run(&paths.db, &paths.definitions, recipients),
            Err(e) => errors::report(&e),
        },
        Command::LoadPayments {
            benefits,
            page,
            out,
        } => match global.paths() {
            Ok(paths) => load_payments_cmd::run(&load_payments_cmd::Args {
                db: &paths.db,
                definitions: &paths.definitions,
                benefits,
                page,
                out: &out,
            }),
            Err(e) => errors::report(&e),
        },
        Command::Bench(args) => bench::run(args),
        Command::SimulatePolicy(args) => simulate_cmd(global, &args),
        Command::Payments { command, options } => {
            if let payments_cmd::PaymentsCommand::Report { month, json } = &command {
                read_cmd(global, async |s| {
                    payments_cmd::report(&s.store, &options, month, *json).await
                })
            } else if let payments_cmd::PaymentsCommand::StandardChanges { from, unit, json } =
                &command
            {
                read_cmd(global, async |s| {
                    payments_cmd::standard_changes(&s.store, from, unit.as_deref(), *json).await
                })
            } else {
                lifecycle_cmd(global, Access::Write, async |s| {
                    payments_cmd::run(s, &command, &options).await
                })
            }
        }
        Command::Reserve { command } => lifecycle_cmd(global, Access::Write, async |s| {
            reserve_cmd::run(s, &command).await
        }),
        Command::Serve { args } => {
            // The demo seeds a fresh database; a plain server opens an existing one.
            let access = if args.demo {
                Access::Create
            } else {
                Access::Write
            };
            lifecycle_cmd(global, access, async |s| serve_cmd::run(s, &args).await)
        }
        Command::Users { command } => lifecycle_cmd(global, Access::Write, async |s| {
            users_cmd::run(s, &command).await
        }),
        Command::Audit {
            command: audit_cmd::AuditCommand::Verify,
        } => read_cmd(global, async |s| audit_cmd::verify(&s.store).await),
        Command::Audit {
            command: audit_cmd::AuditCommand::Seal,
        } => lifecycle_cmd(global, Access::Write, async |s| {
            audit_cmd::seal(&s.engine.store).await
        }),
        Command::Tokens { command } => lifecycle_cmd(global, Access::Write, async |s| {
            tokens_cmd::run(s, &command).await
        }),
        Command::Validate { paths } => validate_cmd::run(&paths),
        Command::Diagram { process } => match global.paths() {
            Ok(paths) => diagram_cmd::run(&process, &paths.definitions),
            Err(e) => errors::report(&e),
        },
        Command::Test { policy, paths } => match global.paths() {
            Ok(dirs) => test_cmd::run(&dirs.definitions, policy.as_deref(), &paths),
            Err(e) => errors::report(&e),
        },
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

fn tokio_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            errors::emit(
                "runtime",
                &format!("cannot start the async runtime: {e}"),
                &[],
            );
            None
        }
    }
}

/// Loads the project, opens the database and runs one command that may write.
fn lifecycle_cmd(
    global: &cli_args::GlobalArgs,
    access: Access,
    command: impl AsyncFnOnce(&lifecycle::Session) -> anyhow::Result<i32>,
) -> i32 {
    let Some(runtime) = tokio_runtime() else {
        return 1;
    };
    runtime.block_on(async {
        let opened = match global.paths() {
            Ok(paths) => lifecycle::Session::open(&paths, access == Access::Create).await,
            Err(e) => Err(e),
        };
        let session = match opened {
            Ok(session) => session,
            Err(e) => {
                // The command did not run: a setup or usage problem unless the error says otherwise.
                let code = errors::report(&e);
                return if code == errors::REFUSED {
                    errors::USAGE
                } else {
                    code
                };
            }
        };
        let code = match command(&session).await {
            Ok(code) => code,
            Err(e) => errors::report(&e),
        };
        session.engine.store.close().await;
        code
    })
}

/// Opens the database read-only, without loading the definitions, and runs one command
/// that only reads.
/// `simulate-policy`: its own read-only open (the summary reads no org or calendars).
fn simulate_cmd(global: &cli_args::GlobalArgs, args: &simulate::Args) -> i32 {
    use jiuzhu_engine::clock::{Clock as _, SystemClock};
    let Some(runtime) = tokio_runtime() else {
        return 1;
    };
    runtime.block_on(async {
        let outcome = match global.paths() {
            Ok(paths) => simulate::run(&paths, args, SystemClock.now()).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => 0,
            Err(e) => errors::report(&e),
        }
    })
}

fn read_cmd(
    global: &cli_args::GlobalArgs,
    command: impl AsyncFnOnce(&views::ReadSession) -> anyhow::Result<i32>,
) -> i32 {
    let Some(runtime) = tokio_runtime() else {
        return 1;
    };
    runtime.block_on(async {
        let opened = match global.paths() {
            Ok(paths) => views::ReadSession::open(&paths).await,
            Err(e) => Err(e),
        };
        let session = match opened {
            Ok(session) => session,
            Err(e) => {
                let code = errors::report(&e);
                return if code == errors::REFUSED {
                    errors::USAGE
                } else {
                    code
                };
            }
        };
        let code = match command(&session).await {
            Ok(code) => code,
            Err(e) => errors::report(&e),
        };
        session.store.close().await;
        code
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand says what it does and every argument what it means, at any depth,
    /// so `--help` answers a new user everywhere.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut command = <Cli as clap::CommandFactory>::command();
        command.build();
        let mut missing = Vec::new();
        walk(&command, "jiuzhu", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
        // The global options reach every subcommand, payments' own included.
        let payments = command
            .find_subcommand("payments")
            .and_then(|p| p.find_subcommand("report"))
            .expect("payments report");
        assert!(payments.get_arguments().any(|a| a.get_id() == "db"));
    }

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
