//! Payments: the benefit ledger in the engine's database, monthly payment runs, staged
//! installments and advances, bank batch files, the HTTP payment gateway, reconciliation
//! of the bank's results and the monthly report.
//!
//! The flow: the outbox dispatcher hands each `payment` / `payment_stop` effect to
//! [`Ledger::apply_effect`] (idempotent per effect id). A monthly benefit becomes a
//! benefit with append-only entries; one-off and staged payments become scheduled
//! instructions. [`Ledger::run_month`] creates one instruction per active benefit and
//! month (unique, so a rerun creates nothing). [`Ledger::export_bank_file`] writes the due
//! instructions to a bank file atomically and marks them sent; [`Ledger::send_via_gateway`]
//! sends them one by one instead. [`Ledger::record_results`] reads the bank's verdicts:
//! a failure opens a `payment_fix` task for the case's township staff. A due payment without
//! a bank account is not held back silently: export and gateway rounds record it as failed
//! and open the same task ([`Ledger::fix_missing_accounts`]).
//!
//! Every reference sent out is an idempotency key: `{benefit}:{YYYY-MM}` for a monthly
//! payment, the effect id (`:k` for a staged installment) for a one-off.

mod bank_file;
mod batch;
mod db;
mod effect;
mod gateway;
mod ledger;
mod model;
mod reserve;
mod reserve_draw;
mod results;
mod schedule;
mod standard_changes;

use std::path::PathBuf;

pub use bank_file::{BankColumn, BankFileConfig, ColumnSpec, write_bank_file};
pub use batch::{BatchOutcome, BatchProgress, BatchRequest};
pub use effect::{
    ADVANCE_PURPOSE, EffectError, EffectProblem, LedgerEffect, PaymentOrder, Schedule, StopOrder,
};
pub use gateway::{GatewayConfig, GatewayError, GatewayOutcome, HttpGateway};
pub use ledger::{
    Applied, BatchFile, ExportSummary, GatewaySummary, Instruction, InstructionKind,
    InstructionStatus, Ledger, MonthReport, NO_ACCOUNT_REASON, PreparedBatch, ReportLine,
    RunProgress, RunSummary, SeedBenefit,
};
pub use model::{
    AmountProblem, BadMonth, BenefitEntry, EntryKind, MonthlyDue, Payee, YearMonth, due_in_month,
    mask_id_number, split_installments, to_fen,
};
pub use reserve::{
    DrawOutcome, READ_ROLES, REPLENISH_ROLES, ReserveBalance, ReserveEntry, ReserveError,
    ReserveProblem, amount_fen, from_fen, may_read, may_replenish,
};
pub use reserve_draw::{
    RESERVE_REPLY_FIELD, RESERVE_SHORT, ReservePayment, known_unit, reserve_ceiling,
};
pub use results::{
    FIX_PROCESS, PaymentResult, ReconcileSummary, ResultOutcome, ResultProblem, parse_result_file,
    read_result_file,
};
pub use schedule::{BEIJING, PaymentsConfig, RunSchedule};
pub use standard_changes::{StandardChange, StandardChangeReport, changes_of};

/// Errors of the payments API. A bank's "failed" verdict is a value, not an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    #[error(transparent)]
    Effect(#[from] EffectError),
    /// The effect names an instance the store does not have (and no `unit`).
    #[error("effect {effect_id:?}: instance {instance:?} not found, so its unit is unknown")]
    UnknownInstance { effect_id: String, instance: String },
    /// Lost a race with another node writing the same rows; nothing was kept: retry.
    #[error("conflict with a concurrent ledger write; retry")]
    Conflict(#[source] sqlx::Error),
    #[error("payments database error")]
    Database(#[source] sqlx::Error),
    #[error(transparent)]
    Store(#[from] jiuzhu_engine::store::StoreError),
    /// A stored value the ledger wrote cannot be read back (edited by hand?).
    #[error("stored {what} {value:?} is corrupt")]
    Corrupt { what: &'static str, value: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{path}:{line}: {problem}")]
    ResultFile {
        path: PathBuf,
        line: u64,
        problem: ResultProblem,
    },
    #[error("invalid payment run schedule {expression:?}")]
    Schedule {
        expression: String,
        #[source]
        source: cron::error::Error,
    },
    /// The message names the key and position, never the refused value.
    #[error("invalid payments configuration {path}")]
    Config {
        path: PathBuf,
        #[source]
        source: jiuzhu_rules::yaml::SourceError,
    },
    #[error("utc_offset_hours {0} is outside -12..=14")]
    UtcOffset(i32),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// Opening the `payment_fix` task through the engine failed.
    /// A batch request that cannot be carried out as written: malformed, or an `each`
    /// expression failing for a recipient.
    #[error("batch {run_key:?}: {problem}")]
    Batch { run_key: String, problem: String },
    /// Loading a batch's case, or reporting to it, failed in the engine.
    #[error("batch {run_key:?}: the engine refused")]
    BatchEngine {
        run_key: String,
        #[source]
        source: jiuzhu_engine::runtime::EngineError,
    },
    /// A payment run for a month after the current one.
    #[error("the payment run for {month} is not yet due: the current month is {current}")]
    MonthNotDue {
        month: YearMonth,
        current: YearMonth,
    },
    /// The month was closed: no run and no bank result changes it any more.
    #[error("payments month {month} is closed: no run or result changes it")]
    MonthClosed { month: YearMonth },
    /// Closing a month whose run was interrupted: it must be run to its end first.
    #[error("the payment run for {month} is unfinished: run it to its end before closing")]
    RunUnfinished { month: YearMonth },
    /// Answering a case about its draw on the township reserve failed in the engine.
    #[error("payment {effect_id:?} from the reserve: answering the case failed: {error}")]
    Reserve {
        effect_id: String,
        error: String,
        retryable: bool,
    },
    #[error("opening a payment_fix task for {reference:?}")]
    OpenFix {
        reference: String,
        #[source]
        source: jiuzhu_engine::runtime::EngineError,
    },
}

impl PaymentError {
    /// The stable code of a refusal the caller can act on; `None` for failures of the
    /// database, the disk or the engine.
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            PaymentError::MonthNotDue { .. } => "month_not_due",
            PaymentError::MonthClosed { .. } => "month_closed",
            PaymentError::RunUnfinished { .. } => "run_unfinished",
            PaymentError::Conflict(_) => "conflict",
            _ => return None,
        })
    }

    /// True when the caller should simply try again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, PaymentError::Conflict(_))
            || matches!(self, PaymentError::Store(e) if e.is_conflict())
    }
}

impl From<sqlx::Error> for PaymentError {
    fn from(error: sqlx::Error) -> PaymentError {
        use sqlx::error::ErrorKind;
        let conflict = error.as_database_error().is_some_and(|db| {
            matches!(db.kind(), ErrorKind::UniqueViolation)
                // PostgreSQL: serialization_failure, deadlock_detected
                || matches!(db.code().as_deref(), Some("40001" | "40P01"))
        });
        if conflict {
            PaymentError::Conflict(error)
        } else {
            PaymentError::Database(error)
        }
    }
}
