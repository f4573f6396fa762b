//! Read-only queries for `jiuzhu simulate-policy`: the decided cases (those with an
//! outcome), a page at a time in id order, with their state as text, so the caller
//! decides what in the state it reads and memory stays flat however many cases there are.
//! Nothing here writes; the command opens the store read-only.

use chrono::{DateTime, Utc};

use super::{Backend, Store, StoreError, shared};

/// One decided case as the simulation reads it.
#[derive(Debug, Clone)]
pub struct DecidedCase {
    pub id: String,
    pub process_id: String,
    pub status: String,
    pub outcome: String,
    pub unit: String,
    pub updated_at: DateTime<Utc>,
    /// The instance state (JSON text); its `vars` hold the case's variables.
    pub state: String,
}

/// Which page of decided cases to read.
#[derive(Debug, Clone, Default)]
pub struct DecidedPage {
    /// Only ids after this one (keyset paging: a page costs the same at any depth).
    pub after: String,
    /// A unit path: cases of this unit and every unit below it.
    pub unit: Option<String>,
    pub limit: u32,
}

const COLUMNS_SQLITE: &str = "id, process_id, status, outcome, unit, updated_at, state";
const COLUMNS_POSTGRES: &str =
    "id, process_id, status, outcome, unit, updated_at, state::text AS state";

impl Store {
    /// The next page of cases with an outcome, in id order.
    pub async fn decided_cases(&self, page: &DecidedPage) -> Result<Vec<DecidedCase>, StoreError> {
        let columns = match self.backend {
            Backend::Sqlite(_) => COLUMNS_SQLITE,
            Backend::Postgres(_) => COLUMNS_POSTGRES,
        };
        let bounds = page.unit.as_deref().map(shared::subtree_bounds);
        let unit_clause = if bounds.is_some() {
            " AND (unit = $2 OR (unit >= $3 AND unit < $4)) ORDER BY id LIMIT $5"
        } else {
            " ORDER BY id LIMIT $2"
        };
        let sql = format!(
            "SELECT {columns} FROM instances WHERE outcome IS NOT NULL AND id > $1{unit_clause}"
        );
        let limit = i64::from(page.limit.max(1));
        macro_rules! fetch {
            ($pool:expr, $classify:path) => {{
                let mut query = sqlx::query(&sql).bind(&page.after);
                if let Some((unit, low, high)) = &bounds {
                    query = query.bind(unit).bind(low).bind(high);
                }
                let rows = query
                    .bind(limit)
                    .fetch_all($pool)
                    .await
                    .map_err($classify)?;
                rows.iter()
                    .map(|row| decided_from_row(row).map_err($classify))
                    .collect::<Result<Vec<_>, _>>()?
            }};
        }
        let cases = match &self.backend {
            Backend::Sqlite(s) => fetch!(&s.reader, super::sqlite::classify),
            Backend::Postgres(p) => fetch!(&p.reader, super::postgres::classify),
        };
        cases
            .into_iter()
            .map(|(case, updated_at)| {
                Ok(DecidedCase {
                    updated_at: shared::from_ms(updated_at)?,
                    ..case
                })
            })
            .collect()
    }

    /// The database's size in bytes (SQLite: pages in use; PostgreSQL: the database).
    pub async fn database_bytes(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => sqlx::query_scalar(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            )
            .fetch_one(&s.reader)
            .await
            .map_err(super::sqlite::classify),
            Backend::Postgres(p) => {
                sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&p.reader)
                    .await
                    .map_err(super::postgres::classify)
            }
        }
    }

    /// One case with its state, decided or not (`--explain`).
    pub async fn case_for_simulation(&self, id: &str) -> Result<Option<DecidedCase>, StoreError> {
        let columns = match self.backend {
            Backend::Sqlite(_) => COLUMNS_SQLITE,
            Backend::Postgres(_) => COLUMNS_POSTGRES,
        };
        let sql = format!("SELECT {columns} FROM instances WHERE id = $1");
        let row = match &self.backend {
            Backend::Sqlite(s) => match sqlx::query(&sql)
                .bind(id)
                .fetch_optional(&s.reader)
                .await
                .map_err(super::sqlite::classify)?
            {
                Some(row) => Some(decided_from_row(&row).map_err(super::sqlite::classify)?),
                None => None,
            },
            Backend::Postgres(p) => match sqlx::query(&sql)
                .bind(id)
                .fetch_optional(&p.reader)
                .await
                .map_err(super::postgres::classify)?
            {
                Some(row) => Some(decided_from_row(&row).map_err(super::postgres::classify)?),
                None => None,
            },
        };
        match row {
            Some((case, updated_at)) => Ok(Some(DecidedCase {
                updated_at: shared::from_ms(updated_at)?,
                ..case
            })),
            None => Ok(None),
        }
    }
}

/// The row's fields (an undecided case's outcome reads as empty) and its `updated_at`
/// in milliseconds.
fn decided_from_row<R>(row: &R) -> Result<(DecidedCase, i64), sqlx::Error>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok((
        DecidedCase {
            id: row.try_get("id")?,
            process_id: row.try_get("process_id")?,
            status: row.try_get("status")?,
            outcome: row
                .try_get::<Option<String>, _>("outcome")?
                .unwrap_or_default(),
            unit: row.try_get("unit")?,
            updated_at: DateTime::<Utc>::MIN_UTC,
            state: row.try_get("state")?,
        },
        row.try_get("updated_at")?,
    ))
}
