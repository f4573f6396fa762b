//! The ledger's SQL, written once and compiled for SQLite and PostgreSQL (`$n` placeholders,
//! `ON CONFLICT DO NOTHING` and `RETURNING` mean the same on both), one transaction per
//! operation.

use std::str::FromStr;

use chrono::NaiveDate;
use jiuzhu_engine::store::migrations::{self, ComponentMigrations};
use rust_decimal::Decimal;

use super::PaymentError;
use super::effect::{LedgerEffect, PaymentOrder, Schedule};
use super::ledger::{
    Applied, Instruction, InstructionKind, InstructionStatus, PreparedBatch, SeedBenefit,
    ops_outcome::Recorded,
};
use super::model::{BenefitEntry, EntryKind, Payee, YearMonth, split_installments};
use super::results::{PaymentResult, ResultOutcome};

/// The ledger's tables: the adapters' own migrations, versions 1000–1999 of the database's
/// one migration table (see `jiuzhu_engine::store::migrations`).
pub(super) const MIGRATIONS: ComponentMigrations = ComponentMigrations {
    component: "adapters",
    versions: migrations::ADAPTERS_VERSIONS,
    sqlite: &[
        (
            1001,
            "payments",
            include_str!("../../migrations/sqlite/1001_payments.sql"),
        ),
        (
            1002,
            "batches",
            include_str!("../../migrations/sqlite/1002_batches.sql"),
        ),
        (
            1003,
            "reserve_fund",
            include_str!("../../migrations/sqlite/1003_reserve_fund.sql"),
        ),
        (
            1004,
            "monthly_run",
            include_str!("../../migrations/sqlite/1004_monthly_run.sql"),
        ),
        (
            1005,
            "batch_once",
            include_str!("../../migrations/sqlite/1005_batch_once.sql"),
        ),
        (
            1006,
            "benefit_terms",
            include_str!("../../migrations/sqlite/1006_benefit_terms.sql"),
        ),
    ],
    postgres: &[
        (
            1001,
            "payments",
            include_str!("../../migrations/postgres/1001_payments.sql"),
        ),
        (
            1002,
            "batches",
            include_str!("../../migrations/postgres/1002_batches.sql"),
        ),
        (
            1003,
            "reserve_fund",
            include_str!("../../migrations/postgres/1003_reserve_fund.sql"),
        ),
        (
            1004,
            "monthly_run",
            include_str!("../../migrations/postgres/1004_monthly_run.sql"),
        ),
        (
            1005,
            "batch_once",
            include_str!("../../migrations/postgres/1005_batch_once.sql"),
        ),
        (
            1006,
            "benefit_terms",
            include_str!("../../migrations/postgres/1006_benefit_terms.sql"),
        ),
    ],
};

/// Rows per multi-row INSERT: 19 parameters a row stays far below both databases' limits.
const ROWS_PER_INSERT: usize = 200;

#[macro_use]
mod run_sql;
use run_sql::{RUN_PAGE_INSERT_POSTGRES, RUN_PAGE_INSERT_SQLITE, TERMS_UPSERT_ONE, seed_terms};

/// How a monthly run starts.
pub(super) enum RunStart {
    /// The month was run and no benefit entry was recorded since: nothing to do.
    Current { existing: u64 },
    /// A pass over the benefits after `after` (empty: from the first), `resumed` when an
    /// interrupted run is carried on. `existing`: the month's instructions made before.
    Pass {
        after: String,
        existing: u64,
        resumed: bool,
    },
}

const INSTRUCTION_COLUMNS: &str = "id, kind, benefit_id, month, case_id, program, unit, \
     payee_name, id_number, account, amount, due_on, installment, installments, effect_id, \
     reissue_of, status, channel, batch_id, failure_reason";

pub(super) const ENTRY_COLUMNS: &str = "e.seq, e.kind, e.effective_month, e.monthly_amount, e.until_month, \
     e.review_on, e.payee_name, e.id_number, e.account";

fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

fn parse_date(text: &str) -> Result<NaiveDate, PaymentError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| PaymentError::Corrupt {
        what: "date",
        value: text.to_owned(),
    })
}

fn parse_month(text: &str) -> Result<YearMonth, PaymentError> {
    text.parse().map_err(|_| PaymentError::Corrupt {
        what: "month",
        value: text.to_owned(),
    })
}

pub(super) fn parse_amount(text: &str) -> Result<Decimal, PaymentError> {
    Decimal::from_str(text).map_err(|_| PaymentError::Corrupt {
        what: "amount",
        value: text.to_owned(),
    })
}

fn parse_count(value: Option<i64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

/// The benefit of a case under a program: `{case}:{program}`.
pub(super) fn benefit_id(case: &str, program: &str) -> String {
    format!("{case}:{program}")
}

/// An instruction about to be inserted.
struct NewInstruction {
    reference: String,
    kind: InstructionKind,
    benefit_id: Option<String>,
    month: YearMonth,
    case_id: String,
    program: String,
    unit: String,
    payee: Payee,
    amount: Decimal,
    due_on: NaiveDate,
    installment: Option<u32>,
    installments: Option<u32>,
    effect_id: Option<String>,
    reissue_of: Option<String>,
}

/// The one-off instructions a payment order makes: one, or `installments` staged ones a
/// month apart (amount split to the fen, the last taking the remainder).
fn one_off_instructions(order: &PaymentOrder, unit: &str, today: NaiveDate) -> Vec<NewInstruction> {
    let first_due = order.at.or(order.from).unwrap_or(today);
    let kind = if order.is_advance() {
        InstructionKind::Advance
    } else if order.reissue_of.is_some() {
        InstructionKind::Reissue
    } else if order.installment.is_some() || order.installments.is_some() {
        InstructionKind::Installment
    } else {
        InstructionKind::Once
    };
    let make =
        |reference: String, amount: Decimal, due_on: NaiveDate, k: Option<u32>| NewInstruction {
            reference,
            kind,
            benefit_id: None,
            month: YearMonth::of(due_on),
            case_id: order.case.clone(),
            program: order.purpose.clone(),
            unit: unit.to_owned(),
            payee: order.payee.clone(),
            amount,
            due_on,
            installment: k,
            installments: order.installments,
            effect_id: Some(order.id.clone()),
            reissue_of: order.reissue_of.clone(),
        };
    match (order.installment, order.installments) {
        // Staged by the ledger: one approval, N scheduled payments.
        (None, Some(count)) if count > 1 => split_installments(order.amount, count)
            .into_iter()
            .zip(1..)
            .map(|(amount, k)| {
                let due_on = first_due
                    .checked_add_months(chrono::Months::new(k - 1))
                    .unwrap_or(first_due);
                make(format!("{}:{k}", order.id), amount, due_on, Some(k))
            })
            .collect(),
        (k, _) => vec![make(order.id.clone(), order.amount, first_due, k)],
    }
}

#[macro_use]
mod bank;

macro_rules! backend_ops {
    ($module:ident, $db:ty, $begin:literal, $run_page_insert:expr) => {
        pub(super) mod $module {
            use super::*;
            use sqlx::{QueryBuilder, Row as _};

            type Db = $db;
            /// How a writing transaction starts (see the invocations below).
            const BEGIN: &str = $begin;
            /// A page of the monthly run (see [`run_page_insert!`]).
            const RUN_PAGE_INSERT: &str = $run_page_insert;
            type Pool = sqlx::Pool<Db>;
            type Tx = sqlx::Transaction<'static, Db>;
            type DbRow = <Db as sqlx::Database>::Row;

            fn instruction_row(row: &DbRow) -> Result<Instruction, PaymentError> {
                let kind: String = row.try_get(1)?;
                let status: String = row.try_get(16)?;
                let month: String = row.try_get(3)?;
                let amount: String = row.try_get(10)?;
                let due_on: String = row.try_get(11)?;
                Ok(Instruction {
                    reference: row.try_get(0)?,
                    kind: InstructionKind::parse(&kind).ok_or(PaymentError::Corrupt {
                        what: "instruction kind",
                        value: kind.clone(),
                    })?,
                    benefit_id: row.try_get(2)?,
                    month: parse_month(&month)?,
                    case_id: row.try_get(4)?,
                    program: row.try_get(5)?,
                    unit: row.try_get(6)?,
                    payee: Payee {
                        name: row.try_get(7)?,
                        id_number: row.try_get(8)?,
                        account: row.try_get(9)?,
                    },
                    amount: parse_amount(&amount)?,
                    due_on: parse_date(&due_on)?,
                    installment: parse_count(row.try_get(12)?),
                    installments: parse_count(row.try_get(13)?),
                    effect_id: row.try_get(14)?,
                    reissue_of: row.try_get(15)?,
                    status: InstructionStatus::parse(&status).ok_or(PaymentError::Corrupt {
                        what: "instruction status",
                        value: status.clone(),
                    })?,
                    channel: row.try_get(17)?,
                    batch_id: row.try_get(18)?,
                    failure_reason: row.try_get(19)?,
                })
            }

            /// `row` starts with the columns of `ENTRY_COLUMNS` at `at`.
            pub(crate) fn entry_row(row: &DbRow, at: usize) -> Result<BenefitEntry, PaymentError> {
                let kind: String = row.try_get(at + 1)?;
                let month: String = row.try_get(at + 2)?;
                let amount: Option<String> = row.try_get(at + 3)?;
                let until: Option<String> = row.try_get(at + 4)?;
                let review: Option<String> = row.try_get(at + 5)?;
                Ok(BenefitEntry {
                    seq: row.try_get(at)?,
                    kind: EntryKind::parse(&kind).ok_or(PaymentError::Corrupt {
                        what: "entry kind",
                        value: kind.clone(),
                    })?,
                    effective_month: parse_month(&month)?,
                    monthly_amount: amount.as_deref().map(parse_amount).transpose()?,
                    until_month: until.as_deref().map(parse_month).transpose()?,
                    review_on: review.as_deref().map(parse_date).transpose()?,
                    payee_name: row.try_get(at + 6)?,
                    id_number: row.try_get(at + 7)?,
                    account: row.try_get(at + 8)?,
                })
            }

            async fn insert_instructions(
                tx: &mut Tx,
                rows: &[NewInstruction],
                at: i64,
            ) -> Result<u64, PaymentError> {
                let mut inserted = 0;
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let mut query = QueryBuilder::<Db>::new(
                        "INSERT INTO payment_instructions (id, kind, benefit_id, month, case_id, \
                         program, unit, payee_name, id_number, account, amount, due_on, \
                         installment, installments, effect_id, reissue_of, status, created_at, \
                         updated_at) ",
                    );
                    query.push_values(chunk, |mut b, row| {
                        b.push_bind(row.reference.clone())
                            .push_bind(row.kind.as_str())
                            .push_bind(row.benefit_id.clone())
                            .push_bind(row.month.to_string())
                            .push_bind(row.case_id.clone())
                            .push_bind(row.program.clone())
                            .push_bind(row.unit.clone())
                            .push_bind(row.payee.name.clone())
                            .push_bind(row.payee.id_number.clone())
                            .push_bind(row.payee.account.clone())
                            .push_bind(row.amount.to_string())
                            .push_bind(date_text(row.due_on))
                            .push_bind(row.installment.map(i64::from))
                            .push_bind(row.installments.map(i64::from))
                            .push_bind(row.effect_id.clone())
                            .push_bind(row.reissue_of.clone())
                            .push_bind(InstructionStatus::Scheduled.as_str())
                            .push_bind(at)
                            .push_bind(at);
                    });
                    // A monthly run meets its earlier self here: (benefit, month) is unique.
                    query.push(" ON CONFLICT DO NOTHING");
                    inserted += query.build().execute(&mut **tx).await?.rows_affected();
                }
                Ok(inserted)
            }

            async fn next_seq(tx: &mut Tx, benefit: &str) -> Result<i64, PaymentError> {
                let row = sqlx::query(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM benefit_entries WHERE benefit_id = $1",
                )
                .bind(benefit)
                .fetch_one(&mut **tx)
                .await?;
                Ok(row.try_get(0)?)
            }

            #[allow(clippy::too_many_arguments)]
            async fn insert_entry(
                tx: &mut Tx,
                id: &str,
                benefit: &str,
                kind: EntryKind,
                month: YearMonth,
                order: Option<&PaymentOrder>,
                payee: Option<&Payee>,
                effect_id: &str,
                at: i64,
            ) -> Result<(), PaymentError> {
                let seq = next_seq(tx, benefit).await?;
                sqlx::query(
                    "INSERT INTO benefit_entries (id, benefit_id, seq, kind, effective_month, \
                     monthly_amount, until_month, review_on, payee_name, id_number, account, \
                     effect_id, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(id)
                .bind(benefit)
                .bind(seq)
                .bind(kind.as_str())
                .bind(month.to_string())
                .bind(order.map(|o| o.amount.to_string()))
                .bind(order.and_then(|o| o.until).map(|d| YearMonth::of(d).to_string()))
                .bind(order.and_then(|o| o.review_on).map(date_text))
                .bind(payee.map(|p| p.name.clone()))
                .bind(payee.and_then(|p| p.id_number.clone()))
                .bind(payee.and_then(|p| p.account.clone()))
                .bind(effect_id)
                .bind(at)
                .execute(&mut **tx)
                .await?;
                // The benefit's current terms, in the entry's transaction.
                sqlx::query(TERMS_UPSERT_ONE)
                    .bind(benefit)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            pub(crate) async fn apply_effect(
                pool: &Pool,
                effect: &LedgerEffect,
                unit: &str,
                payload: &str,
                today: NaiveDate,
                at: i64,
            ) -> Result<Applied, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let fresh = sqlx::query(
                    "INSERT INTO payment_effects (effect_id, instance_id, kind, payload, applied_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(effect.id())
                .bind(effect.instance())
                .bind(effect.kind())
                .bind(payload)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if fresh == 0 {
                    tx.rollback().await?;
                    return Ok(Applied::Duplicate);
                }
                let applied = match effect {
                    LedgerEffect::Payment(order) if order.schedule == Schedule::Monthly => {
                        apply_monthly(&mut tx, order, unit, at).await?
                    }
                    LedgerEffect::Payment(order) => {
                        let rows = one_off_instructions(order, unit, today);
                        insert_instructions(&mut tx, &rows, at).await?;
                        if let (Some(failed), Some(_)) = (&order.reissue_of, &order.payee.account) {
                            carry_new_account(&mut tx, order, failed, today, at).await?;
                        }
                        Applied::Scheduled {
                            references: rows.into_iter().map(|r| r.reference).collect(),
                        }
                    }
                    LedgerEffect::Stop(stop) => {
                        let benefit = benefit_id(&stop.case, &stop.purpose);
                        let exists = sqlx::query("SELECT 1 FROM benefits WHERE id = $1")
                            .bind(&benefit)
                            .fetch_optional(&mut *tx)
                            .await?
                            .is_some();
                        // A stop "from" a day stops that day's month; without a day, next month.
                        let stop_month = stop
                            .from
                            .map(YearMonth::of)
                            .unwrap_or_else(|| YearMonth::of(today).plus(1));
                        if exists {
                            insert_entry(
                                &mut tx,
                                &stop.id,
                                &benefit,
                                EntryKind::Stopped,
                                stop_month,
                                None,
                                None,
                                &stop.id,
                                at,
                            )
                            .await?;
                        }
                        let from_day = stop.from.map(date_text).unwrap_or_default();
                        let cancelled = sqlx::query(
                            "UPDATE payment_instructions SET status = 'cancelled', updated_at = $1 \
                             WHERE case_id = $2 AND program = $3 AND status = 'scheduled' \
                             AND batch_id IS NULL \
                             AND ((benefit_id IS NOT NULL AND month >= $4) \
                                  OR (benefit_id IS NULL AND due_on >= $5)) \
                             RETURNING id",
                        )
                        .bind(at)
                        .bind(&stop.case)
                        .bind(&stop.purpose)
                        .bind(stop_month.to_string())
                        .bind(from_day)
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(|row| row.try_get::<String, _>(0))
                        .collect::<Result<Vec<_>, _>>()?;
                        Applied::Stopped {
                            benefit: exists.then_some(benefit),
                            cancelled,
                        }
                    }
                };
                tx.commit().await?;
                Ok(applied)
            }

            async fn apply_monthly(
                tx: &mut Tx,
                order: &PaymentOrder,
                unit: &str,
                at: i64,
            ) -> Result<Applied, PaymentError> {
                let benefit = benefit_id(&order.case, &order.purpose);
                let created = sqlx::query(
                    "INSERT INTO benefits (id, case_id, program, unit, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&benefit)
                .bind(&order.case)
                .bind(&order.purpose)
                .bind(unit)
                .bind(at)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1;
                let from = order.from.map(YearMonth::of).ok_or(PaymentError::Corrupt {
                    what: "monthly payment without from",
                    value: order.id.clone(),
                })?;
                let kind = if created {
                    EntryKind::Created
                } else {
                    EntryKind::AmountChanged
                };
                insert_entry(
                    tx,
                    &order.id,
                    &benefit,
                    kind,
                    from,
                    Some(order),
                    Some(&order.payee),
                    &order.id,
                    at,
                )
                .await?;
                Ok(if created {
                    Applied::BenefitCreated { benefit }
                } else {
                    Applied::BenefitChanged { benefit }
                })
            }

            /// A re-issue with a corrected account: later months of the same benefit go there too.
            async fn carry_new_account(
                tx: &mut Tx,
                order: &PaymentOrder,
                failed: &str,
                today: NaiveDate,
                at: i64,
            ) -> Result<(), PaymentError> {
                let benefit: Option<Option<String>> =
                    sqlx::query("SELECT benefit_id FROM payment_instructions WHERE id = $1")
                        .bind(failed)
                        .fetch_optional(&mut **tx)
                        .await?
                        .map(|row| row.try_get(0))
                        .transpose()?;
                if let Some(Some(benefit)) = benefit {
                    insert_entry(
                        tx,
                        &format!("{}:payee", order.id),
                        &benefit,
                        EntryKind::PayeeChanged,
                        YearMonth::of(today),
                        None,
                        Some(&order.payee),
                        &order.id,
                        at,
                    )
                    .await?;
                }
                Ok(())
            }

            pub(crate) async fn entries(
                pool: &Pool,
                benefit: &str,
            ) -> Result<Vec<BenefitEntry>, PaymentError> {
                let rows = sqlx::query(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM benefit_entries e WHERE e.benefit_id = $1 ORDER BY e.seq"
                ))
                .bind(benefit)
                .fetch_all(pool)
                .await?;
                rows.iter().map(|row| entry_row(row, 0)).collect()
            }

            /// Refuses a closed month, inside the writing transaction that would change it.
            async fn refuse_closed(tx: &mut Tx, month: YearMonth) -> Result<(), PaymentError> {
                let closed = sqlx::query("SELECT 1 FROM payment_months_closed WHERE month = $1")
                    .bind(month.to_string())
                    .fetch_optional(&mut **tx)
                    .await?
                    .is_some();
                if closed {
                    return Err(PaymentError::MonthClosed { month });
                }
                Ok(())
            }

            /// Begins a pass of `month`'s run, resumes an interrupted one, or finds the
            /// month run with no benefit entry recorded since (nothing to do).
            pub(crate) async fn begin_run(
                pool: &Pool,
                month: YearMonth,
                at: i64,
            ) -> Result<RunStart, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                refuse_closed(&mut tx, month).await?;
                let entries: i64 = sqlx::query("SELECT COUNT(*) FROM benefit_entries")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                let row = sqlx::query(
                    "SELECT status, after_benefit, entries_seen, instructions FROM payment_runs \
                     WHERE month = $1",
                )
                .bind(month.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                let start = match row {
                    Some(row) => {
                        let status: String = row.try_get(0)?;
                        let after: Option<String> = row.try_get(1)?;
                        let seen: Option<i64> = row.try_get(2)?;
                        let instructions: i64 = row.try_get(3)?;
                        let instructions = u64::try_from(instructions).unwrap_or(0);
                        if status == "running" {
                            RunStart::Pass {
                                after: after.unwrap_or_default(),
                                existing: instructions,
                                resumed: true,
                            }
                        } else if seen == Some(entries) {
                            tx.rollback().await?;
                            return Ok(RunStart::Current {
                                existing: instructions,
                            });
                        } else {
                            sqlx::query(
                                "UPDATE payment_runs SET status = 'running', after_benefit = NULL, \
                                 entries_seen = $2, run_at = $3, finished_at = NULL WHERE month = $1",
                            )
                            .bind(month.to_string())
                            .bind(entries)
                            .bind(at)
                            .execute(&mut *tx)
                            .await?;
                            RunStart::Pass {
                                after: String::new(),
                                existing: instructions,
                                resumed: false,
                            }
                        }
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO payment_runs (month, run_at, instructions, status, \
                             after_benefit, entries_seen) VALUES ($1, $2, 0, 'running', NULL, $3)",
                        )
                        .bind(month.to_string())
                        .bind(at)
                        .bind(entries)
                        .execute(&mut *tx)
                        .await?;
                        RunStart::Pass {
                            after: String::new(),
                            existing: 0,
                            resumed: false,
                        }
                    }
                };
                tx.commit().await?;
                Ok(start)
            }

            /// One page of a run, in one transaction: the next `page` benefits after
            /// `after` in key order, an instruction for each one due in `month` that has
            /// none yet (one INSERT … SELECT, [`run_page_insert!`]), and the run's high-water mark moved to the
            /// page's last benefit. `None` when no benefit is left: the run is then done.
            pub(crate) async fn run_page(
                pool: &Pool,
                month: YearMonth,
                after: &str,
                page: i64,
                at: i64,
            ) -> Result<Option<(String, u64)>, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                refuse_closed(&mut tx, month).await?;
                let last: Option<String> = sqlx::query(
                    "SELECT MAX(id) FROM (SELECT id FROM benefits WHERE id > $1 ORDER BY id LIMIT $2) p",
                )
                .bind(after)
                .bind(page)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                let Some(last) = last else {
                    sqlx::query(
                        "UPDATE payment_runs SET status = 'done', after_benefit = NULL, \
                         finished_at = $2 WHERE month = $1 AND status = 'running'",
                    )
                    .bind(month.to_string())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(None);
                };
                // The page's instructions computed and inserted by the database in one
                // statement: no row of the page travels to the ledger and back.
                let created = sqlx::query(RUN_PAGE_INSERT)
                    .bind(after)
                    .bind(&last)
                    .bind(month.to_string())
                    .bind(date_text(month.first_day()))
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(
                    "UPDATE payment_runs SET after_benefit = $2, instructions = instructions + $3 \
                     WHERE month = $1",
                )
                .bind(month.to_string())
                .bind(&last)
                .bind(i64::try_from(created).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some((last, created)))
            }

            /// Whether `month`'s run went through to its end.
            /// Bulk path for benches and crash drivers: benefits with their first entry
            /// (and a stop) in multi-row inserts, in one transaction; a benefit there
            /// already is left alone. Returns the benefits inserted.
            pub(crate) async fn seed_benefits(
                pool: &Pool,
                benefits: &[SeedBenefit],
                at: i64,
            ) -> Result<u64, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let mut inserted = 0;
                for chunk in benefits.chunks(1_000) {
                    let mut query = QueryBuilder::<Db>::new(
                        "INSERT INTO benefits (id, case_id, program, unit, created_at) ",
                    );
                    query.push_values(chunk, |mut b, seed| {
                        b.push_bind(benefit_id(&seed.case_id, &seed.program))
                            .push_bind(seed.case_id.as_str())
                            .push_bind(seed.program.as_str())
                            .push_bind(seed.unit.as_str())
                            .push_bind(at);
                    });
                    query.push(" ON CONFLICT DO NOTHING");
                    inserted += query.build().execute(&mut *tx).await?.rows_affected();
                    let mut entries = Vec::new();
                    for seed in chunk {
                        let benefit = benefit_id(&seed.case_id, &seed.program);
                        entries.push((benefit.clone(), 1_i64, EntryKind::Created, seed.from, Some(seed), format!("{benefit}:seed")));
                        if let Some(stop) = seed.stopped_from {
                            entries.push((benefit.clone(), 2, EntryKind::Stopped, stop, None, format!("{benefit}:seed-stop")));
                        }
                    }
                    let mut query = QueryBuilder::<Db>::new(
                        "INSERT INTO benefit_entries (id, benefit_id, seq, kind, effective_month, \
                         monthly_amount, payee_name, id_number, account, effect_id, recorded_at) ",
                    );
                    query.push_values(&entries, |mut b, (benefit, seq, kind, month, seed, id)| {
                        b.push_bind(id.as_str())
                            .push_bind(benefit.as_str())
                            .push_bind(*seq)
                            .push_bind(kind.as_str())
                            .push_bind(month.to_string())
                            .push_bind(seed.map(|s| s.amount.to_string()))
                            .push_bind(seed.map(|s| s.payee.name.clone()))
                            .push_bind(seed.and_then(|s| s.payee.id_number.clone()))
                            .push_bind(seed.and_then(|s| s.payee.account.clone()))
                            .push_bind(id.as_str())
                            .push_bind(at);
                    });
                    query.push(" ON CONFLICT DO NOTHING");
                    query.build().execute(&mut *tx).await?;
                    // The chunk's benefits' current terms, in the same transaction (a
                    // benefit there already keeps its entries, and so its terms).
                    let mut query = QueryBuilder::<Db>::new(
                        "INSERT INTO benefit_terms (benefit_id, case_id, program, unit, \
                         from_month, amount, until_month, payee_name, id_number, account) ",
                    );
                    query.push_values(chunk, |mut b, seed| {
                        let (latest, amount) = seed_terms(seed);
                        b.push_bind(benefit_id(&seed.case_id, &seed.program))
                            .push_bind(seed.case_id.as_str())
                            .push_bind(seed.program.as_str())
                            .push_bind(seed.unit.as_str())
                            .push_bind(latest.to_string())
                            .push_bind(amount)
                            .push_bind(None::<String>)
                            .push_bind(seed.payee.name.as_str())
                            .push_bind(seed.payee.id_number.as_deref())
                            .push_bind(seed.payee.account.as_deref());
                    });
                    query.push(" ON CONFLICT DO NOTHING");
                    query.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(inserted)
            }

            pub(crate) async fn has_run(pool: &Pool, month: YearMonth) -> Result<bool, PaymentError> {
                Ok(sqlx::query("SELECT 1 FROM payment_runs WHERE month = $1 AND status = 'done'")
                    .bind(month.to_string())
                    .fetch_optional(pool)
                    .await?
                    .is_some())
            }

            /// Closes `month`: refused while its run is unfinished. False when it was closed.
            pub(crate) async fn close_month(
                pool: &Pool,
                month: YearMonth,
                by: &str,
                at: i64,
            ) -> Result<bool, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let running = sqlx::query(
                    "SELECT 1 FROM payment_runs WHERE month = $1 AND status = 'running'",
                )
                .bind(month.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                if running {
                    tx.rollback().await?;
                    return Err(PaymentError::RunUnfinished { month });
                }
                let closed = sqlx::query(
                    "INSERT INTO payment_months_closed (month, closed_at, closed_by) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(month.to_string())
                .bind(at)
                .bind(by)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                tx.commit().await?;
                Ok(closed)
            }

            pub(crate) async fn is_closed(pool: &Pool, month: YearMonth) -> Result<bool, PaymentError> {
                Ok(sqlx::query("SELECT 1 FROM payment_months_closed WHERE month = $1")
                    .bind(month.to_string())
                    .fetch_optional(pool)
                    .await?
                    .is_some())
            }

            /// Totals of the month per program, unit and status, summed in SQL as whole
            /// fen (integers, never floats). Every stored amount has exactly two decimal
            /// places (`to_fen`); a row without them is reported as corrupt.
            pub(crate) async fn month_totals(
                pool: &Pool,
                month: YearMonth,
            ) -> Result<Vec<(String, String, String, i64, i64)>, PaymentError> {
                let rows = sqlx::query(
                    "SELECT program, unit, status, COUNT(*), \
                     CAST(SUM(CAST(REPLACE(amount, '.', '') AS BIGINT)) AS BIGINT), \
                     SUM(CASE WHEN substr(amount, length(amount) - 2, 1) = '.' THEN 0 ELSE 1 END) \
                     FROM payment_instructions WHERE month = $1 AND status <> 'cancelled' \
                     GROUP BY program, unit, status ORDER BY program, unit, status",
                )
                .bind(month.to_string())
                .fetch_all(pool)
                .await?;
                let mut totals = Vec::with_capacity(rows.len());
                for row in &rows {
                    let malformed: i64 = row.try_get(5)?;
                    let program: String = row.try_get(0)?;
                    if malformed != 0 {
                        return Err(PaymentError::Corrupt {
                            what: "amount (not in whole fen) of the month's instructions",
                            value: format!("{month} {program}"),
                        });
                    }
                    totals.push((
                        program,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                    ));
                }
                Ok(totals)
            }

            pub(crate) async fn instructions(
                pool: &Pool,
                month: Option<YearMonth>,
                case_id: Option<&str>,
            ) -> Result<Vec<Instruction>, PaymentError> {
                let rows = sqlx::query(&format!(
                    "SELECT {INSTRUCTION_COLUMNS} FROM payment_instructions \
                     WHERE ($1 IS NULL OR month = $1) AND ($2 IS NULL OR case_id = $2) ORDER BY id"
                ))
                .bind(month.map(|m| m.to_string()))
                .bind(case_id)
                .fetch_all(pool)
                .await?;
                rows.iter().map(instruction_row).collect()
            }

            pub(crate) async fn instruction(
                pool: &Pool,
                reference: &str,
            ) -> Result<Option<Instruction>, PaymentError> {
                sqlx::query(&format!(
                    "SELECT {INSTRUCTION_COLUMNS} FROM payment_instructions WHERE id = $1"
                ))
                .bind(reference)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(instruction_row)
                .transpose()
            }

            bank_ops!();
        }
    };
}

// SQLite: IMMEDIATE takes the write lock up front. A deferred transaction that reads and
// then writes fails at once with SQLITE_BUSY (no busy wait) when another connection to
// the file, e.g. a second node, wrote meanwhile.
backend_ops!(
    sqlite_ops,
    sqlx::Sqlite,
    "BEGIN IMMEDIATE",
    RUN_PAGE_INSERT_SQLITE
);
backend_ops!(
    postgres_ops,
    sqlx::Postgres,
    "BEGIN",
    RUN_PAGE_INSERT_POSTGRES
);
