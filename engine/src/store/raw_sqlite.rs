//! SQLite commits on the C library directly.
//!
//! sqlx's SQLite driver runs each statement on its connection's worker thread: a statement
//! is a message to that thread and a wake-up back, tens of microseconds on a loaded 2-core
//! machine — more than the fsync a step waits for. A group commit is several such
//! statements. Here the whole transaction runs on the calling thread through rusqlite, on a
//! connection of the store's own to the same file ([`CommitConnection`]: same pragmas and
//! busy timeout), which keeps its statements prepared from one commit to the next. The
//! writer pool's one connection is held meanwhile, so the store's writes still queue in
//! the process instead of contending for the file lock.
//!
//! The commit blocks the calling runtime thread for its fsync (as sqlx's worker thread
//! blocked before), but never for another connection's lock: see [`with_writer`]. It is
//! not wrapped in `block_in_place`: handing the thread's other tasks to a fresh thread on
//! every commit cost a quarter of a step (BENCHMARKS.md); the runtime's other workers steal
//! queued tasks meanwhile, and under load the committer holds the thread once per group,
//! not once per step.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use sqlx::SqlitePool;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::sqlite::LockedSqliteHandle;

use super::StoreError;
use super::group_write::{HEAD_SQL, Param, WriteTx};
use super::sqlite::classify;

/// Statements a commit connection keeps prepared: the group commit's dozen single-row
/// statements and savepoint commands, with room to spare.
const KEPT_STATEMENTS: usize = 64;

/// The connection a file store commits its steps on: its own connection to the file,
/// opened with the writer's settings, keeping its statements prepared across commits. (On
/// sqlx's connection a statement could not outlive one commit: sqlx closes its handle on
/// its own terms and refuses to close one with statements still open.) An in-memory
/// database has one connection only, sqlx's, and commits on its handle.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommitConnection(Option<Arc<Mutex<Connection>>>);

/// The writer's settings, for the commit connection that writes beside it.
pub(crate) struct WriterSettings {
    pub busy_timeout: Duration,
    /// `PRAGMA synchronous` value (`FULL`, `NORMAL`, …).
    pub synchronous: &'static str,
    pub wal_autocheckpoint_pages: u32,
}

impl CommitConnection {
    /// Commits on sqlx's own handle (the in-memory database).
    pub(crate) fn shared() -> Self {
        CommitConnection(None)
    }

    /// Opens the file (already created and migrated by the writer) for commits.
    pub(crate) fn open(path: &Path, settings: &WriterSettings) -> Result<Self, StoreError> {
        let db = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(store_error)?;
        db.busy_timeout(settings.busy_timeout)
            .map_err(store_error)?;
        db.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; PRAGMA wal_autocheckpoint = {};",
            settings.synchronous, settings.wal_autocheckpoint_pages
        ))
        .map_err(store_error)?;
        db.set_prepared_statement_cache_capacity(KEPT_STATEMENTS);
        Ok(CommitConnection(Some(Arc::new(Mutex::new(db)))))
    }
}

/// Read-only connections of the store's own to the file, for one short indexed read on the
/// calling thread: a request's credential lookup, which on sqlx's driver would be a message
/// to a connection's worker thread and a wake-up back, on every API call. Connections are
/// opened on first use and kept (at most [`IDLE_READERS`]); a reader never waits for a lock:
/// with the file busy (rare in WAL mode) the read is left to the caller's pool.
#[derive(Debug, Clone, Default)]
pub struct ThreadReaders(Option<Arc<ReaderPool>>);

#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Idle read connections kept for the next read; more are opened under a burst and closed.
const IDLE_READERS: usize = 8;

impl ThreadReaders {
    /// Readers of the file at `path` (created and migrated by the writer).
    pub(crate) fn open(path: &Path) -> Self {
        ThreadReaders(Some(Arc::new(ReaderPool {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        })))
    }

    /// Runs `read` on the calling thread, on a read-only connection to the file. `None` when
    /// this store has no such connections (in memory, PostgreSQL) or the file was busy: the
    /// caller then reads through its pool.
    pub fn read<R>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Option<Result<R, StoreError>> {
        let pool = self.0.as_ref()?;
        let kept = pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let db = match kept {
            Some(db) => db,
            None => match open_reader(&pool.path) {
                Ok(db) => db,
                Err(error) => return Some(Err(error)),
            },
        };
        let result = read(&db);
        {
            let mut idle = pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < IDLE_READERS {
                idle.push(db);
            }
        }
        match result {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
            {
                None
            }
            other => Some(other.map_err(store_error)),
        }
    }
}

/// A read-only connection that never sleeps in SQLite's busy handler (no busy timeout).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(store_error)?;
    db.busy_timeout(Duration::ZERO).map_err(store_error)?;
    db.set_prepared_statement_cache_capacity(16);
    Ok(db)
}

/// Runs `work` inside a write transaction (`BEGIN IMMEDIATE`) on the store's commit
/// connection (or, for an in-memory database, on the writer connection's handle, the
/// driver's thread held off meanwhile). `work` commits; a transaction it leaves open is
/// rolled back.
///
/// The writer pool's one connection is held throughout: it is the store's queue of writes,
/// so a commit never contends with the store's other writes for the file lock.
///
/// This thread never waits for another connection's write lock (another process, or
/// another store on the same file): the lock is tried without waiting, and if it is taken,
/// `BEGIN IMMEDIATE` waits under the busy timeout on a thread of its own (the blocking pool,
/// or the driver's worker thread). A runtime thread asleep in SQLite's busy handler could be
/// the very thread the lock's holder needs to reach its commit.
pub(super) async fn with_writer<R>(
    pool: &SqlitePool,
    commits: &CommitConnection,
    busy_timeout: Duration,
    work: impl FnOnce(&mut RawTx) -> Result<R, StoreError> + Send,
) -> Result<R, StoreError> {
    let mut conn = pool.acquire().await.map_err(classify)?;
    let Some(db) = &commits.0 else {
        return on_driver_handle(&mut conn, busy_timeout, work).await;
    };
    let began = {
        let db = db.lock().unwrap_or_else(PoisonError::into_inner);
        try_begin(&db, busy_timeout)?
    };
    if !began {
        let waiting = Arc::clone(db);
        tokio::task::spawn_blocking(move || {
            let db = waiting.lock().unwrap_or_else(PoisonError::into_inner);
            db.execute_batch("BEGIN IMMEDIATE")
        })
        .await
        .map_err(|error| StoreError::Database(sqlx::Error::Protocol(error.to_string())))?
        .map_err(store_error)?;
    }
    let mut db = db.lock().unwrap_or_else(PoisonError::into_inner);
    let mut tx = RawTx {
        db: Db::Owned(&mut db),
    };
    let result = work(&mut tx);
    drop(tx);
    drop(conn);
    result
}

/// [`with_writer`] on sqlx's handle.
async fn on_driver_handle<R>(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    busy_timeout: Duration,
    work: impl FnOnce(&mut RawTx) -> Result<R, StoreError> + Send,
) -> Result<R, StoreError> {
    {
        let mut locked = conn.lock_handle().await.map_err(classify)?;
        let mut tx = RawTx::on(&mut locked)?;
        if try_begin(&tx.db, busy_timeout)? {
            return work(&mut tx);
        }
    }
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut **conn)
        .await
        .map_err(classify)?;
    let mut locked = conn.lock_handle().await.map_err(classify)?;
    let mut tx = RawTx::on(&mut locked)?;
    work(&mut tx)
}

/// `BEGIN IMMEDIATE` without waiting: false when another connection holds the write lock.
/// The connection's busy timeout is off for the attempt, then set back to `busy_timeout`
/// (the store's, which every connection of the store has).
fn try_begin(db: &Connection, busy_timeout: Duration) -> Result<bool, StoreError> {
    db.busy_timeout(Duration::ZERO).map_err(store_error)?;
    let attempt = db.execute_batch("BEGIN IMMEDIATE");
    db.busy_timeout(busy_timeout).map_err(store_error)?;
    match attempt {
        Ok(()) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(false)
        }
        Err(error) => Err(store_error(error)),
    }
}

/// A transaction on a raw connection. Every method completes without waiting, so the
/// generic group commit built on it runs to its end in one poll. Dropped with a transaction
/// still open (an error path), it rolls it back.
pub(super) struct RawTx<'h> {
    db: Db<'h>,
}

enum Db<'h> {
    /// The store's commit connection, locked for 'h.
    Owned(&'h mut Connection),
    /// sqlx's writer handle; keeps sqlx's worker thread off it for as long as the
    /// connection uses it.
    Driver(Connection, PhantomData<&'h mut LockedSqliteHandle<'h>>),
}

impl Deref for Db<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            Db::Owned(db) => db,
            Db::Driver(db, _) => db,
        }
    }
}

impl<'h> RawTx<'h> {
    fn on(locked: &'h mut LockedSqliteHandle<'_>) -> Result<RawTx<'h>, StoreError> {
        let handle = locked.as_raw_handle();
        // SAFETY: `handle` is the open connection sqlx owns. While `locked` is borrowed
        // (for 'h, as long as this RawTx lives), sqlx's worker thread makes no call on it
        // or its statements. The rusqlite `Connection` does not own the handle (it never
        // closes it) and is dropped with this RawTx — its statements finalized — before the
        // borrow ends and sqlx takes the handle back.
        let db = unsafe { Connection::from_handle(handle.as_ptr()) }.map_err(store_error)?;
        Ok(RawTx {
            db: Db::Driver(db, PhantomData),
        })
    }
}

impl Drop for RawTx<'_> {
    fn drop(&mut self) {
        if !self.db.is_autocommit() {
            // Only reached on an error path; the error already says what went wrong.
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}

impl RawTx<'_> {
    /// Runs statements without parameters (`BEGIN`, DDL).
    pub(super) fn run(&self, sql: &str) -> Result<(), StoreError> {
        self.db.execute_batch(sql).map_err(store_error)
    }

    /// The statement, prepared once per connection and kept (SQLite runs a kept statement
    /// again with new values, without parsing and planning it), its values bound.
    pub(super) fn prepare(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<rusqlite::CachedStatement<'_>, StoreError> {
        let mut statement = self
            .db
            .prepare_cached(&numbered(sql))
            .map_err(store_error)?;
        bind(&mut statement, params)?;
        Ok(statement)
    }
}

/// The statement with its `$N` placeholders written `?N`. SQLite takes both, but looks
/// each `$N` up by name among the ones parsed before it — quadratic in a multi-row
/// statement's thousands of placeholders — while `?N` is its own index. The statements
/// here have no `$` anywhere else (no string literals).
fn numbered(sql: &str) -> Cow<'_, str> {
    if sql.contains('$') {
        Cow::Owned(sql.replace('$', "?"))
    } else {
        Cow::Borrowed(sql)
    }
}

/// Binds `?N` to `params[N - 1]`, as sqlx binds `$N`: SQLite gives `?N` the index N, so a
/// statement that uses its numbers out of order (or one twice) still binds right, and a
/// number skipped leaves an index no placeholder names.
fn bind(statement: &mut rusqlite::Statement<'_>, params: &[Param<'_>]) -> Result<(), StoreError> {
    let count = statement.parameter_count();
    if count > params.len() {
        return Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "statement parameter {count} is not one of $1..${}",
            params.len()
        ))));
    }
    for (index, param) in (1..=count).zip(params) {
        let bound = match *param {
            Param::Text(text) => statement.raw_bind_parameter(index, text),
            Param::MaybeText(text) => statement.raw_bind_parameter(index, text),
            Param::Int(value) => statement.raw_bind_parameter(index, value),
            Param::MaybeInt(value) => statement.raw_bind_parameter(index, value),
            Param::Json(value) => statement.raw_bind_parameter(index, value.to_string()),
            Param::RawJson(value) => statement.raw_bind_parameter(index, value.get()),
        };
        bound.map_err(store_error)?;
    }
    Ok(())
}

impl WriteTx for RawTx<'_> {
    const ROWS_PER_STATEMENT: usize = 1;
    const EXACT_STATE_TEXT: bool = super::sqlite::EXACT_STATE_TEXT;

    /// [`with_writer`] has begun the transaction (`BEGIN IMMEDIATE`, without waiting on this
    /// thread); a transaction that ended is not begun again on the same `RawTx`.
    async fn begin(&mut self) -> Result<(), StoreError> {
        if self.db.is_autocommit() {
            return Err(StoreError::Database(sqlx::Error::Protocol(
                "a raw SQLite transaction begins in with_writer, once".into(),
            )));
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        self.run("COMMIT")
    }

    async fn rollback(&mut self) {
        if !self.db.is_autocommit() {
            let _ = self.run("ROLLBACK");
        }
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let mut statement = self.prepare(sql, params)?;
        let changed = statement.raw_execute().map_err(store_error)?;
        Ok(changed as u64)
    }

    async fn fetch_ids(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<String>, StoreError> {
        let mut statement = self.prepare(sql, params)?;
        let mut rows = statement.raw_query();
        let mut ids = Vec::new();
        while let Some(row) = rows.next().map_err(store_error)? {
            ids.push(row.get::<_, String>(0).map_err(store_error)?);
        }
        Ok(ids)
    }

    async fn fetch_head(&mut self, instance_id: &str) -> Result<Option<(i64, String)>, StoreError> {
        let mut statement = self.prepare(HEAD_SQL, &[Param::Text(instance_id)])?;
        let mut rows = statement.raw_query();
        match rows.next().map_err(store_error)? {
            Some(row) => Ok(Some((
                row.get(0).map_err(store_error)?,
                row.get(1).map_err(store_error)?,
            ))),
            None => Ok(None),
        }
    }
}

/// A rusqlite error as the store's error kinds, through the same classification as sqlx's
/// errors (SQLite's extended result code decides).
pub(super) fn store_error(error: rusqlite::Error) -> StoreError {
    classify(sqlx::Error::Database(Box::new(RawSqliteError::from(error))))
}

/// An error of the SQLite C library, in the shape sqlx reports database errors.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct RawSqliteError {
    /// The extended result code; 0 when the error did not come from SQLite itself.
    code: i32,
    message: String,
}

impl From<rusqlite::Error> for RawSqliteError {
    fn from(error: rusqlite::Error) -> Self {
        let code = match &error {
            rusqlite::Error::SqliteFailure(failure, _) => failure.extended_code,
            _ => 0,
        };
        RawSqliteError {
            code,
            message: error.to_string(),
        }
    }
}

impl DatabaseError for RawSqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        (self.code != 0).then(|| Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_readers_read_the_file_and_see_the_latest_commit() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("readers.db");
        let writer = Connection::open(&path)?;
        writer.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER); \
             INSERT INTO t VALUES ('a', 1);",
        )?;
        let readers = ThreadReaders::open(&path);
        let read = |key: &str| {
            readers.read(|db| {
                db.prepare_cached("SELECT v FROM t WHERE k = $1")?
                    .query_row([key], |r| r.get::<_, i64>(0))
            })
        };
        assert_eq!(read("a").transpose()?, Some(1));
        writer.execute("UPDATE t SET v = 2 WHERE k = 'a'", [])?;
        // The kept connection sees the new commit: no stale snapshot survives a read.
        assert_eq!(read("a").transpose()?, Some(2));
        assert!(matches!(read("missing"), Some(Err(_))));
        // A reader cannot write.
        let write = readers.read(|db| db.execute("DELETE FROM t", []));
        assert!(matches!(write, Some(Err(_))));
        // No file, no readers: the caller reads through its pool.
        assert!(ThreadReaders::default().read(|_| Ok(())).is_none());
        Ok(())
    }

    #[test]
    fn a_busy_file_is_left_to_the_pool() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("busy.db");
        // Rollback journal: a writer's exclusive lock keeps readers out.
        let writer = Connection::open(&path)?;
        writer.execute_batch(
            "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1); BEGIN EXCLUSIVE; \
             UPDATE t SET v = 2;",
        )?;
        let readers = ThreadReaders::open(&path);
        let read = readers.read(|db| db.query_row("SELECT v FROM t", [], |r| r.get::<_, i64>(0)));
        assert!(read.is_none(), "a busy file must not fail the read");
        writer.execute_batch("COMMIT")?;
        let read = readers.read(|db| db.query_row("SELECT v FROM t", [], |r| r.get::<_, i64>(0)));
        assert_eq!(read.transpose()?, Some(2));
        Ok(())
    }

    fn memory() -> RawTx<'static> {
        let db = Connection::open_in_memory().expect("in-memory database");
        db.execute_batch(
            "CREATE TABLE parent (id TEXT PRIMARY KEY);
             CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL, parent TEXT REFERENCES parent (id));
             PRAGMA foreign_keys = ON;",
        )
        .expect("schema");
        RawTx {
            db: Db::Driver(db, PhantomData),
        }
    }

    fn now<T>(future: impl std::future::Future<Output = T>) -> T {
        use futures_util::FutureExt as _;
        future.now_or_never().expect("raw statements never wait")
    }

    #[test]
    fn placeholders_take_the_value_of_their_number_whatever_their_order() {
        let mut tx = memory();
        let changed = now(tx.execute(
            "INSERT INTO t (n, id) VALUES ($2, $1), ($3, $4)",
            &[
                Param::Text("a"),
                Param::Int(7),
                Param::Int(8),
                Param::Text("b"),
            ],
        ))
        .expect("insert");
        assert_eq!(changed, 2);
        let ids = now(tx.fetch_ids(
            "SELECT id FROM t WHERE n >= $1 ORDER BY n",
            &[Param::Int(7)],
        ))
        .expect("select");
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn a_placeholder_beyond_the_values_is_an_error_not_a_null() {
        let mut tx = memory();
        let error = now(tx.execute("INSERT INTO t (id, n) VALUES ($1, $2)", &[Param::Text("a")]))
            .expect_err("one value for two placeholders");
        assert!(matches!(error, StoreError::Database(_)), "{error:?}");
    }

    #[test]
    fn constraint_failures_map_to_the_store_error_kinds() {
        let mut tx = memory();
        let insert = "INSERT INTO t (id, n, parent) VALUES ($1, $2, $3)";
        now(tx.execute(
            insert,
            &[Param::Text("a"), Param::Int(1), Param::MaybeText(None)],
        ))
        .expect("first");
        let duplicate = now(tx.execute(
            insert,
            &[Param::Text("a"), Param::Int(2), Param::MaybeText(None)],
        ))
        .expect_err("duplicate key");
        assert!(duplicate.is_conflict(), "{duplicate:?}");
        let dangling = now(tx.execute(
            insert,
            &[
                Param::Text("b"),
                Param::Int(2),
                Param::MaybeText(Some("nobody")),
            ],
        ))
        .expect_err("missing parent");
        assert!(
            matches!(dangling, StoreError::Dangling { .. }),
            "{dangling:?}"
        );
    }

    #[test]
    fn the_lock_is_tried_without_waiting_and_the_busy_timeout_restored() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("lock.db");
        let holder = Connection::open(&path)?;
        holder.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER);")?;
        let db = Connection::open(&path)?;
        holder.execute_batch("BEGIN IMMEDIATE")?;
        assert!(
            !try_begin(&db, Duration::from_secs(30))?,
            "the lock is taken"
        );
        assert!(db.is_autocommit(), "no transaction left open");
        let timeout: i64 = db.query_row("PRAGMA busy_timeout", [], |row| row.get(0))?;
        assert_eq!(timeout, 30_000);
        holder.execute_batch("COMMIT")?;
        assert!(try_begin(&db, Duration::from_secs(30))?, "the lock is free");
        assert!(!db.is_autocommit());
        Ok(())
    }

    #[test]
    fn rollback_keeps_nothing_and_tolerates_no_open_transaction() {
        let mut tx = memory();
        assert!(now(tx.begin()).is_err(), "with_writer begins, not RawTx");
        tx.run("BEGIN IMMEDIATE").expect("begin");
        now(tx.begin()).expect("a transaction is open");
        now(tx.execute(
            "INSERT INTO t (id, n) VALUES ($1, $2)",
            &[Param::Text("a"), Param::Int(1)],
        ))
        .expect("insert");
        now(tx.rollback());
        now(tx.rollback());
        let ids = now(tx.fetch_ids("SELECT id FROM t", &[])).expect("select");
        assert!(ids.is_empty());
    }
}
