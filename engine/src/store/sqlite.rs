//! The SQLite backend: one database file in WAL mode, one writer connection (SQLite admits one
//! writer at a time, so queueing in-process beats contending on the file lock) and a pool of
//! read-only connections that WAL lets run beside the writer.

use super::checkpoint::{self, Checkpointer};
use super::group_write;
use super::migrations;
use super::raw_sqlite;
use super::shared::{self, HeadCache};
use super::{ConflictReason, StoreError, StoreOptions, Synchronous};
use crate::audit::{self, AuditKey};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

type DbRow = sqlx::sqlite::SqliteRow;

/// SQLite gives a state back as the very text written: its hash is of that text.
pub(super) const EXACT_STATE_TEXT: bool = true;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "schedules",
        include_str!("../../migrations/sqlite/0002_schedules.sql"),
    ),
    (
        4,
        "dispatch",
        include_str!("../../migrations/sqlite/0004_dispatch.sql"),
    ),
    (
        5,
        "inbox_covering",
        include_str!("../../migrations/sqlite/0005_inbox_covering.sql"),
    ),
    (
        6,
        "task_roles",
        include_str!("../../migrations/sqlite/0006_task_roles.sql"),
    ),
    (
        7,
        "timer_attempts",
        include_str!("../../migrations/sqlite/0007_timer_attempts.sql"),
    ),
    (
        8,
        "keyed_history",
        include_str!("../../migrations/sqlite/0008_keyed_history.sql"),
    ),
    (
        9,
        "provisional",
        include_str!("../../migrations/sqlite/0009_provisional.sql"),
    ),
    (
        11,
        "business_keys",
        include_str!("../../migrations/sqlite/0011_business_keys.sql"),
    ),
    (
        12,
        "archives",
        include_str!("../../migrations/sqlite/0012_archives.sql"),
    ),
    (
        13,
        "assessment_inputs",
        include_str!("../../migrations/sqlite/0013_assessment_inputs.sql"),
    ),
];

/// Page size of a database file this store creates (an existing file keeps its own). A step
/// changes a few rows in several tables and indexes, each on a page of its own, and a WAL
/// commit writes every page it changed whole: half the page, half the bytes written and
/// synced per step. SQLite's default of 4,096 bytes gave 13 % fewer 16-client dibao-lite
/// instances per second; 1,024 slowed the timer firings (deeper trees) — BENCHMARKS.md.
const PAGE_SIZE: u32 = 2_048;

/// SQLite has one writer, so the claim needs no row locks: one UPDATE picks and leases.
const CLAIM_TIMERS_SQL: &str = "UPDATE timers SET available_at = $1, claimed_by = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM timers WHERE available_at <= $3 ORDER BY available_at LIMIT $4) \
     RETURNING id, instance_id, due_at, payload, attempts";

const CLAIM_OUTBOX_SQL: &str = "UPDATE outbox SET available_at = $1, claimed_by = $2, claims = claims + 1 \
     WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND available_at <= $3 ORDER BY available_at LIMIT $4) \
     RETURNING id, instance_id, kind, payload, created_at, attempts, claims";

const CLAIM_SCHEDULES_SQL: &str = "UPDATE schedules SET available_at = $1, claimed_by = $2 \
     WHERE (process_id, schedule_id) IN (SELECT process_id, schedule_id FROM schedules WHERE available_at <= $3 ORDER BY available_at LIMIT $4) \
     RETURNING process_id, schedule_id, cron, next_due_at, claimed_by, last_started_at";

#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
    heads: Arc<HeadCache>,
    /// The key of the history chain (see [`crate::audit`]); `None` only on a read-only open
    /// of a file whose key is not at hand.
    pub(super) audit: Option<Arc<AuditKey>>,
    /// True when the key was created by this open (cases from before it get sealed).
    pub(super) key_created: bool,
    /// Where group commits run (see [`raw_sqlite`]).
    commits: raw_sqlite::CommitConnection,
    /// Short reads on the calling thread (see [`raw_sqlite::ThreadReaders`]).
    pub(super) thread_readers: raw_sqlite::ThreadReaders,
    /// How long a write waits for another connection's lock (set on every connection).
    busy_timeout: Duration,
    /// Checkpoints the file's log in the background (none for an in-memory database).
    _checkpointer: Option<Arc<Checkpointer>>,
    /// Opened for reading only: nothing is migrated, components' schemas are only checked.
    read_only: bool,
}

#[derive(Debug, PartialEq)]
enum Location {
    File(PathBuf),
    Memory,
}

/// `sqlite:path`, `sqlite://path`, `sqlite::memory:` or a plain path, with optional
/// `?synchronous=off|normal|full|extra&busy_timeout_ms=N` overriding `options`.
fn parse_url(url: &str, options: &mut StoreOptions) -> Result<Location, StoreError> {
    let invalid = |problem| StoreError::InvalidUrl {
        url: url.to_owned(),
        problem,
        source: None,
    };
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid("query parameters are written key=value"))?;
        match key {
            "synchronous" => {
                options.synchronous = match value.to_ascii_lowercase().as_str() {
                    "off" => Synchronous::Off,
                    "normal" => Synchronous::Normal,
                    "full" => Synchronous::Full,
                    "extra" => Synchronous::Extra,
                    _ => return Err(invalid("synchronous is one of off, normal, full, extra")),
                }
            }
            "busy_timeout_ms" => {
                let millis = value
                    .parse()
                    .map_err(|_| invalid("busy_timeout_ms is a whole number of milliseconds"))?;
                options.busy_timeout = Duration::from_millis(millis);
            }
            _ => {
                return Err(invalid(
                    "unknown parameter (known: synchronous, busy_timeout_ms)",
                ));
            }
        }
    }
    match path {
        "" => Err(invalid("no database file given")),
        ":memory:" => Ok(Location::Memory),
        path => Ok(Location::File(PathBuf::from(path))),
    }
}

/// Maps SQLite's result codes onto the store's error kinds.
pub(super) fn classify(error: sqlx::Error) -> StoreError {
    use sqlx::error::ErrorKind;
    let Some(database) = error.as_database_error() else {
        return match error {
            // The single writer connection stayed busy past the acquire timeout.
            sqlx::Error::PoolTimedOut => StoreError::Locked { source: error },
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                StoreError::Unreachable { source: error }
            }
            other => StoreError::Database(other),
        };
    };
    let kind = database.kind();
    // Extended result code; the low byte is the primary code.
    let primary = database
        .code()
        .and_then(|code| code.parse::<i64>().ok())
        .map(|code| code & 0xff);
    match (kind, primary) {
        (ErrorKind::UniqueViolation, _) => StoreError::Conflict {
            reason: ConflictReason::Duplicate,
            source: Some(error),
        },
        (ErrorKind::ForeignKeyViolation, _) => StoreError::Dangling { source: error },
        // SQLITE_BUSY, SQLITE_LOCKED
        (_, Some(5 | 6)) => StoreError::Locked { source: error },
        // SQLITE_FULL
        (_, Some(13)) => StoreError::Full { source: error },
        // SQLITE_CANTOPEN
        (_, Some(14)) => StoreError::Unreachable { source: error },
        _ => StoreError::Database(error),
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    migrations::run(
        "engine",
        pool,
        MIGRATIONS,
        migrations::ENGINE_VERSIONS,
        classify,
    )
    .await
}

impl SqliteStore {
    pub(crate) async fn open(url: &str, mut options: StoreOptions) -> Result<Self, StoreError> {
        let location = parse_url(url, &mut options)?;
        let (synchronous, synchronous_pragma) = match options.synchronous {
            Synchronous::Off => (SqliteSynchronous::Off, "OFF"),
            Synchronous::Normal => (SqliteSynchronous::Normal, "NORMAL"),
            Synchronous::Full => (SqliteSynchronous::Full, "FULL"),
            Synchronous::Extra => (SqliteSynchronous::Extra, "EXTRA"),
        };
        let commit_settings = raw_sqlite::WriterSettings {
            busy_timeout: options.busy_timeout,
            synchronous: synchronous_pragma,
            wal_autocheckpoint_pages: checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
        };
        // The writer is kept open for the life of the store: it is the in-memory
        // database's only connection, and reconnecting the file's writer costs a step.
        // No ping before each acquire (sqlx's default): it is a round trip to the connection's
        // worker thread, costlier than most statements here, and a connection to a local
        // file does not drop; a failing statement still reports its error.
        let writer_pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(options.acquire_timeout);
        let heads = Arc::new(HeadCache::new());
        match location {
            Location::Memory => {
                let connect = SqliteConnectOptions::from_str("sqlite::memory:")
                    .map_err(classify)?
                    .foreign_keys(true);
                let pool = writer_pool.connect_with(connect).await.map_err(classify)?;
                migrate(&pool).await?;
                Ok(SqliteStore {
                    writer: pool.clone(),
                    reader: pool,
                    heads,
                    audit: Some(Arc::new(AuditKey::random()?)),
                    key_created: false,
                    commits: raw_sqlite::CommitConnection::shared(),
                    thread_readers: raw_sqlite::ThreadReaders::default(),
                    busy_timeout: options.busy_timeout,
                    _checkpointer: None,
                    read_only: false,
                })
            }
            Location::File(path) => {
                // A read-only open never creates the file (it reports it missing instead).
                if !options.read_only {
                    create_private(&path)?;
                }
                let base = SqliteConnectOptions::new()
                    .filename(&path)
                    .foreign_keys(true)
                    .busy_timeout(options.busy_timeout);
                let key_path = audit::key_path(options.audit_key_file.as_deref(), Some(&path))?;
                if options.read_only {
                    let key = AuditKey::read(&key_path)?.map(Arc::new);
                    return Self::open_read_only(base, heads, key, &options).await;
                }
                let (key, key_created) = AuditKey::read_or_create(&key_path)?;
                let writer_options = base
                    .clone()
                    .create_if_missing(true)
                    .page_size(PAGE_SIZE)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(synchronous)
                    .pragma(
                        "wal_autocheckpoint",
                        checkpoint::WRITER_AUTOCHECKPOINT_PAGES.to_string(),
                    );
                let writer = writer_pool
                    .connect_with(writer_options)
                    .await
                    .map_err(classify)?;
                migrate(&writer).await?;
                let reader = SqlitePoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(base.read_only(true))
                    .await
                    .map_err(classify)?;
                let checkpointer = Checkpointer::start(&path, options.busy_timeout)?;
                let commits = raw_sqlite::CommitConnection::open(&path, &commit_settings)?;
                Ok(SqliteStore {
                    writer,
                    reader,
                    heads,
                    audit: Some(Arc::new(key)),
                    key_created,
                    commits,
                    thread_readers: raw_sqlite::ThreadReaders::open(&path),
                    busy_timeout: options.busy_timeout,
                    _checkpointer: Some(Arc::new(checkpointer)),
                    read_only: false,
                })
            }
        }
    }

    /// Opens an existing file for reading only: no creation, no migration, no checkpointer
    /// and no commit connection; one read-only pool serves as reader and (refusing) writer.
    ///
    /// A WAL file needs its `-shm` index, which SQLite creates beside the file; in a folder
    /// this process may not write, and with no `-shm` left there, the file is opened as
    /// immutable instead (nobody can be writing it if nobody may).
    async fn open_read_only(
        base: SqliteConnectOptions,
        heads: Arc<HeadCache>,
        audit: Option<Arc<AuditKey>>,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let pool_options = || {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
        };
        let read_only = base.read_only(true);
        let pool = match Self::schema_checked(pool_options(), read_only.clone()).await {
            Ok(pool) => pool,
            Err(StoreError::SchemaTooNew { found, supported }) => {
                return Err(StoreError::SchemaTooNew { found, supported });
            }
            Err(_) => Self::schema_checked(pool_options(), read_only.immutable(true)).await?,
        };
        Ok(SqliteStore {
            writer: pool.clone(),
            reader: pool,
            heads,
            audit,
            key_created: false,
            commits: raw_sqlite::CommitConnection::shared(),
            thread_readers: raw_sqlite::ThreadReaders::default(),
            busy_timeout: options.busy_timeout,
            _checkpointer: None,
            read_only: true,
        })
    }

    /// Connects and reads the schema version: a file written by a newer binary is refused,
    /// as a migrating open refuses it.
    async fn schema_checked(
        pool: SqlitePoolOptions,
        connect: SqliteConnectOptions,
    ) -> Result<SqlitePool, StoreError> {
        let pool = pool.connect_with(connect).await.map_err(classify)?;
        // Only the engine's range: the other components' versions (1000 and up) are theirs.
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE version BETWEEN $1 AND $2",
        )
        .bind(migrations::ENGINE_VERSIONS.start())
        .bind(migrations::ENGINE_VERSIONS.end())
        .fetch_one(&pool)
        .await
        .map_err(classify)?;
        match found {
            Some(found) if found > shared::SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
                found,
                supported: shared::SCHEMA_VERSION,
            }),
            _ => Ok(pool),
        }
    }

    /// IMMEDIATE takes the write lock up front, so a step never fails half-way when
    /// upgrading a read lock (another process may share the file).
    pub(super) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)
    }

    /// Writes a group of steps in one transaction (see [`Store::commit_group`]), on the
    /// writer connection's handle directly (see [`raw_sqlite`]).
    ///
    /// [`Store::commit_group`]: super::Store::commit_group
    pub(crate) async fn commit_group(
        &self,
        steps: &[super::StepCommit],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let heads = &self.heads;
        let key = self.audit.as_deref();
        group_write::in_attempts(|attempt| {
            self.with_writer(move |tx| {
                futures_util::FutureExt::now_or_never(group_write::commit_group(
                    tx, heads, key, steps, attempt,
                ))
                .unwrap_or_else(|| {
                    Err(StoreError::Database(sqlx::Error::Protocol(
                        "a statement on the raw SQLite connection waited".into(),
                    )))
                })
            })
        })
        .await
    }

    shared::store_methods!();
    super::schedules::schedule_methods!();
    super::archive::archive_methods!("");
}

impl SqliteStore {
    /// Runs `work` in a write transaction on the connection group commits run on (see
    /// [`raw_sqlite::with_writer`]).
    pub(super) async fn with_writer<R>(
        &self,
        work: impl FnOnce(&mut raw_sqlite::RawTx) -> Result<R, StoreError> + Send,
    ) -> Result<R, StoreError> {
        raw_sqlite::with_writer(&self.writer, &self.commits, self.busy_timeout, work).await
    }

    /// The pool that writes, for adapters keeping their tables in this database.
    /// Runs another component's migrations on the writer (see `migrations`).
    pub(crate) async fn migrate_component(
        &self,
        component: &'static migrations::ComponentMigrations,
    ) -> Result<(), StoreError> {
        if self.read_only {
            return migrations::check_read_only(component, &self.reader, classify).await;
        }
        migrations::run(
            component.component,
            &self.writer,
            component.sqlite,
            component.versions.clone(),
            classify,
        )
        .await
    }

    pub(crate) fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }
}

/// Creates the database file, empty and readable by its owner only (0600), if it does not
/// exist: it holds personal data, and SQLite would create it with the process's umask (often
/// world-readable). SQLite gives the `-wal` and `-shm` files the main file's mode. An empty file
/// is an empty database to SQLite, so the page size set on first use still applies.
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        // An existing file keeps the mode its owner gave it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_database_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("new.db");
        let url = format!("sqlite:{}", path.display());
        let store = SqliteStore::open(&url, StoreOptions::default())
            .await
            .expect("opens");
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        // The write-ahead log of an open WAL database takes the main file's mode.
        let wal = dir.path().join("new.db-wal");
        assert!(wal.exists(), "the store keeps its log open");
        assert_eq!(mode(&wal), 0o600);
        drop(store);

        // A file that exists keeps its mode.
        let other = dir.path().join("shared.db");
        std::fs::write(&other, b"").expect("create");
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let url = format!("sqlite:{}", other.display());
        drop(
            SqliteStore::open(&url, StoreOptions::default())
                .await
                .expect("opens"),
        );
        assert_eq!(mode(&other), 0o640);
    }

    #[test]
    fn urls_name_a_file_or_memory_and_may_tune_durability() {
        let mut options = StoreOptions::default();
        assert_eq!(
            parse_url("sqlite:data/jiuzhu.db", &mut options).ok(),
            Some(Location::File(PathBuf::from("data/jiuzhu.db")))
        );
        assert_eq!(
            parse_url(
                "sqlite:///var/x.db?synchronous=normal&busy_timeout_ms=250",
                &mut options
            )
            .ok(),
            Some(Location::File(PathBuf::from("/var/x.db")))
        );
        assert_eq!(options.synchronous, Synchronous::Normal);
        assert_eq!(options.busy_timeout, Duration::from_millis(250));
        assert_eq!(
            parse_url("plain.db", &mut options).ok(),
            Some(Location::File(PathBuf::from("plain.db")))
        );
        assert_eq!(
            parse_url("sqlite::memory:", &mut options).ok(),
            Some(Location::Memory)
        );
        for bad in [
            "sqlite:x.db?synchronous=sometimes",
            "sqlite:x.db?cache=1",
            "sqlite:",
            "x.db?busy_timeout_ms=soon",
        ] {
            assert!(
                matches!(
                    parse_url(bad, &mut options),
                    Err(StoreError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn migrations_reach_the_schema_version() {
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(shared::SCHEMA_VERSION));
    }
}
