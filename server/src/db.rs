//! The server's tables, reached through the engine store's pool: the one place that knows
//! how the store exposes its database, so a change there is adapted here only.

use jiuzhu_engine::store::migrations::{self, ComponentMigrations};
use jiuzhu_engine::store::{ComponentDb, Store, StoreError};

/// Errors of the server's database access.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("server database migration failed")]
    Migration(#[from] StoreError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A read on the store's own connections failed (see `ComponentDb::read_on_thread`).
    #[error("database error")]
    Read(#[source] StoreError),
    #[error("stored {what} is corrupt")]
    Corrupt { what: &'static str },
}

/// The server's migrations: versions 2000–2999 of the database's one migrations table
/// (see `jiuzhu_engine::store::migrations`).
static MIGRATIONS: ComponentMigrations = ComponentMigrations {
    component: "server",
    versions: migrations::SERVER_VERSIONS,
    sqlite: &[
        (
            2001,
            "server users sessions tokens",
            include_str!("../migrations/sqlite/2001_users.sql"),
        ),
        (
            2002,
            "server access log",
            include_str!("../migrations/sqlite/2002_access_log.sql"),
        ),
        (
            2003,
            "server token scopes",
            include_str!("../migrations/sqlite/2003_token_scopes.sql"),
        ),
        (
            2010,
            "web form tokens",
            include_str!("../migrations/sqlite/2010_form_tokens.sql"),
        ),
    ],
    postgres: &[
        (
            2001,
            "server users sessions tokens",
            include_str!("../migrations/postgres/2001_users.sql"),
        ),
        (
            2002,
            "server access log",
            include_str!("../migrations/postgres/2002_access_log.sql"),
        ),
        (
            2003,
            "server token scopes",
            include_str!("../migrations/postgres/2003_token_scopes.sql"),
        ),
        (
            2010,
            "web form tokens",
            include_str!("../migrations/postgres/2010_form_tokens.sql"),
        ),
    ],
};

/// The database of the server's own tables (the engine's database).
#[derive(Debug, Clone)]
pub struct ServerDb {
    pub(crate) db: ComponentDb,
}

/// Runs `$body` with `$pool` bound to the concrete pool: the SQL is the same text on
/// both databases (`$N` placeholders, standard types).
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.db.pool() {
            jiuzhu_engine::store::DbPool::Sqlite($pool) => $body,
            jiuzhu_engine::store::DbPool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// [`on_pool!`] on the read pool: for queries that write nothing, so on SQLite they do
/// not wait for the one writer connection.
macro_rules! on_read_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.db.read_pool() {
            jiuzhu_engine::store::DbPool::Sqlite($pool) => $body,
            jiuzhu_engine::store::DbPool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_read_pool;

impl ServerDb {
    /// The server's tables in `store`'s database, migrated (a newer server schema is
    /// refused; other components' versions are left alone).
    pub async fn open(store: &Store) -> Result<ServerDb, DbError> {
        Ok(ServerDb {
            db: store.component_db(&MIGRATIONS).await?,
        })
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        on_read_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected())).is_ok()
    }
}
