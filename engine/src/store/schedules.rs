//! Cron schedules in the store: one row per (process, schedule id) holding the next
//! occurrence to start, claimed with a lease like timers, plus the operational summary
//! that `jiuzhu status` prints.
//!
//! Exactly-once per occurrence rests on two keys, not on the lease alone: the instance an
//! occurrence starts has an id derived from the occurrence (a second start is a duplicate
//! key), and the row moves on only by a compare-and-set on the occurrence it started. The
//! lease just keeps nodes from doing that work twice in the common case.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Backend, Store, StoreError};

/// The stored state of one cron schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRow {
    pub process_id: String,
    pub schedule_id: String,
    /// The cron expression `next_due_at` was computed from; a redeployed definition with
    /// another expression resets the row.
    pub cron: String,
    /// The next occurrence to start.
    pub next_due_at: DateTime<Utc>,
    /// The node holding the lease, if any (the lease may have ended).
    pub claimed_by: Option<String>,
    /// The occurrence most recently started.
    pub last_started_at: Option<DateTime<Utc>>,
}

/// Counts for the operator: what is running and what is waiting.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreSummary {
    /// Active instances per process id, by process id.
    pub active_instances: Vec<(String, i64)>,
    pub open_tasks: i64,
    pub pending_timers: i64,
    /// Outbox effects not yet delivered (and not given up on).
    pub pending_outbox: i64,
}

/// The schedule methods, written once for both backends (see `shared::store_methods!`).
/// Expects in scope: `DbRow`, `classify`, `CLAIM_SCHEDULES_SQL`, and `reader`/`writer` on self.
macro_rules! schedule_methods {
    () => {
        fn schedule_from_row(
            row: &DbRow,
        ) -> Result<$crate::store::ScheduleRow, $crate::store::StoreError> {
            use sqlx::Row as _;
            Ok($crate::store::ScheduleRow {
                process_id: row.try_get("process_id").map_err(classify)?,
                schedule_id: row.try_get("schedule_id").map_err(classify)?,
                cron: row.try_get("cron").map_err(classify)?,
                next_due_at: shared::from_ms(row.try_get("next_due_at").map_err(classify)?)?,
                claimed_by: row.try_get("claimed_by").map_err(classify)?,
                last_started_at: shared::from_ms_opt(
                    row.try_get("last_started_at").map_err(classify)?,
                )?,
            })
        }

        pub(crate) async fn schedules(
            &self,
        ) -> Result<Vec<$crate::store::ScheduleRow>, $crate::store::StoreError> {
            sqlx::query(
                "SELECT process_id, schedule_id, cron, next_due_at, claimed_by, last_started_at \
                 FROM schedules ORDER BY process_id, schedule_id",
            )
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?
            .iter()
            .map(Self::schedule_from_row)
            .collect()
        }

        pub(crate) async fn register_schedule(
            &self,
            process_id: &str,
            schedule_id: &str,
            cron: &str,
            first_due_at: chrono::DateTime<chrono::Utc>,
        ) -> Result<bool, $crate::store::StoreError> {
            let due = shared::ms(first_due_at);
            Ok(sqlx::query(
                "INSERT INTO schedules (process_id, schedule_id, cron, next_due_at, available_at) \
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (process_id, schedule_id) DO NOTHING",
            )
            .bind(process_id)
            .bind(schedule_id)
            .bind(cron)
            .bind(due)
            .execute(&self.writer)
            .await
            .map_err(classify)?
            .rows_affected()
                == 1)
        }

        pub(crate) async fn reset_schedule(
            &self,
            process_id: &str,
            schedule_id: &str,
            old_cron: &str,
            new_cron: &str,
            next_due_at: chrono::DateTime<chrono::Utc>,
        ) -> Result<bool, $crate::store::StoreError> {
            let due = shared::ms(next_due_at);
            Ok(sqlx::query(
                "UPDATE schedules SET cron = $1, next_due_at = $2, available_at = $2, claimed_by = NULL \
                 WHERE process_id = $3 AND schedule_id = $4 AND cron = $5",
            )
            .bind(new_cron)
            .bind(due)
            .bind(process_id)
            .bind(schedule_id)
            .bind(old_cron)
            .execute(&self.writer)
            .await
            .map_err(classify)?
            .rows_affected()
                == 1)
        }

        pub(crate) async fn remove_schedule(
            &self,
            process_id: &str,
            schedule_id: &str,
        ) -> Result<bool, $crate::store::StoreError> {
            Ok(
                sqlx::query("DELETE FROM schedules WHERE process_id = $1 AND schedule_id = $2")
                    .bind(process_id)
                    .bind(schedule_id)
                    .execute(&self.writer)
                    .await
                    .map_err(classify)?
                    .rows_affected()
                    == 1,
            )
        }

        pub(crate) async fn claim_due_schedules(
            &self,
            node_id: &str,
            now: chrono::DateTime<chrono::Utc>,
            lease: chrono::Duration,
            limit: u32,
        ) -> Result<Vec<$crate::store::ScheduleRow>, $crate::store::StoreError> {
            let mut claimed = sqlx::query(CLAIM_SCHEDULES_SQL)
                .bind(shared::ms(now) + lease.num_milliseconds())
                .bind(node_id)
                .bind(shared::ms(now))
                .bind(i64::from(limit))
                .fetch_all(&self.writer)
                .await
                .map_err(classify)?
                .iter()
                .map(Self::schedule_from_row)
                .collect::<Result<Vec<_>, $crate::store::StoreError>>()?;
            // RETURNING has no order; oldest occurrence first.
            claimed.sort_by(|a, b| {
                (a.next_due_at, &a.process_id, &a.schedule_id).cmp(&(
                    b.next_due_at,
                    &b.process_id,
                    &b.schedule_id,
                ))
            });
            Ok(claimed)
        }

        pub(crate) async fn advance_schedule(
            &self,
            process_id: &str,
            schedule_id: &str,
            started: chrono::DateTime<chrono::Utc>,
            next_due_at: chrono::DateTime<chrono::Utc>,
        ) -> Result<bool, $crate::store::StoreError> {
            let next = shared::ms(next_due_at);
            Ok(sqlx::query(
                "UPDATE schedules SET next_due_at = $1, available_at = $1, claimed_by = NULL, last_started_at = $2 \
                 WHERE process_id = $3 AND schedule_id = $4 AND next_due_at = $2",
            )
            .bind(next)
            .bind(shared::ms(started))
            .bind(process_id)
            .bind(schedule_id)
            .execute(&self.writer)
            .await
            .map_err(classify)?
            .rows_affected()
                == 1)
        }

        pub(crate) async fn summary(
            &self,
        ) -> Result<$crate::store::StoreSummary, $crate::store::StoreError> {
            use sqlx::Row as _;
            let active_instances = sqlx::query(
                "SELECT process_id, COUNT(*) AS active FROM instances WHERE status = 'active' \
                 GROUP BY process_id ORDER BY process_id",
            )
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()
            .map_err(classify)?;
            let count = async |sql: &str| -> Result<i64, $crate::store::StoreError> {
                sqlx::query_scalar(sql)
                    .fetch_one(&self.reader)
                    .await
                    .map_err(classify)
            };
            Ok($crate::store::StoreSummary {
                active_instances,
                open_tasks: count("SELECT COUNT(*) FROM tasks WHERE closed_at IS NULL").await?,
                pending_timers: count("SELECT COUNT(*) FROM timers").await?,
                pending_outbox: count("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
                    .await?,
            })
        }

        pub(crate) async fn latest_versions(
            &self,
        ) -> Result<Vec<(String, i64)>, $crate::store::StoreError> {
            use sqlx::Row as _;
            sqlx::query(
                "SELECT process_id, MAX(version) FROM deployments GROUP BY process_id ORDER BY process_id",
            )
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(classify)
        }
    };
}

pub(crate) use schedule_methods;

macro_rules! on_backend {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($store) => $call,
            Backend::Postgres($store) => $call,
        }
    };
}

impl Store {
    /// Every stored schedule row, by process id then schedule id.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        on_backend!(self, s => s.schedules().await)
    }

    /// Records a schedule the first time it is seen (false when it already has a row).
    pub async fn register_schedule(
        &self,
        process_id: &str,
        schedule_id: &str,
        cron: &str,
        first_due_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s => s.register_schedule(process_id, schedule_id, cron, first_due_at).await)
    }

    /// Points a schedule at a new cron expression, if it still has `old_cron` (false when
    /// another node got there first).
    pub async fn reset_schedule(
        &self,
        process_id: &str,
        schedule_id: &str,
        old_cron: &str,
        new_cron: &str,
        next_due_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s => s.reset_schedule(process_id, schedule_id, old_cron, new_cron, next_due_at).await)
    }

    /// Forgets a schedule its process no longer declares.
    pub async fn remove_schedule(
        &self,
        process_id: &str,
        schedule_id: &str,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s => s.remove_schedule(process_id, schedule_id).await)
    }

    /// Claims up to `limit` schedules whose next occurrence is due at `now`, for `lease`;
    /// a lease that ends without the schedule moving on lets any node claim it again.
    pub async fn claim_due_schedules(
        &self,
        node_id: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<ScheduleRow>, StoreError> {
        on_backend!(self, s => s.claim_due_schedules(node_id, now, lease, limit).await)
    }

    /// Moves a schedule from the occurrence `started` on to `next_due_at` and releases it;
    /// false when it was no longer at `started` (another node moved it).
    pub async fn advance_schedule(
        &self,
        process_id: &str,
        schedule_id: &str,
        started: DateTime<Utc>,
        next_due_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s => s.advance_schedule(process_id, schedule_id, started, next_due_at).await)
    }

    /// Counts of active instances per process, open tasks, pending timers and outbox.
    pub async fn summary(&self) -> Result<StoreSummary, StoreError> {
        on_backend!(self, s => s.summary().await)
    }

    /// The latest deployed version of every process, by process id (without sources).
    pub async fn latest_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        on_backend!(self, s => s.latest_versions().await)
    }
}
