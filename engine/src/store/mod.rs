//! The durable store: deployments, instances, hash-chained history, tasks, timers and the
//! outbox, in SQLite (embedded, one file) or PostgreSQL (shared by several nodes) behind one
//! interface.
//!
//! The store knows nothing of process semantics. The runner hands it a [`StepCommit`] (the
//! new instance state and the effects of one step) and the store writes it in one
//! transaction with an optimistic version check. Many steps can share one durable commit
//! ([`Store::commit_group`]). Timers and outbox entries are claimed with leases so that
//! several nodes on one database each fire a timer once.
//!
//! All times are stored as epoch milliseconds UTC, so they keep millisecond precision.

pub mod archive;
pub mod assessment_inputs;
#[cfg(feature = "bench")]
mod bench;
mod case_incidents;
mod chain;
mod checkpoint;
mod group_write;
mod head_cache;
mod keys;
mod links;
pub mod migrations;
mod outbox;
mod postgres;
mod raw_sqlite;
mod schedules;
pub mod search;
mod shared;
pub mod simulate;
mod sqlite;
mod timer_faults;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[cfg(feature = "bench")]
pub use bench::{BenchCounts, BenchDatabase};
pub use chain::{GENESIS_HASH, TamperError, TamperKind, VerifiedChain, canonical_json, sha256_hex};
pub use keys::KeyChange;
pub use outbox::{OutboxEntry, OutboxStatus};
pub use raw_sqlite::ThreadReaders;
/// The SQLite library binding the store's own connections use (see [`ComponentDb::read_on_thread`]).
pub use rusqlite;
pub use schedules::{ScheduleRow, StoreSummary};
pub use timer_faults::ParkedTimer;

/// A process definition to deploy: its id and YAML source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDeployment {
    pub process_id: String,
    pub source: String,
    /// sha256 of `source`, lowercase hex; the store checks it.
    pub hash: String,
}

/// A deployed version of a process definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub process_id: String,
    pub version: i64,
    pub hash: String,
    pub source: String,
    pub deployed_at: DateTime<Utc>,
}

/// One process instance (a case) as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRow {
    pub id: String,
    pub process_id: String,
    pub process_version: i64,
    pub status: String,
    pub outcome: Option<String>,
    /// The office unit path that owns the case, e.g. `province/city/district`.
    pub unit: String,
    pub state: StateJson,
    /// Optimistic-concurrency version: 1 after the first step, +1 per step.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An instance's state as stored: JSON text, kept as text from the row to the step and
/// from the step to the row. A step reads it straight into its typed state and writes it
/// straight from that (no `serde_json::Value` tree in between, which cost a fifth of a
/// timer's firing), and the store binds the text as it is.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StateJson(Box<serde_json::value::RawValue>);

impl StateJson {
    /// Serializes `state` (any serializable value; the engine passes its typed state).
    pub fn of<T: Serialize + ?Sized>(state: &T) -> Result<StateJson, serde_json::Error> {
        serde_json::value::to_raw_value(state).map(StateJson)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Reads the text as `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The state as a JSON tree, to look into it.
    pub fn to_value(&self) -> serde_json::Value {
        self.parse().unwrap_or(serde_json::Value::Null)
    }

    pub(crate) fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }
}

impl From<serde_json::Value> for StateJson {
    fn from(value: serde_json::Value) -> StateJson {
        // A `Value` always serializes (its map keys are strings); `null` is never reached.
        StateJson::of(&value)
            .unwrap_or_else(|_| StateJson(serde_json::value::RawValue::NULL.to_owned()))
    }
}

/// Equal when they hold the same JSON, whatever the spacing and key order (PostgreSQL's
/// `jsonb` gives back its own rendering of what was stored).
impl PartialEq for StateJson {
    fn eq(&self, other: &StateJson) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl std::fmt::Debug for StateJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for StateJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A human task in a staff inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    pub id: String,
    pub instance_id: String,
    pub node_id: String,
    pub label: String,
    pub role: String,
    pub unit: String,
    pub assignee: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub form: serde_json::Value,
    /// Every candidate role (`role` is the first): a user with any of them in a unit
    /// covering `unit` sees the task in their queue.
    pub roles: Vec<String>,
    /// `due_at` was counted through a year the calendar does not cover (暂定).
    #[serde(default)]
    pub provisional: bool,
}

impl TaskRow {
    /// The roles whose queues show the task: `roles`, or `role` alone when `roles` is empty.
    pub fn candidate_roles(&self) -> &[String] {
        if self.roles.is_empty() {
            std::slice::from_ref(&self.role)
        } else {
            &self.roles
        }
    }
}

/// A timer that fires an event into its instance at `due_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerRow {
    pub id: String,
    pub instance_id: String,
    pub due_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    /// `due_at` was counted through a year the calendar does not cover. Written with the
    /// row; a claim does not read it back (firing does not depend on it).
    #[serde(default)]
    pub provisional: bool,
    /// Claims of this timer so far, this one included (0 for a timer not claimed yet).
    #[serde(default)]
    pub attempts: i64,
}

/// An effect to deliver after commit; `id` is its idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRow {
    pub id: String,
    pub instance_id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// An outbox entry claimed for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedOutbox {
    pub entry: OutboxRow,
    /// Failed attempts before this one.
    pub attempts: i64,
    /// Claims so far, this one included (since the last operator retry). More than
    /// `attempts + 1`: earlier claims never reported back (the node died mid-delivery).
    #[serde(default)]
    pub claims: i64,
}

/// The audit record a step appends to its instance's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub event: String,
    pub node: Option<String>,
    pub data: serde_json::Value,
}

/// A stored history row with its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Equals the instance version the step produced (1, 2, 3 ...).
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub event: String,
    pub node: Option<String>,
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Everything one step writes, committed atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCommit {
    /// The new state; `instance.version` must be `expected_version + 1` (1 for a new instance).
    pub instance: InstanceRow,
    /// `None` inserts a new instance; `Some(v)` updates it only if it is still at version `v`.
    pub expected_version: Option<i64>,
    pub history: HistoryEntry,
    pub tasks_opened: Vec<TaskRow>,
    /// Ids of tasks this step closes (they leave the inbox; the row stays for audit).
    pub tasks_closed: Vec<String>,
    pub timers_set: Vec<TimerRow>,
    pub timers_cancelled: Vec<String>,
    pub outbox: Vec<OutboxRow>,
    /// Open tasks whose holder this step changes (claim, unclaim, reassign, delegate): the
    /// task row's `assignee` and the inbox rows mirror the core's claim.
    pub tasks_assigned: Vec<TaskAssignment>,
    /// Open tasks whose due date this step counted again (a calendar covering its year
    /// was deployed): the task row and its inbox rows take the new date.
    pub tasks_rescheduled: Vec<TaskReschedule>,
    /// The task this step completes, one of `tasks_closed`, and who completes it. The
    /// step commits only if no other user holds that task's claim: the check is part of
    /// the statement that closes the task, so a claim racing the completion (on any node)
    /// either lands first and refuses the completion, or finds the task closed.
    pub completes: Option<TaskCompletion>,
    /// Indexed columns of the instance row this step leaves as they were (the engine knows
    /// the row it started from). Their index entries are then left alone: SQLite rewrites the
    /// index entry of every column an UPDATE sets, even to its old value — a page written per
    /// index per step. The default (nothing known unchanged) writes every column.
    pub unchanged: Unchanged,
    /// The business key this step claims (a start) or releases (an end): see
    /// [`KeyChange`].
    pub business_key: Option<KeyChange>,
}

/// See [`StepCommit::unchanged`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unchanged {
    pub status: bool,
    pub unit: bool,
}

/// A task's new due date (see [`StepCommit::tasks_rescheduled`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReschedule {
    pub task_id: String,
    pub due_at: Option<DateTime<Utc>>,
    pub provisional: bool,
}

/// A task's new holder (see [`StepCommit::tasks_assigned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskAssignment {
    pub task_id: String,
    /// The user the task is reserved for; `None` puts it back in every candidate's queue.
    pub assignee: Option<String>,
}

/// A completion's claim check (see [`StepCommit::completes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCompletion {
    pub task_id: String,
    pub user: String,
}

/// Which instances [`Store::list_instances`] returns, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFilter {
    pub process_id: Option<String>,
    pub status: Option<String>,
    /// A unit path: instances of this unit and every unit below it.
    pub unit: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

impl Default for InstanceFilter {
    fn default() -> Self {
        InstanceFilter {
            process_id: None,
            status: None,
            unit: None,
            limit: 100,
            offset: 0,
        }
    }
}

/// SQLite's `synchronous` setting: how hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    Off,
    Normal,
    /// The default: an acknowledged step survives a power cut.
    #[default]
    Full,
    Extra,
}

/// Tuning for [`Store::open_with`]. A SQLite URL's query (`?synchronous=normal&busy_timeout_ms=5000`)
/// overrides these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    pub synchronous: Synchronous,
    /// How long SQLite waits for another writer's lock before failing with [`StoreError::Locked`].
    pub busy_timeout: Duration,
    /// SQLite: reader connections (there is always exactly one writer). PostgreSQL: pool size.
    pub max_connections: u32,
    /// How long to wait for a free pooled connection.
    pub acquire_timeout: Duration,
    /// SQLite: open an existing file for reading only: never create, migrate or write it,
    /// so a read-only file or folder (a copy, a backup, a mounted snapshot) can be read.
    /// Ignored by PostgreSQL, where access is the database role's business.
    pub read_only: bool,
    /// The audit key file (see [`crate::audit::key_path`] for where it is otherwise).
    pub audit_key_file: Option<std::path::PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            read_only: false,
            audit_key_file: None,
        }
    }
}

/// Why a write lost against a concurrent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictReason {
    /// The instance was not at the expected version (another step got there first).
    VersionMismatch,
    /// A row with the same key exists (instance, task, timer, outbox id, deployment).
    Duplicate,
    /// The database aborted the transaction to keep concurrent ones serialisable.
    Serialization,
    /// The task is claimed by another user.
    ClaimedByOther,
    /// The task is already closed.
    TaskClosed,
    /// Another active case of the process holds the business key the start claims.
    KeyTaken,
    /// The case is archived (see [`archive`]): it is read, never changed.
    Archived,
}

impl std::fmt::Display for ConflictReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConflictReason::VersionMismatch => "instance is no longer at the expected version",
            ConflictReason::Duplicate => "a row with the same key already exists",
            ConflictReason::Serialization => "concurrent transactions could not be serialised",
            ConflictReason::ClaimedByOther => "task is claimed by another user",
            ConflictReason::TaskClosed => "task is already closed",
            ConflictReason::KeyTaken => "an active case of the process has the same business key",
            ConflictReason::Archived => {
                "the case is archived: an archived case is read-only and takes no step"
            }
        })
    }
}

/// What a [`StepCommit`] got wrong before the database was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitProblem {
    /// `instance.version` is not `expected_version + 1` (or 1 for a new instance).
    VersionNotNext,
    /// A task, timer or outbox row names another instance.
    ForeignInstance,
    /// `completes` names a task the step does not close.
    CompletionNotClosed,
}

impl std::fmt::Display for CommitProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CommitProblem::VersionNotNext => {
                "instance.version must be expected_version + 1 (1 for a new instance)"
            }
            CommitProblem::ForeignInstance => "a task, timer or outbox row names another instance",
            CommitProblem::CompletionNotClosed => {
                "the completed task is not among the closed tasks"
            }
        })
    }
}

/// Errors of the store's public API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Lost a race: version mismatch, duplicate key, serialisation failure, task claimed.
    /// The caller reloads and retries (or gives up); nothing of the failed write was kept.
    #[error("conflict: {reason}")]
    Conflict {
        reason: ConflictReason,
        #[source]
        source: Option<sqlx::Error>,
    },
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("invalid step commit for instance {instance_id:?}: {problem}")]
    InvalidCommit {
        instance_id: String,
        problem: CommitProblem,
    },
    #[error("deployment of {process_id:?}: hash is not the sha256 of the source")]
    HashMismatch { process_id: String },
    #[error(transparent)]
    Tampered(#[from] TamperError),
    /// A row refers to a deployment or instance that does not exist.
    #[error("a row refers to a missing deployment or instance")]
    Dangling {
        #[source]
        source: sqlx::Error,
    },
    #[error("database is locked by another writer (busy timeout exceeded)")]
    Locked {
        #[source]
        source: sqlx::Error,
    },
    #[error("database or disk is full")]
    Full {
        #[source]
        source: sqlx::Error,
    },
    #[error("database unreachable")]
    Unreachable {
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "database schema version {found} is newer than this binary supports ({supported}): upgrade jiuzhu before opening this database"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("database migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
    #[error("invalid store URL {url:?}: {problem}")]
    InvalidUrl {
        url: String,
        problem: &'static str,
        #[source]
        source: Option<sqlx::Error>,
    },
    #[error("stored {what} is corrupt")]
    Corrupt {
        what: &'static str,
        #[source]
        source: Option<serde_json::Error>,
    },
    /// An instance's stored state is not JSON (and no audit key says more).
    #[error("stored state of instance {instance_id} is unreadable")]
    UnreadableState { instance_id: String },
    /// The audit key could not be read or created (see [`crate::audit`]).
    #[error(transparent)]
    AuditKey(#[from] crate::audit::AuditKeyError),
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// True for [`StoreError::Conflict`]: the caller should reload and retry.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// The durable store. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($store) => $call,
            Backend::Postgres($store) => $call,
        }
    };
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates a store.
    ///
    /// `url` is `postgres://...` / `postgresql://...`, `sqlite:path`, `sqlite://path`,
    /// `sqlite::memory:` or a plain file path.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with explicit options.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::PostgresStore::open(url, &options).await?)
        } else {
            Backend::Sqlite(sqlite::SqliteStore::open(url, options).await?)
        };
        let store = Store { backend };
        // A key made just now: the cases from before it get their heads signed as they are.
        if delegate!(store, s => s.key_created) {
            store.seal_unsealed().await?;
        }
        Ok(store)
    }

    pub fn kind(&self) -> StoreKind {
        match self.backend {
            Backend::Sqlite(_) => StoreKind::Sqlite,
            Backend::Postgres(_) => StoreKind::Postgres,
        }
    }

    /// The schema version this binary writes (the newest embedded migration).
    pub fn schema_version() -> i64 {
        shared::SCHEMA_VERSION
    }

    /// Closes all connections (SQLite checkpoints its WAL on the last close).
    pub async fn close(&self) {
        delegate!(self, s => s.close().await)
    }

    /// Commits one step in one transaction.
    pub async fn commit(&self, step: &StepCommit) -> Result<(), StoreError> {
        let mut outcomes = self.commit_group(std::slice::from_ref(step)).await?;
        outcomes.pop().unwrap_or(Ok(()))
    }

    /// Commits many steps in one durable transaction (group commit). The outer error means
    /// nothing was committed; otherwise each step has its own outcome, and a conflicting or
    /// invalid step fails alone while the others are committed. Steps on the same instance
    /// apply in the order given.
    pub async fn commit_group(
        &self,
        steps: &[StepCommit],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        delegate!(self, s => s.commit_group(steps).await)
    }

    /// Deploys definitions in one transaction. A definition whose source is unchanged
    /// (same hash as its latest version) keeps that version; otherwise it gets the next one.
    pub async fn deploy(
        &self,
        deployments: &[NewDeployment],
        now: DateTime<Utc>,
    ) -> Result<Vec<Deployment>, StoreError> {
        delegate!(self, s => s.deploy(deployments, now).await)
    }

    pub async fn latest_deployment(
        &self,
        process_id: &str,
    ) -> Result<Option<Deployment>, StoreError> {
        delegate!(self, s => s.latest_deployment(process_id).await)
    }

    pub async fn deployment(
        &self,
        process_id: &str,
        version: i64,
    ) -> Result<Option<Deployment>, StoreError> {
        delegate!(self, s => s.deployment(process_id, version).await)
    }

    /// Every deployed version, by process id then version.
    pub async fn deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        delegate!(self, s => s.deployments().await)
    }

    pub async fn load_instance(&self, id: &str) -> Result<Option<InstanceRow>, StoreError> {
        delegate!(self, s => s.load_instance(id).await)
    }

    /// Many instances at once, one statement per chunk of ids; an id with no instance is
    /// absent from the result, which is in no particular order.
    pub async fn load_instances(&self, ids: &[String]) -> Result<Vec<InstanceRow>, StoreError> {
        delegate!(self, s => s.load_instances(ids).await)
    }

    pub async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        delegate!(self, s => s.list_instances(filter).await)
    }

    /// A user's inbox: open tasks for one of `roles`, in one of `units` or below it, that are
    /// unclaimed or claimed by `user`; due date first (no due date last).
    pub async fn tasks_for(
        &self,
        roles: &[String],
        units: &[String],
        user: &str,
        limit: u32,
    ) -> Result<Vec<TaskRow>, StoreError> {
        delegate!(self, s => s.tasks_for(roles, units, user, limit).await)
    }

    /// A task, open or closed.
    pub async fn task(&self, id: &str) -> Result<Option<TaskRow>, StoreError> {
        delegate!(self, s => s.task(id).await)
    }

    /// The instances with a provisional due date pending (a timer counted through a year
    /// the calendar did not cover; every provisional task or deadline has one).
    pub async fn instances_with_provisional_timers(&self) -> Result<Vec<String>, StoreError> {
        delegate!(self, s => s.instances_with_provisional_timers().await)
    }

    /// Open tasks and pending timers whose due date is provisional.
    pub async fn provisional_counts(&self) -> Result<(i64, i64), StoreError> {
        delegate!(self, s => s.provisional_counts().await)
    }

    /// Claims up to `limit` timers due at `now` for `lease`. A claimed timer is not handed
    /// out again until its lease ends; then any node may claim it.
    pub async fn claim_due_timers(
        &self,
        node_id: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<TimerRow>, StoreError> {
        delegate!(self, s => s.claim_due_timers(node_id, now, lease, limit).await)
    }

    /// Removes a fired timer; false if it was already gone. (Normally the step that handles
    /// the timer removes it through `timers_cancelled`.)
    pub async fn complete_timer(&self, id: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.complete_timer(id).await)
    }

    /// How far behind the oldest claimable timer is at `now` (an unclaimed due timer, or one
    /// whose lease ended without completion); `None` when nothing is waiting.
    pub async fn oldest_due_timer_lag(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<chrono::Duration>, StoreError> {
        delegate!(self, s => s.oldest_due_timer_lag(now).await)
    }

    /// Claims up to `limit` pending outbox entries whose next attempt is due, for `lease`.
    pub async fn claim_outbox(
        &self,
        node_id: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedOutbox>, StoreError> {
        delegate!(self, s => s.claim_outbox(node_id, now, lease, limit).await)
    }

    pub async fn mark_delivered(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        delegate!(self, s => s.mark_delivered(id, now).await)
    }

    /// Records a failed attempt (the attempt count goes up by one). The entry is retried
    /// at `next_attempt_at`, or never again when `dead`.
    pub async fn mark_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: DateTime<Utc>,
        dead: bool,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.mark_failed(id, error, next_attempt_at, dead).await)
    }

    /// An instance's history in order.
    pub async fn history(&self, instance_id: &str) -> Result<Vec<HistoryRecord>, StoreError> {
        delegate!(self, s => s.history(instance_id).await)
    }

    /// Recomputes the instance's hash chain; [`StoreError::Tampered`] names the first bad row.
    pub async fn verify_history(&self, instance_id: &str) -> Result<VerifiedChain, StoreError> {
        delegate!(self, s => s.verify_history(instance_id).await)
    }

    /// Instance ids after `after` in id order, `limit` at most: the pages `jiuzhu audit
    /// verify` walks every case in.
    pub async fn instance_ids_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        delegate!(self, s => s.instance_ids_after(after, limit).await)
    }

    /// Signs the head of every case without one (cases from before the audit key) as it
    /// stands now; the number signed. Done once when the key is created; `jiuzhu audit
    /// seal` runs it when a key was put in place by hand before the upgrade.
    pub async fn seal_unsealed(&self) -> Result<u64, StoreError> {
        delegate!(self, s => s.seal_unsealed().await)
    }

    /// True when this store holds the audit key (a read-only open of a copy may not).
    pub fn has_audit_key(&self) -> bool {
        delegate!(self, s => s.audit.is_some())
    }
}

/// The store's database for a component that keeps its own tables in it (the adapters'
/// payments ledger, the server), got from [`Store::component_db`] once that component's
/// own migrations ran. It hands out the pool that writes: on SQLite the single writer
/// connection, so the component's writes queue behind the engine's steps instead of
/// contending for the file lock. The component writes its SQL for both databases, so it
/// gets the concrete pool; what it does not get is a way around its migrations or the
/// engine's other connections.
#[derive(Debug, Clone)]
pub struct ComponentDb {
    pool: ComponentPool,
    thread_readers: ThreadReaders,
}

#[derive(Debug, Clone)]
enum ComponentPool {
    /// The writer pool, then the reader pool.
    Sqlite(sqlx::SqlitePool, sqlx::SqlitePool),
    Postgres(sqlx::PgPool, sqlx::PgPool),
}

impl ComponentDb {
    pub fn kind(&self) -> StoreKind {
        match self.pool {
            ComponentPool::Sqlite(..) => StoreKind::Sqlite,
            ComponentPool::Postgres(..) => StoreKind::Postgres,
        }
    }

    /// The read pool, for the component's queries that write nothing: on SQLite its own
    /// connections, so reads do not queue behind the one writer; on PostgreSQL the pool.
    pub fn read_pool(&self) -> DbPool<'_> {
        match &self.pool {
            ComponentPool::Sqlite(_, reader) => DbPool::Sqlite(reader),
            ComponentPool::Postgres(_, reader) => DbPool::Postgres(reader),
        }
    }

    /// On a SQLite file, runs one short read on the calling thread, on a read-only
    /// connection of the store's own ([`ThreadReaders`]): no hop to a driver thread and
    /// back. `None` on PostgreSQL, in memory, or when the file was busy: read through
    /// [`ComponentDb::read_pool`] instead. For indexed single-row reads only: the calling
    /// runtime thread is held meanwhile.
    pub fn read_on_thread<R>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Option<Result<R, StoreError>> {
        self.thread_readers.read(read)
    }

    /// The pool, for the component's SQL of that database.
    pub fn pool(&self) -> DbPool<'_> {
        match &self.pool {
            ComponentPool::Sqlite(pool, _) => DbPool::Sqlite(pool),
            ComponentPool::Postgres(pool, _) => DbPool::Postgres(pool),
        }
    }
}

/// See [`ComponentDb::pool`].
#[derive(Debug, Clone, Copy)]
pub enum DbPool<'a> {
    Sqlite(&'a sqlx::SqlitePool),
    Postgres(&'a sqlx::PgPool),
}

impl Store {
    /// Runs `component`'s own migrations on this store's database (see [`migrations`]:
    /// each component has its own range of versions) and returns the handle its SQL runs
    /// on. Cheap once migrated: the migrator finds nothing to do.
    pub async fn component_db(
        &self,
        component: &'static migrations::ComponentMigrations,
    ) -> Result<ComponentDb, StoreError> {
        let (pool, thread_readers) = match &self.backend {
            Backend::Sqlite(s) => {
                s.migrate_component(component).await?;
                (
                    ComponentPool::Sqlite(s.write_pool().clone(), s.reader.clone()),
                    s.thread_readers.clone(),
                )
            }
            Backend::Postgres(s) => {
                s.migrate_component(component).await?;
                (
                    ComponentPool::Postgres(s.write_pool().clone(), s.reader.clone()),
                    ThreadReaders::default(),
                )
            }
        };
        Ok(ComponentDb {
            pool,
            thread_readers,
        })
    }
}
