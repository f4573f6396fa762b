//! The township reserve fund (乡镇临时救助备用金): a balance per township unit from which
//! emergency advances are drawn, topped up by replenishments (`jiuzhu reserve replenish`,
//! `POST /api/reserves/{unit}/replenish`), never above the ceiling of the policy in force.
//!
//! Every movement is an entry (adapters migration 1003, `reserve_entries`), so a balance is
//! the sum of its entries and can be checked ([`ReserveBalance::verified`]). Money is kept
//! in whole fen in these two tables: a draw compares and subtracts inside the database, in
//! one conditional `UPDATE … WHERE balance_fen >= amount RETURNING`, so concurrent draws
//! (in one process or several, on SQLite or PostgreSQL) never take a balance below zero.
//! A draw is keyed by its payment effect's id: the first statement of its transaction
//! claims the key, so a retried draw is answered as the first one was (drawn or refused),
//! even when the balance has changed since.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use jiuzhu_engine::store::DbPool;
use rust_decimal::Decimal;
use serde::Serialize;

use super::PaymentError;
use super::ledger::Ledger;

/// Why a reserve operation was refused. Each has a stable code for the CLI and the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveProblem {
    /// Zero, negative, or finer than the fen.
    #[error("amount {amount} must be positive and in whole fen (e.g. \"500.00\")")]
    BadAmount { amount: String },
    /// Beyond what a balance column holds.
    #[error("amount {amount} is too large")]
    TooLarge { amount: String },
    /// The replenishment would take the balance above the policy's ceiling.
    #[error(
        "replenishing {amount} would take the reserve of {unit} above its ceiling {ceiling}: \
         the balance is {balance}, room left {room}"
    )]
    AboveCeiling {
        unit: String,
        amount: Decimal,
        balance: Decimal,
        ceiling: Decimal,
        room: Decimal,
    },
}

impl ReserveProblem {
    /// The stable error code: `invalid_data` for every one, the amount being what is
    /// refused (the API names it by its JSON path, `$.amount`).
    pub fn code(&self) -> &'static str {
        "invalid_data"
    }
}

/// What a draw did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DrawOutcome {
    /// The whole amount was taken from the reserve.
    pub drawn: bool,
    /// The balance right after this draw was decided.
    pub balance_after: Decimal,
    /// This draw key was decided before: the earlier answer, nothing changed now.
    pub duplicate: bool,
}

/// One reserve's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReserveBalance {
    pub unit: String,
    pub balance: Decimal,
    /// The sum of the reserve's entries (equal to `balance` unless the rows were edited).
    pub entries_total: Decimal,
    pub entries: u64,
}

impl ReserveBalance {
    /// True when the balance is the sum of the entries.
    pub fn verified(&self) -> bool {
        self.balance == self.entries_total
    }
}

/// One movement of a reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReserveEntry {
    pub id: i64,
    pub unit: String,
    /// `draw`, `refused` or `replenish`.
    pub kind: String,
    /// What was asked for (drawn, refused or added).
    pub amount: Decimal,
    /// The change of the balance (negative for a draw, zero for a refusal).
    pub delta: Decimal,
    pub balance_after: Decimal,
    /// The payment effect a draw belongs to.
    pub draw_key: Option<String>,
    pub case_id: Option<String>,
    /// Who replenished.
    pub by: Option<String>,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

/// The roles that replenish a reserve, from a unit above the township's.
pub const REPLENISH_ROLES: &[&str] = &["county_staff", "admin"];

/// The roles that read a reserve within their units (their own township's, or those below
/// their county).
pub const READ_ROLES: &[&str] = &[
    "township_staff",
    "township_head",
    "county_staff",
    "county_head",
    "admin",
];

/// True when a user of `roles` in `user_unit` may replenish the reserve of `unit`: a
/// replenishing role in a unit strictly above it.
pub fn may_replenish(roles: &[String], user_unit: &str, unit: &str) -> bool {
    roles.iter().any(|r| REPLENISH_ROLES.contains(&r.as_str()))
        && user_unit != unit
        && jiuzhu_engine::org::unit_contains(user_unit, unit)
}

/// True when a user of `roles` in `user_unit` may read the reserve of `unit`.
pub fn may_read(roles: &[String], user_unit: &str, unit: &str) -> bool {
    roles.iter().any(|r| READ_ROLES.contains(&r.as_str()))
        && jiuzhu_engine::org::unit_contains(user_unit, unit)
}

/// An amount in whole fen, or why not: positive, at most two decimal places.
pub fn amount_fen(amount: Decimal) -> Result<i64, ReserveProblem> {
    let bad = || ReserveProblem::BadAmount {
        amount: amount.to_string(),
    };
    if amount <= Decimal::ZERO || amount.normalize().scale() > 2 {
        return Err(bad());
    }
    let mut fen = amount;
    fen.rescale(2);
    i64::try_from(fen.mantissa())
        .ok()
        // Far below i64::MAX, so sums of many entries stay exact too.
        .filter(|f| *f <= 1_000_000_000_000_000)
        .ok_or_else(|| ReserveProblem::TooLarge {
            amount: amount.to_string(),
        })
}

/// Whole fen back to yuan.
pub fn from_fen(fen: i64) -> Decimal {
    Decimal::new(fen, 2)
}

/// The error a reserve operation refused with, or a database failure.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Refused(#[from] ReserveProblem),
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

impl From<sqlx::Error> for ReserveError {
    fn from(error: sqlx::Error) -> ReserveError {
        ReserveError::Payment(error.into())
    }
}

/// No ceiling: a policy without a `reserve_fund` section sets no limit.
const NO_CEILING: i64 = i64::MAX;

macro_rules! reserve_ops {
    ($module:ident, $db:ty, $begin:literal) => {
        pub(crate) mod $module {
            use super::*;
            use sqlx::Row as _;

            type Pool = sqlx::Pool<$db>;

            async fn ensure_account(
                tx: &mut sqlx::Transaction<'static, $db>,
                unit: &str,
                at: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO reserve_accounts (unit, balance_fen, updated_at) \
                     VALUES ($1, 0, $2) ON CONFLICT (unit) DO NOTHING",
                )
                .bind(unit)
                .bind(at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            pub(crate) async fn draw(
                pool: &Pool,
                unit: &str,
                key: &str,
                case_id: &str,
                fen: i64,
                at: i64,
            ) -> Result<DrawOutcome, PaymentError> {
                let mut tx = pool.begin_with($begin).await?;
                // Claim the key first: a write, so the transaction holds the write lock
                // (SQLite) or waits for a racing claim of the same key (PostgreSQL).
                let claimed = sqlx::query(
                    "INSERT INTO reserve_entries (unit, kind, amount_fen, delta_fen, \
                     balance_after_fen, draw_key, case_id, at) \
                     VALUES ($1, 'pending', $2, 0, 0, $3, $4, $5) \
                     ON CONFLICT (draw_key) DO NOTHING RETURNING id",
                )
                .bind(unit)
                .bind(fen)
                .bind(key)
                .bind(case_id)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(claimed) = claimed else {
                    let row = sqlx::query(
                        "SELECT kind, balance_after_fen FROM reserve_entries WHERE draw_key = $1",
                    )
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    let kind: String = row.try_get(0)?;
                    return Ok(DrawOutcome {
                        drawn: kind == "draw",
                        balance_after: from_fen(row.try_get(1)?),
                        duplicate: true,
                    });
                };
                let id: i64 = claimed.try_get(0)?;
                ensure_account(&mut tx, unit, at).await?;
                let taken = sqlx::query(
                    "UPDATE reserve_accounts SET balance_fen = balance_fen - $1, updated_at = $2 \
                     WHERE unit = $3 AND balance_fen >= $1 RETURNING balance_fen",
                )
                .bind(fen)
                .bind(at)
                .bind(unit)
                .fetch_optional(&mut *tx)
                .await?;
                let (kind, delta, balance) = match taken {
                    Some(row) => ("draw", -fen, row.try_get::<i64, _>(0)?),
                    None => {
                        let balance: i64 = sqlx::query(
                            "SELECT balance_fen FROM reserve_accounts WHERE unit = $1",
                        )
                        .bind(unit)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get(0)?;
                        ("refused", 0, balance)
                    }
                };
                sqlx::query(
                    "UPDATE reserve_entries SET kind = $1, delta_fen = $2, balance_after_fen = $3 \
                     WHERE id = $4",
                )
                .bind(kind)
                .bind(delta)
                .bind(balance)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(DrawOutcome {
                    drawn: kind == "draw",
                    balance_after: from_fen(balance),
                    duplicate: false,
                })
            }

            #[allow(clippy::too_many_arguments)]
            pub(crate) async fn replenish(
                pool: &Pool,
                unit: &str,
                fen: i64,
                ceiling: Option<i64>,
                by: &str,
                note: Option<&str>,
                at: i64,
            ) -> Result<Result<i64, (i64, i64)>, PaymentError> {
                let mut tx = pool.begin_with($begin).await?;
                ensure_account(&mut tx, unit, at).await?;
                let cap = ceiling.unwrap_or(NO_CEILING);
                let added = sqlx::query(
                    "UPDATE reserve_accounts SET balance_fen = balance_fen + $1, updated_at = $2 \
                     WHERE unit = $3 AND balance_fen <= $4 - $1 RETURNING balance_fen",
                )
                .bind(fen)
                .bind(at)
                .bind(unit)
                .bind(cap)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = added else {
                    let balance: i64 =
                        sqlx::query("SELECT balance_fen FROM reserve_accounts WHERE unit = $1")
                            .bind(unit)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get(0)?;
                    tx.rollback().await?;
                    return Ok(Err((balance, cap)));
                };
                let balance: i64 = row.try_get(0)?;
                sqlx::query(
                    "INSERT INTO reserve_entries (unit, kind, amount_fen, delta_fen, \
                     balance_after_fen, by_user, note, at) \
                     VALUES ($1, 'replenish', $2, $2, $3, $4, $5, $6)",
                )
                .bind(unit)
                .bind(fen)
                .bind(balance)
                .bind(by)
                .bind(note)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Ok(balance))
            }

            pub(crate) async fn balances(pool: &Pool) -> Result<Vec<ReserveBalance>, PaymentError> {
                let rows = sqlx::query(
                    "SELECT a.unit, a.balance_fen, \
                     CAST(COALESCE(SUM(e.delta_fen), 0) AS BIGINT), COUNT(e.id) \
                     FROM reserve_accounts a LEFT JOIN reserve_entries e ON e.unit = a.unit \
                     GROUP BY a.unit, a.balance_fen ORDER BY a.unit",
                )
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(ReserveBalance {
                            unit: row.try_get(0)?,
                            balance: from_fen(row.try_get(1)?),
                            entries_total: from_fen(row.try_get(2)?),
                            entries: u64::try_from(row.try_get::<i64, _>(3)?).unwrap_or(0),
                        })
                    })
                    .collect()
            }

            pub(crate) async fn entries(
                pool: &Pool,
                unit: &str,
            ) -> Result<Vec<ReserveEntry>, PaymentError> {
                let rows = sqlx::query(
                    "SELECT id, unit, kind, amount_fen, delta_fen, balance_after_fen, draw_key, \
                     case_id, by_user, note, at FROM reserve_entries WHERE unit = $1 ORDER BY id",
                )
                .bind(unit)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let at: i64 = row.try_get(10)?;
                        Ok(ReserveEntry {
                            id: row.try_get(0)?,
                            unit: row.try_get(1)?,
                            kind: row.try_get(2)?,
                            amount: from_fen(row.try_get(3)?),
                            delta: from_fen(row.try_get(4)?),
                            balance_after: from_fen(row.try_get(5)?),
                            draw_key: row.try_get(6)?,
                            case_id: row.try_get(7)?,
                            by: row.try_get(8)?,
                            note: row.try_get(9)?,
                            at: DateTime::from_timestamp_millis(at).ok_or(
                                PaymentError::Corrupt {
                                    what: "reserve entry time",
                                    value: at.to_string(),
                                },
                            )?,
                        })
                    })
                    .collect()
            }
        }
    };
}

reserve_ops!(sqlite_reserve, sqlx::Sqlite, "BEGIN IMMEDIATE");
reserve_ops!(postgres_reserve, sqlx::Postgres, "BEGIN");

macro_rules! on_reserve_db {
    ($ledger:ident, |$pool:ident, $ops:ident| $call:expr) => {
        match $ledger.db().await?.pool() {
            DbPool::Sqlite($pool) => {
                use sqlite_reserve as $ops;
                $call.await
            }
            DbPool::Postgres($pool) => {
                use postgres_reserve as $ops;
                $call.await
            }
        }
    };
}

impl Ledger {
    /// Draws `amount` from the reserve of `unit` for the payment effect `key` of `case_id`:
    /// all of it or nothing. A second draw with the same key changes nothing and gives the
    /// first one's answer. A unit never replenished has a balance of zero.
    pub async fn draw_reserve(
        &self,
        unit: &str,
        key: &str,
        case_id: &str,
        amount: Decimal,
        now: DateTime<Utc>,
    ) -> Result<DrawOutcome, ReserveError> {
        let fen = amount_fen(amount)?;
        let at = now.timestamp_millis();
        Ok(on_reserve_db!(self, |pool, ops| ops::draw(
            pool, unit, key, case_id, fen, at
        ))?)
    }

    /// Adds `amount` to the reserve of `unit`, recorded as by `by` with `note`; refused
    /// (nothing written) when the balance would pass `ceiling` (`None`: no limit).
    /// Returns the new balance.
    pub async fn replenish_reserve(
        &self,
        unit: &str,
        amount: Decimal,
        ceiling: Option<Decimal>,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Decimal, ReserveError> {
        let fen = amount_fen(amount)?;
        // A ceiling finer than the fen is rounded down: the reserve never passes it.
        let cap = ceiling.map(|c| {
            let mut c = c.max(Decimal::ZERO);
            c.rescale(2);
            i64::try_from(c.mantissa()).unwrap_or(NO_CEILING)
        });
        let at = now.timestamp_millis();
        match on_reserve_db!(self, |pool, ops| ops::replenish(
            pool, unit, fen, cap, by, note, at
        ))? {
            Ok(balance) => Ok(from_fen(balance)),
            Err((balance, cap)) => {
                let (balance, ceiling) = (from_fen(balance), from_fen(cap));
                Err(ReserveProblem::AboveCeiling {
                    unit: unit.to_owned(),
                    amount,
                    balance,
                    ceiling,
                    room: (ceiling - balance).max(Decimal::ZERO),
                }
                .into())
            }
        }
    }

    /// Every reserve's balance, by unit.
    pub async fn reserves(&self) -> Result<Vec<ReserveBalance>, PaymentError> {
        on_reserve_db!(self, |pool, ops| ops::balances(pool))
    }

    /// The balances by unit, for lookups.
    pub async fn reserve_map(&self) -> Result<BTreeMap<String, ReserveBalance>, PaymentError> {
        Ok(self
            .reserves()
            .await?
            .into_iter()
            .map(|r| (r.unit.clone(), r))
            .collect())
    }

    /// The movements of one reserve, oldest first.
    pub async fn reserve_entries(&self, unit: &str) -> Result<Vec<ReserveEntry>, PaymentError> {
        on_reserve_db!(self, |pool, ops| ops::entries(pool, unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn amounts_are_positive_whole_fen() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(amount_fen(d("500.00")), Ok(50_000));
        assert_eq!(amount_fen(d("0.01")), Ok(1));
        assert_eq!(amount_fen(d("12.5")), Ok(1_250));
        for bad in ["0", "-1.00", "0.001", "-0.01"] {
            assert!(
                matches!(amount_fen(d(bad)), Err(ReserveProblem::BadAmount { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            amount_fen(d("99999999999999999999")),
            Err(ReserveProblem::TooLarge { .. })
        ));
        assert_eq!(from_fen(50_000), d("500.00"));
    }
}
