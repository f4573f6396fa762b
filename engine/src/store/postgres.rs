//! The PostgreSQL backend: a connection pool shared by the engine nodes; due timers and
//! outbox entries are claimed with `FOR UPDATE SKIP LOCKED` so concurrent nodes never block
//! on, or double-claim, the same row.

use super::group_write::{self, Param, WriteTx};
use super::migrations;
use super::shared::{self, HeadCache};
use super::{ConflictReason, StoreError, StoreOptions};
use crate::audit::{self, AuditKey};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;

type DbConn = sqlx::PgConnection;

/// `jsonb` gives a state back normalised: its hash is of its canonical JSON.
const EXACT_STATE_TEXT: bool = false;
type DbRow = sqlx::postgres::PgRow;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "schedules",
        include_str!("../../migrations/postgres/0002_schedules.sql"),
    ),
    (
        4,
        "dispatch",
        include_str!("../../migrations/postgres/0004_dispatch.sql"),
    ),
    (
        5,
        "inbox_covering",
        include_str!("../../migrations/postgres/0005_inbox_covering.sql"),
    ),
    (
        6,
        "task_roles",
        include_str!("../../migrations/postgres/0006_task_roles.sql"),
    ),
    (
        7,
        "timer_attempts",
        include_str!("../../migrations/postgres/0007_timer_attempts.sql"),
    ),
    (
        8,
        "keyed_history",
        include_str!("../../migrations/postgres/0008_keyed_history.sql"),
    ),
    (
        9,
        "provisional",
        include_str!("../../migrations/postgres/0009_provisional.sql"),
    ),
    (
        11,
        "business_keys",
        include_str!("../../migrations/postgres/0011_business_keys.sql"),
    ),
    (
        12,
        "archives",
        include_str!("../../migrations/postgres/0012_archives.sql"),
    ),
    (
        13,
        "assessment_inputs",
        include_str!("../../migrations/postgres/0013_assessment_inputs.sql"),
    ),
];

const CLAIM_TIMERS_SQL: &str = "UPDATE timers SET available_at = $1, claimed_by = $2, attempts = attempts + 1 \
     FROM (SELECT id FROM timers WHERE available_at <= $3 ORDER BY available_at LIMIT $4 FOR UPDATE SKIP LOCKED) AS due \
     WHERE timers.id = due.id \
     RETURNING timers.id, timers.instance_id, timers.due_at, timers.payload, timers.attempts";

const CLAIM_OUTBOX_SQL: &str = "UPDATE outbox SET available_at = $1, claimed_by = $2, claims = claims + 1 \
     FROM (SELECT id FROM outbox WHERE status = 'pending' AND available_at <= $3 ORDER BY available_at LIMIT $4 FOR UPDATE SKIP LOCKED) AS due \
     WHERE outbox.id = due.id \
     RETURNING outbox.id, outbox.instance_id, outbox.kind, outbox.payload, outbox.created_at, outbox.attempts, outbox.claims";

const CLAIM_SCHEDULES_SQL: &str = "UPDATE schedules SET available_at = $1, claimed_by = $2 \
     FROM (SELECT process_id, schedule_id FROM schedules WHERE available_at <= $3 ORDER BY available_at LIMIT $4 FOR UPDATE SKIP LOCKED) AS due \
     WHERE schedules.process_id = due.process_id AND schedules.schedule_id = due.schedule_id \
     RETURNING schedules.process_id, schedules.schedule_id, schedules.cron, schedules.next_due_at, schedules.claimed_by, schedules.last_started_at";

#[derive(Debug, Clone)]
pub(crate) struct PostgresStore {
    pub(super) writer: PgPool,
    /// The same pool as `writer`: PostgreSQL needs no reader/writer split.
    pub(super) reader: PgPool,
    heads: Arc<HeadCache>,
    /// The key of the history chain (see [`crate::audit`]).
    pub(super) audit: Option<Arc<AuditKey>>,
    /// True when the key was created by this open (cases from before it get sealed).
    pub(super) key_created: bool,
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..authority_start],
                &authority[..colon],
                &url[authority_start + at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Maps PostgreSQL's SQLSTATEs onto the store's error kinds.
pub(super) fn classify(error: sqlx::Error) -> StoreError {
    let Some(database) = error.as_database_error() else {
        return match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed => StoreError::Unreachable { source: error },
            other => StoreError::Database(other),
        };
    };
    let code = database.code().map(|code| code.into_owned());
    match code.as_deref() {
        Some("23505") => StoreError::Conflict {
            reason: ConflictReason::Duplicate,
            source: Some(error),
        },
        // serialization_failure, deadlock_detected
        Some("40001" | "40P01") => StoreError::Conflict {
            reason: ConflictReason::Serialization,
            source: Some(error),
        },
        Some("23503") => StoreError::Dangling { source: error },
        Some("55P03") => StoreError::Locked { source: error },
        Some("53100") => StoreError::Full { source: error },
        // connection exceptions, server shutting down or starting up
        Some(code) if code.starts_with("08") || code.starts_with("57P") => {
            StoreError::Unreachable { source: error }
        }
        _ => StoreError::Database(error),
    }
}

impl PostgresStore {
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
            url: redact(url),
            problem: "not a valid PostgreSQL URL",
            source: Some(source),
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(classify)?;
        // sqlx's migrator holds an advisory lock, so nodes starting together migrate once.
        migrations::run(
            "engine",
            &pool,
            MIGRATIONS,
            migrations::ENGINE_VERSIONS,
            classify,
        )
        .await?;
        let key_path = audit::key_path(options.audit_key_file.as_deref(), None)?;
        let (key, key_created) = AuditKey::read_or_create(&key_path)?;
        Ok(PostgresStore {
            writer: pool.clone(),
            reader: pool,
            heads: Arc::new(HeadCache::new()),
            audit: Some(Arc::new(key)),
            key_created,
        })
    }

    pub(super) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.writer.begin().await.map_err(classify)
    }

    /// Writes a group of steps in one transaction (see [`Store::commit_group`]).
    ///
    /// [`Store::commit_group`]: super::Store::commit_group
    pub(crate) async fn commit_group(
        &self,
        steps: &[super::StepCommit],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        group_write::in_attempts(|attempt| async move {
            let mut tx = PgWrite {
                pool: &self.writer,
                tx: None,
            };
            group_write::commit_group(&mut tx, &self.heads, self.audit.as_deref(), steps, attempt)
                .await
        })
        .await
    }

    shared::store_methods!();
    super::schedules::schedule_methods!();
    super::archive::archive_methods!(" FOR UPDATE SKIP LOCKED");
}

/// A group commit's transaction on PostgreSQL: a sqlx transaction from the pool, rolled
/// back by sqlx if it is dropped unfinished.
struct PgWrite<'p> {
    pool: &'p PgPool,
    tx: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

impl PgWrite<'_> {
    fn open(&mut self) -> Result<&mut DbConn, StoreError> {
        self.tx
            .as_deref_mut()
            .ok_or(StoreError::Database(sqlx::Error::Protocol(
                "group commit statement outside its transaction".into(),
            )))
    }
}

fn bind<'q>(
    sql: &'q str,
    params: &[Param<'q>],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    params
        .iter()
        .fold(sqlx::query(sql), |query, param| match *param {
            Param::Text(text) => query.bind(text),
            Param::MaybeText(text) => query.bind(text),
            Param::Int(number) => query.bind(number),
            Param::MaybeInt(number) => query.bind(number),
            Param::Json(value) => query.bind(sqlx::types::Json(value)),
            Param::RawJson(value) => query.bind(sqlx::types::Json(value)),
        })
}

impl WriteTx for PgWrite<'_> {
    const ROWS_PER_STATEMENT: usize = shared::ROWS_PER_STATEMENT;
    const EXACT_STATE_TEXT: bool = EXACT_STATE_TEXT;

    async fn begin(&mut self) -> Result<(), StoreError> {
        self.tx = Some(self.pool.begin().await.map_err(classify)?);
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        match self.tx.take() {
            Some(tx) => tx.commit().await.map_err(classify),
            None => Ok(()),
        }
    }

    async fn rollback(&mut self) {
        if let Some(tx) = self.tx.take() {
            // Dropping the transaction rolls it back as well.
            let _ = tx.rollback().await;
        }
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let conn = self.open()?;
        let done = bind(sql, params).execute(conn).await.map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn fetch_ids(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<String>, StoreError> {
        use sqlx::Row as _;
        let conn = self.open()?;
        let rows = bind(sql, params).fetch_all(conn).await.map_err(classify)?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).map_err(classify))
            .collect()
    }

    async fn fetch_head(&mut self, instance_id: &str) -> Result<Option<(i64, String)>, StoreError> {
        let conn = self.open()?;
        sqlx::query_as::<_, (i64, String)>(group_write::HEAD_SQL)
            .bind(instance_id)
            .fetch_optional(conn)
            .await
            .map_err(classify)
    }
}

impl PostgresStore {
    /// The pool that writes, for adapters keeping their tables in this database.
    /// Runs another component's migrations (see `migrations`).
    pub(crate) async fn migrate_component(
        &self,
        component: &'static migrations::ComponentMigrations,
    ) -> Result<(), StoreError> {
        migrations::run(
            component.component,
            &self.writer,
            component.postgres,
            component.versions.clone(),
            classify,
        )
        .await
    }

    pub(crate) fn write_pool(&self) -> &PgPool {
        &self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/jiuzhu?sslmode=require"),
            "postgres://app:***@db:5432/jiuzhu?sslmode=require"
        );
        assert_eq!(
            redact("postgres://app@db/jiuzhu"),
            "postgres://app@db/jiuzhu"
        );
        assert_eq!(redact("postgres:///jiuzhu"), "postgres:///jiuzhu");
    }

    #[test]
    fn migrations_reach_the_schema_version() {
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(shared::SCHEMA_VERSION));
    }
}
