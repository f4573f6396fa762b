//! Timers whose firing fails, and the leases of timers being fired.
//!
//! A claim counts an attempt on the timer before the firing runs (see the claim
//! statements), so a firing that kills the process counts as much as one that fails. A
//! failed firing is put off by a backoff ([`Store::retry_timer`]) or, after the bound,
//! parked ([`Store::park_timer`]): `parked_at` set, the error kept, `available_at` pushed
//! past any claim, so the timer is an incident on its case and holds up nothing. An
//! operator's [`Store::unpark_timer`] gives it a fresh budget. While a node fires a batch
//! it renews the leases it holds ([`Store::renew_timer_leases`]), so a lease can be
//! short: a dead node's timers go to another within one lease.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::shared;
use super::{Backend, Store, StoreError};

/// A parked timer: an incident on its case until an operator retries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedTimer {
    pub id: String,
    pub instance_id: String,
    pub due_at: DateTime<Utc>,
    pub attempts: i64,
    pub parked_at: DateTime<Utc>,
    /// The stable code of the last failure (never its text, which may quote data).
    pub last_error: Option<String>,
}

/// `available_at` of a parked timer: later than any clock, so no claim picks it.
const NEVER: i64 = i64::MAX;

/// Runs `$body` with `$s` bound to the backend and `$classify` to its error mapping.
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

impl Store {
    /// Releases a claimed timer whose firing failed, to be claimed again at `at` (a
    /// backoff); false when the timer is gone (fired or cancelled meanwhile).
    pub async fn retry_timer(
        &self,
        id: &str,
        error_code: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s, classify => {
            Ok(sqlx::query(
                "UPDATE timers SET available_at = $2, claimed_by = NULL, last_error = $3 \
                 WHERE id = $1 AND parked_at IS NULL",
            )
            .bind(id)
            .bind(shared::ms(at))
            .bind(error_code)
            .execute(&s.writer)
            .await
            .map_err(classify)?
            .rows_affected()
                == 1)
        })
    }

    /// Parks a timer that failed too often: it stays (its case still waits for it) but is
    /// never claimed again until [`Store::unpark_timer`]. False when the timer is gone.
    pub async fn park_timer(
        &self,
        id: &str,
        error_code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s, classify => {
            Ok(sqlx::query(
                "UPDATE timers SET available_at = $2, claimed_by = NULL, parked_at = $3, \
                 last_error = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(NEVER)
            .bind(shared::ms(now))
            .bind(error_code)
            .execute(&s.writer)
            .await
            .map_err(classify)?
            .rows_affected()
                == 1)
        })
    }

    /// Gives a parked timer a fresh start: due at `now`, with a new attempt budget. False
    /// when no parked timer has this id.
    pub async fn unpark_timer(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        on_backend!(self, s, classify => {
            Ok(sqlx::query(
                "UPDATE timers SET available_at = $2, attempts = 0, parked_at = NULL \
                 WHERE id = $1 AND parked_at IS NOT NULL",
            )
            .bind(id)
            .bind(shared::ms(now))
            .execute(&s.writer)
            .await
            .map_err(classify)?
            .rows_affected()
                == 1)
        })
    }

    /// The parked timers (incidents), oldest due first.
    pub async fn parked_timers(&self, limit: u32) -> Result<Vec<ParkedTimer>, StoreError> {
        on_backend!(self, s, classify => {
            use sqlx::Row as _;
            sqlx::query(
                "SELECT id, instance_id, due_at, attempts, parked_at, last_error FROM timers \
                 WHERE parked_at IS NOT NULL ORDER BY due_at, id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&s.reader)
            .await
            .map_err(classify)?
            .iter()
            .map(|row| {
                Ok(ParkedTimer {
                    id: row.try_get("id").map_err(classify)?,
                    instance_id: row.try_get("instance_id").map_err(classify)?,
                    due_at: shared::from_ms(row.try_get("due_at").map_err(classify)?)?,
                    attempts: row.try_get("attempts").map_err(classify)?,
                    parked_at: shared::from_ms(row.try_get("parked_at").map_err(classify)?)?,
                    last_error: row.try_get("last_error").map_err(classify)?,
                })
            })
            .collect()
        })
    }

    /// Extends to `now + lease` the leases `node_id` still holds on timers (claimed, not
    /// yet fired or released): called while the node works through what it claimed.
    /// Returns how many it renewed.
    pub async fn renew_timer_leases(
        &self,
        node_id: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<u64, StoreError> {
        on_backend!(self, s, classify => {
            Ok(sqlx::query(
                "UPDATE timers SET available_at = $2 \
                 WHERE claimed_by = $1 AND available_at > $3 AND parked_at IS NULL",
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
}
