//! `jiuzhu payments …`: the monthly run with its bank file, export, gateway sending, the
//! bank's result import and the monthly report, on the payments ledger.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use jiuzhu_adapters::payments::{
    HttpGateway, Ledger, MonthReport, PaymentError, PaymentsConfig, YearMonth, read_result_file,
};

use crate::lifecycle::Session;

#[derive(clap::Subcommand)]
pub enum PaymentsCommand {
    /// Create one instruction per active benefit for MONTH (default: the month whose run the
    /// schedule says is due), then write the due instructions to a bank file.
    Run {
        /// YYYY-MM
        #[arg(long)]
        month: Option<String>,
        /// Folder for the bank file (default: the config's bank_dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only create the instructions.
        #[arg(long)]
        no_file: bool,
    },
    /// Write due, unsent instructions to a bank file (and rewrite an interrupted one).
    Export {
        /// Folder for the bank file (default: the config's bank_dir).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Send due, unsent instructions through the configured payment gateway.
    Send,
    /// Record the bank's result file (reference,status,reason); failures open fix tasks.
    ImportResult {
        /// The bank's result file (CSV: reference,status,reason).
        file: PathBuf,
    },
    /// Batch runs over the recipients (heating aid, price subsidy): run key, case,
    /// status and progress (recipients done of listed, paid, total).
    Batches {
        /// Only the run under this key.
        run_key: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Close MONTH: no run and no bank result changes it afterwards.
    Close {
        /// YYYY-MM
        #[arg(long)]
        month: String,
    },
    /// Running monthly benefits whose amount changed from DATE on (a raised standard):
    /// who changed by how much, names and ID numbers masked.
    StandardChanges {
        /// YYYY-MM-DD: changes taking effect in this date's month or later.
        #[arg(long)]
        from: String,
        /// Only this unit and the units below it.
        #[arg(long)]
        unit: Option<String>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Totals per program and unit for a month.
    Report {
        /// YYYY-MM
        #[arg(long)]
        month: String,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Options every `payments` subcommand takes.
#[derive(clap::Args)]
pub struct PaymentsOptions {
    /// payments.yaml: run schedule, bank file columns and folder, gateway (all optional).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

fn month(text: &str) -> Result<YearMonth> {
    text.parse().map_err(|e| {
        crate::errors::CliError::usage("invalid_input", format!("--month {text:?}: {e}"))
            .hint("a month is written YYYY-MM, e.g. 2026-04")
            .into()
    })
}

/// A ledger refusal with a stable code (a month not yet due or closed, an unfinished run)
/// as the CLI's refusal; other failures pass through.
fn refusal(error: PaymentError) -> anyhow::Error {
    match error.code() {
        Some(code) if code != "conflict" => {
            crate::errors::CliError::refused(code, error.to_string()).into()
        }
        _ => error.into(),
    }
}

pub async fn run(
    session: &Session,
    command: &PaymentsCommand,
    options: &PaymentsOptions,
) -> Result<i32> {
    let config = match &options.config {
        Some(path) => PaymentsConfig::load(path)?,
        None => PaymentsConfig::default(),
    };
    let engine = &session.engine;
    let ledger = Ledger::new(&engine.store).with_utc_offset(config.utc_offset());
    let now = engine.now();
    match command {
        PaymentsCommand::Run {
            month: chosen,
            out,
            no_file,
        } => {
            let summary = match chosen {
                Some(text) => Some(ledger.run_month(month(text)?, now).await.map_err(refusal)?),
                None => ledger
                    .run_due(&config.run_schedule, now)
                    .await
                    .map_err(refusal)?,
            };
            match summary {
                Some(s) => {
                    println!(
                        "run {}: {} instructions created, {} already there{}",
                        s.month,
                        s.created,
                        s.existing,
                        if s.resumed {
                            " (an interrupted run resumed)"
                        } else {
                            ""
                        }
                    );
                    if s.created == 0 && s.existing == 0 {
                        explain_empty_run(engine, &s.month.to_string()).await?;
                    }
                }
                None => println!(
                    "no run due (schedule {:?}, or this month ran already)",
                    config.run_schedule.expression()
                ),
            }
            if !no_file {
                export(&ledger, &config, engine, out.as_ref(), now).await?;
            }
        }
        PaymentsCommand::Export { out } => {
            export(&ledger, &config, engine, out.as_ref(), now).await?
        }
        PaymentsCommand::Send => {
            let gateway_config = config
                .gateway
                .clone()
                .context("no `gateway` in the payments config")?;
            let gateway = HttpGateway::new(gateway_config)?;
            let summary = ledger.send_via_gateway(&gateway, engine, now).await?;
            println!(
                "sent {}, refused {}, unreachable {}, without account {}",
                summary.sent.len(),
                summary.rejected.len(),
                summary.unavailable.len(),
                summary.without_account.len()
            );
            for reference in &summary.rejected {
                println!("refused {reference}");
            }
            print_fix_tasks(&summary.without_account, &summary.fix_tasks);
            if !summary.unavailable.is_empty() {
                return Ok(1);
            }
        }
        PaymentsCommand::ImportResult { file } => {
            let results = read_result_file(file)?;
            let source = file.display().to_string();
            let summary = ledger
                .record_results(&results, &source, engine, now)
                .await?;
            println!(
                "paid {}, failed {}, repeated {}, contradicting {}, unknown {}",
                summary.paid.len(),
                summary.failed.len(),
                summary.repeated.len(),
                summary.contradicting.len(),
                summary.unknown.len()
            );
            for (reference, instance) in &summary.fix_tasks {
                println!("fix task {instance} for {reference}");
            }
            for reference in &summary.contradicting {
                println!("contradicting result kept as first reported: {reference}");
            }
            for reference in &summary.unknown {
                println!("unknown reference: {reference}");
            }
            for reference in &summary.closed {
                println!("month closed, result not recorded: {reference}");
            }
        }
        PaymentsCommand::Close { month: text } => {
            let month = month(text)?;
            let by = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
            if ledger
                .close_month(month, &format!("cli:{by}"), now)
                .await
                .map_err(refusal)?
            {
                println!("payments month {month} closed");
            } else {
                println!("payments month {month} was closed already");
            }
        }
        PaymentsCommand::Report { month: text, json } => {
            report(&engine.store, options, text, *json).await?;
        }
        PaymentsCommand::StandardChanges { from, unit, json } => {
            standard_changes(&engine.store, from, unit.as_deref(), *json).await?;
        }
        PaymentsCommand::Batches { run_key, json } => {
            let runs = ledger.batches(run_key.as_deref()).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                println!("no batch runs");
            } else {
                println!("run_key\tcase\tstatus\tas_of\tdone/recipients\tpaid\ttotal");
                for run in &runs {
                    println!(
                        "{}\t{}\t{}\t{}\t{}/{}\t{}\t{}",
                        run.run_key,
                        run.case_id,
                        run.status,
                        run.as_of,
                        run.done,
                        run.recipients,
                        run.paid,
                        run.total
                    );
                }
            }
        }
    }
    Ok(0)
}

/// Why a run created no instruction: benefits come from the `payment` effects of approved
/// cases, which reach the ledger only when `jiuzhu run` delivers the outbox.
async fn explain_empty_run(engine: &jiuzhu_engine::runtime::Engine, month: &str) -> Result<()> {
    let pending = engine.store.pending_effects("payment").await?;
    if pending > 0 {
        println!(
            "{pending} payment effect(s) are still in the outbox, not yet in the ledger: \
             run `jiuzhu run --once` first, then this run again"
        );
    } else {
        println!(
            "no active benefits for {month}: no approved case has a benefit running that month \
             (`jiuzhu cases --status completed` lists the decided cases)"
        );
    }
    Ok(())
}

/// `payments report`: totals per program and unit for a month (reads only).
pub async fn report(
    store: &jiuzhu_engine::store::Store,
    options: &PaymentsOptions,
    text: &str,
    json: bool,
) -> Result<i32> {
    let config = match &options.config {
        Some(path) => PaymentsConfig::load(path)?,
        None => PaymentsConfig::default(),
    };
    let ledger = Ledger::new(store).with_utc_offset(config.utc_offset());
    let report = ledger.month_report(month(text)?).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(0)
}

/// `payments standard-changes`: benefits whose amount changed from a date (reads only).
pub async fn standard_changes(
    store: &jiuzhu_engine::store::Store,
    from: &str,
    unit: Option<&str>,
    json: bool,
) -> Result<i32> {
    let date = chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").map_err(|e| {
        anyhow::Error::from(
            crate::errors::CliError::usage("invalid_input", format!("--from {from:?}: {e}"))
                .hint("a date is written YYYY-MM-DD, e.g. 2026-07-01"),
        )
    })?;
    let report = Ledger::new(store).standard_changes(date, unit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    println!("monthly amounts changed from {}", report.from);
    println!("from\tprogram\tunit\tcase\tpayee\tid_number\told\tnew\tdifference");
    for c in &report.changes {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            c.from,
            c.program,
            c.unit,
            c.case_id,
            c.payee,
            c.id_number.as_deref().unwrap_or("-"),
            c.old_amount,
            c.new_amount,
            c.difference
        );
    }
    println!(
        "{} benefit(s) changed, {} a month in all",
        report.count, report.total_difference
    );
    Ok(0)
}

async fn export(
    ledger: &Ledger,
    config: &PaymentsConfig,
    engine: &jiuzhu_engine::runtime::Engine,
    out: Option<&PathBuf>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let dir = out.unwrap_or(&config.bank_dir);
    let summary = ledger
        .export_bank_file(dir, &config.bank_file, engine, now)
        .await?;
    for file in &summary.files {
        println!(
            "{} {}: {} payments, total {}",
            if file.resumed { "rewrote" } else { "wrote" },
            file.path.display(),
            file.count,
            file.total
        );
    }
    if summary.files.is_empty() {
        println!("no payments due for a bank file");
    }
    print_fix_tasks(&summary.without_account, &summary.fix_tasks);
    Ok(())
}

/// The payments without a bank account and the `payment_fix` cases opened for failures.
fn print_fix_tasks(without_account: &[String], fix_tasks: &[(String, String)]) {
    for reference in without_account {
        println!("no bank account, not paid: {reference}");
    }
    for (reference, case) in fix_tasks {
        println!("fix_account task {case} opened for {reference}");
    }
}

fn print_report(report: &MonthReport) {
    println!("payments {}", report.month);
    println!("program\tunit\tcount\ttotal\tpaid\tfailed\toutstanding");
    for line in &report.lines {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            line.program,
            line.unit,
            line.count,
            line.total,
            line.paid,
            line.failed,
            line.outstanding
        );
    }
    println!("TOTAL\t\t{}\t{}", report.count, report.total);
}
