//! The server's tables, reached through the engine store's pool: the one place that knows
//! how the store exposes its database, so a change there is adapted here only.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use jiuzhu_engine::store::{Store, StorePool};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// Errors of the server's database access.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("server database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("stored {what} is corrupt")]
    Corrupt { what: &'static str },
}

/// The server's migrations: versions 2000–2999 of the shared migrations table.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(
    2001,
    "server users sessions tokens",
    include_str!("../migrations/sqlite/2001_users.sql"),
)];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[(
    2001,
    "server users sessions tokens",
    include_str!("../migrations/postgres/2001_users.sql"),
)];

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The database of the server's own tables (the engine's database).
#[derive(Debug, Clone)]
pub struct ServerDb {
    pub(crate) pool: StorePool,
}

/// Runs `$body` with `$pool` bound to the concrete pool: the SQL is the same text on
/// both databases (`$N` placeholders, standard types).
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            jiuzhu_engine::store::StorePool::Sqlite($pool) => $body,
            jiuzhu_engine::store::StorePool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl ServerDb {
    /// The server's tables in `store`'s database, migrated. The migrator ignores the
    /// versions of other components.
    pub async fn open(store: &Store) -> Result<ServerDb, DbError> {
        let db = ServerDb { pool: store.pool() };
        let source = match &db.pool {
            StorePool::Sqlite(_) => SQLITE_MIGRATIONS,
            StorePool::Postgres(_) => POSTGRES_MIGRATIONS,
        };
        let mut migrator = Migrator::new(Embedded(source)).await?;
        migrator.set_ignore_missing(true);
        on_pool!(db, pool => migrator.run(pool).await)?;
        Ok(db)
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected())).is_ok()
    }
}
