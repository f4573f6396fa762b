//! Running monthly benefits whose amount changed from a date — after a new policy raised a
//! standard, who changed by how much (`jiuzhu payments standard-changes`,
//! `GET /api/payments/standard-changes`).
//!
//! The ledger already records each change as an append-only `amount_changed` entry of
//! the benefit taking effect from a month; the amount before it is what the entries
//! recorded earlier pay in that month (`due_in_month`). So the report reads the entries,
//! and needs no table of its own. A change that resumes a stopped benefit, or repeats the
//! amount, is not listed. Names and ID numbers are masked here, at the edge.

use chrono::NaiveDate;
use jiuzhu_engine::core::unit_contains;
use jiuzhu_engine::privacy;
use jiuzhu_engine::store::DbPool;
use rust_decimal::Decimal;
use serde::Serialize;

use super::model::{BenefitEntry, EntryKind, YearMonth, due_in_month};
use super::{Ledger, PaymentError};

/// One benefit's amount changed from a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandardChange {
    pub case_id: String,
    pub program: String,
    pub unit: String,
    /// The first month paid at the new amount.
    pub from: YearMonth,
    pub old_amount: Decimal,
    pub new_amount: Decimal,
    /// `new_amount - old_amount` (negative when lowered).
    pub difference: Decimal,
    /// The payee's name, masked (surname only).
    pub payee: String,
    /// The payee's ID number, masked; `None` when the ledger has none.
    pub id_number: Option<String>,
}

/// The report: every change from `from` on, oldest month first, and the monthly total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandardChangeReport {
    pub from: NaiveDate,
    pub unit: Option<String>,
    pub changes: Vec<StandardChange>,
    pub count: usize,
    /// Sum of the differences: how much more (or less) is paid each month.
    pub total_difference: Decimal,
}

/// A benefit's unmasked rows: id, case, program, unit and its entries in recording order.
type BenefitRows = (String, String, String, Vec<BenefitEntry>);

/// The changes `entries` (one benefit's, in recording order) make from `from` on.
pub fn changes_of(
    case_id: &str,
    program: &str,
    unit: &str,
    entries: &[BenefitEntry],
    from: YearMonth,
) -> Vec<StandardChange> {
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.kind != EntryKind::AmountChanged || entry.effective_month < from {
            continue;
        }
        let Some(new_amount) = entry.monthly_amount else {
            continue;
        };
        let Some(before) = due_in_month(&entries[..i], entry.effective_month) else {
            continue;
        };
        if before.amount == new_amount {
            continue;
        }
        let payee = due_in_month(&entries[..=i], entry.effective_month)
            .map(|due| due.payee)
            .unwrap_or(before.payee);
        out.push(StandardChange {
            case_id: case_id.to_owned(),
            program: program.to_owned(),
            unit: unit.to_owned(),
            from: entry.effective_month,
            old_amount: before.amount,
            new_amount,
            difference: new_amount - before.amount,
            payee: privacy::mask_name(&payee.name),
            id_number: payee.id_number.as_deref().map(privacy::mask_id_number),
        });
    }
    out
}

macro_rules! changes_ops {
    ($module:ident, $db:ty, $entry_row:path) => {
        mod $module {
            use super::*;
            use sqlx::Row as _;

            /// Benefits with an `amount_changed` entry from `from` on, with all their entries.
            pub(super) async fn benefits_changed(
                pool: &sqlx::Pool<$db>,
                from: YearMonth,
            ) -> Result<Vec<BenefitRows>, PaymentError> {
                let rows = sqlx::query(&format!(
                    "SELECT b.case_id, b.program, b.unit, {} \
                     FROM benefits b JOIN benefit_entries e ON e.benefit_id = b.id \
                     WHERE b.id IN (SELECT benefit_id FROM benefit_entries \
                                    WHERE kind = $1 AND effective_month >= $2) \
                     ORDER BY b.id, e.seq",
                    super::super::db::ENTRY_COLUMNS
                ))
                .bind(EntryKind::AmountChanged.as_str())
                .bind(from.to_string())
                .fetch_all(pool)
                .await
                .map_err(PaymentError::Database)?;
                let mut out: Vec<BenefitRows> = Vec::new();
                for row in &rows {
                    let case: String = row.try_get(0).map_err(PaymentError::Database)?;
                    let program: String = row.try_get(1).map_err(PaymentError::Database)?;
                    let unit: String = row.try_get(2).map_err(PaymentError::Database)?;
                    let entry = $entry_row(row, 3)?;
                    match out.last_mut() {
                        Some(last) if last.0 == case && last.1 == program => last.3.push(entry),
                        _ => out.push((case, program, unit, vec![entry])),
                    }
                }
                Ok(out)
            }
        }
    };
}

changes_ops!(
    sqlite_changes,
    sqlx::Sqlite,
    super::super::db::sqlite_ops::entry_row
);
changes_ops!(
    postgres_changes,
    sqlx::Postgres,
    super::super::db::postgres_ops::entry_row
);

impl Ledger {
    /// Running benefits whose monthly amount changed from `from`'s month on, in `unit`
    /// and the units below it when given.
    pub async fn standard_changes(
        &self,
        from: NaiveDate,
        unit: Option<&str>,
    ) -> Result<StandardChangeReport, PaymentError> {
        let month = YearMonth::of(from);
        let benefits = match self.db().await?.pool() {
            DbPool::Sqlite(pool) => sqlite_changes::benefits_changed(pool, month).await?,
            DbPool::Postgres(pool) => postgres_changes::benefits_changed(pool, month).await?,
        };
        let mut changes: Vec<StandardChange> = benefits
            .iter()
            .filter(|(_, _, benefit_unit, _)| unit.is_none_or(|u| unit_contains(u, benefit_unit)))
            .flat_map(|(case, program, benefit_unit, entries)| {
                changes_of(case, program, benefit_unit, entries, month)
            })
            .collect();
        changes.sort_by(|a, b| {
            (a.from, &a.unit, &a.program, &a.case_id)
                .cmp(&(b.from, &b.unit, &b.program, &b.case_id))
        });
        Ok(StandardChangeReport {
            from,
            unit: unit.map(str::to_owned),
            count: changes.len(),
            total_difference: changes.iter().map(|c| c.difference).sum(),
            changes,
        })
    }
}
