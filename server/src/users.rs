//! Users, their roles and unit, in the database: seeded from the org file, managed with
//! `jiuzhu users`, and the principal a login or token resolves to.

use chrono::{DateTime, Utc};
use jiuzhu_engine::org::Org;

use crate::db::{DbError, ServerDb, on_pool, on_read_pool};
use crate::secrets::{self, SecretError};

/// A user as stored (without the password hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub unit: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub has_password: bool,
}

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no user {0}")]
    NotFound(String),
    #[error("a user {0} already exists")]
    Exists(String),
    #[error("invalid user: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for UserError {
    fn from(e: sqlx::Error) -> Self {
        UserError::Db(DbError::Database(e))
    }
}

pub(crate) type UserRow = (String, String, String, String, Option<String>, bool);

const USER_COLUMNS: &str = "id, name, unit, roles, password_hash, disabled";

pub(crate) fn record(row: UserRow) -> Result<(UserRecord, Option<String>), DbError> {
    let (id, name, unit, roles, password_hash, disabled) = row;
    let roles: Vec<String> =
        serde_json::from_str(&roles).map_err(|_| DbError::Corrupt { what: "user roles" })?;
    Ok((
        UserRecord {
            id,
            name,
            unit,
            roles,
            disabled,
            has_password: password_hash.is_some(),
        },
        password_hash,
    ))
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

impl ServerDb {
    /// A user with its password hash (if any).
    pub async fn user_with_hash(
        &self,
        id: &str,
    ) -> Result<Option<(UserRecord, Option<String>)>, DbError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM server_users WHERE id = $1");
        let row: Option<UserRow> =
            on_read_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(record).transpose()
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRecord>, DbError> {
        Ok(self.user_with_hash(id).await?.map(|(user, _)| user))
    }

    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<UserRecord>, DbError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM server_users ORDER BY id");
        let rows: Vec<UserRow> =
            on_read_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|row| record(row).map(|(user, _)| user))
            .collect()
    }

    /// Adds a user; `password` None leaves the account without a login until one is set.
    pub async fn add_user(
        &self,
        user: &UserRecord,
        password: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), UserError> {
        if user.id.is_empty() || user.unit.is_empty() {
            return Err(UserError::Invalid("a user needs an id and a unit"));
        }
        let hash = password.map(secrets::hash_password).transpose()?;
        let roles = serde_json::to_string(&user.roles).unwrap_or_else(|_| "[]".into());
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO server_users (id, name, unit, roles, password_hash, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.unit)
        .bind(&roles)
        .bind(&hash)
        .bind(user.disabled)
        .bind(ms(now))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        if inserted == 0 {
            return Err(UserError::Exists(user.id.clone()));
        }
        Ok(())
    }

    /// Sets a user's password (argon2id); existing sessions of the user end.
    pub async fn set_password(
        &self,
        id: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<(), UserError> {
        let hash = secrets::hash_password(password)?;
        let updated = on_pool!(self, pool => sqlx::query(
            "UPDATE server_users SET password_hash = $2, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(&hash)
        .bind(ms(now))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        if updated == 0 {
            return Err(UserError::NotFound(id.to_string()));
        }
        self.end_sessions_of(id).await?;
        Ok(())
    }

    /// Disables (or enables) a user. A disabled user's sessions end and their tokens stop
    /// working (they are checked against the user on every request).
    pub async fn set_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), UserError> {
        let updated = on_pool!(self, pool => sqlx::query(
            "UPDATE server_users SET disabled = $2, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(disabled)
        .bind(ms(now))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        if updated == 0 {
            return Err(UserError::NotFound(id.to_string()));
        }
        if disabled {
            self.end_sessions_of(id).await?;
        }
        Ok(())
    }

    /// Adds every user of the org file that is not in the database yet, without a password
    /// unless `password` gives one (the demo's); returns how many were added. Users already
    /// there keep what they have.
    pub async fn seed_from_org(
        &self,
        org: &Org,
        password: Option<&dyn Fn(&str) -> String>,
        now: DateTime<Utc>,
    ) -> Result<usize, UserError> {
        let mut added = 0;
        for user in org.users() {
            let record = UserRecord {
                id: user.id.clone(),
                name: user.name.clone(),
                unit: user.unit.clone(),
                roles: user.roles.clone(),
                disabled: false,
                has_password: false,
            };
            let pass = password.map(|p| p(&user.id));
            match self.add_user(&record, pass.as_deref(), now).await {
                Ok(()) => added += 1,
                Err(UserError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(added)
    }
}
