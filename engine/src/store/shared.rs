//! What the SQLite and PostgreSQL stores share: SQL text, row helpers, the chain-head cache,
//! embedded migrations, and the store methods themselves.
//!
//! The two backends run the same SQL (sqlx's SQLite driver maps `$N` placeholders to the
//! N-th argument, as PostgreSQL does), so the method bodies are written once, in
//! [`store_methods!`], and stamped into each backend's `impl` with that backend's concrete
//! connection and row types. Writing them generically over `sqlx::Database` would need a wall
//! of higher-ranked bounds for every bound type; the macro keeps the bodies plain.

pub(crate) use super::links::{ChainHead, PreparedStep, RowHead, checked_instance, prepare_link};
use super::{CommitProblem, StepCommit, StoreError};
use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// The newest schema version this binary knows (the last embedded migration, both databases).
pub(crate) const SCHEMA_VERSION: i64 = 13;

/// Rows per multi-row statement: keeps bound parameters (≤ 12 a row) far below both
/// databases' limits while still writing a large group in a handful of statements.
pub(crate) const ROWS_PER_STATEMENT: usize = 200;

pub(crate) const INSTANCE_COLUMNS: &str = "id, process_id, process_version, status, outcome, unit, state, version, created_at, updated_at, history_hash, head_mac";
pub(crate) const TASK_COLUMNS: &str = "id, instance_id, node_id, label, role, unit, assignee, due_at, created_at, form, roles, provisional";
pub(crate) const DEPLOYMENT_COLUMNS: &str = "process_id, version, hash, source, deployed_at";

/// Migrations compiled into the binary, handed to sqlx's migrator.
#[derive(Debug)]
pub(crate) struct EmbeddedMigrations(pub &'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// A migration error, recognising a database written by a newer binary.
pub(crate) fn migrate_error(
    error: sqlx::migrate::MigrateError,
    classify: fn(sqlx::Error) -> StoreError,
) -> StoreError {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::VersionMissing(found) if found > SCHEMA_VERSION => StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        },
        MigrateError::Execute(source) => classify(source),
        other => StoreError::Migration(other),
    }
}

pub(crate) fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_ms(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or(StoreError::Corrupt {
        what: "timestamp",
        source: None,
    })
}

pub(crate) fn from_ms_opt(millis: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    millis.map(from_ms).transpose()
}

/// `INSERT INTO <head> VALUES ($1, ..), ($k, ..)` for `rows` rows of `columns` values.
pub(crate) fn multi_row_insert(head: &str, columns: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * columns * 5 + 16);
    sql.push_str("INSERT INTO ");
    sql.push_str(head);
    sql.push_str(" VALUES ");
    push_value_rows(&mut sql, 1, columns, rows);
    sql
}

/// Appends `($start, ..), (..)` placeholder rows; returns the next free placeholder number.
pub(crate) fn push_value_rows(
    sql: &mut String,
    start: usize,
    columns: usize,
    rows: usize,
) -> usize {
    let mut next = start;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        next = push_placeholders(sql, next, columns);
        sql.push(')');
    }
    next
}

/// Appends `$start, .., $(start + count - 1)`; returns the next free placeholder number.
pub(crate) fn push_placeholders(sql: &mut String, start: usize, count: usize) -> usize {
    use std::fmt::Write as _;
    for n in start..start + count {
        if n > start {
            sql.push_str(", ");
        }
        let _ = write!(sql, "${n}");
    }
    start + count
}

/// The smallest string greater than every path below `unit` (`unit + "/" ...`): '0' follows
/// '/' in byte order, so `[unit + "/", unit + "0")` is exactly the subtree.
pub(crate) fn subtree_bounds(unit: &str) -> (String, String, String) {
    let unit = unit.trim_end_matches('/');
    (unit.to_owned(), format!("{unit}/"), format!("{unit}0"))
}

/// Checks what can be checked without the database.
pub(crate) fn check_step(step: &StepCommit) -> Result<(), StoreError> {
    let instance = &step.instance;
    let invalid = |problem| StoreError::InvalidCommit {
        instance_id: instance.id.clone(),
        problem,
    };
    if instance.version != step.expected_version.unwrap_or(0) + 1 {
        return Err(invalid(CommitProblem::VersionNotNext));
    }
    let foreign = step
        .tasks_opened
        .iter()
        .any(|t| t.instance_id != instance.id)
        || step.timers_set.iter().any(|t| t.instance_id != instance.id)
        || step.outbox.iter().any(|o| o.instance_id != instance.id);
    if foreign {
        return Err(invalid(CommitProblem::ForeignInstance));
    }
    if let Some(completion) = &step.completes
        && !step.tasks_closed.contains(&completion.task_id)
    {
        return Err(invalid(CommitProblem::CompletionNotClosed));
    }
    Ok(())
}

/// True for errors that one step of a group caused (and that should fail that step alone).
pub(crate) fn is_step_error(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Conflict { .. } | StoreError::Dangling { .. }
    )
}

pub(crate) enum StepPlan {
    Write(PreparedStep),
    Reject(StoreError),
}

pub(crate) use super::head_cache::HeadCache;

/// The store methods, written once for both backends. Expanded inside `impl <Backend>`;
/// expects in scope: `DbRow`, `classify`, `CLAIM_TIMERS_SQL`, `CLAIM_OUTBOX_SQL`,
/// and on `self`: `reader`, `writer` (pools), `heads` ([`HeadCache`]) and `begin_write()`.
macro_rules! store_methods {
    () => {
        pub(crate) async fn deploy(
            &self,
            deployments: &[$crate::store::NewDeployment],
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<Vec<$crate::store::Deployment>, $crate::store::StoreError> {
            use $crate::store::{Deployment, StoreError};
            for new in deployments {
                if $crate::store::sha256_hex(new.source.as_bytes()) != new.hash.to_ascii_lowercase() {
                    return Err(StoreError::HashMismatch {
                        process_id: new.process_id.clone(),
                    });
                }
            }
            let mut tx = self.begin_write().await?;
            let mut deployed = Vec::with_capacity(deployments.len());
            for new in deployments {
                let latest = sqlx::query(&format!(
                    "SELECT {} FROM deployments WHERE process_id = $1 ORDER BY version DESC LIMIT 1",
                    shared::DEPLOYMENT_COLUMNS
                ))
                .bind(&new.process_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?
                .map(|row| Self::deployment_from_row(&row))
                .transpose()?;
                let hash = new.hash.to_ascii_lowercase();
                match latest {
                    Some(latest) if latest.hash == hash => deployed.push(latest),
                    latest => {
                        let version = latest.map_or(1, |latest| latest.version + 1);
                        sqlx::query(
                            "INSERT INTO deployments (process_id, version, hash, source, deployed_at) VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&new.process_id)
                        .bind(version)
                        .bind(&hash)
                        .bind(&new.source)
                        .bind(shared::ms(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                        deployed.push(Deployment {
                            process_id: new.process_id.clone(),
                            version,
                            hash,
                            source: new.source.clone(),
                            deployed_at: shared::from_ms(shared::ms(now))?,
                        });
                    }
                }
            }
            tx.commit().await.map_err(classify)?;
            Ok(deployed)
        }

        fn deployment_from_row(
            row: &DbRow,
        ) -> Result<$crate::store::Deployment, $crate::store::StoreError> {
            use sqlx::Row as _;
            Ok($crate::store::Deployment {
                process_id: row.try_get("process_id").map_err(classify)?,
                version: row.try_get("version").map_err(classify)?,
                hash: row.try_get("hash").map_err(classify)?,
                source: row.try_get("source").map_err(classify)?,
                deployed_at: shared::from_ms(row.try_get("deployed_at").map_err(classify)?)?,
            })
        }

        pub(crate) async fn latest_deployment(
            &self,
            process_id: &str,
        ) -> Result<Option<$crate::store::Deployment>, $crate::store::StoreError> {
            sqlx::query(&format!(
                "SELECT {} FROM deployments WHERE process_id = $1 ORDER BY version DESC LIMIT 1",
                shared::DEPLOYMENT_COLUMNS
            ))
            .bind(process_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?
            .map(|row| Self::deployment_from_row(&row))
            .transpose()
        }

        pub(crate) async fn deployment(
            &self,
            process_id: &str,
            version: i64,
        ) -> Result<Option<$crate::store::Deployment>, $crate::store::StoreError> {
            sqlx::query(&format!(
                "SELECT {} FROM deployments WHERE process_id = $1 AND version = $2",
                shared::DEPLOYMENT_COLUMNS
            ))
            .bind(process_id)
            .bind(version)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?
            .map(|row| Self::deployment_from_row(&row))
            .transpose()
        }

        pub(crate) async fn deployments(
            &self,
        ) -> Result<Vec<$crate::store::Deployment>, $crate::store::StoreError> {
            sqlx::query(&format!(
                "SELECT {} FROM deployments ORDER BY process_id, version",
                shared::DEPLOYMENT_COLUMNS
            ))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?
            .iter()
            .map(Self::deployment_from_row)
            .collect()
        }

        /// An instance row and what it records of its chain's head.
        fn instance_from_row(
            row: &DbRow,
        ) -> Result<($crate::store::InstanceRow, shared::RowHead), $crate::store::StoreError> {
            use sqlx::Row as _;
            let id: String = row.try_get("id").map_err(classify)?;
            // Kept as text (checked to be JSON): the step reads it into its typed state.
            let state: sqlx::types::Json<$crate::store::StateJson> =
                row.try_get("state").map_err(|_| {
                    $crate::store::StoreError::UnreadableState {
                        instance_id: id.clone(),
                    }
                })?;
            Ok((
                $crate::store::InstanceRow {
                    id,
                    process_id: row.try_get("process_id").map_err(classify)?,
                    process_version: row.try_get("process_version").map_err(classify)?,
                    status: row.try_get("status").map_err(classify)?,
                    outcome: row.try_get("outcome").map_err(classify)?,
                    unit: row.try_get("unit").map_err(classify)?,
                    state: state.0,
                    version: row.try_get("version").map_err(classify)?,
                    created_at: shared::from_ms(row.try_get("created_at").map_err(classify)?)?,
                    updated_at: shared::from_ms(row.try_get("updated_at").map_err(classify)?)?,
                },
                shared::RowHead {
                    hash: row.try_get("history_hash").map_err(classify)?,
                    mac: row.try_get("head_mac").map_err(classify)?,
                },
            ))
        }

        /// An instance row checked against its signed head (see [`shared::checked_instance`]).
        fn checked_instance_from_row(
            &self,
            row: &DbRow,
        ) -> Result<($crate::store::InstanceRow, String), $crate::store::StoreError> {
            shared::checked_instance(
                Self::instance_from_row(row),
                self.audit.as_deref(),
                EXACT_STATE_TEXT,
            )
        }

        pub(crate) async fn load_instance(
            &self,
            id: &str,
        ) -> Result<Option<$crate::store::InstanceRow>, $crate::store::StoreError> {
            let row = sqlx::query(&format!(
                "SELECT {} FROM instances WHERE id = $1",
                shared::INSTANCE_COLUMNS
            ))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
            let Some(row) = row else { return Ok(None) };
            let (instance, head) = self.checked_instance_from_row(&row)?;
            // The runner's next step on this instance links to this head without a read.
            self.heads.put(instance.id.clone(), instance.version, head);
            Ok(Some(instance))
        }

        /// Many instances, read in one statement per [`shared::ROWS_PER_STATEMENT`] ids;
        /// unknown ids are absent from the result, which is in no particular order, and so
        /// are instances that fail their head check (their own load reports it).
        pub(crate) async fn load_instances(
            &self,
            ids: &[String],
        ) -> Result<Vec<$crate::store::InstanceRow>, $crate::store::StoreError> {
            let mut instances = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(shared::ROWS_PER_STATEMENT) {
                let mut sql = format!(
                    "SELECT {} FROM instances WHERE id IN (",
                    shared::INSTANCE_COLUMNS
                );
                shared::push_placeholders(&mut sql, 1, chunk.len());
                sql.push(')');
                let mut query = sqlx::query(&sql);
                for id in chunk {
                    query = query.bind(id);
                }
                let rows = query.fetch_all(&self.reader).await.map_err(classify)?;
                for row in &rows {
                    let (instance, head) = match self.checked_instance_from_row(row) {
                        Ok(checked) => checked,
                        Err(
                            $crate::store::StoreError::Tampered(_)
                            | $crate::store::StoreError::UnreadableState { .. },
                        ) => continue,
                        Err(error) => return Err(error),
                    };
                    // As in `load_instance`: the next step links to this head without a read.
                    self.heads.put(instance.id.clone(), instance.version, head);
                    instances.push(instance);
                }
            }
            Ok(instances)
        }

        pub(crate) async fn list_instances(
            &self,
            filter: &$crate::store::InstanceFilter,
        ) -> Result<Vec<$crate::store::InstanceRow>, $crate::store::StoreError> {
            self.list_in("instances", filter).await
        }

        /// `list_instances` over `table`: `instances` or `archived_instances`.
        async fn list_in(
            &self,
            table: &str,
            filter: &$crate::store::InstanceFilter,
        ) -> Result<Vec<$crate::store::InstanceRow>, $crate::store::StoreError> {
            let mut sql = format!("SELECT {} FROM {table} WHERE 1 = 1", shared::INSTANCE_COLUMNS);
            let mut next = 1;
            if filter.process_id.is_some() {
                sql.push_str(&format!(" AND process_id = ${next}"));
                next += 1;
            }
            if filter.status.is_some() {
                sql.push_str(&format!(" AND status = ${next}"));
                next += 1;
            }
            let bounds = filter.unit.as_deref().map(shared::subtree_bounds);
            if bounds.is_some() {
                sql.push_str(&format!(
                    " AND (unit = ${} OR (unit >= ${} AND unit < ${}))",
                    next,
                    next + 1,
                    next + 2
                ));
                next += 3;
            }
            sql.push_str(&format!(
                " ORDER BY created_at, id LIMIT ${} OFFSET ${}",
                next,
                next + 1
            ));
            let mut query = sqlx::query(&sql);
            if let Some(process_id) = &filter.process_id {
                query = query.bind(process_id);
            }
            if let Some(status) = &filter.status {
                query = query.bind(status);
            }
            if let Some((unit, low, high)) = &bounds {
                query = query.bind(unit).bind(low).bind(high);
            }
            query = query
                .bind(i64::from(filter.limit))
                .bind(i64::from(filter.offset));
            query
                .fetch_all(&self.reader)
                .await
                .map_err(classify)?
                .iter()
                .map(|row| Self::instance_from_row(row).map(|(instance, _)| instance))
                .collect()
        }

        fn task_from_row(
            row: &DbRow,
        ) -> Result<$crate::store::TaskRow, $crate::store::StoreError> {
            use sqlx::Row as _;
            let form: sqlx::types::Json<serde_json::Value> =
                row.try_get("form").map_err(classify)?;
            Ok($crate::store::TaskRow {
                id: row.try_get("id").map_err(classify)?,
                instance_id: row.try_get("instance_id").map_err(classify)?,
                node_id: row.try_get("node_id").map_err(classify)?,
                label: row.try_get("label").map_err(classify)?,
                role: row.try_get("role").map_err(classify)?,
                unit: row.try_get("unit").map_err(classify)?,
                assignee: row.try_get("assignee").map_err(classify)?,
                due_at: shared::from_ms_opt(row.try_get("due_at").map_err(classify)?)?,
                created_at: shared::from_ms(row.try_get("created_at").map_err(classify)?)?,
                form: form.0,
                roles: {
                    let roles: sqlx::types::Json<Vec<String>> =
                        row.try_get("roles").map_err(classify)?;
                    roles.0
                },
                provisional: row.try_get::<i64, _>("provisional").map_err(classify)? != 0,
            })
        }

        pub(crate) async fn tasks_for(
            &self,
            roles: &[String],
            units: &[String],
            user: &str,
            limit: u32,
        ) -> Result<Vec<$crate::store::TaskRow>, $crate::store::StoreError> {
            if roles.is_empty() || units.is_empty() {
                return Ok(Vec::new());
            }
            // The page's task ids are picked by the inner query from the inbox index of
            // `task_roles` alone (one row per role of each open task; the index covers every
            // column the filter and the sort name); only those `limit` tasks are then read
            // from the table. DISTINCT keeps a task once when the user holds several of its
            // roles: its rows agree on due date and creation time, so they collapse into one.
            let mut sql = format!(
                "SELECT {} FROM tasks WHERE id IN (SELECT task_id FROM (SELECT DISTINCT task_id, due_at, created_at \
                 FROM task_roles WHERE (assignee IS NULL OR assignee = $1) AND role IN (",
                shared::TASK_COLUMNS
            );
            let mut next = shared::push_placeholders(&mut sql, 2, roles.len());
            sql.push_str(") AND (");
            let bounds: Vec<_> = units.iter().map(|unit| shared::subtree_bounds(unit)).collect();
            for i in 0..bounds.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                // One range per unit, [unit, unit + "0"), that the inbox index on (role, unit)
                // can seek; with a bare `unit = .. OR (..)` SQLite scans every task of the
                // role. The exact subtree test then drops the neighbours the range also
                // holds (`unit-x`, `unit.x`: bytes below '0').
                sql.push_str(&format!(
                    "(unit >= ${0} AND unit < ${2} AND (unit = ${0} OR unit >= ${1}))",
                    next,
                    next + 1,
                    next + 2
                ));
                next += 3;
            }
            sql.push_str(&format!(
                ") ORDER BY due_at ASC NULLS LAST, created_at, task_id LIMIT ${next}) AS page) \
                 ORDER BY due_at ASC NULLS LAST, created_at, id"
            ));
            let mut query = sqlx::query(&sql).bind(user);
            for role in roles {
                query = query.bind(role);
            }
            for (unit, low, high) in &bounds {
                query = query.bind(unit).bind(low).bind(high);
            }
            query
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await
                .map_err(classify)?
                .iter()
                .map(Self::task_from_row)
                .collect()
        }

        pub(crate) async fn instances_with_provisional_timers(
            &self,
        ) -> Result<Vec<String>, $crate::store::StoreError> {
            sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT instance_id FROM timers WHERE provisional <> 0 ORDER BY instance_id",
            )
            .fetch_all(&self.reader)
            .await
            .map_err(classify)
        }

        pub(crate) async fn provisional_counts(
            &self,
        ) -> Result<(i64, i64), $crate::store::StoreError> {
            let tasks: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tasks WHERE provisional <> 0 AND closed_at IS NULL",
            )
            .fetch_one(&self.reader)
            .await
            .map_err(classify)?;
            let timers: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM timers WHERE provisional <> 0")
                    .fetch_one(&self.reader)
                    .await
                    .map_err(classify)?;
            Ok((tasks, timers))
        }

        pub(crate) async fn task(
            &self,
            id: &str,
        ) -> Result<Option<$crate::store::TaskRow>, $crate::store::StoreError> {
            sqlx::query(&format!("SELECT {} FROM tasks WHERE id = $1", shared::TASK_COLUMNS))
                .bind(id)
                .fetch_optional(&self.reader)
                .await
                .map_err(classify)?
                .map(|row| Self::task_from_row(&row))
                .transpose()
        }

        pub(crate) async fn claim_due_timers(
            &self,
            node_id: &str,
            now: chrono::DateTime<chrono::Utc>,
            lease: chrono::Duration,
            limit: u32,
        ) -> Result<Vec<$crate::store::TimerRow>, $crate::store::StoreError> {
            use sqlx::Row as _;
            let rows = sqlx::query(CLAIM_TIMERS_SQL)
                .bind(shared::ms(now) + lease.num_milliseconds())
                .bind(node_id)
                .bind(shared::ms(now))
                .bind(i64::from(limit))
                .fetch_all(&self.writer)
                .await
                .map_err(classify)?;
            let mut timers = rows
                .iter()
                .map(|row| {
                    let payload: sqlx::types::Json<serde_json::Value> =
                        row.try_get("payload").map_err(classify)?;
                    Ok($crate::store::TimerRow {
                        id: row.try_get("id").map_err(classify)?,
                        instance_id: row.try_get("instance_id").map_err(classify)?,
                        due_at: shared::from_ms(row.try_get("due_at").map_err(classify)?)?,
                        payload: payload.0,
                        provisional: false,
                        attempts: row.try_get("attempts").map_err(classify)?,
                    })
                })
                .collect::<Result<Vec<_>, $crate::store::StoreError>>()?;
            // RETURNING has no order; hand timers out oldest first.
            timers.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
            Ok(timers)
        }

        pub(crate) async fn complete_timer(&self, id: &str) -> Result<bool, $crate::store::StoreError> {
            Ok(sqlx::query("DELETE FROM timers WHERE id = $1")
                .bind(id)
                .execute(&self.writer)
                .await
                .map_err(classify)?
                .rows_affected()
                == 1)
        }

        pub(crate) async fn oldest_due_timer_lag(
            &self,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<Option<chrono::Duration>, $crate::store::StoreError> {
            let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(available_at) FROM timers")
                .fetch_one(&self.reader)
                .await
                .map_err(classify)?;
            let now_ms = shared::ms(now);
            Ok(oldest
                .filter(|&oldest| oldest <= now_ms)
                .map(|oldest| chrono::Duration::milliseconds(now_ms - oldest)))
        }

        pub(crate) async fn claim_outbox(
            &self,
            node_id: &str,
            now: chrono::DateTime<chrono::Utc>,
            lease: chrono::Duration,
            limit: u32,
        ) -> Result<Vec<$crate::store::ClaimedOutbox>, $crate::store::StoreError> {
            use sqlx::Row as _;
            let rows = sqlx::query(CLAIM_OUTBOX_SQL)
                .bind(shared::ms(now) + lease.num_milliseconds())
                .bind(node_id)
                .bind(shared::ms(now))
                .bind(i64::from(limit))
                .fetch_all(&self.writer)
                .await
                .map_err(classify)?;
            let mut claimed = rows
                .iter()
                .map(|row| {
                    let payload: sqlx::types::Json<serde_json::Value> =
                        row.try_get("payload").map_err(classify)?;
                    Ok($crate::store::ClaimedOutbox {
                        entry: $crate::store::OutboxRow {
                            id: row.try_get("id").map_err(classify)?,
                            instance_id: row.try_get("instance_id").map_err(classify)?,
                            kind: row.try_get("kind").map_err(classify)?,
                            payload: payload.0,
                            created_at: shared::from_ms(
                                row.try_get("created_at").map_err(classify)?,
                            )?,
                        },
                        attempts: row.try_get("attempts").map_err(classify)?,
                        claims: row.try_get("claims").map_err(classify)?,
                    })
                })
                .collect::<Result<Vec<_>, $crate::store::StoreError>>()?;
            claimed.sort_by(|a, b| {
                (a.entry.created_at, &a.entry.id).cmp(&(b.entry.created_at, &b.entry.id))
            });
            Ok(claimed)
        }

        pub(crate) async fn mark_delivered(
            &self,
            id: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), $crate::store::StoreError> {
            let updated = sqlx::query(
                "UPDATE outbox SET status = 'delivered', delivered_at = $2, claimed_by = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(shared::ms(now))
            .execute(&self.writer)
            .await
            .map_err(classify)?
            .rows_affected();
            Self::found(updated, "outbox entry", id)
        }

        pub(crate) async fn mark_failed(
            &self,
            id: &str,
            error: &str,
            next_attempt_at: chrono::DateTime<chrono::Utc>,
            dead: bool,
        ) -> Result<(), $crate::store::StoreError> {
            let updated = sqlx::query(
                "UPDATE outbox SET status = $2, attempts = attempts + 1, last_error = $3, available_at = $4, claimed_by = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(if dead { "dead" } else { "pending" })
            .bind(error)
            .bind(shared::ms(next_attempt_at))
            .execute(&self.writer)
            .await
            .map_err(classify)?
            .rows_affected();
            Self::found(updated, "outbox entry", id)
        }

        fn found(
            rows: u64,
            what: &'static str,
            id: &str,
        ) -> Result<(), $crate::store::StoreError> {
            if rows == 0 {
                Err($crate::store::StoreError::NotFound {
                    what,
                    id: id.to_owned(),
                })
            } else {
                Ok(())
            }
        }

        /// The instance's head, then its rows up to its version: read in this order, a step
        /// committed in between cannot look like tampering.
        async fn chain_rows(
            &self,
            instance_id: &str,
        ) -> Result<(shared::ChainHead, Vec<DbRow>), $crate::store::StoreError> {
            use sqlx::Row as _;
            // A case not live may be archived: its chain is read from the archive's tables
            // (the same columns) and verified the same way.
            let mut history_table = "history";
            let mut head = None;
            for (instances, history) in
                [("instances", "history"), ("archived_instances", "archived_history")]
            {
                head = sqlx::query(&format!(
                    "SELECT version, history_hash, head_mac, state FROM {instances} WHERE id = $1"
                ))
                .bind(instance_id)
                .fetch_optional(&self.reader)
                .await
                .map_err(classify)?;
                if head.is_some() {
                    history_table = history;
                    break;
                }
            }
            let head = head.ok_or_else(|| $crate::store::StoreError::NotFound {
                what: "instance",
                id: instance_id.to_owned(),
            })?;
            let state: Option<sqlx::types::Json<$crate::store::StateJson>> =
                head.try_get("state").ok();
            let head = shared::ChainHead {
                version: head.try_get("version").map_err(classify)?,
                hash: head.try_get("history_hash").map_err(classify)?,
                mac: head.try_get("head_mac").map_err(classify)?,
                state_hash: state
                    .and_then(|s| $crate::audit::state_hash(s.0.as_str(), EXACT_STATE_TEXT)),
            };
            let rows = sqlx::query(&format!(
                "SELECT seq, at, actor, event, node, data, prev_hash, hash, scheme, state_hash \
                 FROM {history_table} WHERE instance_id = $1 AND seq <= $2 ORDER BY seq"
            ))
            .bind(instance_id)
            .bind(head.version)
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
            Ok((head, rows))
        }

        /// Ids of instances after `after` (all from the start with `None`), `limit` at most,
        /// in id order: the pages an audit walks.
        pub(crate) async fn instance_ids_after(
            &self,
            after: Option<&str>,
            limit: u32,
        ) -> Result<Vec<String>, $crate::store::StoreError> {
            sqlx::query_scalar("SELECT id FROM instances WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await
                .map_err(classify)
        }

        /// Signs the head of every case that has none (cases from before the audit key),
        /// as it stands now; the number signed. Each is signed at the version read, so a
        /// step committed meanwhile is left alone (it wrote its own head MAC).
        pub(crate) async fn seal_unsealed(&self) -> Result<u64, $crate::store::StoreError> {
            use sqlx::Row as _;
            let Some(key) = self.audit.clone() else {
                return Ok(0);
            };
            let mut sealed = 0;
            let mut after = String::new();
            loop {
                let rows = sqlx::query(
                    "SELECT id, version, history_hash, state FROM instances \
                     WHERE head_mac IS NULL AND id > $1 ORDER BY id LIMIT 500",
                )
                .bind(&after)
                .fetch_all(&self.writer)
                .await
                .map_err(classify)?;
                let Some(last) = rows.last() else { break };
                after = last.try_get("id").map_err(classify)?;
                for row in &rows {
                    let id: String = row.try_get("id").map_err(classify)?;
                    let version: i64 = row.try_get("version").map_err(classify)?;
                    let hash: String = row.try_get("history_hash").map_err(classify)?;
                    let state: Option<sqlx::types::Json<$crate::store::StateJson>> =
                        row.try_get("state").ok();
                    // An unreadable state is left unsealed: its check reports it.
                    let Some(state_hash) =
                        state.and_then(|s| {
                            $crate::audit::state_hash(s.0.as_str(), EXACT_STATE_TEXT)
                        })
                    else {
                        continue;
                    };
                    let mac = key.head_mac(&id, version, &hash, &state_hash);
                    sealed += sqlx::query(
                        "UPDATE instances SET head_mac = $1 \
                         WHERE id = $2 AND version = $3 AND head_mac IS NULL",
                    )
                    .bind(mac)
                    .bind(&id)
                    .bind(version)
                    .execute(&self.writer)
                    .await
                    .map_err(classify)?
                    .rows_affected();
                }
            }
            Ok(sealed)
        }

        pub(crate) async fn history(
            &self,
            instance_id: &str,
        ) -> Result<Vec<$crate::store::HistoryRecord>, $crate::store::StoreError> {
            use sqlx::Row as _;
            let (_, rows) = self.chain_rows(instance_id).await?;
            rows.iter()
                .map(|row| {
                    let data: String = row.try_get("data").map_err(classify)?;
                    Ok($crate::store::HistoryRecord {
                        seq: row.try_get("seq").map_err(classify)?,
                        at: shared::from_ms(row.try_get("at").map_err(classify)?)?,
                        actor: row.try_get("actor").map_err(classify)?,
                        event: row.try_get("event").map_err(classify)?,
                        node: row.try_get("node").map_err(classify)?,
                        data: serde_json::from_str(&data).map_err(|source| {
                            $crate::store::StoreError::Corrupt {
                                what: "history data",
                                source: Some(source),
                            }
                        })?,
                        prev_hash: row.try_get("prev_hash").map_err(classify)?,
                        hash: row.try_get("hash").map_err(classify)?,
                    })
                })
                .collect()
        }

        pub(crate) async fn verify_history(
            &self,
            instance_id: &str,
        ) -> Result<$crate::store::VerifiedChain, $crate::store::StoreError> {
            use sqlx::Row as _;
            struct Owned {
                seq: i64,
                at: i64,
                actor: Option<String>,
                event: String,
                node: Option<String>,
                data: String,
                prev_hash: String,
                hash: String,
                scheme: i64,
                state_hash: Option<String>,
            }
            let (head, rows) = self.chain_rows(instance_id).await?;
            let owned = rows
                .iter()
                .map(|row| {
                    Ok(Owned {
                        seq: row.try_get("seq")?,
                        at: row.try_get("at")?,
                        actor: row.try_get("actor")?,
                        event: row.try_get("event")?,
                        node: row.try_get("node")?,
                        data: row.try_get("data")?,
                        prev_hash: row.try_get("prev_hash")?,
                        hash: row.try_get("hash")?,
                        scheme: row.try_get::<i32, _>("scheme").map(i64::from)?,
                        state_hash: row.try_get("state_hash")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(classify)?;
            let links: Vec<_> = owned
                .iter()
                .map(|row| $crate::store::chain::StoredLink {
                    row: $crate::store::chain::ChainedRow {
                        seq: row.seq,
                        at_ms: row.at,
                        actor: row.actor.as_deref(),
                        event: &row.event,
                        node: row.node.as_deref(),
                        data_json: &row.data,
                    },
                    prev_hash: &row.prev_hash,
                    hash: &row.hash,
                    scheme: row.scheme,
                    state_hash: row.state_hash.as_deref(),
                })
                .collect();
            Ok($crate::store::chain::verify_chain(
                instance_id,
                &links,
                &head.recorded(),
                self.audit.as_deref(),
            )?)
        }

        pub(crate) async fn close(&self) {
            self.reader.close().await;
            self.writer.close().await;
        }
    };
}

pub(crate) use store_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(
            multi_row_insert("t (a, b)", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }

    #[test]
    fn subtree_bounds_cover_exactly_the_units_below() {
        let (unit, low, high) = subtree_bounds("gd/sz/");
        assert_eq!(unit, "gd/sz");
        let inside = |candidate: &str| {
            candidate == unit || (candidate >= low.as_str() && candidate < high.as_str())
        };
        assert!(inside("gd/sz"));
        assert!(inside("gd/sz/futian"));
        assert!(inside("gd/sz/futian/x"));
        assert!(!inside("gd/szx"));
        assert!(!inside("gd/sz0"));
        assert!(!inside("gd/s"));
        assert!(!inside("gd"));
    }
}
