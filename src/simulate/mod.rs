//! `jiuzhu simulate-policy`: every decided case of a program with a rule file assessed
//! under the policy in force and under a proposed policy file, side by side, without
//! writing anything (the database is opened read-only). Cases are read a page at a time
//! (keyset paging), each page assessed on every core, and folded into a summary whose
//! size depends on programs and units only; the CSV of changes is written as it goes.
//! See `docs/simulate-policy.md`.

mod evaluate;
pub mod explain;
mod inputs;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use chrono::NaiveDate;
use jiuzhu_engine::store::simulate::{DecidedCase, DecidedPage};
use jiuzhu_engine::store::{Store, StoreOptions};

use crate::cli_args::Paths;
use crate::errors::CliError;
pub use evaluate::{CaseResult, Skip};
#[cfg(test)]
pub use evaluate::{Change, Group, evaluate as evaluate_case};
pub use inputs::{InputOptions, Inputs, load as load_inputs};
pub use summary::Summary;
#[cfg(test)]
pub use summary::Tally;

/// `jiuzhu simulate-policy` options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The proposed policy parameter file.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The day both policies are applied (ages, the policy in force). Default: the
    /// proposal's effective_from; a later date is refused (the proposal would be retroactive).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
    /// Only cases of this unit and the units below it.
    #[arg(long)]
    pub unit: Option<String>,
    /// Write every changed case to this CSV file (names and ID numbers masked).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Show one case's assessment steps under both policies instead of the summary.
    #[arg(long, value_name = "CASE")]
    pub explain: Option<String>,
    /// Print JSON instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// How many of the largest changes the report lists.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Outcomes of a case whose benefit is granted (the recipients).
    #[arg(long, value_delimiter = ',', default_value = "approved,recognised")]
    pub granted: Vec<String>,
    /// Outcomes of a refused application (tried under the proposal when decided within
    /// the last year).
    #[arg(long, value_delimiter = ',', default_value = "rejected")]
    pub refused: Vec<String>,
}

/// Cases read per page.
pub const PAGE: u32 = 4_000;

/// What one simulation read and how long it took.
pub struct Run {
    pub summary: Summary,
    pub cases_read: u64,
    pub elapsed: Duration,
}

/// Runs the command.
pub async fn run(paths: &Paths, args: &Args, today: chrono::DateTime<chrono::Utc>) -> Result<()> {
    let inputs = inputs::load(InputOptions {
        proposed: &args.policy,
        definitions: &paths.definitions,
        as_of: args.as_of,
        today,
        granted: args.granted.clone(),
        refused: args.refused.clone(),
    })?;
    paths.require_database()?;
    let store = Store::open_with(
        &paths.db,
        StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    )
    .await
    .with_context(|| format!("opening the database {}", paths.db))?;
    let outcome = if let Some(case) = &args.explain {
        explain::run(&store, &inputs, case, args.json)
            .await
            .map(|text| print!("{text}"))
    } else {
        report(&store, inputs, args).await
    };
    store.close().await;
    outcome
}

async fn report(store: &Store, inputs: Inputs, args: &Args) -> Result<()> {
    let csv: Option<Box<dyn std::io::Write + Send>> = match &args.csv {
        Some(path) => Some(Box::new(std::io::BufWriter::new(create_new(path)?))),
        None => None,
    };
    let summary = Summary::new(args.top, csv).context("writing the CSV")?;
    let inputs = Arc::new(inputs);
    let run = simulate(store, inputs.clone(), args.unit.clone(), summary).await?;
    if args.json {
        let mut json = run.summary.to_json();
        json["proposed_policy"] = serde_json::json!(inputs.proposed_file);
        json["as_of"] = serde_json::json!(inputs.as_of.to_string());
        json["programs_simulated"] = serde_json::json!(inputs.programs());
        json["cases_read"] = serde_json::json!(run.cases_read);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", text_report(&inputs, &run, args.csv.as_deref()));
    }
    Ok(())
}

/// A CSV path that exists is refused: the report never overwrites a file.
fn create_new(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            anyhow!(CliError::usage(
                "invalid_input",
                format!("cannot create the CSV {}: {e}", path.display())
            ))
        })
}

/// Reads every decided case a page at a time and folds it into `summary`: the next page
/// is read while this one is assessed, on as many threads as there are cores (kept for
/// the whole run).
pub async fn simulate(
    store: &Store,
    inputs: Arc<Inputs>,
    unit: Option<String>,
    summary: Summary,
) -> Result<Run> {
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let inputs_table = store
        .has_assessment_inputs()
        .await
        .context("reading the schema version")?;
    let fetch = |after: String| {
        let store = store.clone();
        let unit = unit.clone();
        tokio::spawn(async move {
            store
                .decided_cases(&DecidedPage {
                    after,
                    unit,
                    limit: PAGE,
                    inputs: inputs_table,
                })
                .await
        })
    };
    let workers = Arc::new(Workers::start(&inputs, threads)?);
    let mut next = fetch(String::new());
    let mut summary = summary;
    let mut cases_read = 0u64;
    loop {
        let page = next.await.context("reading cases")??;
        let Some(last) = page.last() else {
            break;
        };
        cases_read += page.len() as u64;
        next = fetch(last.id.clone());
        let workers = workers.clone();
        summary = tokio::task::spawn_blocking(move || -> Result<Summary> {
            let results = workers.evaluate_page(page);
            summary.add_page(results).context("writing the CSV")?;
            Ok(summary)
        })
        .await
        .context("assessing a page")??;
    }
    summary.finish().context("writing the CSV")?;
    Ok(Run {
        summary,
        cases_read,
        elapsed: started.elapsed(),
    })
}

/// A page's results, in the page's order.
type PageResults = Vec<Result<CaseResult, (String, Skip)>>;

/// The threads that assess the pages, one per core, started once for the whole run: a
/// thread started per page began with a cold allocator heap, and zeroing its fresh pages
/// was a tenth of the run. Each takes a contiguous slice of every page.
struct Workers {
    jobs: Vec<std::sync::mpsc::Sender<(Vec<DecidedCase>, std::sync::mpsc::Sender<PageResults>)>>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(inputs: &Arc<Inputs>, threads: usize) -> Result<Workers> {
        let mut workers = Workers {
            jobs: Vec::new(),
            handles: Vec::new(),
        };
        for n in 0..threads.max(1) {
            let (job, jobs) = std::sync::mpsc::channel::<(
                Vec<DecidedCase>,
                std::sync::mpsc::Sender<PageResults>,
            )>();
            let inputs = inputs.clone();
            let handle = std::thread::Builder::new()
                .name(format!("simulate-{n}"))
                .spawn(move || {
                    for (rows, reply) in jobs {
                        let results: PageResults = rows
                            .into_iter()
                            .map(|row| evaluate::evaluate(&inputs, row))
                            .collect();
                        // The run stopped waiting (it failed): nothing to hand over.
                        let _ = reply.send(results);
                    }
                })
                .context("starting an assessing thread")?;
            workers.jobs.push(job);
            workers.handles.push(handle);
        }
        Ok(workers)
    }

    /// Assesses a page in one contiguous slice per thread; the results keep the page's order.
    fn evaluate_page(&self, page: Vec<DecidedCase>) -> PageResults {
        let slice = page.len().div_ceil(self.jobs.len().max(1)).max(1);
        let mut page = page.into_iter().peekable();
        let mut replies = Vec::new();
        for job in &self.jobs {
            if page.peek().is_none() {
                break;
            }
            let rows: Vec<DecidedCase> = page.by_ref().take(slice).collect();
            let (reply, results) = std::sync::mpsc::channel();
            // A thread that panicked earlier is gone: its slice is reported below.
            let _ = job.send((rows, reply));
            replies.push(results);
        }
        replies
            .into_iter()
            .flat_map(|results| {
                // A panicking evaluation is a defect; its slice is reported, not lost silently.
                results.recv().unwrap_or_else(|_| {
                    vec![Err((String::new(), Skip::Unassessable("panic".into())))]
                })
            })
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the channels ends the threads' loops.
        self.jobs.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

fn text_report(inputs: &Inputs, run: &Run, csv: Option<&Path>) -> String {
    use std::fmt::Write as _;
    let json = run.summary.to_json();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "政策模拟 policy simulation: {} as of {} (programs: {})",
        inputs.proposed_file,
        inputs.as_of,
        inputs.programs().join(", ")
    );
    let _ = writeln!(
        out,
        "{:<14} {:<32} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>14} {:>14}",
        "program",
        "unit",
        "recip.",
        "gaining",
        "losing",
        "lose_el.",
        "unchanged",
        "new_el.",
        "monthly_chg",
        "yearly_chg"
    );
    let line = |out: &mut String, program: &str, unit: &str, t: &Json| {
        let _ = writeln!(
            out,
            "{:<14} {:<32} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>14} {:>14}",
            program,
            unit,
            t["recipients"],
            t["gaining"],
            t["losing"],
            t["losing_eligibility"],
            t["unchanged"],
            t["newly_eligible"],
            t["monthly_change"].as_str().unwrap_or_default(),
            t["yearly_change"].as_str().unwrap_or_default(),
        );
    };
    for entry in json["units"].as_array().into_iter().flatten() {
        line(
            &mut out,
            entry["program"].as_str().unwrap_or_default(),
            entry["unit"].as_str().unwrap_or_default(),
            entry,
        );
    }
    for entry in json["programs"].as_array().into_iter().flatten() {
        line(
            &mut out,
            entry["program"].as_str().unwrap_or_default(),
            "(all units)",
            entry,
        );
    }
    line(&mut out, "(all)", "(all units)", &json["total"]);
    let total = &json["total"];
    let _ = writeln!(
        out,
        "newly eligible among refused applicants: {} (monthly {}, yearly {})",
        total["newly_eligible"],
        total["newly_eligible_monthly"].as_str().unwrap_or_default(),
        total["newly_eligible_yearly"].as_str().unwrap_or_default()
    );
    let _ = writeln!(out, "largest changes:");
    for row in json["largest_changes"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {} {} {} {} {} → {} ({})",
            row["case"].as_str().unwrap_or_default(),
            row["program"].as_str().unwrap_or_default(),
            row["applicant"].as_str().unwrap_or_default(),
            row["change"].as_str().unwrap_or_default(),
            row["current_monthly"].as_str().unwrap_or_default(),
            row["proposed_monthly"].as_str().unwrap_or_default(),
            row["monthly_change"].as_str().unwrap_or_default(),
        );
    }
    if run.summary.outside_proposal > 0 {
        let _ = writeln!(
            out,
            "outside the proposal's jurisdiction: {} cases",
            run.summary.outside_proposal
        );
    }
    for (reason, (count, examples)) in &run.summary.unassessable {
        let _ = writeln!(
            out,
            "not assessable ({reason}): {count} cases, e.g. {}",
            examples.join(", ")
        );
    }
    if let Some(path) = csv {
        let _ = writeln!(
            out,
            "{} changed cases written to {}",
            run.summary.csv_rows,
            path.display()
        );
    }
    let _ = writeln!(
        out,
        "{} cases read in {:.2} s",
        run.cases_read,
        run.elapsed.as_secs_f64()
    );
    out
}

use serde_json::Value as Json;
