//! Single-use form tokens (CSRF for the pages' POSTs). Every rendered form gets a fresh
//! random token, stored hashed with the session it was rendered for; posting the form
//! consumes the row. A token from another session, a forged one, or one already used —
//! a replay, a double click on submit, the back button — is refused, so a form is acted
//! on at most once. Tokens unused for a day are dropped.

use chrono::{DateTime, Duration, Utc};

use super::WebError;
use crate::db::{DbError, ServerDb, on_pool};
use crate::secrets;

/// The form field carrying the token.
pub const FIELD: &str = "_csrf";

/// How long a rendered form stays usable.
const LIFETIME: Duration = Duration::hours(24);

impl ServerDb {
    /// A new form token for the session with cookie value `session`.
    pub async fn new_form_token(
        &self,
        session: &str,
        now: DateTime<Utc>,
    ) -> Result<String, DbError> {
        let token = secrets::new_secret()?;
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO server_form_tokens (token_hash, session_hash, created_at) VALUES ($1, $2, $3)",
        )
        .bind(secrets::digest(&token))
        .bind(secrets::digest(session))
        .bind(now.timestamp_millis())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(token)
    }

    /// Consumes a form token: true when it was issued to this session, unused and not
    /// expired. Also drops expired tokens.
    pub async fn use_form_token(
        &self,
        session: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let oldest = (now - LIFETIME).timestamp_millis();
        let used = on_pool!(self, pool => sqlx::query(
            "DELETE FROM server_form_tokens WHERE token_hash = $1 AND session_hash = $2 AND created_at >= $3",
        )
        .bind(secrets::digest(token))
        .bind(secrets::digest(session))
        .bind(oldest)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        on_pool!(self, pool => sqlx::query("DELETE FROM server_form_tokens WHERE created_at < $1")
            .bind(oldest)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(used == 1)
    }
}

/// Checks and consumes the token a form was posted with; a missing, foreign or used
/// token is the `csrf` refusal, explained on the error page.
pub async fn check(
    db: &ServerDb,
    session: &str,
    sent: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), WebError> {
    let Some(sent) = sent.filter(|t| !t.is_empty()) else {
        return Err(WebError::new("csrf", super::error::plain_message("csrf")));
    };
    if db.use_form_token(session, sent, now).await? {
        Ok(())
    } else {
        Err(WebError::new("csrf", super::error::plain_message("csrf")))
    }
}
