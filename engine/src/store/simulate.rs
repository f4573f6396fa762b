//! Read-only queries for `jiuzhu simulate-policy`: the decided cases (those with an
//! outcome), a page at a time in id order, each with the few variables of its state the
//! simulation reads, cut out by the database (SQLite's `json_extract`, PostgreSQL's
//! `jsonb` operators): a decided case's state carries its assessment with the full trace
//! (about 13 KB), which the simulation never reads, so only some 400 bytes a case reach
//! the process. Memory stays flat however many cases there are. Nothing here writes; the
//! command opens the store read-only.

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
    /// The state's variables the simulation reads, as the JSON text of an array:
    /// `[household, area, request, applicant_name, bank, assessment.program]`, each `null`
    /// where the state has none; `None` when the stored state is not JSON.
    pub vars: Option<String>,
}

/// Which page of decided cases to read.
#[derive(Debug, Clone, Default)]
pub struct DecidedPage {
    /// Only ids after this one (keyset paging: a page costs the same at any depth).
    pub after: String,
    /// A unit path: cases of this unit and every unit below it.
    pub unit: Option<String>,
    pub limit: u32,
    /// Read the assessment inputs rather than the states ([`Store::has_assessment_inputs`]).
    pub inputs: bool,
}

/// The variables the simulation reads, cut out of the state by SQLite: one `json_extract`
/// of several paths parses the state once and returns the array of [`DecidedCase::vars`]
/// (`json_valid` first, so that a state which is not JSON is one case's problem, not the
/// query's; the two share SQLite's cache of parsed JSON).
const COLUMNS_SQLITE: &str = "id, process_id, status, outcome, unit, updated_at, \
    CASE WHEN json_valid(state) THEN json_extract(state, '$.vars.household', '$.vars.area', \
    '$.vars.request', '$.vars.applicant_name', '$.vars.bank', '$.vars.assessment.program') \
    END AS vars";
/// The same on PostgreSQL: `vars` is taken apart once per row, not once per variable
/// (every operator on `state` itself would decompress it again).
const COLUMNS_POSTGRES: &str = "id, process_id, status, outcome, unit, updated_at, \
    jsonb_build_array(v.household, v.area, v.request, v.applicant_name, v.bank, \
    v.assessment -> 'program')::text AS vars";
/// What the PostgreSQL columns read the variables from.
const FROM_POSTGRES: &str = "instances CROSS JOIN LATERAL jsonb_to_record(\
    CASE jsonb_typeof(state -> 'vars') WHEN 'object' THEN state -> 'vars' ELSE '{}'::jsonb END) \
    AS v(household jsonb, area jsonb, request jsonb, applicant_name jsonb, bank jsonb, \
    assessment jsonb)";

/// The same read from the narrow rows of engine migration 13, written with each decided
/// instance ([`super::assessment_inputs`]): a few hundred bytes a case instead of the state.
const COLUMNS_INPUTS: &str =
    "instance_id AS id, process_id, status, outcome, unit, updated_at, inputs AS vars";

/// The first engine migration with [`super::assessment_inputs`].
const INPUTS_VERSION: i64 = 13;

impl Store {
    /// Whether this database has the assessment inputs (engine migration 13). A store opened
    /// read-only is not migrated, so an older database is read from the states instead.
    pub async fn has_assessment_inputs(&self) -> Result<bool, StoreError> {
        const SQL: &str =
            "SELECT MAX(version) FROM _sqlx_migrations WHERE version BETWEEN $1 AND $2";
        let (low, high) = (INPUTS_VERSION, *super::migrations::ENGINE_VERSIONS.end());
        let newest: Option<i64> = match &self.backend {
            Backend::Sqlite(s) => sqlx::query_scalar(SQL)
                .bind(low)
                .bind(high)
                .fetch_one(&s.reader)
                .await
                .map_err(super::sqlite::classify)?,
            Backend::Postgres(p) => sqlx::query_scalar(SQL)
                .bind(low)
                .bind(high)
                .fetch_one(&p.reader)
                .await
                .map_err(super::postgres::classify)?,
        };
        Ok(newest.is_some())
    }

    /// The next page of cases with an outcome, in id order: from the assessment inputs
    /// when `page.inputs` (see [`Store::has_assessment_inputs`]), else from the states.
    pub async fn decided_cases(&self, page: &DecidedPage) -> Result<Vec<DecidedCase>, StoreError> {
        let (columns, from, id, decided) = match (&self.backend, page.inputs) {
            (_, true) => (COLUMNS_INPUTS, "assessment_inputs", "instance_id", ""),
            (Backend::Sqlite(_), false) => (
                COLUMNS_SQLITE,
                "instances",
                "id",
                "outcome IS NOT NULL AND ",
            ),
            (Backend::Postgres(_), false) => (
                COLUMNS_POSTGRES,
                FROM_POSTGRES,
                "id",
                "outcome IS NOT NULL AND ",
            ),
        };
        let bounds = page.unit.as_deref().map(shared::subtree_bounds);
        let unit_clause = if bounds.is_some() {
            format!(" AND (unit = $2 OR (unit >= $3 AND unit < $4)) ORDER BY {id} LIMIT $5")
        } else {
            format!(" ORDER BY {id} LIMIT $2")
        };
        let sql = format!("SELECT {columns} FROM {from} WHERE {decided}{id} > $1{unit_clause}");
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
        let (columns, from) = match self.backend {
            Backend::Sqlite(_) => (COLUMNS_SQLITE, "instances"),
            Backend::Postgres(_) => (COLUMNS_POSTGRES, FROM_POSTGRES),
        };
        let sql = format!("SELECT {columns} FROM {from} WHERE id = $1");
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
            vars: row.try_get("vars")?,
        },
        row.try_get("updated_at")?,
    ))
}
