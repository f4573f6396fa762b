//! The ledger's SQL, written once and compiled for SQLite and PostgreSQL (`$n` placeholders,
//! `ON CONFLICT DO NOTHING` and `RETURNING` mean the same on both), one transaction per
//! operation.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::NaiveDate;
use jiuzhu_engine::store::migrations::{self, ComponentMigrations};
use rust_decimal::Decimal;

use super::PaymentError;
use super::effect::{LedgerEffect, PaymentOrder, Schedule};
use super::ledger::{
    Applied, Instruction, InstructionKind, InstructionStatus, PreparedBatch, RunSummary,
    ops_outcome::Recorded,
};
use super::model::{BenefitEntry, EntryKind, Payee, YearMonth, due_in_month, split_installments};
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
    ],
};

/// Rows per multi-row INSERT: 19 parameters a row stays far below both databases' limits.
const ROWS_PER_INSERT: usize = 200;

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

macro_rules! backend_ops {
    ($module:ident, $db:ty, $begin:literal) => {
        pub(super) mod $module {
            use super::*;
            use sqlx::{QueryBuilder, Row as _};

            type Db = $db;
            /// How a writing transaction starts (see the invocations below).
            const BEGIN: &str = $begin;
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

            pub(crate) async fn run_month(
                pool: &Pool,
                month: YearMonth,
                at: i64,
            ) -> Result<RunSummary, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let rows = sqlx::query(&format!(
                    "SELECT b.id, b.case_id, b.program, b.unit, {ENTRY_COLUMNS} \
                     FROM benefits b JOIN benefit_entries e ON e.benefit_id = b.id \
                     WHERE e.effective_month <= $1 ORDER BY b.id, e.seq"
                ))
                .bind(month.to_string())
                .fetch_all(&mut *tx)
                .await?;
                let mut benefits: BTreeMap<String, (String, String, String, Vec<BenefitEntry>)> =
                    BTreeMap::new();
                for row in &rows {
                    let id: String = row.try_get(0)?;
                    let entry = entry_row(row, 4)?;
                    match benefits.get_mut(&id) {
                        Some(benefit) => benefit.3.push(entry),
                        None => {
                            let case: String = row.try_get(1)?;
                            let program: String = row.try_get(2)?;
                            let unit: String = row.try_get(3)?;
                            benefits.insert(id, (case, program, unit, vec![entry]));
                        }
                    }
                }
                let instructions: Vec<NewInstruction> = benefits
                    .into_iter()
                    .filter_map(|(id, (case_id, program, unit, entries))| {
                        let due = due_in_month(&entries, month)?;
                        Some(NewInstruction {
                            reference: format!("{id}:{month}"),
                            kind: InstructionKind::Monthly,
                            benefit_id: Some(id),
                            month,
                            case_id,
                            program,
                            unit,
                            payee: due.payee,
                            amount: due.amount,
                            due_on: month.first_day(),
                            installment: None,
                            installments: None,
                            effect_id: None,
                            reissue_of: None,
                        })
                    })
                    .collect();
                let created = insert_instructions(&mut tx, &instructions, at).await?;
                sqlx::query(
                    "INSERT INTO payment_runs (month, run_at, instructions) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(month.to_string())
                .bind(at)
                .bind(i64::try_from(instructions.len()).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(RunSummary {
                    month,
                    created,
                    existing: instructions.len() as u64 - created,
                })
            }

            pub(crate) async fn has_run(pool: &Pool, month: YearMonth) -> Result<bool, PaymentError> {
                Ok(sqlx::query("SELECT 1 FROM payment_runs WHERE month = $1")
                    .bind(month.to_string())
                    .fetch_optional(pool)
                    .await?
                    .is_some())
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

            async fn batch_instructions(
                tx: &mut Tx,
                batch_id: &str,
            ) -> Result<Vec<Instruction>, PaymentError> {
                let rows = sqlx::query(&format!(
                    "SELECT {INSTRUCTION_COLUMNS} FROM payment_instructions WHERE batch_id = $1 ORDER BY id"
                ))
                .bind(batch_id)
                .fetch_all(&mut **tx)
                .await?;
                rows.iter().map(instruction_row).collect()
            }

            pub(crate) async fn prepare_batch(
                pool: &Pool,
                today: NaiveDate,
                at: i64,
            ) -> Result<(Option<PreparedBatch>, Vec<String>), PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let due = sqlx::query(&format!(
                    "SELECT {INSTRUCTION_COLUMNS} FROM payment_instructions \
                     WHERE status = 'scheduled' AND batch_id IS NULL AND due_on <= $1 ORDER BY id"
                ))
                .bind(date_text(today))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(instruction_row)
                .collect::<Result<Vec<_>, _>>()?;
                let (ready, without_account): (Vec<Instruction>, Vec<Instruction>) =
                    due.into_iter().partition(|i| i.payee.account.is_some());
                let without_account = without_account.into_iter().map(|i| i.reference).collect();
                if ready.is_empty() {
                    tx.rollback().await?;
                    return Ok((None, without_account));
                }
                let day = today.format("%Y%m%d").to_string();
                let earlier: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM payment_batches WHERE id LIKE $1",
                )
                .bind(format!("{day}-%"))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                let batch_id = format!("{day}-{:03}", earlier + 1);
                let total: Decimal = ready.iter().map(|i| i.amount).sum();
                sqlx::query(
                    "INSERT INTO payment_batches (id, file_name, status, instruction_count, total, created_at) \
                     VALUES ($1, $2, 'writing', $3, $4, $5)",
                )
                .bind(&batch_id)
                .bind(format!("{batch_id}.csv"))
                .bind(i64::try_from(ready.len()).unwrap_or(i64::MAX))
                .bind(total.to_string())
                .bind(at)
                .execute(&mut *tx)
                .await?;
                for chunk in ready.chunks(ROWS_PER_INSERT) {
                    let mut query = QueryBuilder::<Db>::new(
                        "UPDATE payment_instructions SET batch_id = ",
                    );
                    query.push_bind(batch_id.clone());
                    query.push(", updated_at = ");
                    query.push_bind(at);
                    query.push(" WHERE status = 'scheduled' AND batch_id IS NULL AND id IN (");
                    let mut ids = query.separated(", ");
                    for instruction in chunk {
                        ids.push_bind(instruction.reference.clone());
                    }
                    query.push(")");
                    query.build().execute(&mut *tx).await?;
                }
                let instructions = batch_instructions(&mut tx, &batch_id).await?;
                tx.commit().await?;
                Ok((
                    Some(PreparedBatch {
                        batch_id,
                        instructions,
                    }),
                    without_account,
                ))
            }

            pub(crate) async fn pending_batches(pool: &Pool) -> Result<Vec<PreparedBatch>, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let ids = sqlx::query(
                    "SELECT id FROM payment_batches WHERE status = 'writing' ORDER BY id",
                )
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()?;
                let mut batches = Vec::new();
                for batch_id in ids {
                    let instructions = batch_instructions(&mut tx, &batch_id).await?;
                    batches.push(PreparedBatch {
                        batch_id,
                        instructions,
                    });
                }
                tx.commit().await?;
                Ok(batches)
            }

            /// A batch's instructions, whatever its status; `None` when no batch has that id.
            pub(crate) async fn batch(
                pool: &Pool,
                batch_id: &str,
            ) -> Result<Option<PreparedBatch>, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let found = sqlx::query("SELECT id FROM payment_batches WHERE id = $1")
                    .bind(batch_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let batch = match found {
                    Some(_) => Some(PreparedBatch {
                        batch_id: batch_id.to_owned(),
                        instructions: batch_instructions(&mut tx, batch_id).await?,
                    }),
                    None => None,
                };
                tx.commit().await?;
                Ok(batch)
            }

            pub(crate) async fn acknowledge_batch(
                pool: &Pool,
                batch_id: &str,
                at: i64,
            ) -> Result<(), PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                sqlx::query(
                    "UPDATE payment_instructions SET status = 'sent', channel = 'bank_file', updated_at = $1 \
                     WHERE batch_id = $2 AND status = 'scheduled'",
                )
                .bind(at)
                .bind(batch_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE payment_batches SET status = 'sent', sent_at = $1 WHERE id = $2 AND status = 'writing'",
                )
                .bind(at)
                .bind(batch_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn due_unbatched(
                pool: &Pool,
                today: NaiveDate,
            ) -> Result<Vec<Instruction>, PaymentError> {
                let rows = sqlx::query(&format!(
                    "SELECT {INSTRUCTION_COLUMNS} FROM payment_instructions \
                     WHERE status = 'scheduled' AND batch_id IS NULL AND due_on <= $1 ORDER BY id"
                ))
                .bind(date_text(today))
                .fetch_all(pool)
                .await?;
                rows.iter().map(instruction_row).collect()
            }

            /// Records every due, unsent instruction without a bank account as failed with
            /// `reason` (a result from `source`, as if the bank had refused it), so it gets
            /// its `payment_fix` task like any failure. A result row is written once per
            /// reference: a second call finds nothing left to fail.
            pub(crate) async fn fail_without_account(
                pool: &Pool,
                today: NaiveDate,
                reason: &str,
                source: &str,
                at: i64,
            ) -> Result<Vec<String>, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let references = sqlx::query(
                    "SELECT id FROM payment_instructions \
                     WHERE status = 'scheduled' AND batch_id IS NULL AND due_on <= $1 \
                     AND (account IS NULL OR TRIM(account) = '') ORDER BY id",
                )
                .bind(date_text(today))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()?;
                for reference in &references {
                    sqlx::query(
                        "INSERT INTO payment_results (reference, outcome, reason, source, recorded_at) \
                         VALUES ($1, 'failed', $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(reference)
                    .bind(reason)
                    .bind(source)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE payment_instructions SET status = 'failed', failure_reason = $1, \
                         updated_at = $2 WHERE id = $3 AND status = 'scheduled'",
                    )
                    .bind(reason)
                    .bind(at)
                    .bind(reference)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(references)
            }

            pub(crate) async fn mark_sent(
                pool: &Pool,
                reference: &str,
                channel: &str,
                at: i64,
            ) -> Result<(), PaymentError> {
                sqlx::query(
                    "UPDATE payment_instructions SET status = 'sent', channel = $1, updated_at = $2 \
                     WHERE id = $3 AND status = 'scheduled'",
                )
                .bind(channel)
                .bind(at)
                .bind(reference)
                .execute(pool)
                .await?;
                Ok(())
            }

            pub(crate) async fn record_result(
                pool: &Pool,
                result: &PaymentResult,
                source: &str,
                at: i64,
            ) -> Result<Recorded, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let known = sqlx::query("SELECT 1 FROM payment_instructions WHERE id = $1")
                    .bind(&result.reference)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if !known {
                    tx.rollback().await?;
                    return Ok(Recorded::Unknown);
                }
                let fresh = sqlx::query(
                    "INSERT INTO payment_results (reference, outcome, reason, source, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&result.reference)
                .bind(result.outcome.as_str())
                .bind(&result.reason)
                .bind(source)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if fresh == 0 {
                    let first: String =
                        sqlx::query("SELECT outcome FROM payment_results WHERE reference = $1")
                            .bind(&result.reference)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get(0)?;
                    tx.rollback().await?;
                    return Ok(Recorded::Repeat {
                        same: first == result.outcome.as_str(),
                    });
                }
                let status = match result.outcome {
                    ResultOutcome::Paid => InstructionStatus::Paid,
                    ResultOutcome::Failed => InstructionStatus::Failed,
                };
                sqlx::query(
                    "UPDATE payment_instructions SET status = $1, failure_reason = $2, updated_at = $3 \
                     WHERE id = $4 AND status IN ('scheduled', 'sent')",
                )
                .bind(status.as_str())
                .bind(&result.reason)
                .bind(at)
                .bind(&result.reference)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Recorded::New)
            }

            pub(crate) async fn failures_without_fix(
                pool: &Pool,
            ) -> Result<Vec<(Instruction, String)>, PaymentError> {
                let columns = INSTRUCTION_COLUMNS
                    .split(", ")
                    .map(|c| format!("i.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let rows = sqlx::query(&format!(
                    "SELECT {columns}, r.reason FROM payment_results r \
                     JOIN payment_instructions i ON i.id = r.reference \
                     WHERE r.outcome = 'failed' AND r.fix_instance IS NULL ORDER BY i.id"
                ))
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let reason: Option<String> = row.try_get(20)?;
                        Ok((instruction_row(row)?, reason.unwrap_or_default()))
                    })
                    .collect()
            }

            pub(crate) async fn set_fix_instance(
                pool: &Pool,
                reference: &str,
                instance: &str,
            ) -> Result<(), PaymentError> {
                sqlx::query(
                    "UPDATE payment_results SET fix_instance = $1 WHERE reference = $2 AND fix_instance IS NULL",
                )
                .bind(instance)
                .bind(reference)
                .execute(pool)
                .await?;
                Ok(())
            }
        }
    };
}

// SQLite: IMMEDIATE takes the write lock up front. A deferred transaction that reads and
// then writes fails at once with SQLITE_BUSY (no busy wait) when another connection to
// the file, e.g. a second node, wrote meanwhile.
backend_ops!(sqlite_ops, sqlx::Sqlite, "BEGIN IMMEDIATE");
backend_ops!(postgres_ops, sqlx::Postgres, "BEGIN");
