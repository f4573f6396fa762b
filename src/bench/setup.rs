//! What every bench mode needs: a fresh database (removed afterwards), the engine over the
//! bench definitions, bulk seeding, and the process's peak memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use jiuzhu_engine::clock::Clock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::group_commit::{GroupCommitOptions, GroupCommitter};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::{
    BenchDatabase, StepCommit, Store, StoreKind, StoreOptions, Synchronous,
};
use jiuzhu_rules::Value;

use super::DbOptions;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncArg {
    Full,
    Normal,
}

/// The database of one run, and how to remove it afterwards.
pub struct BenchDb {
    pub store: Store,
    cleanup: Cleanup,
    synchronous: SyncArg,
}

enum Cleanup {
    SqliteFile(PathBuf),
    Postgres(BenchDatabase),
}

impl BenchDb {
    pub async fn open(options: &DbOptions) -> Result<BenchDb> {
        let store_options = StoreOptions {
            synchronous: match options.synchronous {
                SyncArg::Full => Synchronous::Full,
                SyncArg::Normal => Synchronous::Normal,
            },
            ..StoreOptions::default()
        };
        match options.db.as_deref() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let name = format!("jiuzhu_bench_{}_{}", std::process::id(), uuid_suffix());
                let database = BenchDatabase::create(url, &name)
                    .await
                    .context("creating a fresh bench database")?;
                match Store::open_with(&database.url, store_options).await {
                    Ok(store) => Ok(BenchDb {
                        store,
                        cleanup: Cleanup::Postgres(database),
                        synchronous: options.synchronous,
                    }),
                    Err(e) => {
                        let _ = database.drop_database().await;
                        Err(anyhow!(e).context("opening the bench database"))
                    }
                }
            }
            given => {
                let path = match given {
                    Some(path) => PathBuf::from(
                        path.strip_prefix("sqlite://")
                            .or_else(|| path.strip_prefix("sqlite:"))
                            .unwrap_or(path),
                    ),
                    None => std::env::temp_dir().join(format!(
                        "jiuzhu-bench-{}-{}.db",
                        std::process::id(),
                        uuid_suffix()
                    )),
                };
                if path.exists() {
                    bail!(
                        "{} exists: the bench needs a fresh database file (it is removed afterwards)",
                        path.display()
                    );
                }
                let store = Store::open_with(&path.display().to_string(), store_options)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                Ok(BenchDb {
                    store,
                    cleanup: Cleanup::SqliteFile(path),
                    synchronous: options.synchronous,
                })
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.store.kind() {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }

    /// The PostgreSQL URL of the bench's own database; `None` on SQLite.
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.cleanup {
            Cleanup::Postgres(database) => Some(&database.url),
            Cleanup::SqliteFile(_) => None,
        }
    }

    /// The durability setting in force: SQLite's `synchronous`, or PostgreSQL's default
    /// (`synchronous_commit = on`: WAL flushed at each commit).
    pub fn synchronous(&self) -> &'static str {
        match (self.store.kind(), self.synchronous) {
            (StoreKind::Postgres, _) => "synchronous_commit=on",
            (StoreKind::Sqlite, SyncArg::Full) => "full",
            (StoreKind::Sqlite, SyncArg::Normal) => "normal",
        }
    }

    /// Closes the store and removes the database.
    pub async fn remove(self) -> Result<()> {
        self.store.close().await;
        match self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let file = PathBuf::from(format!("{}{suffix}", path.display()));
                    if file.exists() {
                        std::fs::remove_file(&file)
                            .with_context(|| format!("removing {}", file.display()))?;
                    }
                }
                Ok(())
            }
            Cleanup::Postgres(database) => database
                .drop_database()
                .await
                .context("dropping the bench database"),
        }
    }
}

/// Runs `body` on a fresh database and removes the database whatever happened.
pub async fn with_db<T>(
    options: &DbOptions,
    body: impl AsyncFnOnce(&BenchDb) -> Result<T>,
) -> Result<T> {
    let db = BenchDb::open(options).await?;
    let outcome = body(&db).await;
    let removed = db.remove().await;
    let value = outcome?;
    removed?;
    Ok(value)
}

fn uuid_suffix() -> String {
    uuid::Uuid::now_v7().simple().to_string()[20..].to_string()
}

/// The engine over the bench definitions, deployed; group commit when `group` is given
/// (`(options, timer_concurrency)`).
pub async fn engine(
    db: &BenchDb,
    definitions: &Path,
    clock: Arc<dyn Clock>,
    group: Option<(GroupCommitOptions, usize)>,
) -> Result<Arc<Engine>> {
    let mut project = Project::load(definitions).map_err(|problems| {
        anyhow!(
            "loading the bench definitions in {}:\n{}",
            definitions.display(),
            problems.join("\n")
        )
    })?;
    // The bench folder holds only definitions; policies are the enclosing project's.
    if let Some(parent) = definitions.parent() {
        project.dir = parent.to_path_buf();
    }
    let mut engine = Engine::new(db.store.clone(), Arc::new(project), clock, "bench")
        .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    if let Some((options, timer_concurrency)) = group {
        engine = engine.with_group_commit(
            GroupCommitter::spawn(db.store.clone(), options),
            timer_concurrency,
        );
    }
    engine
        .deploy()
        .await
        .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    Ok(Arc::new(engine))
}

/// The bench user: the roles of every bench task, in `unit`.
pub fn actor(user: &str, unit: &str) -> Actor {
    Actor {
        user: user.to_string(),
        roles: vec!["township_staff".to_string(), "township_head".to_string()],
        unit: unit.to_string(),
    }
}

/// What seeding wrote and how long it took.
pub struct Seeded {
    pub cases: u64,
    pub elapsed: Duration,
}

/// Seeds `count` fresh cases of `process`: each start goes through the core
/// ([`Engine::plan_start`]) on a blocking thread while the previous batch is written with
/// [`Store::bench_seed`], so both cores work. `case(i)` gives case `i`'s starter and data.
pub async fn seed(
    engine: &Arc<Engine>,
    process: &str,
    count: u64,
    batch: usize,
    case: impl Fn(u64) -> (Actor, BTreeMap<String, Value>) + Send + 'static,
) -> Result<Seeded> {
    let deployment = engine
        .store
        .latest_deployment(process)
        .await?
        .ok_or_else(|| anyhow!("{process} is not deployed"))?;
    let def = engine
        .definition(process, deployment.version)
        .await
        .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    let version = deployment.version;
    let batch = batch.max(1);
    let started = Instant::now();
    // One batch queued while one is written: memory stays flat however many are seeded.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<StepCommit>>(1);
    let planner = {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut chunk = Vec::with_capacity(batch);
            for i in 0..count {
                let (actor, data) = case(i);
                let commit = engine
                    .plan_start(&def, version, &actor, data)
                    .map_err(|e| anyhow!("seeding case {i}: {}: {e}", e.code()))?;
                chunk.push(commit);
                if chunk.len() == batch || i + 1 == count {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(batch));
                    if sender.blocking_send(full).is_err() {
                        // The writer stopped on an error; it reports it.
                        return Ok(());
                    }
                }
            }
            Ok(())
        })
    };
    let mut written = 0u64;
    let mut failure = None;
    while let Some(chunk) = receiver.recv().await {
        if let Err(e) = engine.store.bench_seed(&chunk).await {
            failure = Some(e);
            break;
        }
        written += chunk.len() as u64;
    }
    drop(receiver);
    planner.await.context("the seeding thread failed")??;
    if let Some(e) = failure {
        return Err(anyhow!(e).context("seeding"));
    }
    if written != count {
        bail!("seeded {written} cases of {count}");
    }
    Ok(Seeded {
        cases: written,
        elapsed: started.elapsed(),
    })
}

/// Peak and current resident memory of this process in MiB (`VmHWM`, `VmRSS` of
/// /proc/self/status); `None` where the kernel does not report them.
/// CPU seconds (user and system) this process has used so far, from `/proc/self/stat`
/// (ticks of 1/100 s); `None` off Linux. On the shared machine a phase's CPU time says
/// more than its wall time, which waits for cores the other processes hold. A database
/// server's own CPU (PostgreSQL) is not in it.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

pub fn memory_mib() -> (Option<f64>, Option<f64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kib| super::round(kib / 1024.0, 1))
    };
    (field("VmHWM:"), field("VmRSS:"))
}
