//! Schema migrations by component: the engine, the adapters and the server each keep their
//! own migration folder and their own range of versions in the database's one
//! `_sqlx_migrations` table.
//!
//! | component | versions |
//! |-----------|----------|
//! | engine    | 1–999    |
//! | adapters  | 1000–1999 |
//! | server    | 2000–2999 |
//!
//! Every migrator runs with sqlx's `ignore_missing`, so the rows of the other components
//! (and the engine's retired `0003_payments`, now the adapters' `1001_payments`) do not
//! stop it. What sqlx's check of missing versions did before, "this database was migrated
//! by a newer binary", is checked here per component: the newest applied version in the
//! component's range must be one this binary knows, else [`StoreError::SchemaTooNew`].

use std::ops::RangeInclusive;

use sqlx::migrate::{Migrate, Migrator};

use super::StoreError;
use super::shared::{self, EmbeddedMigrations};

/// The engine's versions.
pub const ENGINE_VERSIONS: RangeInclusive<i64> = 1..=999;
/// The adapters' versions (the payments ledger).
pub const ADAPTERS_VERSIONS: RangeInclusive<i64> = 1000..=1999;
/// The server's versions.
pub const SERVER_VERSIONS: RangeInclusive<i64> = 2000..=2999;

/// One migration compiled into the binary: version, description, SQL.
pub type EmbeddedMigration = (i64, &'static str, &'static str);

/// A component's own migrations, for both databases, in its range of versions.
#[derive(Debug, Clone)]
pub struct ComponentMigrations {
    /// For messages: `adapters`, `server`.
    pub component: &'static str,
    pub versions: RangeInclusive<i64>,
    /// In version order; every version inside `versions`.
    pub sqlite: &'static [EmbeddedMigration],
    pub postgres: &'static [EmbeddedMigration],
}

/// Runs `migrations` (all within `versions`) on `pool`, after checking that no newer
/// binary migrated this component's part of the database.
pub(crate) async fn run<DB>(
    component: &'static str,
    pool: &sqlx::Pool<DB>,
    migrations: &'static [EmbeddedMigration],
    versions: RangeInclusive<i64>,
    classify: fn(sqlx::Error) -> StoreError,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    DB::Connection: Migrate,
{
    if let Some(&(version, _, _)) = migrations.iter().find(|m| !versions.contains(&m.0)) {
        // A programming error of the component: refuse rather than write into another's range.
        return Err(StoreError::Migration(sqlx::migrate::MigrateError::Source(
            format!("migration {version} is outside its component's versions {versions:?}").into(),
        )));
    }
    let supported = migrations.last().map_or(0, |m| m.0);
    let newest = newest_applied(pool, &versions, classify).await?;
    tracing::debug!(component, newest_applied = newest, supported, "migrating");
    if let Some(found) = newest.filter(|&found| found > supported) {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    let mut migrator = Migrator::new(EmbeddedMigrations(migrations))
        .await
        .map_err(|e| shared::migrate_error(e, classify))?;
    migrator.set_ignore_missing(true);
    migrator
        .run(pool)
        .await
        .map_err(|e| shared::migrate_error(e, classify))
}

/// For a store opened read-only: nothing is migrated; a component whose schema a newer
/// binary wrote is refused as a migrating open would refuse it, and one whose tables were
/// never created is named, so a read command says what to run instead of failing on a
/// missing table.
pub(crate) async fn check_read_only(
    component: &ComponentMigrations,
    pool: &sqlx::SqlitePool,
    classify: fn(sqlx::Error) -> StoreError,
) -> Result<(), StoreError> {
    let newest: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(version) FROM _sqlx_migrations WHERE version BETWEEN $1 AND $2",
    )
    .bind(component.versions.start())
    .bind(component.versions.end())
    .fetch_one(pool)
    .await
    .map_err(classify)?;
    let supported = component.sqlite.last().map_or(0, |m| m.0);
    match newest {
        Some(found) if found > supported => Err(StoreError::SchemaTooNew { found, supported }),
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound {
            what: "tables of component (open the database once for writing, e.g. `jiuzhu deploy`)",
            id: component.component.to_string(),
        }),
    }
}

/// The newest version applied within `versions`, read under the migration lock (so two
/// nodes starting together do not both create the table).
async fn newest_applied<DB>(
    pool: &sqlx::Pool<DB>,
    versions: &RangeInclusive<i64>,
    classify: fn(sqlx::Error) -> StoreError,
) -> Result<Option<i64>, StoreError>
where
    DB: sqlx::Database,
    DB::Connection: Migrate,
{
    let mut conn = pool.acquire().await.map_err(classify)?;
    let migrate_error = |e| shared::migrate_error(e, classify);
    conn.lock().await.map_err(migrate_error)?;
    let applied = match conn.ensure_migrations_table().await {
        Ok(()) => conn.list_applied_migrations().await,
        Err(error) => Err(error),
    };
    let unlocked = conn.unlock().await;
    let applied = applied.map_err(migrate_error)?;
    unlocked.map_err(migrate_error)?;
    Ok(applied
        .iter()
        .map(|migration| migration.version)
        .filter(|version| versions.contains(version))
        .max())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranges_do_not_overlap() {
        let ranges = [ENGINE_VERSIONS, ADAPTERS_VERSIONS, SERVER_VERSIONS];
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                assert!(a.end() < b.start(), "{a:?} overlaps {b:?}");
            }
        }
    }
}
