//! Archives: finished cases older than an age move out of the live tables (`instances`,
//! `history`, `tasks`, `outbox`, `outbox_deliveries`) into tables of the same columns
//! (`archived_*`, engine migration 12), a batch per transaction, so the queries of today's
//! work — queues, timers, the outbox, a step's load — read tables that hold only live and
//! recent cases however many years of finished ones there are.
//!
//! A batch picks the oldest finished cases (status not `active`, last step before the
//! cut-off) that hold no business key, no timer and no outbox entry still in flight (pending
//! or dead: an unsettled incident keeps its case live), copies their rows into the archive
//! and deletes them from the live tables, and commits; a batch killed midway leaves nothing
//! behind. On PostgreSQL the batch locks its cases with `FOR UPDATE SKIP LOCKED`, so two
//! nodes archiving at once take different cases; on SQLite the batch holds the write lock.
//! Either way a case is moved once: the delete of its live row must find it, or the batch
//! is undone.
//!
//! Reading stays transparent: [`Store::find_instance`] falls back to the archive (and says
//! so), `history` and `verify_history` read an archived case's chain from the archive with
//! the same verification, and case search lists archived cases after the live ones. The
//! engine refuses a step on an archived case (`conflict`). See `docs/archives.md`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Backend, InstanceRow, Store, StoreError};

/// What one [`Store::archive_batch`] moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArchivedBatch {
    /// The cases moved, oldest end first.
    pub instances: Vec<String>,
    pub history_rows: u64,
    pub tasks: u64,
    pub outbox_rows: u64,
}

/// The batch statements, written once for both backends (see `shared::store_methods!`).
/// `$lock` ends the candidate query: `FOR UPDATE SKIP LOCKED` on PostgreSQL, nothing on
/// SQLite (whose batch holds the database's write lock from its first statement).
macro_rules! archive_methods {
    ($lock:expr) => {
        /// Finished cases the archiver would take, oldest end first, `limit` at most.
        pub(crate) async fn archive_candidates(
            &self,
            cutoff: chrono::DateTime<chrono::Utc>,
            limit: u32,
        ) -> Result<Vec<String>, $crate::store::StoreError> {
            sqlx::query_scalar(&format!(
                "{} LIMIT $2",
                $crate::store::archive::CANDIDATES_SQL
            ))
            .bind(shared::ms(cutoff))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)
        }

        /// Moves up to `limit` cases finished before `cutoff` into the archive, in one
        /// transaction.
        pub(crate) async fn archive_batch(
            &self,
            cutoff: chrono::DateTime<chrono::Utc>,
            limit: u32,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<$crate::store::archive::ArchivedBatch, $crate::store::StoreError> {
            use $crate::store::archive as a;
            let mut tx = self.begin_write().await?;
            let ids: Vec<String> =
                sqlx::query_scalar(&format!("{} LIMIT $2{}", a::CANDIDATES_SQL, $lock))
                    .bind(shared::ms(cutoff))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(classify)?;
            let mut batch = a::ArchivedBatch::default();
            if ids.is_empty() {
                tx.rollback().await.map_err(classify)?;
                return Ok(batch);
            }
            let mut moved = [0u64; a::STATEMENTS.len()];
            for (n, statement) in a::STATEMENTS.iter().enumerate() {
                let (sql, first_id) = a::with_ids(statement, ids.len());
                let mut query = sqlx::query(&sql);
                if first_id > 1 {
                    query = query.bind(shared::ms(now));
                }
                for id in &ids {
                    query = query.bind(id);
                }
                moved[n] = query
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?
                    .rows_affected();
            }
            // Each case's live row was copied and deleted by this transaction, or the
            // batch is undone (dropping `tx` rolls it back).
            if moved[0] != ids.len() as u64 || moved[a::STATEMENTS.len() - 1] != ids.len() as u64 {
                return Err($crate::store::StoreError::Conflict {
                    reason: $crate::store::ConflictReason::Serialization,
                    source: None,
                });
            }
            tx.commit().await.map_err(classify)?;
            batch.history_rows = moved[1];
            batch.tasks = moved[2];
            batch.outbox_rows = moved[3];
            batch.instances = ids;
            Ok(batch)
        }

        /// An archived case, checked against its signed head like a live one.
        pub(crate) async fn archived_instance(
            &self,
            id: &str,
        ) -> Result<Option<$crate::store::InstanceRow>, $crate::store::StoreError> {
            let row = sqlx::query(&format!(
                "SELECT {} FROM archived_instances WHERE id = $1",
                shared::INSTANCE_COLUMNS
            ))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
            let Some(row) = row else { return Ok(None) };
            self.checked_instance_from_row(&row)
                .map(|(instance, _)| Some(instance))
        }

        /// Archived cases by the same filter as `list_instances`, oldest first.
        pub(crate) async fn list_archived(
            &self,
            filter: &$crate::store::InstanceFilter,
        ) -> Result<Vec<$crate::store::InstanceRow>, $crate::store::StoreError> {
            self.list_in("archived_instances", filter).await
        }

        /// Archived case ids after `after` in id order, `limit` at most.
        pub(crate) async fn archived_ids_after(
            &self,
            after: &str,
            limit: u32,
        ) -> Result<Vec<String>, $crate::store::StoreError> {
            sqlx::query_scalar(
                "SELECT id FROM archived_instances WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)
        }

        /// How many cases the archive holds.
        pub(crate) async fn archived_count(&self) -> Result<i64, $crate::store::StoreError> {
            sqlx::query_scalar("SELECT COUNT(*) FROM archived_instances")
                .fetch_one(&self.reader)
                .await
                .map_err(classify)
        }
    };
}

pub(crate) use archive_methods;

/// Finished cases before `$1`, oldest end first, that hold nothing still live: no business
/// key, no timer, no outbox entry pending or dead.
pub(crate) const CANDIDATES_SQL: &str = "SELECT i.id FROM instances i \
     WHERE i.status <> 'active' AND i.updated_at < $1 \
     AND NOT EXISTS (SELECT 1 FROM business_keys k WHERE k.instance_id = i.id) \
     AND NOT EXISTS (SELECT 1 FROM timers t WHERE t.instance_id = i.id) \
     AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.instance_id = i.id AND o.status <> 'delivered') \
     ORDER BY i.updated_at, i.id";

/// The statements of a batch, in order; `{ids}` is the batch's list of case ids, `$1`
/// (where present) the archiving time. The first copies the instance rows, the last
/// deletes them: the batch checks both touched every case. The assessment inputs (engine
/// migration 13) are not archived: they are derived from the state, which is.
pub(crate) const STATEMENTS: [&str; 12] = [
    "INSERT INTO archived_instances (id, process_id, process_version, status, outcome, unit, \
     state, version, created_at, updated_at, history_hash, head_mac, archived_at) \
     SELECT id, process_id, process_version, status, outcome, unit, state, version, created_at, \
     updated_at, history_hash, head_mac, $1 FROM instances WHERE id IN ({ids})",
    "INSERT INTO archived_history (instance_id, seq, at, actor, event, node, data, prev_hash, \
     hash, scheme, state_hash) \
     SELECT instance_id, seq, at, actor, event, node, data, prev_hash, hash, scheme, state_hash \
     FROM history WHERE instance_id IN ({ids})",
    "INSERT INTO archived_tasks (id, instance_id, node_id, label, role, unit, assignee, due_at, \
     created_at, form, claimed_at, closed_at, roles, provisional) \
     SELECT id, instance_id, node_id, label, role, unit, assignee, due_at, created_at, form, \
     claimed_at, closed_at, roles, provisional FROM tasks WHERE instance_id IN ({ids})",
    "INSERT INTO archived_outbox (id, instance_id, kind, payload, created_at, status, attempts, \
     claims, last_error, last_attempt_at, delivered_at) \
     SELECT id, instance_id, kind, payload, created_at, status, attempts, claims, last_error, \
     last_attempt_at, delivered_at FROM outbox WHERE instance_id IN ({ids})",
    "INSERT INTO archived_outbox_deliveries (outbox_id, delivery_key, delivered_at) \
     SELECT d.outbox_id, d.delivery_key, d.delivered_at FROM outbox_deliveries d \
     JOIN outbox o ON o.id = d.outbox_id WHERE o.instance_id IN ({ids})",
    "DELETE FROM outbox_deliveries WHERE outbox_id IN \
     (SELECT id FROM outbox WHERE instance_id IN ({ids}))",
    "DELETE FROM outbox WHERE instance_id IN ({ids})",
    "DELETE FROM task_roles WHERE task_id IN (SELECT id FROM tasks WHERE instance_id IN ({ids}))",
    "DELETE FROM tasks WHERE instance_id IN ({ids})",
    "DELETE FROM history WHERE instance_id IN ({ids})",
    "DELETE FROM assessment_inputs WHERE instance_id IN ({ids})",
    "DELETE FROM instances WHERE id IN ({ids})",
];

/// `statement` with `{ids}` replaced by placeholders for `count` ids, numbered after `$1`
/// when the statement binds the time; the number of the first id's placeholder.
pub(crate) fn with_ids(statement: &str, count: usize) -> (String, usize) {
    let first = if statement.contains("$1") { 2 } else { 1 };
    let mut ids = String::new();
    super::shared::push_placeholders(&mut ids, first, count);
    (statement.replace("{ids}", &ids), first)
}

impl Store {
    /// Finished cases an archive run would take now (see [`Store::archive_batch`]),
    /// oldest end first, `limit` at most: what `--dry-run` lists.
    pub async fn archive_candidates(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.archive_candidates(cutoff, limit).await,
            Backend::Postgres(s) => s.archive_candidates(cutoff, limit).await,
        }
    }

    /// Moves up to `limit` cases that finished before `cutoff` (and hold nothing still
    /// live) into the archive, in one transaction; an empty batch means nothing is left.
    /// Safe to run on several nodes at once and to kill at any point.
    pub async fn archive_batch(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<ArchivedBatch, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.archive_batch(cutoff, limit, now).await,
            Backend::Postgres(s) => s.archive_batch(cutoff, limit, now).await,
        }
    }

    /// An archived case (checked against its signed head), or `None`.
    pub async fn archived_instance(&self, id: &str) -> Result<Option<InstanceRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.archived_instance(id).await,
            Backend::Postgres(s) => s.archived_instance(id).await,
        }
    }

    /// A case live or archived, and whether it is archived: what read paths (show, the
    /// case API and page) use. Steps use [`Store::load_instance`], which reads live cases
    /// only.
    pub async fn find_instance(&self, id: &str) -> Result<Option<(InstanceRow, bool)>, StoreError> {
        if let Some(row) = self.load_instance(id).await? {
            return Ok(Some((row, false)));
        }
        Ok(self.archived_instance(id).await?.map(|row| (row, true)))
    }

    /// Archived cases by `filter` (process, status, unit subtree), oldest first.
    pub async fn list_archived(
        &self,
        filter: &super::InstanceFilter,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.list_archived(filter).await,
            Backend::Postgres(s) => s.list_archived(filter).await,
        }
    }

    /// Archived case ids after `after` in id order, `limit` at most: the archive's pages
    /// for `jiuzhu audit verify`.
    pub async fn archived_ids_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let after = after.unwrap_or("");
        match &self.backend {
            Backend::Sqlite(s) => s.archived_ids_after(after, limit).await,
            Backend::Postgres(s) => s.archived_ids_after(after, limit).await,
        }
    }

    /// How many cases the archive holds.
    pub async fn archived_count(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.archived_count().await,
            Backend::Postgres(s) => s.archived_count().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numbered_after_the_time_when_a_statement_binds_it() {
        let (sql, first) = with_ids(STATEMENTS[0], 2);
        assert_eq!(first, 2);
        assert!(sql.ends_with("WHERE id IN ($2, $3)"), "{sql}");
        let (sql, first) = with_ids(STATEMENTS[6], 3);
        assert_eq!(first, 1);
        assert!(sql.ends_with("IN ($1, $2, $3)"), "{sql}");
    }
}
