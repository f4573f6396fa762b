//! The payments ledger end to end, on SQLite (a temp file) and PostgreSQL alike: effects to
//! benefits and instructions, monthly runs, staged installments, bank files with crash
//! recovery, the gateway, reconciliation opening fix tasks, and the monthly report.
//!
//! PostgreSQL comes from `JIUZHU_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a fresh schema that is dropped afterwards. When no server answers, the
//! PostgreSQL half fails and says how to start one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_adapters::payments::{
    Applied, BankFileConfig, GatewayConfig, HttpGateway, InstructionKind, InstructionStatus,
    Ledger, PaymentResult, ResultOutcome, YearMonth, read_result_file, write_bank_file,
};
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::json;

const UNIT: &str = "双鸭山市/尖山区/中心站街道";

/// What a test body gets.
#[derive(Clone)]
struct Ctx {
    store: Store,
    url: String,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    /// A scratch folder (bank files, result files).
    dir: PathBuf,
}

impl Ctx {
    fn ledger(&self) -> Ledger {
        Ledger::new(&self.store)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Another node on the same database, as after a restart.
    async fn restarted(&self) -> Result<Ledger> {
        Ok(Ledger::new(&Store::open(&self.url).await?))
    }
}

/// A time in `month` (YYYY-MM): a month's run is refused before the month begins.
fn run_at(month: &str) -> DateTime<Utc> {
    at(&format!("{month}-05T09:00:00+08:00"))
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn month(text: &str) -> YearMonth {
    text.parse().expect("a valid month")
}

/// A project folder with the org directory, calendars, policies and `payment_fix` only, so
/// these tests do not depend on the other procedures being mid-edit.
fn fix_project(dir: &Path) -> Result<Project> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    std::fs::copy(source.join("org.yaml"), dir.join("org.yaml"))?;
    std::fs::copy(
        source.join("payment_fix.yaml"),
        dir.join("payment_fix.yaml"),
    )?;
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
    let database = TestDatabase::create(db, "pay").await;
    let url = database.url.clone();
    let store = Store::open(&url).await.expect("open store");
    let project_dir = database.dir().join("project");
    std::fs::create_dir_all(&project_dir).expect("project dir");
    let project = fix_project(&project_dir).expect("project loads");
    let clock = Arc::new(ManualClock::new(at("2026-03-05T09:00:00+08:00")));
    let engine =
        Engine::new(store.clone(), Arc::new(project), clock.clone(), "test-node").expect("engine");
    engine.deploy().await.expect("deploy");
    let scratch = database.dir().join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let ctx = Ctx {
        store: store.clone(),
        url,
        engine: Arc::new(engine),
        clock,
        dir: scratch,
    };
    (ctx, Teardown { database, store })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    a_months_run_twice_makes_one_instruction_per_benefit,
    benefit_changes_are_new_entries_and_stops_cancel_unsent_months,
    staged_installments_and_an_advance,
    bank_file_with_a_failure_opens_a_fix_task_and_a_repeat_changes_nothing,
    crash_between_file_write_and_acknowledgement_duplicates_nothing,
    report_totals_equal_the_sum_of_instructions,
    gateway_sends_with_idempotency_keys_and_retries_safely,
);

/// A monthly benefit effect as dibao's approval emits it, plus the payee data the ledger
/// uses when the procedure supplies it.
fn monthly(id: &str, case: &str, amount: &str, from: &str, payee: &str) -> serde_json::Value {
    json!({"type": "payment", "id": id, "instance": case, "unit": UNIT, "amount": amount,
        "purpose": "dibao", "schedule": "monthly", "from": from, "payee": payee,
        "account": format!("62220000{:08}", case.len() * 1111),
        "id_number": "230503198001011234"})
}

async fn a_months_run_twice_makes_one_instruction_per_benefit(ctx: Ctx) -> Result<()> {
    let ledger = ctx.ledger();
    let now = ctx.now();
    let first = monthly("dibao-1-e21", "dibao-1", "705.00", "2026-04-01", "张三");
    ensure!(matches!(
        ledger.apply_effect(&first, now).await?,
        Applied::BenefitCreated { .. }
    ));
    // The outbox delivers at least once: the same effect again changes nothing.
    ensure!(ledger.apply_effect(&first, now).await? == Applied::Duplicate);
    ledger
        .apply_effect(
            &monthly("dibao-2-e21", "dibao-2", "1305.0", "2026-04-01", "李四"),
            now,
        )
        .await?;
    // Not started yet in April.
    ledger
        .apply_effect(
            &monthly("dibao-3-e21", "dibao-3", "500", "2026-05-01", "王五"),
            now,
        )
        .await?;

    let april = month("2026-04");
    let run = ledger.run_month(april, run_at("2026-04")).await?;
    ensure!((run.created, run.existing) == (2, 0), "first run: {run:?}");
    let rerun = ledger.run_month(april, run_at("2026-04")).await?;
    ensure!(
        (rerun.created, rerun.existing) == (0, 2),
        "rerun: {rerun:?}"
    );
    // Another node running the same month at once creates nothing either.
    let other = ctx.restarted().await?;
    let (a, b) = tokio::join!(
        ledger.run_month(april, run_at("2026-04")),
        other.run_month(april, run_at("2026-04"))
    );
    ensure!(a?.created + b?.created == 0);

    let instructions = ledger.instructions(Some(april), None).await?;
    let seen: Vec<(&str, Decimal)> = instructions
        .iter()
        .map(|i| (i.reference.as_str(), i.amount))
        .collect();
    ensure!(
        seen == vec![
            ("dibao-1:dibao:2026-04", dec!(705.00)),
            ("dibao-2:dibao:2026-04", dec!(1305.00)),
        ],
        "{seen:?}"
    );
    ensure!(
        instructions
            .iter()
            .all(|i| i.kind == InstructionKind::Monthly
                && i.status == InstructionStatus::Scheduled
                && i.unit == UNIT)
    );
    let may = ledger
        .run_month(month("2026-05"), run_at("2026-05"))
        .await?;
    ensure!(may.created == 3, "{may:?}");
    Ok(())
}

async fn benefit_changes_are_new_entries_and_stops_cancel_unsent_months(ctx: Ctx) -> Result<()> {
    let ledger = ctx.ledger();
    let now = ctx.now();
    ledger
        .apply_effect(
            &monthly("dibao-1-e21", "dibao-1", "705.00", "2026-04-01", "张三"),
            now,
        )
        .await?;
    ledger
        .run_month(month("2026-04"), run_at("2026-04"))
        .await?;
    ledger
        .run_month(month("2026-05"), run_at("2026-05"))
        .await?;
    // A review continues the benefit with a new amount from June (the review's instance
    // pays for the case it reviews).
    let change = json!({"type": "payment", "id": "dibao_review-1-e8", "instance": "dibao_review-1",
        "case": "dibao-1", "unit": UNIT, "amount": "820.00", "purpose": "dibao",
        "schedule": "monthly", "from": "2026-06-01", "payee": "张三"});
    ensure!(matches!(
        ledger.apply_effect(&change, now).await?,
        Applied::BenefitChanged { .. }
    ));
    ledger
        .run_month(month("2026-06"), run_at("2026-06"))
        .await?;
    ledger
        .run_month(month("2026-07"), run_at("2026-07"))
        .await?;
    // A later review stops it from July: July's unsent instruction is cancelled.
    let stop = json!({"type": "payment_stop", "id": "dibao_review-2-e9", "instance": "dibao_review-2",
        "case": "dibao-1", "unit": UNIT, "purpose": "dibao", "from": "2026-07-01"});
    let Applied::Stopped { benefit, cancelled } = ledger.apply_effect(&stop, now).await? else {
        bail!("a stop");
    };
    ensure!(benefit.as_deref() == Some("dibao-1:dibao"));
    ensure!(
        cancelled == vec!["dibao-1:dibao:2026-07".to_owned()],
        "{cancelled:?}"
    );
    ensure!(
        ledger
            .run_month(month("2026-08"), run_at("2026-08"))
            .await?
            .created
            == 0
    );

    let entries = ledger.entries("dibao-1:dibao").await?;
    let kinds: Vec<(&str, String)> = entries
        .iter()
        .map(|e| (e.kind.as_str(), e.effective_month.to_string()))
        .collect();
    ensure!(
        kinds
            == vec![
                ("created", "2026-04".to_owned()),
                ("amount_changed", "2026-06".to_owned()),
                ("stopped", "2026-07".to_owned()),
            ],
        "{kinds:?}"
    );
    let amounts: Vec<(String, Decimal, InstructionStatus)> = ledger
        .instructions(None, Some("dibao-1"))
        .await?
        .into_iter()
        .map(|i| (i.month.to_string(), i.amount, i.status))
        .collect();
    ensure!(
        amounts
            == vec![
                (
                    "2026-04".to_owned(),
                    dec!(705.00),
                    InstructionStatus::Scheduled
                ),
                (
                    "2026-05".to_owned(),
                    dec!(705.00),
                    InstructionStatus::Scheduled
                ),
                (
                    "2026-06".to_owned(),
                    dec!(820.00),
                    InstructionStatus::Scheduled
                ),
                (
                    "2026-07".to_owned(),
                    dec!(820.00),
                    InstructionStatus::Cancelled
                ),
            ],
        "{amounts:?}"
    );
    // A malformed effect is refused with the field named, and nothing is recorded.
    let bad = json!({"type": "payment", "id": "x-e1", "instance": "x", "unit": UNIT,
        "amount": "12.345", "purpose": "dibao", "payee": "某"});
    let error = ledger
        .apply_effect(&bad, now)
        .await
        .expect_err("fractions of a fen");
    ensure!(error.to_string().contains("`amount`"), "{error}");
    ensure!(ledger.instructions(None, Some("x")).await?.is_empty());
    Ok(())
}

async fn staged_installments_and_an_advance(ctx: Ctx) -> Result<()> {
    let ledger = ctx.ledger();
    let now = ctx.now();
    // 先行救助: paid at once, before any approval.
    let advance = json!({"type": "payment", "id": "temporary_aid-1-e3", "instance": "temporary_aid-1",
        "unit": UNIT, "amount": "500.00", "purpose": "temporary_aid_advance", "schedule": "once",
        "payee": "赵六", "account": "6222000033334444"});
    ledger.apply_effect(&advance, now).await?;
    // 一次审批、分阶段救助: one approval, three payments a month apart.
    let staged = json!({"type": "payment", "id": "temporary_aid-1-e9", "instance": "temporary_aid-1",
        "unit": UNIT, "amount": "1000.00", "purpose": "temporary_aid", "installments": 3,
        "payee": "赵六", "account": "6222000033334444"});
    let Applied::Scheduled { references } = ledger.apply_effect(&staged, now).await? else {
        bail!("scheduled");
    };
    ensure!(references.len() == 3);
    let staged_rows: Vec<(String, Decimal, String)> = ledger
        .instructions(None, Some("temporary_aid-1"))
        .await?
        .into_iter()
        .filter(|i| i.kind == InstructionKind::Installment)
        .map(|i| (i.reference, i.amount, i.due_on.to_string()))
        .collect();
    ensure!(
        staged_rows
            == vec![
                (
                    "temporary_aid-1-e9:1".to_owned(),
                    dec!(333.33),
                    "2026-03-05".to_owned()
                ),
                (
                    "temporary_aid-1-e9:2".to_owned(),
                    dec!(333.33),
                    "2026-04-05".to_owned()
                ),
                (
                    "temporary_aid-1-e9:3".to_owned(),
                    dec!(333.34),
                    "2026-05-05".to_owned()
                ),
            ],
        "{staged_rows:?}"
    );
    ensure!(ledger.advances("temporary_aid-1").await? == dec!(500.00));

    // Today's bank file carries the advance and the first installment.
    let export = ledger
        .export_bank_file(&ctx.dir, &BankFileConfig::default(), &ctx.engine, now)
        .await?;
    ensure!(
        export.files.len() == 1 && export.files[0].count == 2,
        "{export:?}"
    );
    ensure!(export.files[0].total == dec!(833.33));

    // Stopping cancels what was not sent yet, never what was.
    let stop = json!({"type": "payment_stop", "id": "temporary_aid-1-e12", "instance": "temporary_aid-1",
        "unit": UNIT, "purpose": "temporary_aid"});
    let Applied::Stopped { benefit, cancelled } = ledger.apply_effect(&stop, now).await? else {
        bail!("a stop");
    };
    ensure!(benefit.is_none());
    ensure!(
        cancelled
            == vec![
                "temporary_aid-1-e9:2".to_owned(),
                "temporary_aid-1-e9:3".to_owned()
            ],
        "{cancelled:?}"
    );
    let first = ledger
        .instruction("temporary_aid-1-e9:1")
        .await?
        .context("first installment")?;
    ensure!(first.status == InstructionStatus::Sent);
    // Nothing left for a later file.
    ctx.clock.set(at("2026-05-06T09:00:00+08:00"));
    let later = ledger
        .export_bank_file(&ctx.dir, &BankFileConfig::default(), &ctx.engine, ctx.now())
        .await?;
    ensure!(later.files.is_empty(), "{later:?}");
    Ok(())
}

async fn bank_file_with_a_failure_opens_a_fix_task_and_a_repeat_changes_nothing(
    ctx: Ctx,
) -> Result<()> {
    let ledger = ctx.ledger();
    let now = ctx.now();
    ledger
        .apply_effect(
            &monthly("dibao-1-e21", "dibao-1", "705.00", "2026-03-01", "张三"),
            now,
        )
        .await?;
    ledger
        .apply_effect(
            &monthly("dibao-22-e21", "dibao-22", "1305.00", "2026-03-01", "李四"),
            now,
        )
        .await?;
    ledger.run_month(month("2026-03"), now).await?;

    let export = ledger
        .export_bank_file(&ctx.dir, &BankFileConfig::default(), &ctx.engine, now)
        .await?;
    ensure!(export.without_account.is_empty() && export.fix_tasks.is_empty());
    let [file] = export.files.as_slice() else {
        bail!("one file: {export:?}");
    };
    let text = std::fs::read_to_string(&file.path)?;
    let expected = "reference,payee_name,id_number,account,amount\n\
        dibao-1:dibao:2026-03,张三,2305**********1234,6222000000007777,705.00\n\
        dibao-22:dibao:2026-03,李四,2305**********1234,6222000000008888,1305.00\n\
        TOTAL,2,2010.00\n";
    ensure!(text == expected, "bank file:\n{text}");
    ensure!(
        file.path.file_name().and_then(|n| n.to_str()) == Some("jiuzhu-payments-20260305-001.csv")
    );
    // No temp file is left behind.
    ensure!(std::fs::read_dir(&ctx.dir)?.count() == 1);

    let result_path = ctx.dir.join("result-20260306.csv");
    std::fs::write(
        &result_path,
        "reference,status,reason\n\
         dibao-1:dibao:2026-03,paid,\n\
         dibao-22:dibao:2026-03,failed,账户已销户\n\
         nobody:dibao:2026-03,paid,\n",
    )?;
    let results = read_result_file(&result_path)?;
    let summary = ledger
        .record_results(&results, "result-20260306.csv", &ctx.engine, now)
        .await?;
    ensure!(summary.paid == vec!["dibao-1:dibao:2026-03".to_owned()]);
    ensure!(summary.failed == vec!["dibao-22:dibao:2026-03".to_owned()]);
    ensure!(summary.unknown == vec!["nobody:dibao:2026-03".to_owned()]);
    let [(failed_reference, fix_instance)] = summary.fix_tasks.as_slice() else {
        bail!("one fix task: {summary:?}");
    };
    ensure!(failed_reference == "dibao-22:dibao:2026-03");

    // The task waits in the queue of the case's township staff.
    let staff = Actor {
        user: "zx_staff1".into(),
        roles: vec!["township_staff".into()],
        unit: UNIT.into(),
    };
    let tasks = ctx
        .store
        .tasks_for(
            &staff.roles,
            std::slice::from_ref(&staff.unit),
            &staff.user,
            50,
        )
        .await?;
    let [task] = tasks.as_slice() else {
        bail!("one task: {tasks:?}");
    };
    ensure!(task.node_id == "fix_account" && &task.instance_id == fix_instance);

    // The same file again (or the bank reporting twice) changes nothing.
    let again = ledger
        .record_results(&results, "result-20260306.csv", &ctx.engine, now)
        .await?;
    ensure!(
        again.repeated.len() == 2 && again.fix_tasks.is_empty(),
        "{again:?}"
    );
    let contradiction = [PaymentResult {
        reference: "dibao-1:dibao:2026-03".into(),
        outcome: ResultOutcome::Failed,
        reason: Some("迟到的相反回盘".into()),
    }];
    let late = ledger
        .record_results(&contradiction, "late.csv", &ctx.engine, now)
        .await?;
    ensure!(late.contradicting == vec!["dibao-1:dibao:2026-03".to_owned()]);
    let paid = ledger
        .instruction("dibao-1:dibao:2026-03")
        .await?
        .context("paid instruction")?;
    ensure!(paid.status == InstructionStatus::Paid);
    let tasks = ctx
        .store
        .tasks_for(
            &staff.roles,
            std::slice::from_ref(&staff.unit),
            &staff.user,
            50,
        )
        .await?;
    ensure!(tasks.len() == 1);

    // The staff fix the account: the re-issue is a new reference linked to the failed one,
    // and the benefit's later months go to the new account.
    let data = BTreeMap::from([
        ("account".to_owned(), Value::Str("6222000055556666".into())),
        ("note".to_owned(), Value::Str("已核实新卡".into())),
    ]);
    let report = ctx.engine.complete(&task.id, &staff, data).await?;
    let [payment] = report.outbox.as_slice() else {
        bail!("one effect: {:?}", report.outbox);
    };
    let Applied::Scheduled { references } = ledger.apply_outbox(payment, now).await? else {
        bail!("a re-issue");
    };
    let reissue = ledger
        .instruction(&references[0])
        .await?
        .context("re-issue")?;
    ensure!(reissue.kind == InstructionKind::Reissue);
    ensure!(reissue.reissue_of.as_deref() == Some("dibao-22:dibao:2026-03"));
    ensure!(reissue.amount == dec!(1305.00) && reissue.unit == UNIT);
    ensure!(reissue.payee.account.as_deref() == Some("6222000055556666"));
    ledger
        .run_month(month("2026-04"), run_at("2026-04"))
        .await?;
    let april = ledger
        .instruction("dibao-22:dibao:2026-04")
        .await?
        .context("april")?;
    ensure!(april.payee.account.as_deref() == Some("6222000055556666"));
    Ok(())
}

async fn crash_between_file_write_and_acknowledgement_duplicates_nothing(ctx: Ctx) -> Result<()> {
    let ledger = ctx.ledger();
    let now = ctx.now();
    for case in ["dibao-1", "dibao-22"] {
        ledger
            .apply_effect(
                &monthly(&format!("{case}-e21"), case, "705.00", "2026-03-01", "张三"),
                now,
            )
            .await?;
    }
    ledger.run_month(month("2026-03"), now).await?;
    let config = BankFileConfig::default();

    // The export gets as far as a complete file on disk, then the process dies before the
    // acknowledgement (the injected failure: the acknowledging step never runs).
    let (batch, _) = ledger.prepare_batch(now).await?;
    let batch = batch.context("a batch")?;
    let written = write_bank_file(&ctx.dir, &batch.batch_id, &batch.instructions, &config)?;
    let before = std::fs::read(&written)?;
    drop(ledger);

    // After the restart the month is run again and the export retried.
    let ledger = ctx.restarted().await?;
    let rerun = ledger.run_month(month("2026-03"), now).await?;
    ensure!(rerun.created == 0, "{rerun:?}");
    let export = ledger
        .export_bank_file(&ctx.dir, &config, &ctx.engine, now)
        .await?;
    let [file] = export.files.as_slice() else {
        bail!("only the interrupted file: {export:?}");
    };
    ensure!(file.resumed && file.batch_id == batch.batch_id && file.path == written);
    ensure!(
        std::fs::read(&written)? == before,
        "the same file, byte for byte"
    );
    ensure!(std::fs::read_dir(&ctx.dir)?.count() == 1, "no second file");

    let instructions = ledger.instructions(Some(month("2026-03")), None).await?;
    ensure!(instructions.len() == 2);
    ensure!(
        instructions
            .iter()
            .all(|i| i.status == InstructionStatus::Sent
                && i.batch_id.as_deref() == Some(batch.batch_id.as_str()))
    );
    // And nothing is left to send.
    let again = ledger
        .export_bank_file(&ctx.dir, &config, &ctx.engine, now)
        .await?;
    ensure!(again.files.is_empty(), "{again:?}");
    Ok(())
}

async fn report_totals_equal_the_sum_of_instructions(ctx: Ctx) -> Result<()> {
    let ledger = ctx.ledger();
    let now = ctx.now();
    let other_unit = "双鸭山市/尖山区/富安街道";
    let mut effects = vec![
        monthly("dibao-1-e21", "dibao-1", "705.00", "2026-03-01", "张三"),
        monthly("dibao-22-e21", "dibao-22", "1305.10", "2026-03-01", "李四"),
        monthly("dibao-333-e21", "dibao-333", "0.01", "2026-02-01", "王五"),
    ];
    effects[2]["unit"] = json!(other_unit);
    effects.push(
        json!({"type": "payment", "id": "tekun-1-e30", "instance": "tekun-1", "unit": UNIT,
        "amount": "1890.00", "purpose": "tekun", "schedule": "monthly", "from": "2026-03-01",
        "payee": "孙七", "account": "6222000077778888"}),
    );
    effects.push(
        json!({"type": "payment", "id": "temporary_aid-1-e9", "instance": "temporary_aid-1",
        "unit": other_unit, "amount": "1000.00", "purpose": "temporary_aid", "installments": 3,
        "payee": "赵六", "account": "6222000033334444"}),
    );
    for effect in &effects {
        ledger.apply_effect(effect, now).await?;
    }
    ledger.run_month(month("2026-03"), now).await?;
    ledger
        .export_bank_file(&ctx.dir, &BankFileConfig::default(), &ctx.engine, now)
        .await?;
    ledger
        .record_results(
            &[PaymentResult {
                reference: "dibao-22:dibao:2026-03".into(),
                outcome: ResultOutcome::Failed,
                reason: Some("户名不符".into()),
            }],
            "result.csv",
            &ctx.engine,
            now,
        )
        .await?;

    let report = ledger.month_report(month("2026-03")).await?;
    let instructions = ledger.instructions(Some(month("2026-03")), None).await?;
    let sum: Decimal = instructions.iter().map(|i| i.amount).sum();
    ensure!(report.total == sum, "{} != {sum}", report.total);
    ensure!(report.count == instructions.len() as u64);
    ensure!(
        report.total == dec!(705.00) + dec!(1305.10) + dec!(0.01) + dec!(1890.00) + dec!(333.33)
    );
    for line in &report.lines {
        let of_line: Decimal = instructions
            .iter()
            .filter(|i| i.program == line.program && i.unit == line.unit)
            .map(|i| i.amount)
            .sum();
        ensure!(line.total == of_line, "{line:?}");
        ensure!(line.total == line.paid + line.failed + line.outstanding);
    }
    let keys: Vec<(&str, &str)> = report
        .lines
        .iter()
        .map(|l| (l.program.as_str(), l.unit.as_str()))
        .collect();
    ensure!(
        keys == vec![
            ("dibao", UNIT),
            ("dibao", other_unit),
            ("tekun", UNIT),
            ("temporary_aid", other_unit)
        ],
        "{keys:?}"
    );
    let dibao_here = &report.lines[0];
    ensure!(dibao_here.failed == dec!(1305.10) && dibao_here.outstanding == dec!(705.00));
    Ok(())
}

/// What the fake gateway saw: (idempotency key, body).
type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A local gateway that records every request, answers 503 to the first request of each
/// key, refuses (422) references containing `dibao-22`, and 200 otherwise.
async fn fake_gateway() -> Result<(String, Seen)> {
    use axum::http::{HeaderMap, StatusCode};
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let app = axum::Router::new().route(
        "/payments",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = recorded.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                let first = !seen.iter().any(|(k, _)| k == &key);
                seen.push((key.clone(), body));
                if first {
                    (StatusCode::SERVICE_UNAVAILABLE, "busy".to_owned())
                } else if key.contains("dibao-22") {
                    (StatusCode::UNPROCESSABLE_ENTITY, "账户不存在".to_owned())
                } else {
                    (StatusCode::OK, "{}".to_owned())
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}/payments"), seen))
}

async fn gateway_sends_with_idempotency_keys_and_retries_safely(ctx: Ctx) -> Result<()> {
    let ledger = ctx.ledger();
    let now = ctx.now();
    for (case, amount) in [("dibao-1", "705.00"), ("dibao-22", "1305.00")] {
        ledger
            .apply_effect(
                &monthly(&format!("{case}-e21"), case, amount, "2026-03-01", "张三"),
                now,
            )
            .await?;
    }
    ledger.run_month(month("2026-03"), now).await?;
    let (url, seen) = fake_gateway().await?;
    let mut config = GatewayConfig::new(&url);
    config.retry_delay_ms = 0;
    let gateway = HttpGateway::new(config)?;

    let summary = ledger.send_via_gateway(&gateway, &ctx.engine, now).await?;
    ensure!(
        summary.sent == vec!["dibao-1:dibao:2026-03".to_owned()],
        "{summary:?}"
    );
    ensure!(summary.rejected == vec!["dibao-22:dibao:2026-03".to_owned()]);
    {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
        // Each retried once after the 503, always with the same key.
        ensure!(
            keys == vec![
                "dibao-1:dibao:2026-03",
                "dibao-1:dibao:2026-03",
                "dibao-22:dibao:2026-03",
                "dibao-22:dibao:2026-03",
            ],
            "{keys:?}"
        );
        ensure!(seen[0].1["amount"] == json!("705.00"));
        ensure!(seen[0].1["reference"] == json!("dibao-1:dibao:2026-03"));
    }
    let sent = ledger
        .instruction("dibao-1:dibao:2026-03")
        .await?
        .context("sent")?;
    ensure!(sent.status == InstructionStatus::Sent && sent.channel.as_deref() == Some("gateway"));
    let refused = ledger
        .instruction("dibao-22:dibao:2026-03")
        .await?
        .context("refused")?;
    ensure!(refused.status == InstructionStatus::Failed);
    ensure!(
        refused
            .failure_reason
            .as_deref()
            .is_some_and(|r| r.contains("账户不存在")),
        "{refused:?}"
    );
    // The refusal opened a fix task like a bank file failure does.
    let tasks = ctx
        .store
        .tasks_for(
            &["township_staff".to_owned()],
            &[UNIT.to_owned()],
            "zx_staff1",
            50,
        )
        .await?;
    ensure!(tasks.len() == 1 && tasks[0].node_id == "fix_account");
    // Nothing is sent twice by the next round.
    let next = ledger.send_via_gateway(&gateway, &ctx.engine, now).await?;
    ensure!(next.sent.is_empty() && next.rejected.is_empty(), "{next:?}");
    Ok(())
}
