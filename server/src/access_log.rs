//! Writing the access log (`server_access_log`): one row per view of unmasked personal
//! data. The API writes it before sending the data (`api::audit`), and so does the CLI
//! for its `--reveal` reads, through the same function.

use chrono::{DateTime, Utc};

use crate::db::{DbError, ServerDb, on_pool};

/// One view of unmasked personal data, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// Who saw it (a user id, or `cli:<os user>`).
    pub user: &'a str,
    /// `case`, `history`, `cases`, `tasks`, `bank_file` …
    pub what: &'a str,
    /// The case id, the ids a listing showed (comma-separated), or the batch id.
    pub subject: &'a str,
    /// The client's address (`local` for the CLI).
    pub address: &'a str,
    /// `session`, `token` or `cli`.
    pub via: &'a str,
}

impl ServerDb {
    /// Appends one row to the access log.
    pub async fn record_access(
        &self,
        at: DateTime<Utc>,
        record: &AccessRecord<'_>,
    ) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO server_access_log (at, user_id, what, subject, address, via) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(at.timestamp_millis())
        .bind(record.user)
        .bind(record.what)
        .bind(record.subject)
        .bind(record.address)
        .bind(record.via)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(())
    }
}
