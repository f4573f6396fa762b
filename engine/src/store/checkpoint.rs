//! WAL checkpoints off the commit path.
//!
//! In WAL mode every commit appends the pages it changed to the log; a checkpoint copies
//! them back into the database file (and, unless `synchronous=OFF`, fsyncs it). SQLite's
//! default runs that checkpoint inside whichever commit pushes the log past 1,000 pages, so
//! one step in every few hundred pays for the copying of all of them — and a step changes
//! several pages (instance, history, task and their indexes) where a one-row commit changes
//! one. Here a thread of the store's own, on its own connection, checkpoints every
//! [`INTERVAL`] in PASSIVE mode, which never waits for the writer or for readers; a page
//! written many times in one interval is copied once. The writer keeps an automatic
//! checkpoint at [`WRITER_AUTOCHECKPOINT_PAGES`] as a bound on the log should this thread
//! fall behind.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use super::raw_sqlite::store_error;

/// How often the thread checkpoints.
pub(crate) const INTERVAL: Duration = Duration::from_millis(200);

/// The writer's own automatic checkpoint, a safety net (SQLite's default is 1,000).
pub(crate) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 20_000;

/// The checkpoint thread; it stops when this is dropped (at its next wake-up).
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checkpointer")
    }
}

impl Checkpointer {
    /// Opens a connection to `path` (which must exist, in WAL mode) and starts the thread.
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<Checkpointer, StoreError> {
        let db = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(store_error)?;
        db.busy_timeout(busy_timeout).map_err(store_error)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("jiuzhu-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    // A failed checkpoint (disk full, a lock held past the busy timeout)
                    // loses nothing: the log keeps the pages, the next one retries, and the
                    // writer's own automatic checkpoint bounds the log meanwhile.
                    let _ = checkpoint(&db);
                }
            })
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        Ok(Checkpointer { _stop: stop })
    }
}

/// One PASSIVE checkpoint: `(log pages, pages copied back)`.
pub(crate) fn checkpoint(db: &Connection) -> Result<(i64, i64), StoreError> {
    db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    })
    .map_err(store_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_copies_the_log_back_without_blocking_an_open_writer() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path)?;
        writer.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2), (3);",
        )?;
        let reader = Connection::open(&path)?;
        let (log, copied) = checkpoint(&reader)?;
        assert!(log > 0, "the log holds the writes");
        assert_eq!(copied, log, "nothing held the checkpoint back");
        // While a write transaction is open, PASSIVE returns at once instead of waiting.
        writer.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (4);")?;
        checkpoint(&reader)?;
        writer.execute_batch("COMMIT")?;
        let count: i64 = reader.query_row("SELECT count(*) FROM t", [], |row| row.get(0))?;
        assert_eq!(count, 4);
        Ok(())
    }
}
