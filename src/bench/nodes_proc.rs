//! What `jiuzhu bench nodes` needs around its nodes: the project folder the child processes
//! load, the children themselves (spawned from this binary, stopped with SIGTERM), the CPU
//! time they and PostgreSQL's backends used (`/proc/<pid>/stat`), the database's commit
//! count (`pg_stat_database`), and a webhook receiver that takes the nodes' notifications.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value as Json, json};
use sqlx::Row as _;

use super::round;

/// A project folder for the children: the bench definitions beside the enclosing project's
/// calendars, policies, rules and templates (linked, not copied), so a child loads what the
/// bench's own engine loads and its notifier finds the templates. Removed when dropped.
pub struct ChildProject {
    pub dir: PathBuf,
}

impl ChildProject {
    pub fn create(definitions: &Path) -> Result<ChildProject> {
        let definitions = definitions
            .canonicalize()
            .with_context(|| format!("finding {}", definitions.display()))?;
        let project = definitions
            .parent()
            .context("the bench definitions have no enclosing project folder")?;
        let dir = std::env::temp_dir().join(format!(
            "jiuzhu-bench-nodes-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let made = ChildProject { dir };
        for entry in std::fs::read_dir(&definitions)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                link(&path, &made.dir)?;
            }
        }
        for folder in ["calendars", "policies", "rules", "templates"] {
            let path = project.join(folder);
            if path.is_dir() {
                link(&path, &made.dir)?;
            }
        }
        Ok(made)
    }
}

fn link(target: &Path, dir: &Path) -> Result<()> {
    let name = target.file_name().context("a file name")?;
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, dir.join(name))
        .with_context(|| format!("linking {}", target.display()))?;
    #[cfg(not(unix))]
    std::fs::copy(target, dir.join(name))
        .with_context(|| format!("copying {}", target.display()))?;
    Ok(())
}

impl Drop for ChildProject {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One node: a child process of this binary on the bench database.
pub struct Node {
    child: Child,
    stderr: PathBuf,
    /// `serve` nodes: the address they listen on, once they said so.
    pub base: Option<String>,
    stopped: bool,
}

impl Node {
    /// Starts `jiuzhu --db DB --definitions PROJECT COMMAND…` with `env` added. Its output
    /// is read and dropped (a full pipe would stop it); its stderr goes to a file in the
    /// project folder, quoted if it fails. With `wait_address`, waits until a `serve` node
    /// prints the address it listens on.
    pub async fn spawn(
        project: &ChildProject,
        db: &str,
        index: usize,
        command: &[&str],
        env: &[(String, String)],
        wait_address: bool,
    ) -> Result<Node> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let stderr = project.dir.join(format!("node-{index}.stderr"));
        let mut child = Command::new(exe)
            .arg("--db")
            .arg(db)
            .arg("--definitions")
            .arg(&project.dir)
            .args(command)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("starting a node")?;
        let stdout = child.stdout.take().context("the node's output")?;
        let (address, said) = tokio::sync::oneshot::channel::<String>();
        std::thread::spawn(move || {
            let mut address = Some(address);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(base) = line.strip_prefix("Jiuzhu is serving on ")
                    && let Some(address) = address.take()
                {
                    let _ = address.send(base.trim().to_string());
                }
            }
        });
        let mut node = Node {
            child,
            stderr,
            base: None,
            stopped: false,
        };
        if wait_address {
            match tokio::time::timeout(Duration::from_secs(120), said).await {
                Ok(Ok(base)) => node.base = Some(base),
                _ => bail!("node {index} did not start serving: {}", node.stderr_tail()),
            }
        }
        Ok(node)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error if the node has exited (it should run until stopped).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.stopped = true;
            bail!("a node exited early ({status}): {}", self.stderr_tail());
        }
        Ok(())
    }

    /// SIGTERM, then waits for the node to finish the step in flight and exit cleanly.
    pub async fn stop(mut self) -> Result<()> {
        terminate(self.child.id());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.stopped = true;
                if !status.success() {
                    bail!("a node ended with {status}: {}", self.stderr_tail());
                }
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("a node did not stop within 60 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A bench that failed midway leaves no node behind.
        if !self.stopped && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(unix)]
fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

#[cfg(not(unix))]
fn terminate(_pid: u32) {}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`; `None` where
/// it is not readable (another OS, a process gone).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: the
    // third field of the line (state) is the first here; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf reads a constant of the system and has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks > 0 {
            return ticks as f64;
        }
    }
    100.0
}

/// The whole machine's busy and total CPU seconds so far (all cores), from `/proc/stat`.
pub fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<f64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let field = |i: usize| values.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    let idle = field(3) + field(4);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    Some((busy / clock_ticks(), (busy + idle) / clock_ticks()))
}

/// A connection of the bench's own to the bench database, for progress, checks and the
/// server's statistics. Counts its queries, so they can be taken out of the commit count.
pub struct PgProbe {
    pool: sqlx::PgPool,
    queries: AtomicU64,
}

impl PgProbe {
    pub async fn connect(url: &str) -> Result<PgProbe> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .context("connecting to the bench database")?;
        Ok(PgProbe {
            pool,
            queries: AtomicU64::new(0),
        })
    }

    /// The integers of one row of `sql`.
    pub async fn numbers(&self, sql: &str) -> Result<Vec<i64>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let row = sqlx::query(sql)
            .fetch_one(&self.pool)
            .await
            .with_context(|| format!("reading {sql}"))?;
        (0..row.len())
            .map(|i| row.try_get::<i64, _>(i).map_err(|e| anyhow!(e)))
            .collect()
    }

    /// The rows of `sql`, each column read as text, for error messages.
    pub async fn text_rows(&self, sql: &str) -> Result<Vec<String>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .ok()
                            .flatten()
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect())
    }

    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Transactions committed in this database so far (`pg_stat_database`).
    pub async fn commits(&self) -> Result<i64> {
        Ok(self
            .numbers("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            .await?[0])
    }

    /// The pids of the server's backends connected to this database.
    pub async fn backends(&self) -> Result<Vec<u32>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let rows = sqlx::query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|row| row.try_get::<i32, _>(0).ok())
            .filter_map(|pid| u32::try_from(pid).ok())
            .collect())
    }

    /// The commit count once the nodes' backends have gone: a backend's statistics reach
    /// `pg_stat_database` when it exits (or every second while it works).
    pub async fn settled_commits(&self, others_before: usize) -> Result<i64> {
        let started = Instant::now();
        while self.backends().await?.len() > others_before
            && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.commits().await
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// CPU used so far by the nodes, the database's backends, this process and the machine.
pub struct CpuSnapshot {
    at: Instant,
    nodes: Vec<Option<f64>>,
    backends: HashMap<u32, f64>,
    own: Option<f64>,
    machine: Option<(f64, f64)>,
}

impl CpuSnapshot {
    pub async fn take(probe: &PgProbe, nodes: &[Node]) -> Result<CpuSnapshot> {
        let backends = probe
            .backends()
            .await?
            .into_iter()
            .filter_map(|pid| cpu_seconds(pid).map(|cpu| (pid, cpu)))
            .collect();
        Ok(CpuSnapshot {
            at: Instant::now(),
            nodes: nodes.iter().map(|n| cpu_seconds(n.pid())).collect(),
            backends,
            own: cpu_seconds(std::process::id()),
            machine: machine_cpu(),
        })
    }

    /// What was used between `before` and `self`: per node, all nodes, PostgreSQL's
    /// backends of this database (those born meanwhile count whole), this bench process,
    /// and the machine's busy share of all its cores.
    pub fn since(&self, before: &CpuSnapshot) -> Json {
        let wall = self.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let nodes: Vec<Option<f64>> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, after)| {
                let start = before.nodes.get(i).copied().flatten().unwrap_or(0.0);
                after.map(|after| round(after - start, 2))
            })
            .collect();
        let nodes_total: f64 = nodes.iter().flatten().sum();
        let postgres: f64 = self
            .backends
            .iter()
            .map(|(pid, after)| after - before.backends.get(pid).copied().unwrap_or(0.0))
            .sum();
        let own = match (self.own, before.own) {
            (Some(after), Some(start)) => Some(round(after - start, 2)),
            _ => None,
        };
        let machine = match (self.machine, before.machine) {
            (Some((busy, total)), Some((busy0, total0))) if total > total0 => {
                Some(round((busy - busy0) / (total - total0), 3))
            }
            _ => None,
        };
        let measured = nodes_total + postgres;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        json!({
            "wall_s": round(wall, 3),
            "nodes_s": nodes,
            "nodes_total_s": round(nodes_total, 2),
            "postgres_backends_s": round(postgres, 2),
            "bench_process_s": own,
            "nodes_share": round(nodes_total / measured.max(1e-9), 3),
            "postgres_share": round(postgres / measured.max(1e-9), 3),
            "nodes_and_postgres_cores_used": round(measured / wall, 2),
            "machine_cores": cores,
            "machine_busy_share": machine,
        })
    }
}

/// A stand-in for an SMS gateway: takes the nodes' webhook POSTs on a loopback port (an
/// axum server, as the project's own) and counts each `Idempotency-Key` (the effect id),
/// so the bench can check each reminder arrived and how many arrived twice.
pub struct Webhook {
    pub url: String,
    received: Arc<Mutex<BTreeMap<String, u32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    pub async fn start() -> Result<Webhook> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/notify", listener.local_addr()?);
        let received = Arc::new(Mutex::new(BTreeMap::new()));
        let counts = received.clone();
        let app = axum::Router::new().route(
            "/notify",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let counts = counts.clone();
                async move {
                    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok())
                    {
                        *counts
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(key.to_string())
                            .or_default() += 1;
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Webhook {
            url,
            received,
            task,
        })
    }

    /// The keys received so far and how often each, emptied.
    pub fn take(&self) -> BTreeMap<String, u32> {
        std::mem::take(&mut *self.received.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}
