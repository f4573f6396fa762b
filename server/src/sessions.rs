//! Server-side sessions, API tokens and failed-login counts, all in the database so any
//! node answers any request and a lockout holds across nodes. Time is always passed in
//! (read from the engine's clock), so tests move it instead of sleeping.

use chrono::{DateTime, Duration, Utc};
use jiuzhu_engine::store::rusqlite;

use crate::db::{DbError, ServerDb, on_pool, on_read_pool};
use crate::secrets::{self, SecretError};
use crate::users::{UserRecord, UserRow, record};

/// Session lifetimes and login limits.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, however busy.
    pub absolute_timeout: Duration,
    /// Failed logins of one account within `failure_window` that lock it.
    pub max_failures_per_account: i64,
    /// Failed logins from one address within `failure_window` after which it is refused.
    pub max_failures_per_address: i64,
    pub failure_window: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            idle_timeout: Duration::minutes(30),
            absolute_timeout: Duration::hours(12),
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            failure_window: Duration::minutes(15),
        }
    }
}

/// A live session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user_id: String,
    pub csrf_token: String,
}

/// A new session: the cookie value (shown once, stored hashed) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub csrf_token: String,
}

/// What a token may do beyond naming its user: one of the user's roles and a unit
/// within the user's (`None`: all of the user's roles, the user's unit).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenScope {
    pub role: Option<String>,
    pub unit: Option<String>,
}

/// A live token's user and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub user_id: String,
    pub scope: TokenScope,
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub user_id: String,
    pub label: String,
    pub scope: TokenScope,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new API token: its id (for revoking) and the secret the client sends.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub token: String,
}

/// Prefix of API tokens, so they are recognised in logs and secret scanners.
pub const TOKEN_PREFIX: &str = "jzt_";

/// Activity more recent than this does not rewrite `last_seen_at`: a busy session costs
/// one write a minute, not one per request, and the idle timeout is off by at most that.
const TOUCH_EVERY: Duration = Duration::minutes(1);

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_ms(at: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at).unwrap_or_default()
}

/// The user columns of a `LEFT JOIN server_users`: all present, or all absent (no user).
/// A row the query may not find: `None` instead of rusqlite's error for no rows.
fn optional_row<T>(found: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    match found {
        Ok(row) => Ok(Some(row)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(error) => Err(error),
    }
}

fn joined_user(
    id: Option<String>,
    name: Option<String>,
    unit: Option<String>,
    roles: Option<String>,
    password_hash: Option<String>,
    disabled: Option<bool>,
) -> Result<Option<UserRecord>, DbError> {
    let (Some(id), Some(name), Some(unit), Some(roles), Some(disabled)) =
        (id, name, unit, roles, disabled)
    else {
        return Ok(None);
    };
    let row: UserRow = (id, name, unit, roles, password_hash, disabled);
    Ok(Some(record(row)?.0))
}

impl From<SecretError> for DbError {
    fn from(_: SecretError) -> Self {
        DbError::Corrupt {
            what: "random source",
        }
    }
}

impl ServerDb {
    /// The one row a credential lookup finds by its hash: on a SQLite file read on the
    /// calling thread through the store's own connections (no hop to a driver thread on
    /// every request), otherwise (PostgreSQL, or the file busy) through the read pool.
    async fn credential_row<R>(&self, sql: &str, hash: &str) -> Result<Option<R>, DbError>
    where
        R: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        let on_thread = self.db.read_on_thread(|db| {
            optional_row(
                db.prepare_cached(sql)?
                    .query_row([hash], |row| R::try_from(row)),
            )
        });
        if let Some(read) = on_thread {
            return read.map_err(DbError::Read);
        }
        Ok(on_read_pool!(self, pool => sqlx::query_as(sql)
            .bind(hash)
            .fetch_optional(pool)
            .await)?)
    }

    /// Opens a session for `user_id`.
    pub async fn create_session(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<NewSession, DbError> {
        let id = secrets::new_secret()?;
        let csrf_token = secrets::new_secret()?;
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO server_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(secrets::digest(&id))
        .bind(user_id)
        .bind(&csrf_token)
        .bind(ms(now))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(NewSession { id, csrf_token })
    }

    /// The live session with cookie value `id`; an expired one is deleted and `None`.
    pub async fn session(
        &self,
        id: &str,
        now: DateTime<Utc>,
        config: &AuthConfig,
    ) -> Result<Option<SessionRecord>, DbError> {
        Ok(self
            .session_user(id, now, config)
            .await?
            .map(|(session, _)| session))
    }

    /// The live session with cookie value `id` and its user (`None` when the user row is
    /// gone), in one indexed read joining the session to its user: the per-request
    /// lookup of a cookie-authenticated call. An expired session is deleted and `None`.
    pub async fn session_user(
        &self,
        id: &str,
        now: DateTime<Utc>,
        config: &AuthConfig,
    ) -> Result<Option<(SessionRecord, Option<UserRecord>)>, DbError> {
        type Row = (
            String,
            String,
            i64,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<bool>,
        );
        const SQL: &str = "SELECT s.user_id, s.csrf_token, s.created_at, s.last_seen_at, \
             u.id, u.name, u.unit, u.roles, u.password_hash, u.disabled \
             FROM server_sessions s LEFT JOIN server_users u ON u.id = s.user_id \
             WHERE s.id_hash = $1";
        let hash = secrets::digest(id);
        let row: Option<Row> = self.credential_row(SQL, &hash).await?;
        let Some((
            user_id,
            csrf_token,
            created_at,
            last_seen_at,
            uid,
            name,
            unit,
            roles,
            pw,
            disabled,
        )) = row
        else {
            return Ok(None);
        };
        let (created_at, last_seen_at) = (from_ms(created_at), from_ms(last_seen_at));
        if now - last_seen_at >= config.idle_timeout || now - created_at >= config.absolute_timeout
        {
            self.delete_session(id).await?;
            return Ok(None);
        }
        if now - last_seen_at >= TOUCH_EVERY {
            self.touch_session(&hash, now).await?;
        }
        let user = joined_user(uid, name, unit, roles, pw, disabled)?;
        Ok(Some((
            SessionRecord {
                user_id,
                csrf_token,
            },
            user,
        )))
    }

    async fn touch_session(&self, hash: &str, now: DateTime<Utc>) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE server_sessions SET last_seen_at = $2 WHERE id_hash = $1",
        )
        .bind(hash)
        .bind(ms(now))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends the session with cookie value `id` (logout).
    pub async fn delete_session(&self, id: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM server_sessions WHERE id_hash = $1")
            .bind(secrets::digest(id))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends every session of a user (password changed, account disabled).
    pub async fn end_sessions_of(&self, user_id: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM server_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Failed logins of `subject` since `since`.
    pub async fn login_failures(
        &self,
        subject: &str,
        since: DateTime<Utc>,
    ) -> Result<i64, DbError> {
        let count: i64 = on_read_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM server_login_failures WHERE subject = $1 AND at >= $2",
        )
        .bind(subject)
        .bind(ms(since))
        .fetch_one(pool)
        .await)?;
        Ok(count)
    }

    /// Records a failed login for each subject, dropping rows older than `forget_before`.
    pub async fn record_login_failure(
        &self,
        subjects: &[String],
        now: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<(), DbError> {
        for subject in subjects {
            on_pool!(self, pool => sqlx::query(
                "INSERT INTO server_login_failures (subject, at) VALUES ($1, $2)",
            )
            .bind(subject)
            .bind(ms(now))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        }
        on_pool!(self, pool => sqlx::query("DELETE FROM server_login_failures WHERE at < $1")
            .bind(ms(forget_before))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Forgets the failed logins of `subject` (after a successful login).
    pub async fn clear_login_failures(&self, subject: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM server_login_failures WHERE subject = $1")
            .bind(subject)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Creates an API token for `user_id` with the user's roles and unit; the secret is
    /// returned once and stored hashed.
    pub async fn create_token(
        &self,
        user_id: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<NewToken, DbError> {
        self.create_scoped_token(user_id, label, &TokenScope::default(), now)
            .await
    }

    /// Creates an API token for `user_id` narrowed to `scope` (checked against the user
    /// at each request, so a role the user loses is lost by the token too).
    pub async fn create_scoped_token(
        &self,
        user_id: &str,
        label: &str,
        scope: &TokenScope,
        now: DateTime<Utc>,
    ) -> Result<NewToken, DbError> {
        let id = format!("tok_{}", secrets::random_hex(8)?);
        let token = format!("{TOKEN_PREFIX}{}", secrets::new_secret()?);
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO server_tokens (id, user_id, token_hash, label, created_at, role, unit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(secrets::digest(&token))
        .bind(label)
        .bind(ms(now))
        .bind(&scope.role)
        .bind(&scope.unit)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(NewToken { id, token })
    }

    /// The user of a live (unrevoked) token.
    pub async fn token_user(&self, token: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .token_user_grant(token)
            .await?
            .map(|(grant, _)| grant.user_id))
    }

    /// The grant of a live token and its user (`None` when the user row is gone), in one
    /// indexed read joining the token to its user: the per-request lookup of a
    /// token-authenticated call.
    pub async fn token_user_grant(
        &self,
        token: &str,
    ) -> Result<Option<(TokenGrant, Option<UserRecord>)>, DbError> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<bool>,
        );
        const SQL: &str = "SELECT t.user_id, t.role, t.unit, \
             u.id, u.name, u.unit, u.roles, u.password_hash, u.disabled \
             FROM server_tokens t LEFT JOIN server_users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL";
        let hash = secrets::digest(token);
        let row: Option<Row> = self.credential_row(SQL, &hash).await?;
        let Some((user_id, role, unit, uid, name, uunit, roles, pw, disabled)) = row else {
            return Ok(None);
        };
        let user = joined_user(uid, name, uunit, roles, pw, disabled)?;
        Ok(Some((
            TokenGrant {
                user_id,
                scope: TokenScope { role, unit },
            },
            user,
        )))
    }

    /// Revokes a token; false when there is no live token with that id.
    pub async fn revoke_token(&self, id: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
        let updated = on_pool!(self, pool => sqlx::query(
            "UPDATE server_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(ms(now))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(updated > 0)
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, DbError> {
        type Row = (
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = on_read_pool!(self, pool => sqlx::query_as(
            "SELECT id, user_id, label, created_at, revoked_at, role, unit FROM server_tokens \
             ORDER BY created_at DESC, id",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, user_id, label, created_at, revoked_at, role, unit)| TokenRecord {
                    id,
                    user_id,
                    label,
                    scope: TokenScope { role, unit },
                    created_at: from_ms(created_at),
                    revoked_at: revoked_at.map(from_ms),
                },
            )
            .collect())
    }
}
