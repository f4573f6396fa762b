//! Incidents raised by a case's own steps (a rule step that failed), kept in the outbox
//! as dead entries of their kind so `jiuzhu incidents` and the API list them with the
//! dispatcher's: recorded by [`Store::record_incident`], marked again when a retry fails,
//! and settled (`delivered`) when the case's retry passes or the case moved on without it.

use chrono::{DateTime, Utc};

use super::shared;
use super::{Backend, Store, StoreError};

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
    /// A case incident that is over: no longer listed. False when no dead entry has this id.
    pub async fn settle_incident(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        on_backend!(self, s, classify => {
            Ok(sqlx::query(
                "UPDATE outbox SET status = 'delivered', delivered_at = $2 \
                 WHERE id = $1 AND status = 'dead'",
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

    /// A retry of a case incident that failed again: one more attempt, its error kept.
    pub async fn incident_failed_again(
        &self,
        id: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s, classify => {
            Ok(sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, last_attempt_at = $3 \
                 WHERE id = $1 AND status = 'dead'",
            )
            .bind(id)
            .bind(error)
            .bind(shared::ms(now))
            .execute(&s.writer)
            .await
            .map_err(classify)?
            .rows_affected()
                == 1)
        })
    }
}
