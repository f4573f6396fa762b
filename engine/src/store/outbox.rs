//! What the outbox dispatcher needs beyond claiming: failures with their time, deferral
//! without an attempt, the dead letters shown as incidents and their retry, and the
//! parts of one effect already delivered.
//!
//! An entry is `pending` (claimable once `available_at` has passed), `delivered`, or
//! `dead` (given up after the retry limit or a permanent failure; an incident until an
//! operator retries it). Every update here names the status it expects, so a late write
//! of a node whose lease ran out cannot bring a delivered entry back to life.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::shared;
use super::{Backend, OutboxRow, Store, StoreError};

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting for its next attempt (or being delivered under a node's lease).
    Pending,
    Delivered,
    /// Given up on: an incident until an operator retries it.
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }

    fn parse(text: &str) -> Result<OutboxStatus, StoreError> {
        match text {
            "pending" => Ok(OutboxStatus::Pending),
            "delivered" => Ok(OutboxStatus::Delivered),
            "dead" => Ok(OutboxStatus::Dead),
            _ => Err(StoreError::Corrupt {
                what: "outbox status",
                source: None,
            }),
        }
    }
}

/// An outbox entry with its delivery bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub entry: OutboxRow,
    pub status: OutboxStatus,
    /// Failed attempts (since the last operator retry).
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When the last failed attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Pending: the next attempt, or the end of the lease a node holds on it.
    /// Dead: when it was given up.
    pub available_at: DateTime<Utc>,
    /// The node that claimed it last (cleared when an attempt is recorded).
    pub claimed_by: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const ENTRY_COLUMNS: &str = "id, instance_id, kind, payload, created_at, status, attempts, \
     last_error, last_attempt_at, available_at, claimed_by, delivered_at";

/// Runs `$body` with `$s` bound to the backend and `$classify` to its error mapping; the
/// body is written once and compiled for each backend's row and pool types.
macro_rules! on_backend {
    ($self:ident, $s:ident, $classify:ident => $body:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => {
                let $classify = super::sqlite::classify;
                $body
            }
            Backend::Postgres($s) => {
                let $classify = super::postgres::classify;
                $body
            }
        }
    };
}

/// Decodes one row selected with [`ENTRY_COLUMNS`].
macro_rules! entry_from_row {
    ($row:expr, $classify:ident) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<OutboxEntry, StoreError> {
            let payload: sqlx::types::Json<serde_json::Value> =
                row.try_get("payload").map_err($classify)?;
            let status: String = row.try_get("status").map_err($classify)?;
            Ok(OutboxEntry {
                entry: OutboxRow {
                    id: row.try_get("id").map_err($classify)?,
                    instance_id: row.try_get("instance_id").map_err($classify)?,
                    kind: row.try_get("kind").map_err($classify)?,
                    payload: payload.0,
                    created_at: shared::from_ms(row.try_get("created_at").map_err($classify)?)?,
                },
                status: OutboxStatus::parse(&status)?,
                attempts: row.try_get("attempts").map_err($classify)?,
                last_error: row.try_get("last_error").map_err($classify)?,
                last_attempt_at: shared::from_ms_opt(
                    row.try_get("last_attempt_at").map_err($classify)?,
                )?,
                available_at: shared::from_ms(row.try_get("available_at").map_err($classify)?)?,
                claimed_by: row.try_get("claimed_by").map_err($classify)?,
                delivered_at: shared::from_ms_opt(row.try_get("delivered_at").map_err($classify)?)?,
            })
        })()
    }};
}

fn not_found(rows: u64, what: &'static str, id: &str) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound {
            what,
            id: id.to_owned(),
        })
    } else {
        Ok(())
    }
}

impl Store {
    /// One outbox entry, whatever its status.
    pub async fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        on_backend!(self, s, classify => {
            let row = sqlx::query(&format!("SELECT {ENTRY_COLUMNS} FROM outbox WHERE id = $1"))
                .bind(id)
                .fetch_optional(&s.reader)
                .await
                .map_err(classify)?;
            row.map(|row| entry_from_row!(&row, classify)).transpose()
        })
    }

    /// The effects of one instance (for its case file), in the order they were made.
    /// Effect ids are `INSTANCE-eSEQ`, so the primary key's range of the instance's
    /// prefix finds them without an index of their own.
    pub async fn outbox_of_instance(
        &self,
        instance_id: &str,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let from = format!("{instance_id}-e");
        let to = format!("{instance_id}-f");
        on_backend!(self, s, classify => {
            sqlx::query(&format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox WHERE id >= $1 AND id < $2 \
                 AND instance_id = $3 ORDER BY created_at, id"
            ))
            .bind(&from)
            .bind(&to)
            .bind(instance_id)
            .fetch_all(&s.reader)
            .await
            .map_err(classify)?
            .iter()
            .map(|row| entry_from_row!(row, classify))
            .collect()
        })
    }

    /// The dead letters (incidents), oldest effect first.
    pub async fn dead_outbox(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        on_backend!(self, s, classify => {
            sqlx::query(&format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox WHERE status = 'dead' \
                 ORDER BY created_at, id LIMIT $1 OFFSET $2"
            ))
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&s.reader)
            .await
            .map_err(classify)?
            .iter()
            .map(|row| entry_from_row!(row, classify))
            .collect()
        })
    }

    /// Records a failed attempt made at `attempted_at` (the attempt count goes up by one):
    /// the entry is tried again at `next_attempt_at`, or, when `dead`, never again until an
    /// operator retries it (`available_at` then records when it was given up).
    /// [`StoreError::NotFound`] when the entry is not pending (delivered meanwhile).
    pub async fn record_outbox_failure(
        &self,
        id: &str,
        error: &str,
        attempted_at: DateTime<Utc>,
        next_attempt_at: DateTime<Utc>,
        dead: bool,
    ) -> Result<(), StoreError> {
        let available_at = if dead { attempted_at } else { next_attempt_at };
        on_backend!(self, s, classify => {
            let rows = sqlx::query(
                "UPDATE outbox SET status = $2, attempts = attempts + 1, last_error = $3, \
                 last_attempt_at = $4, available_at = $5, claimed_by = NULL \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(if dead { "dead" } else { "pending" })
            .bind(error)
            .bind(shared::ms(attempted_at))
            .bind(shared::ms(available_at))
            .execute(&s.writer)
            .await
            .map_err(classify)?
            .rows_affected();
            not_found(rows, "pending outbox entry", id)
        })
    }

    /// Puts a pending entry off until `until` and releases its lease, without counting an
    /// attempt (an effect that is not due yet, like a process to start on a later date).
    pub async fn defer_outbox(&self, id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        on_backend!(self, s, classify => {
            let rows = sqlx::query(
                "UPDATE outbox SET available_at = $2, claimed_by = NULL \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(shared::ms(until))
            .execute(&s.writer)
            .await
            .map_err(classify)?
            .rows_affected();
            not_found(rows, "pending outbox entry", id)
        })
    }

    /// Gives a dead entry a fresh start: pending, due at `now`, with a new attempt budget.
    /// The last error stays until the next attempt overwrites it. Parts already delivered
    /// stay delivered. [`StoreError::NotFound`] when no dead entry has this id.
    pub async fn retry_outbox(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        on_backend!(self, s, classify => {
            let rows = sqlx::query(
                "UPDATE outbox SET status = 'pending', attempts = 0, claims = 0, available_at = $2, claimed_by = NULL \
                 WHERE id = $1 AND status = 'dead'",
            )
            .bind(id)
            .bind(shared::ms(now))
            .execute(&s.writer)
            .await
            .map_err(classify)?
            .rows_affected();
            not_found(rows, "dead outbox entry", id)
        })
    }

    /// Extends to `now + lease` the leases `node_id` still holds on pending entries
    /// (claimed, not yet settled): called while the node delivers what it claimed, so the
    /// lease can be short. Returns how many it renewed.
    pub async fn renew_outbox_leases(
        &self,
        node_id: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<u64, StoreError> {
        on_backend!(self, s, classify => {
            Ok(sqlx::query(
                "UPDATE outbox SET available_at = $2 \
                 WHERE claimed_by = $1 AND status = 'pending' AND available_at > $3",
            )
            .bind(node_id)
            .bind(shared::ms(now) + lease.num_milliseconds())
            .bind(shared::ms(now))
            .execute(&s.writer)
            .await
            .map_err(classify)?
            .rows_affected())
        })
    }

    /// The keys of the parts of an entry already delivered (e.g. `<effect id>:email`).
    pub async fn delivered_parts(&self, outbox_id: &str) -> Result<Vec<String>, StoreError> {
        on_backend!(self, s, classify => {
            sqlx::query_scalar(
                "SELECT delivery_key FROM outbox_deliveries WHERE outbox_id = $1 ORDER BY delivery_key",
            )
            .bind(outbox_id)
            .fetch_all(&s.reader)
            .await
            .map_err(classify)
        })
    }

    /// Remembers that one part of an entry was delivered (idempotent: a second record of
    /// the same key keeps the first time).
    pub async fn record_delivered_part(
        &self,
        outbox_id: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_backend!(self, s, classify => {
            sqlx::query(
                "INSERT INTO outbox_deliveries (outbox_id, delivery_key, delivered_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (outbox_id, delivery_key) DO NOTHING",
            )
            .bind(outbox_id)
            .bind(key)
            .bind(shared::ms(now))
            .execute(&s.writer)
            .await
            .map_err(classify)?;
            Ok(())
        })
    }
}

impl Store {
    /// Records an incident the engine found on a case (not an effect to deliver): a dead
    /// outbox entry `id` of `kind`, listed by `jiuzhu incidents` with `error` as its last
    /// error. Once per id: a second record of the same incident keeps the first.
    pub async fn record_incident(
        &self,
        id: &str,
        instance_id: &str,
        kind: &str,
        payload: &serde_json::Value,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_backend!(self, s, classify => {
            sqlx::query(
                "INSERT INTO outbox (id, instance_id, kind, payload, created_at, status, attempts, \
                 available_at, last_error, last_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, 'dead', 0, $5, $6, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(instance_id)
            .bind(kind)
            .bind(sqlx::types::Json(payload))
            .bind(shared::ms(now))
            .bind(error)
            .execute(&s.writer)
            .await
            .map_err(classify)?;
            Ok(())
        })
    }
}
