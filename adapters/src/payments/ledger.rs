//! The ledger API: applying payment effects, the monthly run, bank file export with crash
//! recovery, gateway sending, reconciliation and the monthly report.
//!
//! SQL lives in `db` (written once, compiled for SQLite and PostgreSQL); this module holds
//! the types and the steps that span a database transaction and the outside world.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::effects::Outward;
use jiuzhu_engine::runtime::Engine;
use std::sync::{Arc, OnceLock};

use jiuzhu_engine::store::{ComponentDb, DbPool, OutboxRow, Store};
use jiuzhu_rules::Value;
use rust_decimal::Decimal;
use serde::Serialize;

use super::PaymentError;
use super::bank_file::{AtomicBankFile, BankFileConfig};
use super::db::{RunStart, postgres_ops, sqlite_ops};
use super::effect::LedgerEffect;
use super::gateway::{GatewayOutcome, HttpGateway};
use super::model::{BenefitEntry, Payee, YearMonth};
use super::results::{FIX_PROCESS, PaymentResult, ReconcileSummary, ResultOutcome};
use super::schedule::{BEIJING, RunSchedule};

/// The failure reason recorded for a due payment that has no bank account.
pub const NO_ACCOUNT_REASON: &str = "未登记收款账户 (no bank account)";

/// The result source of a payment failed by the ledger itself for want of an account.
const NO_ACCOUNT_SOURCE: &str = "ledger:no_account";

/// Where an instruction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstructionKind {
    /// A month of a benefit, created by the monthly run.
    Monthly,
    /// A one-off payment.
    Once,
    /// One of a staged series (一次审批、分阶段救助).
    Installment,
    /// 先行救助: paid before approval, to be covered by it.
    Advance,
    /// A failed payment paid again after its account was fixed.
    Reissue,
}

impl InstructionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InstructionKind::Monthly => "monthly",
            InstructionKind::Once => "once",
            InstructionKind::Installment => "installment",
            InstructionKind::Advance => "advance",
            InstructionKind::Reissue => "reissue",
        }
    }

    pub fn parse(text: &str) -> Option<InstructionKind> {
        Some(match text {
            "monthly" => InstructionKind::Monthly,
            "once" => InstructionKind::Once,
            "installment" => InstructionKind::Installment,
            "advance" => InstructionKind::Advance,
            "reissue" => InstructionKind::Reissue,
            _ => return None,
        })
    }
}

/// Where an instruction is on its way to the payee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstructionStatus {
    /// Waiting for its due date and a bank file or gateway call.
    Scheduled,
    /// Handed to the bank; waiting for its result.
    Sent,
    Paid,
    Failed,
    /// Stopped before it was sent.
    Cancelled,
}

impl InstructionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstructionStatus::Scheduled => "scheduled",
            InstructionStatus::Sent => "sent",
            InstructionStatus::Paid => "paid",
            InstructionStatus::Failed => "failed",
            InstructionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<InstructionStatus> {
        Some(match text {
            "scheduled" => InstructionStatus::Scheduled,
            "sent" => InstructionStatus::Sent,
            "paid" => InstructionStatus::Paid,
            "failed" => InstructionStatus::Failed,
            "cancelled" => InstructionStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One payment to make.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instruction {
    /// The idempotency key sent to the bank: `{benefit}:{YYYY-MM}` or the effect id.
    pub reference: String,
    pub kind: InstructionKind,
    pub benefit_id: Option<String>,
    /// The month it is paid for (monthly) or due in (one-off).
    pub month: YearMonth,
    pub case_id: String,
    pub program: String,
    pub unit: String,
    pub payee: Payee,
    pub amount: Decimal,
    pub due_on: NaiveDate,
    pub installment: Option<u32>,
    pub installments: Option<u32>,
    pub effect_id: Option<String>,
    pub reissue_of: Option<String>,
    pub status: InstructionStatus,
    /// `bank_file` or `gateway` once sent.
    pub channel: Option<String>,
    pub batch_id: Option<String>,
    pub failure_reason: Option<String>,
}

/// What applying an effect did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The effect id was applied before: nothing changed.
    Duplicate,
    BenefitCreated {
        benefit: String,
    },
    /// A new entry on an existing benefit (amount change from its month).
    BenefitChanged {
        benefit: String,
    },
    /// One-off instructions scheduled, by reference.
    Scheduled {
        references: Vec<String>,
    },
    /// A stop entry (when the case has that benefit) and the unsent instructions cancelled.
    Stopped {
        benefit: Option<String>,
        cancelled: Vec<String>,
    },
}

/// What a monthly run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub month: YearMonth,
    /// Instructions created now.
    pub created: u64,
    /// The month's instructions that existed already (a rerun, or the pages an
    /// interrupted run committed before it was resumed).
    pub existing: u64,
    /// An interrupted run was carried on from its high-water mark.
    pub resumed: bool,
}

/// A monthly benefit written straight into the ledger by [`Ledger::seed_benefits`] (benches
/// and crash drivers; the procedures' benefits come from `payment` effects).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedBenefit {
    pub case_id: String,
    pub program: String,
    pub unit: String,
    /// Monthly amount in whole fen.
    pub amount: Decimal,
    pub from: YearMonth,
    pub payee: Payee,
    /// A stop entry from this month.
    pub stopped_from: Option<YearMonth>,
}

/// A monthly run's progress, after each committed page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunProgress {
    pub month: YearMonth,
    /// Pages committed by this call.
    pub pages: u64,
    /// Instructions created by this call so far.
    pub created: u64,
}

/// Instructions reserved for one bank file, in reference order.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedBatch {
    pub batch_id: String,
    pub instructions: Vec<Instruction>,
}

/// A bank file written and acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchFile {
    pub batch_id: String,
    pub path: PathBuf,
    pub count: usize,
    pub total: Decimal,
    /// Rewritten from a batch whose acknowledgement was lost (a crash after the write).
    pub resumed: bool,
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExportSummary {
    pub files: Vec<BatchFile>,
    /// Due instructions without a bank account: recorded as failed, each with its
    /// `payment_fix` case (in `fix_tasks`), never written to a file.
    pub without_account: Vec<String>,
    /// `(failed reference, payment_fix instance)` opened by this export.
    pub fix_tasks: Vec<(String, String)>,
}

/// What a gateway round did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GatewaySummary {
    pub sent: Vec<String>,
    /// Refused by the gateway for good; recorded as failed (a fix task is opened).
    pub rejected: Vec<String>,
    /// Not reached after retries; still scheduled, sent again next round with the same key.
    pub unavailable: Vec<String>,
    /// Due instructions without a bank account: recorded as failed, each with its
    /// `payment_fix` case (in `fix_tasks`), never sent.
    pub without_account: Vec<String>,
    /// `(failed reference, payment_fix instance)` opened by this round (refusals and
    /// payments without an account).
    pub fix_tasks: Vec<(String, String)>,
}

/// Totals of one program in one unit for a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportLine {
    pub program: String,
    pub unit: String,
    pub count: u64,
    /// Sum of all instructions not cancelled.
    pub total: Decimal,
    pub paid: Decimal,
    pub failed: Decimal,
    /// Scheduled or sent, no result yet.
    pub outstanding: Decimal,
}

/// `jiuzhu payments report --month`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthReport {
    pub month: YearMonth,
    pub lines: Vec<ReportLine>,
    pub count: u64,
    pub total: Decimal,
}

/// The payments ledger on the engine's database, in tables of its own (the adapters'
/// migrations, `adapters/migrations/`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
    /// The ledger's handle on the database, made (its migrations run) on first use.
    db: Arc<OnceLock<ComponentDb>>,
    offset: FixedOffset,
    /// Benefits per page of a monthly run.
    run_page: usize,
}

/// Benefits per page (one transaction) of a monthly run.
const DEFAULT_RUN_PAGE: usize = 10_000;

/// Runs one `db` operation on whichever database the ledger is on.
macro_rules! on_db {
    ($self:ident, |$pool:ident, $ops:ident| $call:expr) => {
        match $self.db().await?.pool() {
            DbPool::Sqlite($pool) => {
                use sqlite_ops as $ops;
                $call.await
            }
            DbPool::Postgres($pool) => {
                use postgres_ops as $ops;
                $call.await
            }
        }
    };
}

impl Ledger {
    /// The ledger on `store`'s database; its tables are migrated on its first database
    /// operation (use [`Ledger::open`] to migrate at once and see a failure there).
    /// Dates are local to UTC+08:00 unless [`Ledger::with_utc_offset`] says otherwise.
    pub fn new(store: &Store) -> Ledger {
        Ledger {
            store: store.clone(),
            db: Arc::new(OnceLock::new()),
            offset: BEIJING,
            run_page: DEFAULT_RUN_PAGE,
        }
    }

    /// [`Ledger::new`], with the ledger's migrations run now.
    pub async fn open(store: &Store) -> Result<Ledger, PaymentError> {
        let ledger = Ledger::new(store);
        ledger.db().await?;
        Ok(ledger)
    }

    /// The ledger's handle on the database; the first call runs its migrations (two
    /// first calls at once both run them, which the migrator makes harmless).
    pub(super) async fn db(&self) -> Result<&ComponentDb, PaymentError> {
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let db = self.store.component_db(&super::db::MIGRATIONS).await?;
        Ok(self.db.get_or_init(|| db))
    }

    pub fn with_utc_offset(mut self, offset: FixedOffset) -> Ledger {
        self.offset = offset;
        self
    }

    pub(super) fn offset(&self) -> FixedOffset {
        self.offset
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.offset).date_naive()
    }

    /// Applies a `payment` or `payment_stop` effect (outbox JSON) once per effect id.
    /// The effect's `instance` may be absent when given by `default_instance`.
    pub async fn apply_effect(
        &self,
        effect: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Applied, PaymentError> {
        let order = LedgerEffect::parse(effect, None)?;
        self.apply(order, effect, now).await
    }

    /// [`Ledger::apply_effect`] for an outbox row, read by the engine's one parse of
    /// outbox rows (its instance id completes the effect).
    pub async fn apply_outbox(
        &self,
        row: &OutboxRow,
        now: DateTime<Utc>,
    ) -> Result<Applied, PaymentError> {
        let order = LedgerEffect::from_outbox(row)?;
        self.apply(order, &row.payload, now).await
    }

    /// [`Ledger::apply_outbox`] for a row the dispatcher has read already.
    pub async fn apply_typed(
        &self,
        row: &OutboxRow,
        effect: &Outward,
        now: DateTime<Utc>,
    ) -> Result<Applied, PaymentError> {
        let order = LedgerEffect::from_typed(effect)?;
        self.apply(order, &row.payload, now).await
    }

    async fn apply(
        &self,
        effect: LedgerEffect,
        json: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Applied, PaymentError> {
        let unit = match &effect {
            LedgerEffect::Payment(p) => p.unit.clone(),
            LedgerEffect::Stop(s) => s.unit.clone(),
        };
        let unit = match unit {
            Some(unit) => unit,
            None => self.unit_of(&effect).await?,
        };
        let payload = json.to_string();
        let today = self.today(now);
        let at = now.timestamp_millis();
        on_db!(self, |pool, ops| ops::apply_effect(
            pool, &effect, &unit, &payload, today, at
        ))
    }

    async fn unit_of(&self, effect: &LedgerEffect) -> Result<String, PaymentError> {
        Ok(self
            .store
            .load_instance(effect.instance())
            .await?
            .ok_or_else(|| PaymentError::UnknownInstance {
                effect_id: effect.id().to_owned(),
                instance: effect.instance().to_owned(),
            })?
            .unit)
    }

    /// A benefit's entries in the order recorded.
    pub async fn entries(&self, benefit_id: &str) -> Result<Vec<BenefitEntry>, PaymentError> {
        on_db!(self, |pool, ops| ops::entries(pool, benefit_id))
    }

    /// Creates this month's instruction for every benefit active in `month`. Unique per
    /// (benefit, month): running a month again creates nothing new. See
    /// [`Ledger::run_month_observed`].
    pub async fn run_month(
        &self,
        month: YearMonth,
        now: DateTime<Utc>,
    ) -> Result<RunSummary, PaymentError> {
        self.run_month_observed(month, now, &mut |_| {}).await
    }

    /// The monthly run, streamed: the benefits are read in key order a page at a time
    /// ([`Ledger::with_run_page`]), each page's instructions written in multi-row inserts
    /// in one transaction together with the run's high-water mark, so memory does not grow
    /// with the number of benefits and a run interrupted midway resumes after its last
    /// committed page. `observe` hears of each committed page. A rerun of a month run to
    /// its end with no benefit entry recorded since does nothing (one count); otherwise it
    /// goes through the benefits again and writes only the instructions missing.
    ///
    /// Refused, with nothing written: a month after the current one (local time of `now`),
    /// and a closed month ([`Ledger::close_month`]).
    pub async fn run_month_observed(
        &self,
        month: YearMonth,
        now: DateTime<Utc>,
        observe: &mut (dyn FnMut(&RunProgress) + Send),
    ) -> Result<RunSummary, PaymentError> {
        let current = YearMonth::of(self.today(now));
        if month > current {
            return Err(PaymentError::MonthNotDue { month, current });
        }
        let at = now.timestamp_millis();
        let start = on_db!(self, |pool, ops| ops::begin_run(pool, month, at))?;
        let (mut after, existing, resumed) = match start {
            RunStart::Current { existing } => {
                return Ok(RunSummary {
                    month,
                    created: 0,
                    existing,
                    resumed: false,
                });
            }
            RunStart::Pass {
                after,
                existing,
                resumed,
            } => (after, existing, resumed),
        };
        let page = i64::try_from(self.run_page).unwrap_or(i64::MAX);
        let mut progress = RunProgress {
            month,
            pages: 0,
            created: 0,
        };
        loop {
            let from = after.as_str();
            let done = on_db!(self, |pool, ops| ops::run_page(pool, month, from, page, at))?;
            let Some((last, created)) = done else { break };
            after = last;
            progress.pages += 1;
            progress.created += created;
            observe(&progress);
        }
        Ok(RunSummary {
            month,
            created: progress.created,
            existing,
            resumed,
        })
    }

    /// Benefits per page (and transaction) of a monthly run; 10,000 unless set.
    pub fn with_run_page(mut self, benefits: usize) -> Ledger {
        self.run_page = benefits.max(1);
        self
    }

    /// Closes `month` for good (`by` names who did): a closed month refuses runs and the
    /// bank's results for its payments. Refused for a month not yet begun and for a month
    /// whose run was interrupted. False when it was closed already.
    pub async fn close_month(
        &self,
        month: YearMonth,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, PaymentError> {
        let current = YearMonth::of(self.today(now));
        if month > current {
            return Err(PaymentError::MonthNotDue { month, current });
        }
        let at = now.timestamp_millis();
        on_db!(self, |pool, ops| ops::close_month(pool, month, by, at))
    }

    /// Bulk path for benches and crash drivers: writes `benefits` (each with its first
    /// entry, and its stop) in multi-row inserts in one transaction, leaving any already
    /// there alone; returns how many were new. Amounts must be whole fen.
    pub async fn seed_benefits(
        &self,
        benefits: &[SeedBenefit],
        now: DateTime<Utc>,
    ) -> Result<u64, PaymentError> {
        let at = now.timestamp_millis();
        on_db!(self, |pool, ops| ops::seed_benefits(pool, benefits, at))
    }

    /// Whether `month` was closed.
    pub async fn is_closed(&self, month: YearMonth) -> Result<bool, PaymentError> {
        on_db!(self, |pool, ops| ops::is_closed(pool, month))
    }

    /// The cron-triggered run: when `schedule`'s occurrence this month has passed and the
    /// month has not been run to its end (nor closed), runs it; an interrupted run resumes.
    pub async fn run_due(
        &self,
        schedule: &RunSchedule,
        now: DateTime<Utc>,
    ) -> Result<Option<RunSummary>, PaymentError> {
        let Some(month) = schedule.due_month(now, self.offset) else {
            return Ok(None);
        };
        if on_db!(self, |pool, ops| ops::has_run(pool, month))? || self.is_closed(month).await? {
            return Ok(None);
        }
        self.run_month(month, now).await.map(Some)
    }

    /// Instructions of a month and/or a case, by reference.
    pub async fn instructions(
        &self,
        month: Option<YearMonth>,
        case_id: Option<&str>,
    ) -> Result<Vec<Instruction>, PaymentError> {
        on_db!(self, |pool, ops| ops::instructions(pool, month, case_id))
    }

    pub async fn instruction(&self, reference: &str) -> Result<Option<Instruction>, PaymentError> {
        on_db!(self, |pool, ops| ops::instruction(pool, reference))
    }

    /// 先行救助 advances paid or on their way for a case: what its approval must cover.
    pub async fn advances(&self, case_id: &str) -> Result<Decimal, PaymentError> {
        Ok(self
            .instructions(None, Some(case_id))
            .await?
            .iter()
            .filter(|i| {
                i.kind == InstructionKind::Advance
                    && !matches!(
                        i.status,
                        InstructionStatus::Cancelled | InstructionStatus::Failed
                    )
            })
            .map(|i| i.amount)
            .sum())
    }

    /// Reserves every due, unsent instruction with an account for a new bank file (step 1
    /// of an export). The reservation is durable before any file exists, so a crash later
    /// leads to the same file being rewritten, never to new instructions.
    pub async fn prepare_batch(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Option<PreparedBatch>, Vec<String>), PaymentError> {
        let today = self.today(now);
        let at = now.timestamp_millis();
        let without_account = on_db!(self, |pool, ops| ops::due_without_account(pool, today))?;
        let Some(batch_id) = on_db!(self, |pool, ops| ops::reserve_batch(pool, today, at))? else {
            return Ok((None, without_account));
        };
        let batch = self.batch(&batch_id).await?;
        Ok((batch, without_account))
    }

    /// Batches reserved but not acknowledged (their file may or may not exist).
    pub async fn pending_batches(&self) -> Result<Vec<PreparedBatch>, PaymentError> {
        on_db!(self, |pool, ops| ops::pending_batches(pool))
    }

    /// A bank file's batch by id (`YYYYMMDD-NNN`), sent or still being written: its
    /// instructions render to the same bytes as the file written ([`BankFileConfig::render`]).
    pub async fn batch(&self, batch_id: &str) -> Result<Option<PreparedBatch>, PaymentError> {
        on_db!(self, |pool, ops| ops::batch(pool, batch_id))
    }

    /// Step 3 of an export, after the file is safely written: marks the batch and its
    /// instructions sent in one transaction.
    pub async fn acknowledge_batch(
        &self,
        batch_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PaymentError> {
        let at = now.timestamp_millis();
        on_db!(self, |pool, ops| ops::acknowledge_batch(
            pool, batch_id, None, at
        ))
    }

    /// Writes bank files: first rewrites any batch whose acknowledgement was lost, then
    /// records each due payment without a bank account as failed, reserves the other due
    /// instructions for a new file, writes it atomically to `dir` and acknowledges it, and
    /// last opens a `payment_fix` case (through `engine`) for each failure without one.
    /// The fix cases come after the file, so a failure to open them (reported as an
    /// error; the next export tries again) never holds back the payments that can be made.
    ///
    /// The reservation is one statement; the file is streamed from the database in
    /// reference order a page at a time, so memory does not grow with the batch, and a
    /// rewrite after a crash gives the same bytes.
    pub async fn export_bank_file(
        &self,
        dir: &Path,
        config: &BankFileConfig,
        engine: &Engine,
        now: DateTime<Utc>,
    ) -> Result<ExportSummary, PaymentError> {
        let mut summary = ExportSummary {
            without_account: self.fail_without_account(now).await?,
            ..ExportSummary::default()
        };
        for batch_id in on_db!(self, |pool, ops| ops::pending_batch_ids(pool))? {
            summary.files.push(
                self.write_and_acknowledge(&batch_id, dir, config, now, true)
                    .await?,
            );
        }
        let today = self.today(now);
        let at = now.timestamp_millis();
        if let Some(batch_id) = on_db!(self, |pool, ops| ops::reserve_batch(pool, today, at))? {
            summary.files.push(
                self.write_and_acknowledge(&batch_id, dir, config, now, false)
                    .await?,
            );
        }
        summary.fix_tasks = self.open_fix_tasks(engine).await?;
        Ok(summary)
    }

    /// Streams a reserved batch to its file, then acknowledges it with the file's count
    /// and total.
    async fn write_and_acknowledge(
        &self,
        batch_id: &str,
        dir: &Path,
        config: &BankFileConfig,
        now: DateTime<Utc>,
        resumed: bool,
    ) -> Result<BatchFile, PaymentError> {
        let mut file = AtomicBankFile::create(dir, batch_id, config)?;
        let page = i64::try_from(self.run_page).unwrap_or(i64::MAX);
        let mut after = String::new();
        loop {
            let from = after.as_str();
            let instructions = on_db!(self, |pool, ops| ops::batch_page(
                pool, batch_id, from, page
            ))?;
            let Some(last) = instructions.last() else {
                break;
            };
            after = last.reference.clone();
            for instruction in &instructions {
                file.write(instruction)?;
            }
        }
        let (path, count, total) = file.commit()?;
        let at = now.timestamp_millis();
        on_db!(self, |pool, ops| ops::acknowledge_batch(
            pool,
            batch_id,
            Some((count, total)),
            at
        ))?;
        Ok(BatchFile {
            batch_id: batch_id.to_owned(),
            path,
            count: usize::try_from(count).unwrap_or(usize::MAX),
            total,
            resumed,
        })
    }

    /// Sends every due, unsent instruction through the payment gateway, one request each
    /// with its reference as `Idempotency-Key` (a resend after a crash is safe). A refusal
    /// is recorded as a failed result and opens a fix task through `engine`.
    pub async fn send_via_gateway(
        &self,
        gateway: &HttpGateway,
        engine: &Engine,
        now: DateTime<Utc>,
    ) -> Result<GatewaySummary, PaymentError> {
        let today = self.today(now);
        // Their fix cases are opened after the round, with the refusals'.
        let mut summary = GatewaySummary {
            without_account: self.fail_without_account(now).await?,
            ..GatewaySummary::default()
        };
        let due = on_db!(self, |pool, ops| ops::due_unbatched(pool, today))?;
        let mut refusals = Vec::new();
        for instruction in due {
            if instruction.payee.account.is_none() {
                summary.without_account.push(instruction.reference);
                continue;
            }
            match gateway.send(&instruction).await {
                Ok(GatewayOutcome::Accepted { .. }) => {
                    let reference = instruction.reference.as_str();
                    let at = now.timestamp_millis();
                    on_db!(self, |pool, ops| ops::mark_sent(
                        pool, reference, "gateway", at
                    ))?;
                    summary.sent.push(instruction.reference);
                }
                Ok(GatewayOutcome::Rejected { status, reason }) => {
                    let reason = format!("gateway refused ({status}): {reason}");
                    refusals.push(PaymentResult {
                        reference: instruction.reference.clone(),
                        outcome: ResultOutcome::Failed,
                        reason: Some(reason),
                    });
                    summary.rejected.push(instruction.reference);
                }
                Err(_) => summary.unavailable.push(instruction.reference),
            }
        }
        if refusals.is_empty() {
            summary.fix_tasks = self.open_fix_tasks(engine).await?;
        } else {
            let recorded = self
                .record_results(&refusals, "gateway", engine, now)
                .await?;
            summary.fix_tasks = recorded.fix_tasks;
        }
        Ok(summary)
    }

    /// Records the bank's verdicts. The first report of a reference wins; a repeat changes
    /// nothing. Each failure opens a `payment_fix` task for the township staff of the
    /// case's unit (and a failure whose task was not opened before, e.g. after a crash,
    /// gets it now).
    pub async fn record_results(
        &self,
        results: &[PaymentResult],
        source: &str,
        engine: &Engine,
        now: DateTime<Utc>,
    ) -> Result<ReconcileSummary, PaymentError> {
        let mut summary = ReconcileSummary::default();
        let at = now.timestamp_millis();
        for result in results {
            let recorded = on_db!(self, |pool, ops| ops::record_result(
                pool, result, source, at
            ))?;
            match recorded {
                ops_outcome::Recorded::Unknown => summary.unknown.push(result.reference.clone()),
                ops_outcome::Recorded::Closed => summary.closed.push(result.reference.clone()),
                ops_outcome::Recorded::Repeat { same: true } => {
                    summary.repeated.push(result.reference.clone())
                }
                ops_outcome::Recorded::Repeat { same: false } => {
                    summary.contradicting.push(result.reference.clone())
                }
                ops_outcome::Recorded::New => match result.outcome {
                    ResultOutcome::Paid => summary.paid.push(result.reference.clone()),
                    ResultOutcome::Failed => summary.failed.push(result.reference.clone()),
                },
            }
        }
        // Every failure without its task, including ones left by an interrupted import.
        summary.fix_tasks = self.open_fix_tasks(engine).await?;
        Ok(summary)
    }

    /// A due payment without a bank account cannot be paid; rather than wait silently it
    /// is recorded as failed (reason [`NO_ACCOUNT_REASON`]) and opens a `payment_fix` task
    /// for the case's township staff, once per payment, exactly as a bank's refusal does.
    /// Completing the task pays the same amount to the corrected account (and, for a
    /// monthly benefit, the later months go there too). Returns the references failed now
    /// and every fix case opened (including ones an interrupted call left unopened).
    pub async fn fix_missing_accounts(
        &self,
        engine: &Engine,
        now: DateTime<Utc>,
    ) -> Result<(Vec<String>, Vec<(String, String)>), PaymentError> {
        let failed = self.fail_without_account(now).await?;
        let fix_tasks = self.open_fix_tasks(engine).await?;
        Ok((failed, fix_tasks))
    }

    /// Records every due, unsent payment without a bank account as failed (durably, once
    /// per payment); returns their references.
    async fn fail_without_account(&self, now: DateTime<Utc>) -> Result<Vec<String>, PaymentError> {
        let today = self.today(now);
        let at = now.timestamp_millis();
        on_db!(self, |pool, ops| ops::fail_without_account(
            pool,
            today,
            NO_ACCOUNT_REASON,
            NO_ACCOUNT_SOURCE,
            at
        ))
    }

    /// Opens a `payment_fix` case for every failure that has none yet.
    async fn open_fix_tasks(&self, engine: &Engine) -> Result<Vec<(String, String)>, PaymentError> {
        let mut opened = Vec::new();
        let open = on_db!(self, |pool, ops| ops::failures_without_fix(pool))?;
        for (instruction, reason) in open {
            let fix = self.open_fix(engine, &instruction, &reason).await?;
            let reference = instruction.reference.as_str();
            let fix_id = fix.as_str();
            on_db!(self, |pool, ops| ops::set_fix_instance(
                pool, reference, fix_id
            ))?;
            opened.push((instruction.reference, fix));
        }
        Ok(opened)
    }

    /// Starts `payment_fix` for a failed instruction, in the case's unit, as the system.
    async fn open_fix(
        &self,
        engine: &Engine,
        instruction: &Instruction,
        reason: &str,
    ) -> Result<String, PaymentError> {
        let actor = Actor {
            user: "system:payments".to_owned(),
            roles: vec!["admin".to_owned()],
            unit: instruction.unit.clone(),
        };
        let text = |s: &str| Value::Str(s.to_owned());
        let mut data = BTreeMap::from([
            ("failed_reference".to_owned(), text(&instruction.reference)),
            ("amount".to_owned(), Value::Decimal(instruction.amount)),
            ("purpose".to_owned(), text(&instruction.program)),
            ("payee".to_owned(), text(&instruction.payee.name)),
            ("case".to_owned(), text(&instruction.case_id)),
            ("failure_reason".to_owned(), text(reason)),
        ]);
        if let Some(id_number) = &instruction.payee.id_number {
            data.insert("id_number".to_owned(), text(id_number));
        }
        if let Some(account) = &instruction.payee.account {
            data.insert("old_account".to_owned(), text(account));
        }
        let report = engine
            .start(FIX_PROCESS, &actor, data)
            .await
            .map_err(|source| PaymentError::OpenFix {
                reference: instruction.reference.clone(),
                source,
            })?;
        Ok(report.instance.id)
    }

    /// Totals per program and unit of the month's instructions (cancelled ones excluded),
    /// aggregated in the database in whole fen: the report reads a few rows per program and
    /// unit, however many payments the month has.
    pub async fn month_report(&self, month: YearMonth) -> Result<MonthReport, PaymentError> {
        let totals = on_db!(self, |pool, ops| ops::month_totals(pool, month))?;
        let mut lines: Vec<ReportLine> = Vec::new();
        for (program, unit, status, count, fen) in totals {
            let amount = Decimal::new(fen, 2);
            let line = match lines.last_mut() {
                Some(line) if line.program == program && line.unit == unit => line,
                _ => {
                    lines.push(ReportLine {
                        program,
                        unit,
                        count: 0,
                        total: Decimal::ZERO,
                        paid: Decimal::ZERO,
                        failed: Decimal::ZERO,
                        outstanding: Decimal::ZERO,
                    });
                    let last = lines.len() - 1;
                    &mut lines[last]
                }
            };
            line.count += u64::try_from(count).unwrap_or(0);
            line.total += amount;
            match InstructionStatus::parse(&status) {
                Some(InstructionStatus::Paid) => line.paid += amount,
                Some(InstructionStatus::Failed) => line.failed += amount,
                Some(InstructionStatus::Scheduled | InstructionStatus::Sent) => {
                    line.outstanding += amount
                }
                Some(InstructionStatus::Cancelled) | None => {
                    return Err(PaymentError::Corrupt {
                        what: "instruction status",
                        value: status,
                    });
                }
            }
        }
        Ok(MonthReport {
            month,
            count: lines.iter().map(|l| l.count).sum(),
            total: lines.iter().map(|l| l.total).sum(),
            lines,
        })
    }
}

/// Outcomes shared by both databases' operations.
pub(super) mod ops_outcome {
    /// What recording one result did.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Recorded {
        New,
        /// Reported before; `same` when with the same verdict.
        Repeat {
            same: bool,
        },
        /// No such reference.
        Unknown,
        /// Its month is closed: nothing recorded.
        Closed,
    }
}
