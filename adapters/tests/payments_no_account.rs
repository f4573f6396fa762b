//! A due payment without a bank account, on SQLite and PostgreSQL alike: instead of being
//! held back silently it is recorded as failed and opens one `fix_account` task (process
//! `payment_fix`) in the township staff's queue, once per payment, however often the
//! ledger looks again; completing the task pays the same amount to the account entered,
//! and a monthly benefit's later months go there too.
//!
//! PostgreSQL comes from `JIUZHU_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a fresh schema that is dropped afterwards. When no server answers, the
//! PostgreSQL half fails and says how to start one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_adapters::payments::{
    Applied, BankFileConfig, InstructionKind, InstructionStatus, Ledger, NO_ACCOUNT_REASON,
    YearMonth,
};
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use rust_decimal_macros::dec;
use serde_json::json;

const UNIT: &str = "双鸭山市/尖山区/中心站街道";

#[derive(Clone)]
struct Ctx {
    store: Store,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    dir: std::path::PathBuf,
}

struct Teardown {
    database: TestDatabase,
    store: Store,
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

/// The org directory, calendars, policies and `payment_fix` only.
fn fix_project(dir: &Path) -> Result<Project> {
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

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "noacct").await;
    let store = Store::open(&database.url).await.expect("open store");
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
    a_payment_without_an_account_opens_one_fix_task_and_is_paid_to_the_account_entered,
);

fn staff() -> Actor {
    Actor {
        user: "zx_staff1".into(),
        roles: vec!["township_staff".into()],
        unit: UNIT.into(),
    }
}

async fn staff_tasks(ctx: &Ctx) -> Result<Vec<jiuzhu_engine::store::TaskRow>> {
    let staff = staff();
    Ok(ctx
        .store
        .tasks_for(
            &staff.roles,
            std::slice::from_ref(&staff.unit),
            &staff.user,
            50,
        )
        .await?)
}

async fn a_payment_without_an_account_opens_one_fix_task_and_is_paid_to_the_account_entered(
    ctx: Ctx,
) -> Result<()> {
    let ledger = Ledger::new(&ctx.store);
    let now = ctx.clock.now();
    // One benefit with an account, one without (a procedure that had no bank details).
    let with_account = json!({"type": "payment", "id": "dibao-1-e21", "instance": "dibao-1",
        "unit": UNIT, "amount": "705.00", "purpose": "dibao", "schedule": "monthly",
        "from": "2026-03-01", "payee": "张三", "account": "6222000011112222",
        "id_number": "230502198001011238"});
    let without = json!({"type": "payment", "id": "dibao-2-e21", "instance": "dibao-2",
        "unit": UNIT, "amount": "300.00", "purpose": "dibao", "schedule": "monthly",
        "from": "2026-03-01", "payee": "王五", "account": null,
        "id_number": "230502197001011233"});
    ledger.apply_effect(&with_account, now).await?;
    ledger.apply_effect(&without, now).await?;
    ledger.run_month(month("2026-03"), now).await?;
    ensure!(staff_tasks(&ctx).await?.is_empty());

    let export = ledger
        .export_bank_file(&ctx.dir, &BankFileConfig::default(), &ctx.engine, now)
        .await?;
    let missing = "dibao-2:dibao:2026-03";
    ensure!(
        export.without_account == vec![missing.to_owned()],
        "{export:?}"
    );
    let [(failed, fix_case)] = export.fix_tasks.as_slice() else {
        bail!("one fix case: {export:?}");
    };
    ensure!(failed == missing);
    // The paid one went to the bank; the other is not in the file.
    let [file] = export.files.as_slice() else {
        bail!("one file: {export:?}");
    };
    ensure!(file.count == 1 && file.total == dec!(705.00));
    let text = std::fs::read_to_string(&file.path)?;
    ensure!(!text.contains("dibao-2:"), "{text}");
    let instruction = ledger.instruction(missing).await?.context("instruction")?;
    ensure!(
        instruction.status == InstructionStatus::Failed,
        "{instruction:?}"
    );
    ensure!(instruction.failure_reason.as_deref() == Some(NO_ACCOUNT_REASON));

    // One task, in the queue of the case's township staff.
    let tasks = staff_tasks(&ctx).await?;
    let [task] = tasks.as_slice() else {
        bail!("one task: {tasks:?}");
    };
    ensure!(task.node_id == "fix_account" && &task.instance_id == fix_case);

    // Looking again (another export, a gateway round) opens nothing more.
    let again = ledger
        .export_bank_file(&ctx.dir, &BankFileConfig::default(), &ctx.engine, now)
        .await?;
    ensure!(
        again.without_account.is_empty() && again.fix_tasks.is_empty() && again.files.is_empty(),
        "{again:?}"
    );
    let (failed_now, opened_now) = ledger.fix_missing_accounts(&ctx.engine, now).await?;
    ensure!(failed_now.is_empty() && opened_now.is_empty());
    ensure!(staff_tasks(&ctx).await?.len() == 1);

    // The staff enter the account: one re-issue of the same amount to it.
    let data = BTreeMap::from([("account".to_owned(), Value::Str("6222000099990000".into()))]);
    let report = ctx.engine.complete(&task.id, &staff(), data).await?;
    let [payment] = report.outbox.as_slice() else {
        bail!("one effect: {:?}", report.outbox);
    };
    let Applied::Scheduled { references } = ledger.apply_outbox(payment, now).await? else {
        bail!("a re-issue");
    };
    let [reference] = references.as_slice() else {
        bail!("one instruction: {references:?}");
    };
    let reissue = ledger.instruction(reference).await?.context("re-issue")?;
    ensure!(reissue.kind == InstructionKind::Reissue);
    ensure!(reissue.reissue_of.as_deref() == Some(missing));
    ensure!(reissue.amount == dec!(300.00) && reissue.unit == UNIT && reissue.case_id == "dibao-2");
    ensure!(reissue.payee.account.as_deref() == Some("6222000099990000"));
    ensure!(reissue.payee.id_number.as_deref() == Some("230502197001011233"));
    ensure!(staff_tasks(&ctx).await?.is_empty());

    // It goes out with the next file; later months of the benefit use the new account.
    let paid = ledger
        .export_bank_file(&ctx.dir, &BankFileConfig::default(), &ctx.engine, now)
        .await?;
    ensure!(
        paid.without_account.is_empty() && paid.fix_tasks.is_empty(),
        "{paid:?}"
    );
    let [file] = paid.files.as_slice() else {
        bail!("one file: {paid:?}");
    };
    ensure!(file.count == 1 && file.total == dec!(300.00));
    ledger
        .run_month(month("2026-04"), run_at("2026-04"))
        .await?;
    let april = ledger
        .instruction("dibao-2:dibao:2026-04")
        .await?
        .context("april")?;
    ensure!(april.payee.account.as_deref() == Some("6222000099990000"));
    Ok(())
}
