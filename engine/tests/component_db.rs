//! A component's read pool: on SQLite its queries do not wait for the one writer
//! connection, so a server's session and user lookups do not queue behind writes.

use std::time::Duration;

use jiuzhu_engine::store::migrations::{self, ComponentMigrations};
use jiuzhu_engine::store::{DbPool, Store, StoreOptions};
use jiuzhu_testkit::{Db, TestDatabase};

static MIGRATIONS: ComponentMigrations = ComponentMigrations {
    component: "test",
    versions: migrations::SERVER_VERSIONS,
    sqlite: &[(2001, "t", "CREATE TABLE t (x BIGINT NOT NULL);")],
    postgres: &[(2001, "t", "CREATE TABLE t (x BIGINT NOT NULL);")],
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_the_sqlite_writer() {
    let database = TestDatabase::create(Db::Sqlite, "component-read").await;
    let options = StoreOptions {
        // Long enough for any loaded machine, short enough that a read queued behind the
        // held writer fails the test instead of hanging it.
        acquire_timeout: Duration::from_secs(5),
        ..StoreOptions::default()
    };
    let store = Store::open_with(&database.url, options)
        .await
        .expect("open store");
    let db = store.component_db(&MIGRATIONS).await.expect("migrate");
    let DbPool::Sqlite(writer) = db.pool() else {
        panic!("a SQLite store hands out a SQLite pool");
    };
    sqlx::query("INSERT INTO t (x) VALUES (7)")
        .execute(writer)
        .await
        .expect("insert");
    // The writer pool has one connection: held here, as a long write would hold it.
    let held = writer.acquire().await.expect("the writer connection");
    let DbPool::Sqlite(reader) = db.read_pool() else {
        panic!("a SQLite store hands out a SQLite pool");
    };
    let x: i64 = sqlx::query_scalar("SELECT x FROM t")
        .fetch_one(reader)
        .await
        .expect("a read while the writer is held");
    assert_eq!(x, 7, "the read sees the committed write");
    drop(held);
    store.close().await;
    database.drop().await;
}
