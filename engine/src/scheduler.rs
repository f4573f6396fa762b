//! The scheduler: one `tick` fires the timers that are due, starts the cron occurrences
//! that are due, and measures how late the oldest due timer is.
//!
//! Several nodes may tick against one database at once. Each timer fires once because it
//! is claimed with a lease and its firing is a step with the instance's version check (a
//! node whose lease ran out finds the timer gone from the state and drops it). Each cron
//! occurrence starts once because the instance it starts has an id made from the
//! occurrence (a second start is a duplicate key) and the schedule row moves on only by a
//! compare-and-set on the occurrence just started. Time is the engine's clock; cron
//! expressions are read in the UTC offset of the process's calendar (+08:00 in China).
//!
//! Logs (target `jiuzhu_engine::scheduler`): each tick and timer batch at `debug` with
//! counts and durations, each fired timer at `debug` with its timer and instance id, each
//! cron start at `info`, failures at `warn` with an error code, never the error's text (a
//! step's error may quote submitted data).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use chrono::{DateTime, FixedOffset, Utc};
use futures_util::StreamExt as _;
use jiuzhu_rules::Value;
use jiuzhu_rules::expr::EvalError;
use tracing::Instrument as _;

use crate::core::Actor;
use crate::lang::model::{Definition, ScheduleDecl, ValueTemplate};
use crate::runtime::{Engine, EngineError, TimerFiring, TimerRetry};
use crate::store::{ConflictReason, ScheduleRow, StoreError, TimerRow};

/// The user recorded as the starter of instances a cron schedule starts.
pub const SCHEDULER_USER: &str = "scheduler";

/// Instances of a claimed batch read together before their timers fire (one statement).
const PREFETCH_CHUNK: usize = 200;

/// Why a tick, or one schedule within it, failed.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The loader checks cron expressions, so this means a stored definition was changed
    /// behind its back.
    #[error("bad cron expression `{cron}`")]
    BadCron {
        cron: String,
        #[source]
        source: cron::error::Error,
    },
    #[error("start data `{field}`: `{expression}`")]
    BadData {
        field: String,
        expression: String,
        #[source]
        source: EvalError,
    },
}

impl SchedulerError {
    /// A short code for logs: what kind of failure, without the message (which may quote
    /// a step's data).
    pub fn code(&self) -> &'static str {
        match self {
            SchedulerError::Store(error) if error.is_conflict() => "conflict",
            SchedulerError::Store(_) => "store",
            SchedulerError::Engine(error) => error.code(),
            SchedulerError::BadCron { .. } => "bad_cron",
            SchedulerError::BadData { .. } => "bad_start_data",
        }
    }
}

/// How much one tick does, and how long its leases last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// Timers claimed per round trip. Larger than the engine's timer concurrency, so that
    /// a batch keeps that many firings in flight.
    pub timer_batch: u32,
    /// How long a claimed timer or schedule stays with this node before others may take it.
    /// Short: while the node fires what it claimed it renews the leases every third of
    /// this, so only a node that died (or hangs) loses its timers, to another within one
    /// lease.
    pub lease: chrono::Duration,
    /// How often a failing timer is tried before it is parked as an incident.
    pub retry: TimerRetry,
    /// Most timers one tick handles; the rest wait for the next tick.
    pub max_timers_per_tick: usize,
    /// Most cron occurrences one tick starts (a node that was down works off missed
    /// occurrences a bounded number at a time).
    pub max_starts_per_tick: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            timer_batch: 2_000,
            lease: chrono::Duration::seconds(30),
            retry: TimerRetry::default(),
            max_timers_per_tick: 10_000,
            max_starts_per_tick: 100,
        }
    }
}

/// A timer this tick fired: its step is committed at `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredTimer {
    pub timer_id: String,
    pub instance_id: String,
    pub version: i64,
}

/// A timer whose firing failed (an incident in the definition, a broken stored state, a
/// panic): it is tried again after a backoff, or was parked (see [`TickReport::parked`]).
#[derive(Debug)]
pub struct TimerFailure {
    pub timer_id: String,
    pub instance_id: String,
    pub error: EngineError,
}

/// A cron occurrence this tick started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledStart {
    pub process_id: String,
    pub schedule_id: String,
    /// The occurrence, in the calendar's offset.
    pub occurrence: DateTime<FixedOffset>,
    pub instance_id: String,
}

/// A schedule that could not start its occurrence; it is tried again when its lease ends.
#[derive(Debug)]
pub struct ScheduleFailure {
    pub process_id: String,
    pub schedule_id: String,
    pub error: SchedulerError,
}

/// What one tick did.
#[derive(Debug, Default)]
pub struct TickReport {
    pub fired: Vec<FiredTimer>,
    /// Claimed timers the instance no longer waited for (dropped).
    pub stale: usize,
    /// Claimed timers that kept losing races with other steps (retried after the lease).
    pub busy: usize,
    pub timer_failures: Vec<TimerFailure>,
    /// Timers parked this tick (their failures are in `timer_failures` too): they failed
    /// on every attempt their budget allowed and are incidents on their cases.
    pub parked: Vec<String>,
    pub started: Vec<ScheduledStart>,
    pub schedule_failures: Vec<ScheduleFailure>,
    /// `policy_changed` told this tick: `(case, policy day)`.
    pub policy_changes: Vec<(String, chrono::NaiveDate)>,
    /// Cases a policy day started this tick (`on: policy_changed`): `(case, policy day)`.
    pub policy_starts: Vec<(String, chrono::NaiveDate)>,
    /// Processes or cases a policy change could not be told to, and why (tried again).
    pub policy_failures: Vec<(String, String)>,
    /// How late the oldest claimable due timer is after the tick (`None`: none waiting).
    pub oldest_due_timer_lag: Option<chrono::Duration>,
}

impl TickReport {
    /// True when the tick changed nothing.
    pub fn is_idle(&self) -> bool {
        self.fired.is_empty()
            && self.stale == 0
            && self.busy == 0
            && self.timer_failures.is_empty()
            && self.parked.is_empty()
            && self.started.is_empty()
            && self.schedule_failures.is_empty()
            && self.policy_changes.is_empty()
            && self.policy_starts.is_empty()
    }
}

/// The scheduler of one engine node.
pub struct Scheduler<'e> {
    engine: &'e Engine,
    options: SchedulerOptions,
    /// Parsed cron expressions by their text.
    crons: Mutex<HashMap<String, Arc<cron::Schedule>>>,
    /// The latest policy day swept per process (`runtime/policy_change.rs`): a process is
    /// swept again only when a later one has come, or after a sweep with failures.
    policy_swept: Mutex<HashMap<String, chrono::NaiveDate>>,
    /// Every process is swept through this policy day: until a later one comes (anywhere
    /// on earth), a tick does not look at the processes at all.
    policy_done_through: Mutex<Option<chrono::NaiveDate>>,
}

/// A schedule as the latest deployment of its process declares it.
struct Declared {
    version: i64,
    definition: Arc<Definition>,
    index: usize,
}

impl Declared {
    fn decl(&self) -> &ScheduleDecl {
        &self.definition.schedules[self.index]
    }
}

impl<'e> Scheduler<'e> {
    pub fn new(engine: &'e Engine) -> Scheduler<'e> {
        Scheduler::with_options(engine, SchedulerOptions::default())
    }

    pub fn with_options(engine: &'e Engine, options: SchedulerOptions) -> Scheduler<'e> {
        Scheduler {
            engine,
            options,
            crons: Mutex::new(HashMap::new()),
            policy_swept: Mutex::new(HashMap::new()),
            policy_done_through: Mutex::new(None),
        }
    }

    /// One round: fire due timers, start due cron occurrences, measure the timer backlog.
    /// An error means the database failed; a problem with one timer or schedule is
    /// reported in the [`TickReport`] and the rest still run.
    pub async fn tick(&self) -> Result<TickReport, SchedulerError> {
        let span = tracing::debug_span!("tick", node = %self.engine.node_id);
        async {
            let started = Instant::now();
            let mut report = TickReport::default();
            self.fire_due_timers(&mut report).await?;
            self.start_due_schedules(&mut report).await?;
            self.deliver_policy_changes(&mut report).await;
            report.oldest_due_timer_lag = self
                .engine
                .store
                .oldest_due_timer_lag(self.engine.now())
                .await?;
            tracing::debug!(
                fired = report.fired.len(),
                stale = report.stale,
                busy = report.busy,
                timer_failures = report.timer_failures.len(),
                started = report.started.len(),
                schedule_failures = report.schedule_failures.len(),
                oldest_due_timer_lag_ms = report.oldest_due_timer_lag.map(|lag| lag.num_milliseconds()),
                elapsed = ?started.elapsed(),
                "tick done"
            );
            Ok(report)
        }
        .instrument(span)
        .await
    }

    /// Tells the cases waiting for `policy_changed` of the policy days that have come (see
    /// `runtime/policy_change.rs`). Problems are reported, never fail the tick.
    async fn deliver_policy_changes(&self, report: &mut TickReport) {
        let Some(probe) = self.engine.policy_day_probe() else {
            return;
        };
        let done = *self
            .policy_done_through
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if done.is_some_and(|done| done >= probe) {
            return;
        }
        let mut all_done = true;
        // The cases a policy day starts (`on: policy_changed`), before the cases waiting
        // for the message are told.
        match self.engine.start_policy_schedules().await {
            Ok(starts) => {
                all_done &= starts.failures.is_empty();
                report.policy_starts.extend(starts.started);
                report.policy_failures.extend(starts.failures);
            }
            Err(error) => {
                all_done = false;
                report
                    .policy_failures
                    .push(("(policy starts)".to_string(), error.to_string()));
            }
        }
        let processes = match self.engine.policy_listeners().await {
            Ok(processes) => processes,
            Err(error) => {
                report
                    .policy_failures
                    .push(("(deployments)".to_string(), error.to_string()));
                return;
            }
        };
        for process in processes {
            let latest = match self.engine.latest_policy_day(&process).await {
                Ok(Some(day)) => day,
                Ok(None) => {
                    all_done = false;
                    continue;
                }
                Err(error) => {
                    all_done = false;
                    report.policy_failures.push((process, error.to_string()));
                    continue;
                }
            };
            let swept = self
                .policy_swept
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&process)
                .copied();
            if latest < probe {
                all_done = false;
            }
            if swept.is_some_and(|swept| swept >= latest) {
                continue;
            }
            match self.engine.sweep_policy_changes(&process).await {
                Ok(sweep) => {
                    all_done &= sweep.failures.is_empty();
                    if sweep.failures.is_empty() {
                        self.policy_swept
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .insert(process, latest);
                    }
                    report.policy_changes.extend(sweep.delivered);
                    report.policy_failures.extend(sweep.failures);
                }
                Err(error) => {
                    all_done = false;
                    report.policy_failures.push((process, error.to_string()));
                }
            }
        }
        if all_done {
            *self
                .policy_done_through
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(probe);
        }
    }

    /// Claims due timers a batch at a time and fires them, one pipeline across batches: the
    /// next batch is claimed as soon as the firings of the one before have all been handed
    /// out, so the claim overlaps the tail of that batch instead of waiting for its last
    /// commit. A claim that fails stops the tick once the firings already handed out are done
    /// (their leases bring back whatever was claimed and not fired).
    async fn fire_due_timers(&self, report: &mut TickReport) -> Result<(), SchedulerError> {
        let engine = self.engine;
        let started = Instant::now();
        let (fired_before, stale_before, busy_before, failed_before) = (
            report.fired.len(),
            report.stale,
            report.busy,
            report.timer_failures.len(),
        );
        let claim_failure: Mutex<Option<StoreError>> = Mutex::new(None);
        let claim_failure = &claim_failure;
        let claims = Claims {
            engine,
            failure: claim_failure,
            max: self.options.max_timers_per_tick,
            batch: self.options.timer_batch,
            lease: self.options.lease,
            handled: 0,
            batches: 0,
            done: false,
            claiming: None,
        };
        // The instances are read a chunk at a time, just before their firings: one
        // statement per chunk rather than a read per firing, and the next chunk is read and
        // decoded while the firings ahead of it wait for their commits.
        let retry = &self.options.retry;
        let firing = claims
            .map(futures_util::stream::iter)
            .flatten()
            .map(|chunk| prefetched(engine, chunk))
            .buffered(1)
            .flatten()
            .map(|timers| async move {
                let mut outcomes = Vec::with_capacity(timers.len());
                for timer in timers {
                    let outcome = engine.fire_claimed_timer(&timer, retry).await;
                    outcomes.push((timer, outcome));
                }
                outcomes
            })
            .buffer_unordered(engine.timer_concurrency());
        let mut firing = std::pin::pin!(firing);
        // The leases of what this node claimed are renewed while it works, so a lease
        // can be short (see [`SchedulerOptions::lease`]).
        let renewing = renew_leases(engine, self.options.lease);
        let mut renewing = std::pin::pin!(renewing);
        loop {
            let next = tokio::select! {
                next = firing.next() => next,
                () = &mut renewing => None,
            };
            let Some(outcomes) = next else { break };
            for (timer, outcome) in outcomes {
                match outcome {
                    Ok(TimerFiring::Fired(step)) => {
                        tracing::debug!(
                            timer = %timer.id,
                            instance = %step.instance.id,
                            version = step.instance.version,
                            "timer fired"
                        );
                        report.fired.push(FiredTimer {
                            timer_id: timer.id,
                            instance_id: step.instance.id,
                            version: step.instance.version,
                        })
                    }
                    Ok(TimerFiring::Stale) => {
                        tracing::debug!(timer = %timer.id, instance = %timer.instance_id, "timer stale, dropped");
                        report.stale += 1
                    }
                    Ok(TimerFiring::Parked(error)) => {
                        tracing::warn!(
                            timer = %timer.id,
                            instance = %timer.instance_id,
                            attempts = timer.attempts,
                            error = error.code(),
                            "timer parked as an incident after failing on every attempt"
                        );
                        report.parked.push(timer.id.clone());
                        report.timer_failures.push(TimerFailure {
                            timer_id: timer.id,
                            instance_id: timer.instance_id,
                            error,
                        })
                    }
                    Ok(TimerFiring::Busy) => {
                        tracing::debug!(timer = %timer.id, instance = %timer.instance_id, "timer busy, retried after its lease");
                        report.busy += 1
                    }
                    // The database itself failed: stop the tick, leases bring the rest back.
                    Err(EngineError::Store(error)) if !error.is_conflict() => {
                        tracing::warn!(timer = %timer.id, instance = %timer.instance_id, %error, "timer firing stopped by the database");
                        return Err(error.into());
                    }
                    Err(error) => {
                        tracing::warn!(
                            timer = %timer.id,
                            instance = %timer.instance_id,
                            attempts = timer.attempts,
                            error = error.code(),
                            "timer firing failed; retried after a backoff"
                        );
                        report.timer_failures.push(TimerFailure {
                            timer_id: timer.id,
                            instance_id: timer.instance_id,
                            error,
                        })
                    }
                }
            }
        }
        let fired = report.fired.len() - fired_before;
        let stale = report.stale - stale_before;
        let busy = report.busy - busy_before;
        let failed = report.timer_failures.len() - failed_before;
        if fired + stale + busy + failed > 0 {
            tracing::debug!(
                handled = fired + stale + busy + failed,
                fired,
                stale,
                busy,
                failed,
                elapsed = ?started.elapsed(),
                "due timers handled"
            );
        }
        match claim_failure
            .lock()
            .ok()
            .and_then(|mut failure| failure.take())
        {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    async fn start_due_schedules(&self, report: &mut TickReport) -> Result<(), SchedulerError> {
        let declared = self.sync_schedules(report).await?;
        let engine = self.engine;
        let mut started = 0;
        while started < self.options.max_starts_per_tick {
            let claimed = engine
                .store
                .claim_due_schedules(&engine.node_id, engine.now(), self.options.lease, 16)
                .await?;
            if claimed.is_empty() {
                break;
            }
            for row in claimed {
                let key = (row.process_id.clone(), row.schedule_id.clone());
                let Some(declared) = declared.get(&key) else {
                    // The latest deployment no longer declares it.
                    engine
                        .store
                        .remove_schedule(&row.process_id, &row.schedule_id)
                        .await?;
                    continue;
                };
                match self.start_occurrence(&row, declared).await {
                    Ok(Some(start)) => {
                        tracing::info!(
                            process = %start.process_id,
                            schedule = %start.schedule_id,
                            instance = %start.instance_id,
                            occurrence = %start.occurrence,
                            "cron occurrence started"
                        );
                        started += 1;
                        report.started.push(start);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(
                            process = %row.process_id,
                            schedule = %row.schedule_id,
                            error = error.code(),
                            "cron occurrence not started; retried after its lease"
                        );
                        report.schedule_failures.push(ScheduleFailure {
                            process_id: row.process_id,
                            schedule_id: row.schedule_id,
                            error,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// Gives every schedule of the latest deployments a row (its first occurrence after
    /// now) and resets rows whose cron expression a redeployment changed.
    async fn sync_schedules(
        &self,
        report: &mut TickReport,
    ) -> Result<HashMap<(String, String), Declared>, SchedulerError> {
        let engine = self.engine;
        let now = engine.now();
        let rows: HashMap<(String, String), ScheduleRow> = engine
            .store
            .schedules()
            .await?
            .into_iter()
            .map(|row| ((row.process_id.clone(), row.schedule_id.clone()), row))
            .collect();
        let mut declared = HashMap::new();
        for (process, version) in engine.store.latest_versions().await? {
            let definition = match engine.definition(&process, version).await {
                Ok(definition) => definition,
                Err(EngineError::Store(error)) => return Err(error.into()),
                Err(error) => {
                    // A deployment that no longer compiles cannot run its schedules.
                    report.schedule_failures.push(ScheduleFailure {
                        process_id: process.clone(),
                        schedule_id: String::new(),
                        error: error.into(),
                    });
                    continue;
                }
            };
            let offset = engine.utc_offset(&definition);
            for (index, decl) in definition.schedules.iter().enumerate() {
                let key = (process.clone(), decl.id.clone());
                let first = match self.cron(&decl.cron) {
                    Ok(cron) => next_occurrence(&cron, now, offset),
                    Err(error) => {
                        report.schedule_failures.push(ScheduleFailure {
                            process_id: process.clone(),
                            schedule_id: decl.id.clone(),
                            error,
                        });
                        continue;
                    }
                };
                match (rows.get(&key), first) {
                    (None, Some(first)) => {
                        engine
                            .store
                            .register_schedule(&process, &decl.id, &decl.cron, first)
                            .await?;
                    }
                    (Some(row), Some(first)) if row.cron != decl.cron => {
                        engine
                            .store
                            .reset_schedule(&process, &decl.id, &row.cron, &decl.cron, first)
                            .await?;
                    }
                    // No occurrence left (a cron with a year that has passed).
                    (Some(_), None) => {
                        engine.store.remove_schedule(&process, &decl.id).await?;
                    }
                    _ => {}
                }
                declared.insert(
                    key,
                    Declared {
                        version,
                        definition: definition.clone(),
                        index,
                    },
                );
            }
        }
        Ok(declared)
    }

    /// Starts the occurrence `row` is at and moves the row on. `None` when another node
    /// started it first, or the row changed under this node.
    async fn start_occurrence(
        &self,
        row: &ScheduleRow,
        declared: &Declared,
    ) -> Result<Option<ScheduledStart>, SchedulerError> {
        let engine = self.engine;
        let decl = declared.decl();
        let cron = self.cron(&decl.cron)?;
        let offset = engine.utc_offset(&declared.definition);
        if row.cron != decl.cron {
            // Claimed before this node's sync reset it: reset now, start nothing.
            if let Some(first) = next_occurrence(&cron, engine.now(), offset) {
                engine
                    .store
                    .reset_schedule(
                        &row.process_id,
                        &row.schedule_id,
                        &row.cron,
                        &decl.cron,
                        first,
                    )
                    .await?;
            }
            return Ok(None);
        }
        let occurrence = row.next_due_at.with_timezone(&offset);
        let instance_id = occurrence_instance_id(&row.process_id, &row.schedule_id, occurrence);
        let data = render_start_data(decl, &row.process_id, &instance_id, occurrence)?;
        let actor = Actor {
            user: SCHEDULER_USER.to_string(),
            // The engine itself: a process's `started_by` always admits it.
            roles: vec![crate::lang::model::SYSTEM_ROLE.to_string()],
            unit: match data.get("unit") {
                Some(Value::Str(unit)) => unit.clone(),
                _ => String::new(),
            },
        };
        let outcome = engine
            .start_with_id(
                &instance_id,
                &row.process_id,
                declared.version,
                &actor,
                data,
                None,
            )
            .await;
        let fresh = match outcome {
            Ok(_) => true,
            // Started already: by a node whose lease ran out, or by this one before a crash.
            Err(EngineError::Store(StoreError::Conflict {
                reason: ConflictReason::Duplicate,
                ..
            })) => false,
            Err(error) => return Err(error.into()),
        };
        let started_at = row.next_due_at;
        match cron.after(&occurrence).next() {
            Some(next) => {
                engine
                    .store
                    .advance_schedule(
                        &row.process_id,
                        &row.schedule_id,
                        started_at,
                        next.with_timezone(&Utc),
                    )
                    .await?;
            }
            None => {
                engine
                    .store
                    .remove_schedule(&row.process_id, &row.schedule_id)
                    .await?;
            }
        }
        Ok(fresh.then(|| ScheduledStart {
            process_id: row.process_id.clone(),
            schedule_id: row.schedule_id.clone(),
            occurrence,
            instance_id,
        }))
    }

    fn cron(&self, expression: &str) -> Result<Arc<cron::Schedule>, SchedulerError> {
        if let Some(cron) = self
            .crons
            .lock()
            .ok()
            .and_then(|crons| crons.get(expression).cloned())
        {
            return Ok(cron);
        }
        let cron = Arc::new(cron::Schedule::from_str(expression).map_err(|source| {
            SchedulerError::BadCron {
                cron: expression.to_string(),
                source,
            }
        })?);
        if let Ok(mut crons) = self.crons.lock() {
            crons.insert(expression.to_string(), cron.clone());
        }
        Ok(cron)
    }
}

/// A claim of due timers in progress: the batch size asked for, and the claim.
type Claiming<'a> = (
    u32,
    Pin<Box<dyn Future<Output = Result<Vec<TimerRow>, StoreError>> + Send + 'a>>,
);

/// [`Scheduler::fire_due_timers`]' claims, as a stream of batches (each as [`chunked`]): a
/// batch is claimed when the stream is asked for it, that is when the firings before it
/// have all been handed out. Written out rather than with `stream::unfold`, whose closure
/// the compiler cannot prove `Send` for every lifetime a spawned tick asks about.
struct Claims<'a> {
    engine: &'a Engine,
    /// The claim that failed, if one did (the stream ends there).
    failure: &'a Mutex<Option<StoreError>>,
    /// Timers this tick claims at most, and per batch.
    max: usize,
    batch: u32,
    lease: chrono::Duration,
    handled: usize,
    /// Batches claimed so far this tick, to number their log lines.
    batches: usize,
    done: bool,
    claiming: Option<Claiming<'a>>,
}

impl futures_util::Stream for Claims<'_> {
    type Item = Vec<Vec<Vec<TimerRow>>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let (batch, claim) = match &mut this.claiming {
            Some(claiming) => claiming,
            None => {
                if this.done || this.handled >= this.max {
                    return Poll::Ready(None);
                }
                let batch = this
                    .batch
                    .min(u32::try_from(this.max - this.handled).unwrap_or(u32::MAX));
                let (engine, lease) = (this.engine, this.lease);
                this.batches += 1;
                let span = tracing::debug_span!("timer_batch", batch = this.batches, asked = batch);
                let claim = Box::pin(
                    async move {
                        let started = Instant::now();
                        let claimed = engine
                            .store
                            .claim_due_timers(&engine.node_id, engine.now(), lease, batch)
                            .await;
                        match &claimed {
                            Ok(timers) => tracing::debug!(
                                claimed = timers.len(),
                                elapsed = ?started.elapsed(),
                                "timers claimed"
                            ),
                            Err(error) => tracing::warn!(%error, "timer claim failed"),
                        }
                        claimed
                    }
                    .instrument(span),
                );
                this.claiming.insert((batch, claim))
            }
        };
        let batch = *batch;
        let claimed = std::task::ready!(claim.as_mut().poll(cx));
        this.claiming = None;
        match claimed {
            Ok(claimed) => {
                this.handled += claimed.len();
                this.done = claimed.len() < batch as usize;
                Poll::Ready(Some(chunked(claimed)))
            }
            Err(error) => {
                if let Ok(mut failure) = this.failure.lock() {
                    *failure = Some(error);
                }
                this.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// A claimed batch as chunks of [`PREFETCH_CHUNK`] instances, each instance with its
/// timers in due order: one instance's timers fire one after another, different instances'
/// side by side (and share commits under group commit).
fn chunked(claimed: Vec<TimerRow>) -> Vec<Vec<Vec<TimerRow>>> {
    let mut per_instance: Vec<Vec<TimerRow>> = Vec::new();
    let mut slot: HashMap<String, usize> = HashMap::new();
    for timer in claimed {
        match slot.get(&timer.instance_id) {
            Some(&index) => per_instance[index].push(timer),
            None => {
                slot.insert(timer.instance_id.clone(), per_instance.len());
                per_instance.push(vec![timer]);
            }
        }
    }
    let mut chunks = Vec::new();
    let mut rest = per_instance.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(PREFETCH_CHUNK).collect());
    }
    chunks
}

/// Reads the instances of a chunk of a claimed batch into the engine's cache (see
/// [`Engine::prefetch`]), then hands the chunk on to be fired.
async fn prefetched(
    engine: &Engine,
    chunk: Vec<Vec<TimerRow>>,
) -> futures_util::stream::Iter<std::vec::IntoIter<Vec<TimerRow>>> {
    let mut ids = Vec::with_capacity(chunk.len());
    for timers in &chunk {
        if let Some(timer) = timers.first() {
            ids.push(timer.instance_id.clone());
        }
    }
    // A failed read only loses the shortcut: each firing then loads its instance itself,
    // and a failing database stops the tick there.
    let _ = engine.prefetch(&ids).await;
    futures_util::stream::iter(chunk)
}

/// Renews, every third of `lease`, the leases this node holds on timers; never ends (the
/// tick drops it when its firings are done). A failed renewal is tried again at the next
/// round; a lease that ran out meanwhile is lost, and the firing's version check keeps a
/// second node's firing from doubling it.
async fn renew_leases(engine: &Engine, lease: chrono::Duration) {
    let every = lease
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(30))
        .max(std::time::Duration::from_millis(300))
        / 3;
    loop {
        tokio::time::sleep(every).await;
        match engine
            .store
            .renew_timer_leases(&engine.node_id, engine.now(), lease)
            .await
        {
            Ok(renewed) => tracing::debug!(renewed, "timer leases renewed"),
            Err(error) => tracing::warn!(%error, "timer lease renewal failed"),
        }
    }
}

/// The first occurrence strictly after `now`, read in `offset`.
fn next_occurrence(
    cron: &cron::Schedule,
    now: DateTime<Utc>,
    offset: FixedOffset,
) -> Option<DateTime<Utc>> {
    cron.after(&now.with_timezone(&offset))
        .next()
        .map(|next| next.with_timezone(&Utc))
}

/// `heating_aid-yearly-20261015T090000`: one id per occurrence, so starting it twice is a
/// duplicate key on every database.
pub fn occurrence_instance_id(
    process: &str,
    schedule: &str,
    occurrence: DateTime<FixedOffset>,
) -> String {
    format!(
        "{process}-{schedule}-{}",
        occurrence.format("%Y%m%dT%H%M%S")
    )
}

/// Evaluates a schedule's `data`: `now` and `started_at` are the occurrence (not the
/// moment a late node got round to it), so the data of an occurrence never varies.
fn render_start_data(
    decl: &ScheduleDecl,
    process: &str,
    instance_id: &str,
    occurrence: DateTime<FixedOffset>,
) -> Result<BTreeMap<String, Value>, SchedulerError> {
    let env: BTreeMap<String, Value> = BTreeMap::from([
        ("now".to_string(), Value::DateTime(occurrence)),
        ("started_at".to_string(), Value::DateTime(occurrence)),
        ("process".to_string(), Value::Str(process.to_string())),
        (
            "instance_id".to_string(),
            Value::Str(instance_id.to_string()),
        ),
        (
            "started_by".to_string(),
            Value::Str(SCHEDULER_USER.to_string()),
        ),
    ]);
    decl.data
        .iter()
        .map(|(field, template)| Ok((field.clone(), render(template, &env, field)?)))
        .collect()
}

fn render(
    template: &ValueTemplate,
    env: &BTreeMap<String, Value>,
    field: &str,
) -> Result<Value, SchedulerError> {
    Ok(match template {
        ValueTemplate::Literal(value) => value.clone(),
        ValueTemplate::Expr(expr) => expr.eval(env).map_err(|source| SchedulerError::BadData {
            field: field.to_string(),
            expression: expr.source().to_string(),
            source,
        })?,
        ValueTemplate::List(items) => Value::List(
            items
                .iter()
                .map(|item| render(item, env, field))
                .collect::<Result<_, _>>()?,
        ),
        ValueTemplate::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| Ok((key.clone(), render(value, env, field)?)))
                .collect::<Result<_, SchedulerError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).expect("valid offset")
    }

    #[test]
    fn cron_times_are_read_in_the_calendar_offset() {
        // 09:00 on 15 October, Beijing time.
        let cron = cron::Schedule::from_str("0 0 9 15 10 *").expect("valid cron");
        let now = DateTime::parse_from_rfc3339("2026-10-15T00:30:00Z")
            .expect("valid time")
            .with_timezone(&Utc);
        // 00:30Z is 08:30 in Beijing: today's 09:00 is still ahead, at 01:00Z.
        let next = next_occurrence(&cron, now, offset()).expect("an occurrence");
        assert_eq!(next.to_rfc3339(), "2026-10-15T01:00:00+00:00");
        // Strictly after: at the occurrence itself, the next one is a year on.
        let after = next_occurrence(&cron, next, offset()).expect("an occurrence");
        assert_eq!(after.to_rfc3339(), "2027-10-15T01:00:00+00:00");
    }

    #[test]
    fn occurrence_ids_name_the_local_time() {
        let at = DateTime::parse_from_rfc3339("2026-10-15T09:00:00+08:00").expect("valid time");
        assert_eq!(
            occurrence_instance_id("heating_aid", "yearly", at),
            "heating_aid-yearly-20261015T090000"
        );
    }

    #[test]
    fn a_year_bounded_cron_runs_out() {
        let cron = cron::Schedule::from_str("0 0 9 15 10 * 2026").expect("valid cron");
        let now = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc);
        assert_eq!(next_occurrence(&cron, now, offset()), None);
    }
}
