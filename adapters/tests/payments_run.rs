//! The monthly run at scale, on SQLite (a temp file) and PostgreSQL alike: a run goes
//! page by page and resumes after its last committed page when interrupted, a rerun
//! writes nothing, a month not yet due or closed is refused with nothing written, the
//! streamed bank file has the bytes of the rendered one, the report aggregated in the
//! database equals the sum of the instructions, and the instructions the database computes
//! for a page are what the ledger's own reading of each benefit's entries says is due.
//!
//! PostgreSQL comes from `JIUZHU_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a fresh schema that is dropped afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_adapters::payments::{
    BankFileConfig, InstructionStatus, Ledger, Payee, PaymentError, PaymentResult, ResultOutcome,
    RunProgress, SeedBenefit, YearMonth, due_in_month,
};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use rust_decimal::Decimal;

const BENEFITS: usize = 250;
const PAGE: usize = 40;

#[derive(Clone)]
struct Ctx {
    store: Store,
    url: String,
    engine: Arc<Engine>,
    dir: PathBuf,
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn month(text: &str) -> YearMonth {
    text.parse().expect("a valid month")
}

/// March 5th 2026, 09:00 in Beijing.
fn march() -> DateTime<Utc> {
    at("2026-03-05T09:00:00+08:00")
}

/// Benefit `i`; every tenth stopped from March.
fn seed(i: usize) -> SeedBenefit {
    SeedBenefit {
        case_id: format!("dibao-{i:04}"),
        program: if i % 3 == 0 { "tekun" } else { "dibao" }.into(),
        unit: format!("双鸭山市/尖山区/乡镇{:02}", i % 4),
        amount: Decimal::new(30_000 + (i as i64 * 7_919) % 90_000, 2),
        from: month("2026-01"),
        payee: Payee {
            name: format!("户主{i}"),
            id_number: None,
            account: Some(format!("6222{i:012}")),
        },
        stopped_from: (i % 10 == 9).then(|| month("2026-03")),
    }
}

fn active() -> Vec<SeedBenefit> {
    (0..BENEFITS)
        .map(seed)
        .filter(|s| s.stopped_from.is_none())
        .collect()
}

fn project(dir: &Path) -> Result<Project> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    for file in ["org.yaml", "payment_fix.yaml"] {
        std::fs::copy(source.join(file), dir.join(file))?;
    }
    for sub in ["calendars", "policies"] {
        std::fs::create_dir_all(dir.join(sub))?;
        for entry in std::fs::read_dir(source.join(sub))? {
            let entry = entry?;
            // Files only: the policy section declarations (`sections/`) are built in.
            if !entry.path().is_file() {
                continue;
            }
            std::fs::copy(entry.path(), dir.join(sub).join(entry.file_name()))?;
        }
    }
    Project::load(dir).map_err(|problems| anyhow::anyhow!(problems.join("\n")))
}

struct Teardown {
    database: TestDatabase,
    store: Store,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "payrun").await;
    let url = database.url.clone();
    let store = Store::open(&url).await.expect("open store");
    let project_dir = database.dir().join("project");
    std::fs::create_dir_all(&project_dir).expect("project dir");
    let project = project(&project_dir).expect("project loads");
    let clock = Arc::new(ManualClock::new(march()));
    let engine = Engine::new(store.clone(), Arc::new(project), clock, "test-node").expect("engine");
    engine.deploy().await.expect("deploy");
    let dir = database.dir().join("bank");
    std::fs::create_dir_all(&dir).expect("bank dir");
    let ctx = Ctx {
        store: store.clone(),
        url,
        engine: Arc::new(engine),
        dir,
    };
    (ctx, Teardown { database, store })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    an_interrupted_run_resumes_after_its_last_page_and_a_rerun_writes_nothing,
    a_month_not_yet_due_or_closed_is_refused_with_nothing_written,
    the_streamed_bank_file_and_the_report_match_the_instructions,
    the_run_pays_what_the_entries_say_whatever_the_history,
);

async fn an_interrupted_run_resumes_after_its_last_page_and_a_rerun_writes_nothing(
    ctx: Ctx,
) -> Result<()> {
    let ledger = Ledger::open(&ctx.store).await?.with_run_page(PAGE);
    let seeds: Vec<SeedBenefit> = (0..BENEFITS).map(seed).collect();
    ensure!(ledger.seed_benefits(&seeds, march()).await? == BENEFITS as u64);
    ensure!(
        ledger.seed_benefits(&seeds, march()).await? == 0,
        "seeding is idempotent"
    );
    let march_month = month("2026-03");

    // The process dies after its third committed page.
    let crashing = ledger.clone();
    let crashed = tokio::spawn(async move {
        let mut die = |progress: &RunProgress| {
            if progress.pages == 3 {
                panic!("simulated crash after page 3");
            }
        };
        crashing
            .run_month_observed(march_month, march(), &mut die)
            .await
    })
    .await;
    ensure!(crashed.is_err(), "the run was to die: {crashed:?}");
    let written = ledger.instructions(Some(march_month), None).await?;
    let in_three_pages = (0..3 * PAGE).filter(|i| i % 10 != 9).count();
    ensure!(
        written.len() == in_three_pages,
        "three pages committed: {} instructions",
        written.len()
    );
    // An unfinished month cannot be closed.
    ensure!(matches!(
        ledger.close_month(march_month, "county", march()).await,
        Err(PaymentError::RunUnfinished { .. })
    ));

    // Another node (after the restart) resumes after the third page.
    let restarted = Ledger::open(&Store::open(&ctx.url).await?)
        .await?
        .with_run_page(PAGE);
    let mut pages = 0;
    let resumed = restarted
        .run_month_observed(march_month, march(), &mut |p| pages = p.pages)
        .await?;
    let expected = active().len();
    ensure!(
        resumed.resumed
            && resumed.existing == in_three_pages as u64
            && resumed.created == (expected - in_three_pages) as u64,
        "{resumed:?}"
    );
    ensure!(pages == BENEFITS.div_ceil(PAGE) as u64 - 3, "{pages} pages");
    let instructions = restarted.instructions(Some(march_month), None).await?;
    ensure!(instructions.len() == expected, "{}", instructions.len());
    let references: Vec<String> = active()
        .iter()
        .map(|s| format!("{}:{}:2026-03", s.case_id, s.program))
        .collect();
    let mut sorted = references.clone();
    sorted.sort();
    let got: Vec<&str> = instructions.iter().map(|i| i.reference.as_str()).collect();
    ensure!(
        got == sorted,
        "one instruction per active benefit, none for a stopped one"
    );

    // A rerun writes nothing and does not go through the benefits again.
    let mut rerun_pages = 0;
    let rerun = restarted
        .run_month_observed(march_month, march(), &mut |p| rerun_pages = p.pages)
        .await?;
    ensure!(
        rerun.created == 0 && rerun.existing == expected as u64 && !rerun.resumed,
        "{rerun:?}"
    );
    ensure!(rerun_pages == 0, "the rerun read {rerun_pages} pages");

    // A benefit recorded since: the next run goes through again and writes only its month.
    let late = SeedBenefit {
        case_id: "dibao-late".into(),
        ..seed(1)
    };
    ledger.seed_benefits(&[late], march()).await?;
    let again = ledger.run_month(march_month, march()).await?;
    ensure!(
        again.created == 1 && again.existing == expected as u64,
        "{again:?}"
    );
    ensure!(ledger.run_month(march_month, march()).await?.created == 0);
    Ok(())
}

async fn a_month_not_yet_due_or_closed_is_refused_with_nothing_written(ctx: Ctx) -> Result<()> {
    let ledger = Ledger::open(&ctx.store).await?.with_run_page(PAGE);
    ledger.seed_benefits(&[seed(0), seed(1)], march()).await?;

    // April, asked for in March.
    let april = month("2026-04");
    match ledger.run_month(april, march()).await {
        Err(error @ PaymentError::MonthNotDue { .. }) => {
            ensure!(error.code() == Some("month_not_due"));
            ensure!(
                error.to_string()
                    == "the payment run for 2026-04 is not yet due: the current month is 2026-03",
                "{error}"
            );
        }
        other => bail!("April run in March: {other:?}"),
    }
    ensure!(ledger.instructions(Some(april), None).await?.is_empty());
    // Not due either by the calendar of the offices: 31 March 20:00 UTC is 1 April in Beijing.
    ensure!(
        ledger
            .run_month(april, at("2026-03-31T20:00:00Z"))
            .await?
            .created
            == 2
    );
    ensure!(matches!(
        ledger
            .close_month(month("2026-05"), "county", march())
            .await,
        Err(PaymentError::MonthNotDue { .. })
    ));

    // March run, paid, then closed.
    let march_month = month("2026-03");
    ensure!(ledger.run_month(march_month, march()).await?.created == 2);
    ensure!(ledger.close_month(march_month, "county", march()).await?);
    ensure!(
        !ledger.close_month(march_month, "county", march()).await?,
        "closed already"
    );
    ensure!(ledger.is_closed(march_month).await?);
    // A benefit recorded after the close is not paid for the closed month.
    ledger.seed_benefits(&[seed(2)], march()).await?;
    match ledger.run_month(march_month, march()).await {
        Err(error @ PaymentError::MonthClosed { .. }) => {
            ensure!(error.code() == Some("month_closed"), "{error}");
        }
        other => bail!("a run of a closed month: {other:?}"),
    }
    ensure!(ledger.instructions(Some(march_month), None).await?.len() == 2);
    // The bank's results for a closed month's payments are not recorded.
    let reference = "dibao-0000:tekun:2026-03";
    let summary = ledger
        .record_results(
            &[PaymentResult {
                reference: reference.into(),
                outcome: ResultOutcome::Failed,
                reason: Some("户名不符".into()),
            }],
            "result.csv",
            &ctx.engine,
            march(),
        )
        .await?;
    ensure!(
        summary.closed == vec![reference.to_owned()] && summary.failed.is_empty(),
        "{summary:?}"
    );
    let instruction = ledger
        .instruction(reference)
        .await?
        .context("instruction")?;
    ensure!(instruction.status == InstructionStatus::Scheduled);
    ensure!(summary.fix_tasks.is_empty());
    // April is still open and goes on.
    ensure!(
        ledger
            .run_month(april, at("2026-04-05T09:00:00+08:00"))
            .await?
            .created
            == 1
    );
    Ok(())
}

async fn the_streamed_bank_file_and_the_report_match_the_instructions(ctx: Ctx) -> Result<()> {
    // Pages smaller than the batch, so the file is streamed over several reads.
    let ledger = Ledger::open(&ctx.store).await?.with_run_page(PAGE);
    let seeds: Vec<SeedBenefit> = (0..BENEFITS).map(seed).collect();
    ledger.seed_benefits(&seeds, march()).await?;
    let march_month = month("2026-03");
    ledger.run_month(march_month, march()).await?;
    let config = BankFileConfig::default();
    let export = ledger
        .export_bank_file(&ctx.dir, &config, &ctx.engine, march())
        .await?;
    let [file] = export.files.as_slice() else {
        bail!("one file: {export:?}");
    };
    let expected: Decimal = active().iter().map(|s| s.amount).sum();
    ensure!(file.count == active().len() && file.total == expected && !file.resumed);
    let batch = ledger.batch(&file.batch_id).await?.context("the batch")?;
    ensure!(
        std::fs::read(&file.path)? == config.render(&batch.instructions)?,
        "the streamed file has the rendered bytes"
    );
    ensure!(
        batch
            .instructions
            .iter()
            .all(|i| i.status == InstructionStatus::Sent),
        "all sent"
    );

    let report = ledger.month_report(march_month).await?;
    ensure!(report.count == active().len() as u64 && report.total == expected);
    let instructions = ledger.instructions(Some(march_month), None).await?;
    for line in &report.lines {
        let of_line: Vec<_> = instructions
            .iter()
            .filter(|i| i.program == line.program && i.unit == line.unit)
            .collect();
        let sum: Decimal = of_line.iter().map(|i| i.amount).sum();
        ensure!(
            line.count == of_line.len() as u64 && line.total == sum,
            "{line:?}"
        );
        ensure!(line.outstanding == sum && line.paid.is_zero() && line.failed.is_zero());
    }
    ensure!(report.lines.len() == 8, "{} lines", report.lines.len());
    Ok(())
}

/// Effect `n` of benefit `i`'s history: a pick among `choices`, varied with both.
fn pick<'a>(i: usize, n: usize, choices: &[&'a str]) -> &'a str {
    choices[(i * 7 + n * 13 + i / 5) % choices.len()]
}

/// Benefit `i`'s history as effects: created from some month (some with an end, some of
/// zero), then zero to two amount changes (some from before the start, some dated months
/// ahead, some without an account or ID number), some stopped; each payee field changed in
/// some.
fn history(i: usize) -> Vec<serde_json::Value> {
    let months = [
        "2025-12-01",
        "2026-01-01",
        "2026-02-01",
        "2026-03-01",
        "2026-04-01",
        "2026-06-01",
    ];
    let amounts = ["705.00", "0.00", "1305.10", "0.01", "100.00", "20.50"];
    let case = format!("dibao-h{i:03}");
    let payment = |n: usize| {
        let mut effect = serde_json::json!({
            "type": "payment", "id": format!("{case}-e{n}"), "instance": case,
            "case": case, "unit": "双鸭山市/尖山区/乡镇01", "purpose": "dibao",
            "schedule": "monthly", "from": pick(i, n, &months),
            "amount": pick(i, n + 1, &amounts), "payee": format!("户主{i}-{n}"),
        });
        if (i + n) % 3 != 0 {
            effect["account"] = format!("6222{i:08}{n:04}").into();
        }
        if (i + n) % 4 == 1 {
            effect["id_number"] = "11010519491231002X".into();
        }
        if (i + n) % 5 == 2 {
            effect["until"] = pick(i, n + 2, &["2026-01-31", "2026-02-28", "2026-03-31"]).into();
        }
        effect
    };
    let mut effects = vec![payment(0)];
    for n in 1..=(i % 3) {
        effects.push(payment(n));
    }
    if i % 4 == 3 {
        let mut stop = serde_json::json!({"type": "payment_stop", "id": format!("{case}-stop"),
            "instance": case, "case": case, "unit": "双鸭山市/尖山区/乡镇01", "purpose": "dibao"});
        if i % 8 != 7 {
            stop["from"] = pick(i, 9, &months).into();
        }
        effects.push(stop);
    }
    effects
}

/// The run computes each page's instructions in the database; whatever a benefit's history,
/// what it writes is what `due_in_month` (the ledger's one definition of a month's due
/// payment) says of the benefit's entries: paid or not, the amount to the fen and its text,
/// and the payee's name, ID number and account. Both ways the run reads a benefit are
/// taken, often: its current terms (every entry in force in the month) and the replay of
/// its entries (an entry dated after the month); and the terms follow entries recorded
/// between two runs (the first effect of each history before January's run, the rest
/// after). Benefits of the bulk path (`seed_benefits`) are held to the same.
async fn the_run_pays_what_the_entries_say_whatever_the_history(ctx: Ctx) -> Result<()> {
    let ledger = Ledger::open(&ctx.store).await?.with_run_page(7);
    let cases = 96;
    let histories: Vec<Vec<serde_json::Value>> = (0..cases).map(history).collect();
    // And benefits written by the bulk path, stopped before, at or after their start.
    let seeds: Vec<SeedBenefit> = (0..24)
        .map(|i| SeedBenefit {
            case_id: format!("dibao-s{i:03}"),
            program: "dibao".into(),
            unit: "双鸭山市/尖山区/乡镇02".into(),
            amount: pick(i, 1, &["0.00", "705.00", "0.01", "1305.10"])
                .parse()
                .expect("an amount"),
            from: month(pick(i, 2, &["2026-01", "2026-02", "2026-04"])),
            payee: Payee {
                name: format!("户主s{i}"),
                id_number: (i % 2 == 0).then(|| "11010519491231002X".into()),
                account: (i % 3 != 0).then(|| format!("6222{i:012}")),
            },
            stopped_from: (i % 3 != 2)
                .then(|| month(pick(i, 3, &["2026-01", "2026-02", "2026-06"]))),
        })
        .collect();
    let benefits: Vec<String> = (0..cases)
        .map(|i| format!("dibao-h{i:03}:dibao"))
        .chain(seeds.iter().map(|s| format!("{}:dibao", s.case_id)))
        .collect();
    let (mut paid, mut unpaid, mut by_terms, mut replayed) = (0, 0, 0, 0);
    let may = at("2026-05-05T09:00:00+08:00");
    for (round, months) in [
        (0, &["2026-01"][..]),
        (1, &["2026-02", "2026-03", "2026-05"][..]),
    ] {
        for effects in &histories {
            let recorded = if round == 0 {
                &effects[..1]
            } else {
                &effects[1..]
            };
            for effect in recorded {
                ledger.apply_effect(effect, march()).await?;
            }
        }
        if round == 0 {
            ledger.seed_benefits(&seeds, march()).await?;
        }
        for m in months {
            let run_month = month(m);
            let summary = ledger.run_month(run_month, may).await?;
            let written = ledger.instructions(Some(run_month), None).await?;
            ensure!(summary.created == written.len() as u64, "{m}: {summary:?}");
            for benefit in &benefits {
                let entries = ledger.entries(benefit).await?;
                if entries.iter().any(|e| e.effective_month > run_month) {
                    replayed += 1;
                } else {
                    by_terms += 1;
                }
                let expected = due_in_month(&entries, run_month);
                let got = written
                    .iter()
                    .find(|w| w.benefit_id.as_deref() == Some(benefit.as_str()));
                match (expected, got) {
                    (None, None) => unpaid += 1,
                    (Some(due), Some(got)) => {
                        ensure!(
                            got.reference == format!("{benefit}:{m}")
                                && got.amount == due.amount
                                && got.amount.to_string() == due.amount.to_string()
                                && got.payee == due.payee
                                && got.due_on == run_month.first_day()
                                && got.status == InstructionStatus::Scheduled,
                            "{benefit} in {m}: wrote {got:?}, due {due:?}"
                        );
                        paid += 1;
                    }
                    (expected, got) => bail!("{benefit} in {m}: due {expected:?}, wrote {got:?}"),
                }
            }
        }
    }
    // The histories reach both outcomes and both readings, often.
    ensure!(paid > 80 && unpaid > 80, "{paid} paid, {unpaid} not");
    ensure!(
        by_terms > 80 && replayed > 80,
        "{by_terms} read from the terms, {replayed} replayed"
    );
    Ok(())
}
