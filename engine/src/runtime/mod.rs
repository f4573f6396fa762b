//! The durable engine: runs the pure core against the store, one transaction per step.
//!
//! For every event: load the instance, run `core::step`, and commit the new
//! state, the history row, task and timer rows and the outbox effects in ONE
//! transaction with an optimistic version check. A lost race is `conflict`;
//! a refused event changes nothing. Compiled definitions are cached by
//! `process@version`; running instances keep the version they started on.
//!
//! The engine does not read back what it has just written: the state it last committed
//! for an instance is kept (bounded, least recently used first) and the next step runs on
//! it. The commit's version check is what makes that safe: when another node moved the
//! instance meanwhile, the commit is a conflict, and the step runs once more on a fresh
//! load — again, up to a few times, while other steps of the case (its other tasks, its
//! timers) keep committing first; the user sees `conflict` only when the fresh state refuses
//! the step. A state read from the database is first checked against the case's signed head
//! (`store::chain::check_head`): a mismatch refuses the step with `tampered` and raises an
//! incident. The latest deployment of each process is kept for a short while the same way.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};
use jiuzhu_rules::{InputLimits, Value};
use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::assessor::RulesAssessor;
use crate::calendar::Calendar;
use crate::clock::Clock;
use crate::core::{
    self, Actor, Context, Effect, Event, InstanceState, StepError, TaskRef, Transition,
};
use crate::group_commit::GroupCommitter;
use crate::lang::load_definition;
use crate::lang::model::Definition;
use crate::project::Project;
use crate::store::{
    ConflictReason, Deployment, HistoryEntry, InstanceRow, KeyChange, NewDeployment, OutboxRow,
    StateJson, StepCommit, Store, StoreError, TaskAssignment, TaskCompletion, TaskReschedule,
    TaskRow, TimerRow, Unchanged,
};

/// Instances whose due timers a node fires at once (defined beside the group committer,
/// whose default group size it is).
pub use crate::group_commit::TIMER_CONCURRENCY;

mod archived;
mod cache;
mod commit;
mod correct;
mod error;
mod incident;
pub mod internal;
mod keys;
pub mod policy_change;
mod recount;
mod tamper;
mod timers;

use cache::{CachedInstance, INSTANCE_CACHE_ENTRIES, InstanceCache, LATEST_DEPLOYMENT_TTL};
pub use error::EngineError;
pub use incident::instance_of_incident;
pub use recount::Recounted;
pub use timers::{TimerFiring, TimerRetry};

/// Fresh loads a step gets when other steps of its case keep committing first (see
/// [`Engine::apply`]); each lost race means another step made progress.
const FRESH_ATTEMPTS: usize = 8;

/// The engine of one node: a store, the project's definitions and rules, and a clock.
pub struct Engine {
    pub store: Store,
    pub project: Arc<Project>,
    assessor: RulesAssessor,
    clock: Arc<dyn Clock>,
    definitions: Mutex<HashMap<(String, i64), Arc<Definition>>>,
    /// What this engine last committed per instance, so a step need not read it back.
    instances: InstanceCache,
    /// The latest deployed version per process, with when it was read.
    latest: Mutex<HashMap<String, (i64, Instant)>>,
    /// Identifies this node in timer and outbox leases.
    pub node_id: String,
    /// When set, steps are committed in groups with concurrent ones (see [`GroupCommitter`]).
    committer: Option<GroupCommitter>,
    /// Instances whose due timers fire at the same time (1 without group commit).
    timer_concurrency: usize,
    /// Caps on the data a caller sends (start, message, task forms): checked before the step.
    input_limits: InputLimits,
}

/// What a step did, for the caller to show.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub instance: InstanceRow,
    pub tasks_opened: Vec<TaskRow>,
    pub outbox: Vec<OutboxRow>,
}

impl Engine {
    pub fn new(
        store: Store,
        project: Arc<Project>,
        clock: Arc<dyn Clock>,
        node_id: &str,
    ) -> Result<Engine, EngineError> {
        let assessor = project
            .assessor(None)
            .map_err(|source| EngineError::Rules {
                source: Box::new(source),
            })?;
        Ok(Engine {
            store,
            project,
            assessor,
            clock,
            definitions: Mutex::new(HashMap::new()),
            instances: InstanceCache::new(INSTANCE_CACHE_ENTRIES),
            latest: Mutex::new(HashMap::new()),
            node_id: node_id.to_string(),
            committer: None,
            timer_concurrency: 1,
            input_limits: InputLimits::default(),
        })
    }

    /// Commits every step through `committer`, so concurrent steps share one durable
    /// transaction, and fires the due timers of up to `timer_concurrency` instances at once
    /// (each instance's own timers still fire one after another); [`TIMER_CONCURRENCY`] is
    /// what `jiuzhu run` and `jiuzhu bench timers` use.
    pub fn with_group_commit(
        mut self,
        committer: GroupCommitter,
        timer_concurrency: usize,
    ) -> Self {
        self.committer = Some(committer);
        self.timer_concurrency = timer_concurrency.max(1);
        self
    }

    /// Replaces the default caps on incoming data (bytes, string and list lengths, depth,
    /// members per household).
    pub fn with_input_limits(mut self, limits: InputLimits) -> Self {
        self.input_limits = limits;
        self
    }

    /// Refuses data over the caps before any step runs, naming every problem by its path.
    fn check_input(&self, data: &BTreeMap<String, Value>) -> Result<(), EngineError> {
        let json = Value::Object(data.clone()).to_json();
        self.input_limits.check(&json).map_err(|violations| {
            let path = violations
                .first()
                .map_or_else(|| "$".to_string(), |v| v.path.clone());
            let message = violations
                .iter()
                .map(|v| {
                    format!(
                        "{}: {} (at most {}, found {})",
                        v.path,
                        v.code(),
                        v.limit,
                        v.actual
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            EngineError::Step(StepError::InvalidData { path, message })
        })
    }

    /// The group committer, when steps are committed in groups.
    pub fn group_committer(&self) -> Option<&GroupCommitter> {
        self.committer.as_ref()
    }

    /// Commits one step: in the next group when group commit is on, else on its own.
    async fn commit_step(&self, commit: StepCommit) -> Result<StepCommit, StoreError> {
        match &self.committer {
            Some(committer) => committer.commit(commit).await,
            None => {
                self.store.commit(&commit).await?;
                Ok(commit)
            }
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The policy figures in force for `unit` on `as_of` (shaped like the policy file, as
    /// expressions read `policy`); `None` when no policy is in force there.
    pub fn policy_in_force(&self, unit: &str, as_of: chrono::NaiveDate) -> Option<Value> {
        core::Assessor::policy(&self.assessor, unit, as_of)
    }

    /// Deploys every definition of the project at once: a new version for each changed
    /// source, none for an unchanged one; nothing when any definition is invalid
    /// (the project only loads when all of them validate).
    pub async fn deploy(&self) -> Result<Vec<Deployment>, EngineError> {
        let mut batch = Vec::new();
        for (process_id, path) in &self.project.files {
            let source = std::fs::read_to_string(path).map_err(|source| EngineError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let hash = hex(&Sha256::digest(source.as_bytes()));
            batch.push(NewDeployment {
                process_id: process_id.clone(),
                source,
                hash,
            });
        }
        let deployed = self.store.deploy(&batch, self.now()).await;
        // Forget the latest versions whatever the outcome: a failed deploy may still have
        // been committed before the error reached us.
        lock(&self.latest).clear();
        Ok(deployed?)
    }

    /// Deploys one definition from its source text (an administrator's edit): it must
    /// load against the project's roles and calendars and declare `process_id`. An
    /// unchanged source keeps its version; otherwise the next version is created.
    pub async fn deploy_source(
        &self,
        process_id: &str,
        source: &str,
    ) -> Result<Deployment, EngineError> {
        let invalid = |diagnostics: String| EngineError::InvalidDefinition {
            process: process_id.to_string(),
            diagnostics,
        };
        let def = load_definition(source, process_id, &self.project.context)
            .map_err(|d| invalid(crate::lang::render(&d)))?;
        if def.id != process_id {
            return Err(invalid(format!("the source declares process {}", def.id)));
        }
        let batch = [NewDeployment {
            process_id: process_id.to_string(),
            source: source.to_string(),
            hash: hex(&Sha256::digest(source.as_bytes())),
        }];
        let deployed = self.store.deploy(&batch, self.now()).await;
        lock(&self.latest).remove(process_id);
        deployed?.pop().ok_or_else(|| EngineError::NotFound {
            what: "deployed process",
            id: process_id.to_string(),
        })
    }

    /// The latest deployed version of `process`; read from the store at most once per
    /// [`LATEST_DEPLOYMENT_TTL`] (a deploy through this engine forgets it at once).
    async fn latest_version(&self, process: &str) -> Result<i64, EngineError> {
        if let Some(&(version, read_at)) = lock(&self.latest).get(process)
            && read_at.elapsed() < LATEST_DEPLOYMENT_TTL
        {
            return Ok(version);
        }
        let read_at = Instant::now();
        let deployment = self
            .store
            .latest_deployment(process)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: "deployed process",
                id: process.to_string(),
            })?;
        lock(&self.latest).insert(process.to_string(), (deployment.version, read_at));
        Ok(deployment.version)
    }

    /// The compiled definition of `process@version`, compiled once from its deployed source.
    pub async fn definition(
        &self,
        process: &str,
        version: i64,
    ) -> Result<Arc<Definition>, EngineError> {
        let key = (process.to_string(), version);
        if let Some(def) = self.cached(&key) {
            return Ok(def);
        }
        let deployment = self
            .store
            .deployment(process, version)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: "deployed process",
                id: format!("{process}@{version}"),
            })?;
        let file = format!("{process}@{version}");
        // Checked strictly when it was deployed; read back as it was accepted then.
        let context = self.project.context.for_stored();
        let def = load_definition(&deployment.source, &file, &context).map_err(|diagnostics| {
            EngineError::InvalidDefinition {
                process: file.clone(),
                diagnostics: diagnostics
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            }
        })?;
        let def = Arc::new(def);
        if let Ok(mut cache) = self.definitions.lock() {
            cache.insert(key, def.clone());
        }
        Ok(def)
    }

    fn cached(&self, key: &(String, i64)) -> Option<Arc<Definition>> {
        self.definitions
            .lock()
            .ok()
            .and_then(|cache| cache.get(key).cloned())
    }

    fn calendar(&self, def: &Definition) -> Calendar {
        self.project
            .calendars
            .get(&def.calendar)
            .cloned()
            .unwrap_or_else(Calendar::china_national)
    }

    /// Starts a case of the latest deployed version of `process`, in the actor's unit.
    pub async fn start(
        &self,
        process: &str,
        actor: &Actor,
        data: BTreeMap<String, Value>,
    ) -> Result<StepReport, EngineError> {
        self.start_in(process, actor, None, data).await
    }

    /// Starts a case of the latest deployed version of `process` for `unit` (the actor's
    /// own unit when `None`; the core refuses a unit that is not the actor's or below it).
    ///
    /// When the actor is a user of the org directory, the case must land in someone's
    /// queue: every task it opens needs a user of the org with one of its roles in a unit
    /// covering the task's, or the start is refused (`invalid_data` on `$.unit`), e.g. a
    /// county user starting a township procedure without naming the township.
    #[tracing::instrument(name = "start", level = "debug", skip_all, fields(process))]
    pub async fn start_in(
        &self,
        process: &str,
        actor: &Actor,
        unit: Option<&str>,
        mut data: BTreeMap<String, Value>,
    ) -> Result<StepReport, EngineError> {
        self.check_input(&data)?;
        if let Some(unit) = unit {
            data.insert("unit".to_string(), Value::Str(unit.to_string()));
        }
        let version = self.latest_version(process).await?;
        let def = self.definition(process, version).await?;
        let id = new_instance_id(&def.id);
        let (commit, state) = self.plan_start_with_id(&def, version, &id, actor, data, None)?;
        self.check_reachable(actor, &commit)?;
        self.check_requires(&state).await?;
        let commit = self.commit_start(commit).await?;
        let changes =
            incident::incident_changes(&InstanceState::new(&id, &def.id, state.started_at), &state);
        self.instances.remember(&commit.instance, def, state);
        self.sync_incidents(changes).await;
        Ok(report(commit))
    }

    /// Every task a start opens has someone in the org to act on it (see [`Engine::start_in`]).
    fn check_reachable(&self, actor: &Actor, commit: &StepCommit) -> Result<(), EngineError> {
        let Some(org) = &self.project.org else {
            return Ok(());
        };
        if org.user(&actor.user).is_none() {
            return Ok(());
        }
        for task in &commit.tasks_opened {
            let reachable = org.users().iter().any(|user| {
                task.candidate_roles().iter().any(|r| user.has_role(r))
                    && core::unit_contains(&user.unit, &task.unit)
            });
            if !reachable {
                return Err(EngineError::Step(StepError::InvalidData {
                    path: "$.unit".to_string(),
                    message: format!(
                        "nobody can act on task {} in {}: no user has role {} there; start the case for a unit below",
                        task.node_id,
                        task.unit,
                        task.candidate_roles().join(" or ")
                    ),
                }));
            }
        }
        Ok(())
    }

    /// The first step of a new case of `def` (deployed as `version`), through the core but
    /// not committed: what [`Engine::start`] commits.
    pub fn plan_start(
        &self,
        def: &Definition,
        version: i64,
        actor: &Actor,
        data: BTreeMap<String, Value>,
    ) -> Result<StepCommit, EngineError> {
        let id = new_instance_id(&def.id);
        Ok(self
            .plan_start_with_id(def, version, &id, actor, data, None)?
            .0)
    }

    /// The start step of a case with id `id`, with the new case's state for the instance cache.
    fn plan_start_with_id(
        &self,
        def: &Definition,
        version: i64,
        id: &str,
        actor: &Actor,
        data: BTreeMap<String, Value>,
        parent: Option<core::ParentLink>,
    ) -> Result<(StepCommit, InstanceState), EngineError> {
        let calendar = self.calendar(def);
        // The step's one reading of the clock (see `apply_on`).
        let now = self.local_now(&calendar);
        let mut state = InstanceState::new(id, &def.id, now);
        // Set before the start event, so a case that ends in its first step tells its parent.
        state.parent = parent;
        let event = Event::Start {
            actor: actor.clone(),
            data: data.clone(),
        };
        let ctx = Context {
            calendar: &calendar,
            assessor: &self.assessor,
        };
        let transition = core::step(def, &state, &event, now, &ctx)?;
        let step = Step {
            event: &event,
            kind: "start",
            actor: Some(actor),
            data: &data,
            fired_timer: None,
            completes: None,
            on_behalf_of: None,
            delivery: None,
        };
        self.to_commit(def, version, None, &state, transition, now, &step)
    }

    /// Loads an instance with its definition and state.
    pub async fn load(
        &self,
        instance_id: &str,
    ) -> Result<(InstanceRow, Arc<Definition>, InstanceState), EngineError> {
        let row = self
            .store
            .load_instance(instance_id)
            .await
            .map_err(|error| match error {
                StoreError::Tampered(tamper) => EngineError::Tampered(tamper),
                error => EngineError::Store(error),
            })?;
        let Some(row) = row else {
            return Err(self.missing_instance(instance_id).await);
        };
        let def = self
            .definition(&row.process_id, row.process_version)
            .await?;
        let state = InstanceState::from_json(row.state.as_str(), &def).map_err(|source| {
            EngineError::CorruptState {
                instance: instance_id.to_string(),
                source,
            }
        })?;
        Ok((row, def, state))
    }

    /// Reads the instances of `instance_ids` that this engine does not hold, in a few
    /// statements, and keeps them as if it had just loaded each, so the steps that follow
    /// run without a read of their own. Returns how many it read and kept.
    ///
    /// Safe whatever happens meanwhile: an entry that another node makes stale before the
    /// step is caught by the commit's version check, as any stale entry is (see
    /// [`Engine::apply`]). An instance that is unknown, or whose definition or stored state
    /// does not load, is skipped: its step loads it and reports the problem as it would
    /// have. At most as many instances as the cache holds are worth asking for at once.
    pub async fn prefetch(&self, instance_ids: &[String]) -> Result<usize, StoreError> {
        let missing: Vec<String> = instance_ids
            .iter()
            .filter(|id| !self.instances.touch(id))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let mut kept = 0;
        for row in self.store.load_instances(&missing).await? {
            let def = match self.definition(&row.process_id, row.process_version).await {
                Ok(def) => def,
                Err(EngineError::Store(error)) => return Err(error),
                Err(_) => continue,
            };
            let Ok(state) = InstanceState::from_json(row.state.as_str(), &def) else {
                continue;
            };
            self.instances.remember(&row, def, state);
            kept += 1;
        }
        Ok(kept)
    }

    /// Applies one event to an instance and commits it; `fired_timer` is removed with the step.
    ///
    /// Runs on the state this engine last committed when it has it. That state is behind
    /// the store only when someone else moved the instance since; the commit's version
    /// check then refuses the step (or the core refuses an event the newer state would
    /// take), and the step runs once more on a fresh load. The step is a pure function of
    /// state and event, so running it again is safe; what the fresh run says is final.
    #[tracing::instrument(name = "step", level = "debug", skip_all,
        fields(instance = instance_id, event = step.kind))]
    async fn apply(&self, instance_id: &str, step: Step<'_>) -> Result<StepReport, EngineError> {
        let outcome = self.apply_cached_or_loaded(instance_id, step).await;
        match &outcome {
            Ok(report) => tracing::debug!(
                version = report.instance.version,
                tasks_opened = report.tasks_opened.len(),
                effects = report.outbox.len(),
                "step committed"
            ),
            // The code only: an error's text can quote a form's data.
            Err(error) => tracing::debug!(code = error.code(), "step refused"),
        }
        outcome
    }

    /// [`Engine::apply`]'s work: on the cached state first, then on a fresh load.
    async fn apply_cached_or_loaded(
        &self,
        instance_id: &str,
        step: Step<'_>,
    ) -> Result<StepReport, EngineError> {
        if let Some(cached) = self.instances.get(instance_id) {
            match self.apply_on(instance_id, cached, &step).await {
                Ok(report) => return Ok(report),
                Err(EngineError::Conflict { .. } | EngineError::Step(_)) => {
                    self.instances.forget(instance_id);
                }
                Err(e) => {
                    self.instances.forget(instance_id);
                    return Err(e);
                }
            }
        }
        // A lost race on a fresh state means another step of the case (another task, a
        // timer) committed in between: run again on the state it left. The core decides on
        // that state whether this step still stands; only when it refuses (the user's own
        // task was completed, claimed or closed meanwhile) does the caller see it.
        let mut attempt = 1;
        loop {
            let (row, def, state) = match self.load(instance_id).await {
                Err(EngineError::Tampered(tamper)) => {
                    return Err(self.tampered(tamper).await);
                }
                loaded => loaded?,
            };
            let fresh = CachedInstance {
                version: row.version,
                process_version: row.process_version,
                def,
                state: Arc::new(state),
            };
            match self.apply_on(instance_id, fresh, &step).await {
                Err(EngineError::Conflict {
                    reason: ConflictReason::VersionMismatch | ConflictReason::Serialization,
                    ..
                }) if attempt < FRESH_ATTEMPTS => attempt += 1,
                outcome => return outcome,
            }
        }
    }

    /// One attempt of [`Engine::apply`] on a known state; remembers the committed state.
    async fn apply_on(
        &self,
        instance_id: &str,
        base: CachedInstance,
        step: &Step<'_>,
    ) -> Result<StepReport, EngineError> {
        let CachedInstance {
            version,
            process_version,
            def,
            state,
        } = base;
        let calendar = self.calendar(&def);
        // The step's one reading of the clock: the core, the history row, new task rows
        // and the instance row all carry this instant.
        let now = self.local_now(&calendar);
        // The context borrows the (not `Sync`) assessor: it must not live across the commit's
        // await, or the step's future could not move between threads.
        let transition = {
            let ctx = Context {
                calendar: &calendar,
                assessor: &self.assessor,
            };
            if let Some(effect) = step.delivery
                && state.received.iter().any(|r| r == effect)
            {
                return Err(EngineError::AlreadyReceived {
                    instance: instance_id.to_string(),
                    effect: effect.to_string(),
                });
            }
            let mut transition = core::step(&def, &state, step.event, now, &ctx)?;
            if let Some(effect) = step.delivery {
                transition.state.record_received(effect).map_err(|full| {
                    EngineError::TooManyMessages {
                        instance: instance_id.to_string(),
                        limit: full.limit,
                    }
                })?;
            }
            transition
        };
        let (mut commit, after) = self.to_commit(
            &def,
            process_version,
            Some(version),
            &state,
            transition,
            now,
            step,
        )?;
        commit.completes = step.completes.cloned();
        let commit = self.commit_step(commit).await.map_err(|e| match e {
            StoreError::Conflict { reason, .. } => EngineError::Conflict {
                instance: instance_id.to_string(),
                reason,
                holder: None,
            },
            e => EngineError::Store(e),
        })?;
        let changes = incident::incident_changes(&state, &after);
        self.instances.remember(&commit.instance, def, after);
        self.sync_incidents(changes).await;
        Ok(report(commit))
    }

    /// Claims a task for `actor` (who must be allowed to complete it): a step of its case,
    /// recorded in its history as `claim`. The task row's holder mirrors the core's claim.
    pub async fn claim(&self, task_id: &str, actor: &Actor) -> Result<StepReport, EngineError> {
        let event = Event::Claim {
            task: TaskRef::Id(task_id.to_string()),
            actor: actor.clone(),
        };
        self.hand_over(task_id, &event, "claim", actor, BTreeMap::new())
            .await
    }

    /// Releases a claimed task back to every candidate's queue (`unclaim` in the history):
    /// by its holder, or by a head of the task's unit (see [`core::is_supervisor_role`]).
    pub async fn unclaim(&self, task_id: &str, actor: &Actor) -> Result<StepReport, EngineError> {
        let event = Event::Unclaim {
            task: TaskRef::Id(task_id.to_string()),
            actor: actor.clone(),
        };
        self.hand_over(task_id, &event, "unclaim", actor, BTreeMap::new())
            .await
    }

    /// A head of the task's unit hands the task to `to` (`reassign` in the history). `to`
    /// is a user of the org directory; the core checks their roles and unit.
    pub async fn reassign(
        &self,
        task_id: &str,
        actor: &Actor,
        to: &Actor,
    ) -> Result<StepReport, EngineError> {
        let event = Event::Reassign {
            task: TaskRef::Id(task_id.to_string()),
            actor: actor.clone(),
            to: to.clone(),
        };
        let input = BTreeMap::from([("to".to_string(), Value::Str(to.user.clone()))]);
        self.hand_over(task_id, &event, "reassign", actor, input)
            .await
    }

    /// The task's holder hands it to a named colleague `to` (`delegate` in the history).
    pub async fn delegate(
        &self,
        task_id: &str,
        actor: &Actor,
        to: &Actor,
    ) -> Result<StepReport, EngineError> {
        let event = Event::Delegate {
            task: TaskRef::Id(task_id.to_string()),
            actor: actor.clone(),
            to: to.clone(),
        };
        let input = BTreeMap::from([("to".to_string(), Value::Str(to.user.clone()))]);
        self.hand_over(task_id, &event, "delegate", actor, input)
            .await
    }

    /// One claim, unclaim, reassign or delegate step of the task's case.
    async fn hand_over(
        &self,
        task_id: &str,
        event: &Event,
        kind: &str,
        actor: &Actor,
        input: BTreeMap<String, Value>,
    ) -> Result<StepReport, EngineError> {
        let no_task = || EngineError::NotFound {
            what: "open task",
            id: task_id.to_string(),
        };
        let instance_id = instance_of_task(task_id).ok_or_else(no_task)?;
        let step = Step {
            event,
            kind,
            actor: Some(actor),
            data: &input,
            fired_timer: None,
            completes: None,
            on_behalf_of: None,
            delivery: None,
        };
        match self.apply(instance_id, step).await {
            Err(EngineError::NotFound { .. }) => Err(no_task()),
            outcome => outcome,
        }
    }

    /// Completes a task with form data.
    ///
    /// Reads nothing of its own: the task id names its instance, and whether another user
    /// holds the task's claim is checked by the core on the state the commit's version check
    /// guards (and once more by the statement that closes the task).
    pub async fn complete(
        &self,
        task_id: &str,
        actor: &Actor,
        data: BTreeMap<String, Value>,
    ) -> Result<StepReport, EngineError> {
        let no_task = || EngineError::NotFound {
            what: "open task",
            id: task_id.to_string(),
        };
        let instance_id = instance_of_task(task_id).ok_or_else(no_task)?;
        self.check_input(&data)?;
        let event = Event::Complete {
            task: TaskRef::Id(task_id.to_string()),
            actor: actor.clone(),
            data: data.clone(),
        };
        let completion = TaskCompletion {
            task_id: task_id.to_string(),
            user: actor.user.clone(),
        };
        let step = Step {
            event: &event,
            kind: "complete",
            actor: Some(actor),
            data: &data,
            fired_timer: None,
            completes: Some(&completion),
            on_behalf_of: None,
            delivery: None,
        };
        let outcome = self.apply(instance_id, step).await;
        match outcome {
            // The id has the shape of a task id, but no such case exists.
            Err(EngineError::NotFound { .. }) => Err(no_task()),
            // Refused for a claim: name the holder (a read only on this rare path).
            Err(EngineError::Conflict {
                instance,
                reason: reason @ ConflictReason::ClaimedByOther,
                ..
            }) => {
                let holder = match self.store.task(task_id).await {
                    Ok(Some(TaskRow {
                        assignee: Some(holder),
                        ..
                    })) if holder != actor.user => Some(holder),
                    _ => None,
                };
                Err(EngineError::Conflict {
                    instance,
                    reason,
                    holder,
                })
            }
            outcome => outcome,
        }
    }

    /// Delivers a named message to an instance.
    pub async fn message(
        &self,
        instance_id: &str,
        name: &str,
        actor: Option<&Actor>,
        data: BTreeMap<String, Value>,
    ) -> Result<StepReport, EngineError> {
        self.message_on_behalf(instance_id, name, actor, None, data)
            .await
    }

    /// Delivers a named message that `actor` records for someone else (`applicant`: a
    /// clerk records an applicant's objection); the history row says for whom.
    pub async fn message_on_behalf(
        &self,
        instance_id: &str,
        name: &str,
        actor: Option<&Actor>,
        on_behalf_of: Option<&str>,
        data: BTreeMap<String, Value>,
    ) -> Result<StepReport, EngineError> {
        self.check_input(&data)?;
        let event = Event::Message {
            name: name.to_string(),
            actor: actor.cloned(),
            data: data.clone(),
        };
        let kind = format!("message:{name}");
        let step = Step {
            event: &event,
            kind: &kind,
            actor,
            data: &data,
            fired_timer: None,
            completes: None,
            on_behalf_of,
            delivery: None,
        };
        self.apply(instance_id, step).await
    }

    fn local_now(&self, calendar: &Calendar) -> DateTime<FixedOffset> {
        self.now().with_timezone(&calendar.utc_offset())
    }
}

/// Locks one of the engine's caches. A panic while holding it cannot leave a cache
/// inconsistent (every update is one map operation), so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one step applies, besides the instance it applies to.
struct Step<'a> {
    event: &'a Event,
    /// The history row's event name.
    kind: &'a str,
    actor: Option<&'a Actor>,
    data: &'a BTreeMap<String, Value>,
    /// The timer this step fires, removed with it.
    fired_timer: Option<&'a str>,
    /// The task this step completes, checked against its claim in the commit.
    completes: Option<&'a TaskCompletion>,
    /// For whom the actor acted (`applicant`), recorded in the history row.
    on_behalf_of: Option<&'a str>,
    /// The id of another case's `message` effect this step delivers: recorded in the
    /// history row and in the case's state, and a state that has it already refuses the
    /// step (`internal.rs`).
    delivery: Option<&'a str>,
}

/// The instance a task belongs to: task ids are `{instance}-t{seq}` (see
/// [`InstanceState::next_id`]). `None` when `task_id` does not have that shape.
fn instance_of_task(task_id: &str) -> Option<&str> {
    let (instance, seq) = task_id.rsplit_once("-t")?;
    let well_formed =
        !instance.is_empty() && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit());
    well_formed.then_some(instance)
}

fn report(commit: StepCommit) -> StepReport {
    StepReport {
        instance: commit.instance,
        tasks_opened: commit.tasks_opened,
        outbox: commit.outbox,
    }
}

/// A new, unique, time-ordered instance id: `dibao-0192f7c3…`.
fn new_instance_id(process: &str) -> String {
    format!("{process}-{}", uuid::Uuid::now_v7().simple())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::instance_of_task;

    #[test]
    fn a_task_id_names_its_instance() {
        assert_eq!(
            instance_of_task("dibao-0192f7c3-t12"),
            Some("dibao-0192f7c3")
        );
        // Instance ids may themselves contain `-t`: only the last one counts.
        assert_eq!(
            instance_of_task("heating-t-2026-t3"),
            Some("heating-t-2026")
        );
        for malformed in ["", "t1", "-t1", "dibao-t", "dibao-tx1", "dibao-w3", "dibao"] {
            assert_eq!(instance_of_task(malformed), None, "{malformed}");
        }
    }
}
