//! Bench-only store functions for `jiuzhu bench`: bulk seeding of fresh cases, the raw-commit
//! probe that calibrates a run, row counts to check a run, query plans, and a throw-away
//! PostgreSQL database. The engine itself never calls anything here.
//!
//! Seeding writes exactly the rows a start step writes (instance, first history link, the
//! assessment inputs of a case decided at once, tasks, timers, outbox), but many cases per multi-row statement and without the per-step version
//! check: a million pending timers or open tasks are seeded in seconds, not in the hours a
//! benchmark would spend committing them one by one.

use super::group_write::Param;
use super::shared::{self, ROWS_PER_STATEMENT, ms};
use super::{Backend, StepCommit, Store, StoreError, postgres, raw_sqlite, sqlite};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Rows of each table, to check what a benchmark run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BenchCounts {
    pub instances: i64,
    pub completed_instances: i64,
    pub history: i64,
    pub open_tasks: i64,
    pub timers: i64,
    pub outbox: i64,
}

/// A fresh PostgreSQL database created for one benchmark run; [`BenchDatabase::drop_database`]
/// removes it.
#[derive(Debug, Clone)]
pub struct BenchDatabase {
    /// The server URL the database was created from.
    pub admin_url: String,
    pub name: String,
    /// The URL of the new database.
    pub url: String,
}

/// The claim's inner query: what `claim_due_timers` scans.
const TIMER_CLAIM_SELECT: &str =
    "SELECT id FROM timers WHERE available_at <= $1 ORDER BY available_at LIMIT $2";

/// Writes fresh cases with multi-row statements; stamped per backend (see `shared`).
macro_rules! seed_rows {
    ($conn:expr, $steps:expr, $hashes:expr) => {
        async {
        let conn = $conn;
        let steps: &[StepCommit] = $steps;
        let hashes: &[shared::PreparedStep] = $hashes;
        for (chunk, chunk_hashes) in steps
            .chunks(ROWS_PER_STATEMENT)
            .zip(hashes.chunks(ROWS_PER_STATEMENT))
        {
            let sql = shared::multi_row_insert(
                "instances (id, process_id, process_version, status, outcome, unit, state, version, created_at, updated_at, history_hash, head_mac)",
                12,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for (step, link) in chunk.iter().zip(chunk_hashes) {
                let instance = &step.instance;
                query = query
                    .bind(&instance.id)
                    .bind(&instance.process_id)
                    .bind(instance.process_version)
                    .bind(&instance.status)
                    .bind(instance.outcome.as_deref())
                    .bind(&instance.unit)
                    .bind(sqlx::types::Json(&instance.state))
                    .bind(instance.version)
                    .bind(ms(instance.created_at))
                    .bind(ms(instance.updated_at))
                    .bind(&link.hash)
                    .bind(link.head_mac.as_deref());
            }
            query.execute(&mut *conn).await?;

            let sql = shared::multi_row_insert(
                "history (instance_id, seq, at, actor, event, node, data, prev_hash, hash, scheme, state_hash)",
                11,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for (step, link) in chunk.iter().zip(chunk_hashes) {
                query = query
                    .bind(&step.instance.id)
                    .bind(step.instance.version)
                    .bind(ms(step.history.at))
                    .bind(step.history.actor.as_deref())
                    .bind(&step.history.event)
                    .bind(step.history.node.as_deref())
                    .bind(&link.data_json)
                    .bind(super::GENESIS_HASH)
                    .bind(&link.hash)
                    .bind(link.scheme)
                    .bind(link.state_hash.as_deref());
            }
            query.execute(&mut *conn).await?;

            // The assessment inputs of the cases decided at their start, as a commit
            // writes them (`assessment_inputs`).
            let decided: Vec<&StepCommit> =
                chunk.iter().filter(|s| s.instance.outcome.is_some()).collect();
            if !decided.is_empty() {
                let sql = shared::multi_row_insert(
                    "assessment_inputs (instance_id, process_id, status, outcome, unit, updated_at, inputs)",
                    7,
                    decided.len(),
                );
                let mut query = sqlx::query(&sql);
                for step in decided {
                    let instance = &step.instance;
                    query = query
                        .bind(&instance.id)
                        .bind(&instance.process_id)
                        .bind(&instance.status)
                        .bind(instance.outcome.as_deref())
                        .bind(&instance.unit)
                        .bind(ms(instance.updated_at))
                        .bind(super::assessment_inputs::inputs_of_state(instance.state.as_str()));
                }
                query.execute(&mut *conn).await?;
            }
        }

        let tasks: Vec<&super::TaskRow> = steps.iter().flat_map(|s| &s.tasks_opened).collect();
        for chunk in tasks.chunks(ROWS_PER_STATEMENT) {
            let sql = shared::multi_row_insert(
                "tasks (id, instance_id, node_id, label, role, unit, assignee, due_at, created_at, form, roles)",
                11,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for task in chunk {
                query = query
                    .bind(&task.id)
                    .bind(&task.instance_id)
                    .bind(&task.node_id)
                    .bind(&task.label)
                    .bind(&task.role)
                    .bind(&task.unit)
                    .bind(task.assignee.as_deref())
                    .bind(task.due_at.map(ms))
                    .bind(ms(task.created_at))
                    .bind(sqlx::types::Json(&task.form))
                    .bind(sqlx::types::Json(task.candidate_roles()));
            }
            query.execute(&mut *conn).await?;
        }

        // The inbox rows, one per candidate role, as a commit writes them.
        let candidates: Vec<(&super::TaskRow, &String)> = tasks
            .iter()
            .flat_map(|task| task.candidate_roles().iter().map(move |role| (*task, role)))
            .collect();
        for chunk in candidates.chunks(ROWS_PER_STATEMENT) {
            let sql = shared::multi_row_insert(
                "task_roles (task_id, role, unit, due_at, created_at, assignee)",
                6,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for (task, role) in chunk {
                query = query
                    .bind(&task.id)
                    .bind(*role)
                    .bind(&task.unit)
                    .bind(task.due_at.map(ms))
                    .bind(ms(task.created_at))
                    .bind(task.assignee.as_deref());
            }
            query.execute(&mut *conn).await?;
        }

        let timers: Vec<&super::TimerRow> = steps.iter().flat_map(|s| &s.timers_set).collect();
        for chunk in timers.chunks(ROWS_PER_STATEMENT) {
            let sql = shared::multi_row_insert(
                "timers (id, instance_id, due_at, payload, available_at)",
                5,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for timer in chunk {
                query = query
                    .bind(&timer.id)
                    .bind(&timer.instance_id)
                    .bind(ms(timer.due_at))
                    .bind(sqlx::types::Json(&timer.payload))
                    .bind(ms(timer.due_at));
            }
            query.execute(&mut *conn).await?;
        }

        let outbox: Vec<&super::OutboxRow> = steps.iter().flat_map(|s| &s.outbox).collect();
        for chunk in outbox.chunks(ROWS_PER_STATEMENT) {
            let sql = shared::multi_row_insert(
                "outbox (id, instance_id, kind, payload, created_at, available_at)",
                6,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for entry in chunk {
                query = query
                    .bind(&entry.id)
                    .bind(&entry.instance_id)
                    .bind(&entry.kind)
                    .bind(sqlx::types::Json(&entry.payload))
                    .bind(ms(entry.created_at))
                    .bind(ms(entry.created_at));
            }
            query.execute(&mut *conn).await?;
        }
        Ok::<(), sqlx::Error>(())
        }
        .await
    };
}

/// Counts rows; stamped per backend.
macro_rules! count_rows {
    ($pool:expr, $classify:path) => {{
        let count = |sql: &'static str| {
            let pool = $pool;
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(pool)
                    .await
                    .map_err($classify)
            }
        };
        Ok(BenchCounts {
            instances: count("SELECT COUNT(*) FROM instances").await?,
            completed_instances: count("SELECT COUNT(*) FROM instances WHERE status = 'completed'")
                .await?,
            history: count("SELECT COUNT(*) FROM history").await?,
            open_tasks: count("SELECT COUNT(*) FROM tasks WHERE closed_at IS NULL").await?,
            timers: count("SELECT COUNT(*) FROM timers").await?,
            outbox: count("SELECT COUNT(*) FROM outbox").await?,
        })
    }};
}

/// The store's audit key and state hashing, for the seeded rows' links.
fn delegate_key(backend: &Backend) -> (Option<&crate::audit::AuditKey>, bool) {
    match backend {
        Backend::Sqlite(store) => (store.audit.as_deref(), sqlite::EXACT_STATE_TEXT),
        Backend::Postgres(store) => (store.audit.as_deref(), false),
    }
}

impl Store {
    /// BENCH ONLY: writes fresh cases, each a start step (`expected_version` is `None`), with
    /// their history link, tasks, timers and outbox in ONE transaction of multi-row
    /// statements. It skips the duplicate and version handling of [`Store::commit_group`]: a
    /// duplicate id fails the whole batch. For seeding benchmarks; never use it for real cases.
    pub async fn bench_seed(&self, steps: &[StepCommit]) -> Result<(), StoreError> {
        // The hash chain's first links, worked out before the transaction opens.
        let mut hashes = Vec::with_capacity(steps.len());
        for step in steps {
            shared::check_step(step)?;
            if step.expected_version.is_some() {
                return Err(StoreError::InvalidCommit {
                    instance_id: step.instance.id.clone(),
                    problem: super::CommitProblem::VersionNotNext,
                });
            }
            let (key, exact) = delegate_key(&self.backend);
            hashes.push(shared::prepare_link(
                key,
                exact,
                step,
                hashes.len(),
                super::GENESIS_HASH.to_owned(),
            )?);
        }
        match &self.backend {
            Backend::Sqlite(store) => {
                let mut tx = store.begin_write().await?;
                seed_rows!(&mut *tx, steps, &hashes).map_err(sqlite::classify)?;
                tx.commit().await.map_err(sqlite::classify)
            }
            Backend::Postgres(store) => {
                let mut tx = store.begin_write().await?;
                seed_rows!(&mut *tx, steps, &hashes).map_err(postgres::classify)?;
                tx.commit().await.map_err(postgres::classify)
            }
        }
    }

    /// BENCH ONLY: the floor under a step. Commits `count` transactions of one small-row
    /// upsert each (a 600-byte row, as the peers' `sqlite_limit.py` does) through the store's
    /// own writer, the way a step commits — on SQLite the raw writer connection, on
    /// PostgreSQL a sqlx transaction — so with the same driver and durability settings;
    /// returns the elapsed time. Uses its own table, dropped afterwards.
    pub async fn bench_raw_commits(&self, count: u32) -> Result<Duration, StoreError> {
        const CREATE: &str =
            "CREATE TABLE IF NOT EXISTS bench_raw (id BIGINT PRIMARY KEY, state TEXT NOT NULL)";
        const UPSERT: &str = "INSERT INTO bench_raw (id, state) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state";
        const DROP: &str = "DROP TABLE bench_raw";
        let payload = "x".repeat(600);
        match &self.backend {
            Backend::Sqlite(store) => {
                let ddl = |sql| move |tx: &mut raw_sqlite::RawTx| tx.run(sql).and(tx.run("COMMIT"));
                store.with_writer(ddl(CREATE)).await?;
                let started = Instant::now();
                for i in 0..count {
                    let params = [Param::Int(i64::from(i % 1000)), Param::Text(&payload)];
                    store
                        .with_writer(|tx| {
                            tx.prepare(UPSERT, &params)?
                                .raw_execute()
                                .map_err(raw_sqlite::store_error)?;
                            tx.run("COMMIT")
                        })
                        .await?;
                }
                let elapsed = started.elapsed();
                store.with_writer(ddl(DROP)).await?;
                Ok(elapsed)
            }
            Backend::Postgres(store) => {
                let classify = postgres::classify;
                sqlx::query(CREATE)
                    .execute(&store.writer)
                    .await
                    .map_err(classify)?;
                let started = Instant::now();
                for i in 0..count {
                    let mut tx = store.begin_write().await?;
                    sqlx::query(UPSERT)
                        .bind(i64::from(i % 1000))
                        .bind(&payload)
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                    tx.commit().await.map_err(classify)?;
                }
                let elapsed = started.elapsed();
                sqlx::query(DROP)
                    .execute(&store.writer)
                    .await
                    .map_err(classify)?;
                Ok(elapsed)
            }
        }
    }

    /// BENCH ONLY: row counts of the tables a run writes.
    pub async fn bench_counts(&self) -> Result<BenchCounts, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => count_rows!(&store.writer, sqlite::classify),
            Backend::Postgres(store) => count_rows!(&store.writer, postgres::classify),
        }
    }

    /// BENCH ONLY: the database's plan for the due-timer claim at `now`, one line per plan
    /// node, to show the claim walks the `timers_available` index instead of every pending
    /// timer.
    pub async fn bench_timer_claim_plan(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        use sqlx::Row as _;
        match &self.backend {
            Backend::Sqlite(store) => {
                let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {TIMER_CLAIM_SELECT}"))
                    .bind(ms(now))
                    .bind(i64::from(limit))
                    .fetch_all(&store.writer)
                    .await
                    .map_err(sqlite::classify)?;
                rows.iter()
                    .map(|row| row.try_get::<String, _>("detail"))
                    .collect::<Result<_, _>>()
                    .map_err(sqlite::classify)
            }
            Backend::Postgres(store) => {
                // Fresh tables have no statistics yet; the plan should reflect the real table.
                sqlx::query("ANALYZE timers")
                    .execute(&store.writer)
                    .await
                    .map_err(postgres::classify)?;
                let rows = sqlx::query(&format!("EXPLAIN {TIMER_CLAIM_SELECT}"))
                    .bind(ms(now))
                    .bind(i64::from(limit))
                    .fetch_all(&store.writer)
                    .await
                    .map_err(postgres::classify)?;
                rows.iter()
                    .map(|row| row.try_get::<String, _>(0))
                    .collect::<Result<_, _>>()
                    .map_err(postgres::classify)
            }
        }
    }

    /// BENCH ONLY: refreshes the planner's statistics after a bulk seed (SQLite `ANALYZE`,
    /// PostgreSQL `ANALYZE`), as an operator would after loading data.
    pub async fn bench_analyze(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => sqlx::query("ANALYZE")
                .execute(&store.writer)
                .await
                .map(drop)
                .map_err(sqlite::classify),
            Backend::Postgres(store) => sqlx::query("ANALYZE")
                .execute(&store.writer)
                .await
                .map(drop)
                .map_err(postgres::classify),
        }
    }
}

impl BenchDatabase {
    /// Creates a fresh, uniquely named database on the server of `admin_url`.
    pub async fn create(admin_url: &str, name: &str) -> Result<BenchDatabase, StoreError> {
        use sqlx::Connection as _;
        let invalid = |problem| StoreError::InvalidUrl {
            url: String::from("(bench database)"),
            problem,
            source: None,
        };
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(invalid("a bench database name is [a-z0-9_]+"));
        }
        let options = sqlx::postgres::PgConnectOptions::from_str(admin_url).map_err(|source| {
            StoreError::InvalidUrl {
                url: String::from("(bench database)"),
                problem: "not a valid PostgreSQL URL",
                source: Some(source),
            }
        })?;
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(postgres::classify)?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .map_err(postgres::classify)?;
        let _ = conn.close().await;
        Ok(BenchDatabase {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            url: with_database(admin_url, name).ok_or_else(|| invalid("no host in the URL"))?,
        })
    }

    /// Drops the database (every connection to it must be closed first).
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .map_err(postgres::classify)?;
        // FORCE: the server may still be tearing down the run's sessions a moment after
        // the pool closed them (PostgreSQL 13+).
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .map_err(postgres::classify)?;
        let _ = conn.close().await;
        Ok(())
    }
}

/// `url` with its database (the path after the host) replaced by `name`; query kept.
fn with_database(url: &str, name: &str) -> Option<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://")? + 3;
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_bench_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "b1").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/b1")
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "b2").as_deref(),
            Some("postgres://u:p@h/b2?sslmode=disable")
        );
        assert_eq!(
            with_database("postgres://h", "b3").as_deref(),
            Some("postgres://h/b3")
        );
        assert_eq!(with_database("not a url", "b4"), None);
    }
}
