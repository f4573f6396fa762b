//! Test support for the database suites: every suite runs once on SQLite and once on
//! PostgreSQL, each test on a database of its own.
//!
//! SQLite gets a file in a temp folder; PostgreSQL a fresh schema (through
//! `search_path`) on the server named by `JIUZHU_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped afterwards. When no server
//! answers, the PostgreSQL half fails and says how to start one — it never passes
//! silently.
//!
//! A suite defines `async fn setup(db: Db) -> (Ctx, Teardown)` and
//! `async fn finish(db: Db, teardown: Teardown, outcome: Outcome)` and lists its tests
//! in [`on_both_databases!`].

#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection as _, Executor as _};

/// Copies a folder and everything under it (a test project made from the shipped
/// `processes/`); panics, naming the step, when the file system refuses.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy file");
        }
    }
}

/// Makes a test project at `to` from the shipped `processes` folder: the named definition
/// files, and the files (not the subfolders) of each named folder — policy files without
/// the built-in section declarations (`policies/sections/`), rule files, calendars.
/// Panics, naming the file, when the file system refuses.
pub fn copy_project(processes: &Path, to: &Path, files: &[&str], folders: &[&str]) {
    std::fs::create_dir_all(to).expect("project dir");
    for file in files {
        std::fs::copy(processes.join(file), to.join(file)).expect(file);
    }
    for folder in folders {
        std::fs::create_dir_all(to.join(folder)).expect(folder);
        for entry in std::fs::read_dir(processes.join(folder))
            .expect(folder)
            .flatten()
        {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), to.join(folder).join(entry.file_name())).expect(folder);
            }
        }
    }
}

/// The server the PostgreSQL half uses unless `JIUZHU_TEST_PG` names another.
pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// How a spawned test body ended.
pub type Outcome = Result<anyhow::Result<()>, tokio::task::JoinError>;

/// The PostgreSQL server URL for tests.
pub fn pg_base() -> String {
    std::env::var("JIUZHU_TEST_PG").unwrap_or_else(|_| DEFAULT_PG.to_owned())
}

/// A connection to the test server, or a panic that says how to get one.
pub async fn connect_pg_admin(base: &str) -> sqlx::PgConnection {
    match sqlx::PgConnection::connect(base).await {
        Ok(conn) => conn,
        Err(error) => panic!(
            "cannot connect to PostgreSQL at {base}: {error}\n\
             The database suites need a PostgreSQL server. Start one, e.g.\n  \
             scripts/services.sh                    (starts Debian's cluster)\n  \
             pg_ctlcluster 15 main start\n\
             or point JIUZHU_TEST_PG at one (postgres://user@host:port/database)."
        ),
    }
}

static NEXT_SCHEMA: AtomicU64 = AtomicU64::new(0);

/// A database of one test's own; [`TestDatabase::drop`] removes it.
pub struct TestDatabase {
    pub db: Db,
    /// The store URL.
    pub url: String,
    /// The same database with commits that skip the fsync (bulk tests).
    pub fast_url: String,
    dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh SQLite file, or a fresh PostgreSQL schema named after `label`.
    pub async fn create(db: Db, label: &str) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        match db {
            Db::Sqlite => {
                let url = format!("sqlite:{}", dir.path().join("jiuzhu.db").display());
                let fast_url = format!("{url}?synchronous=normal");
                TestDatabase {
                    db,
                    url,
                    fast_url,
                    dir,
                    schema: None,
                }
            }
            Db::Postgres => {
                let base = pg_base();
                let schema = format!(
                    "jiuzhu_{label}_{}_{}",
                    std::process::id(),
                    NEXT_SCHEMA.fetch_add(1, Ordering::Relaxed)
                );
                let mut admin = connect_pg_admin(&base).await;
                admin
                    .execute(
                        format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
                            .as_str(),
                    )
                    .await
                    .expect("create test schema");
                let separator = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
                let fast_url = format!("{url}%20-c%20synchronous_commit%3Doff");
                TestDatabase {
                    db,
                    url,
                    fast_url,
                    dir,
                    schema: Some((base, schema)),
                }
            }
        }
    }

    /// A scratch folder that lives as long as the database.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL on a connection of its own; see [`raw`].
    pub async fn raw(&self, sql: &str) -> anyhow::Result<()> {
        raw(self.db, &self.url, sql).await
    }

    /// Drops the PostgreSQL schema (the SQLite file goes with the temp folder).
    pub async fn drop(self) {
        if let Some((base, schema)) = &self.schema {
            let mut admin = connect_pg_admin(base).await;
            admin
                .execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
                .await
                .expect("drop test schema");
        }
    }
}

/// Runs SQL on a connection of its own, behind the store's back (tampering, fault
/// injection). A plain `&str` runs unprepared, so one call may hold several statements.
/// (`sqlx::raw_sql(..).execute(..)` would do the same, but its future cannot be proven
/// `Send`, and test bodies are spawned.)
pub async fn raw(db: Db, url: &str, sql: &str) -> anyhow::Result<()> {
    match db {
        Db::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await?;
            conn.execute(sql).await?;
            conn.close().await?;
        }
        Db::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            conn.execute(sql).await?;
            conn.close().await?;
        }
    }
    Ok(())
}

/// Reports a spawned test body's outcome (after the database was cleaned up).
pub fn report(db: Db, outcome: Outcome) {
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("{db:?}: {error:?}"),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => panic!("{db:?}: test task failed: {join}"),
    }
}

/// Declares each listed test twice, in modules `sqlite` and `postgres`. Each calls the
/// suite's `setup(Db)`, spawns the body (so a panicking body still gets its database
/// cleaned up) and hands the outcome to the suite's `finish`.
#[macro_export]
macro_rules! on_both_databases {
    (@module $module:ident, $db:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (ctx, teardown) = super::setup($crate::Db::$db).await;
                    let outcome = tokio::spawn(super::$name(ctx)).await;
                    super::finish($crate::Db::$db, teardown, outcome).await
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_both_databases!(@module sqlite, Sqlite, $($name),*);
        $crate::on_both_databases!(@module postgres, Postgres, $($name),*);
    };
}
