//! What the scheduler needs from the engine: firing one claimed timer and starting a cron occurrence's instance.

use super::*;

// ---------------------------------------------------------------- scheduler support
//
// What the scheduler (`crate::scheduler`) needs from the engine: firing one claimed timer,
// starting the instance of one cron occurrence under a deterministic id, and the UTC
// offset a definition's business time runs in.

/// What became of one claimed timer.
#[derive(Debug)]
pub enum TimerFiring {
    /// The timer's event ran and was committed.
    Fired(Box<StepReport>),
    /// The instance no longer waits for this timer (a step cancelled it, the case ended,
    /// or another node fired it first): its row is gone, nothing else happened.
    Stale,
    /// Every attempt lost a race with a concurrent step on the same instance; the timer
    /// keeps its lease and is fired again when the lease ends.
    Busy,
    /// The timer failed (or killed the node) on every attempt its budget allows: it is
    /// parked, an incident on its case, and fires no more until an operator retries it.
    Parked(EngineError),
}

/// How often a failing timer is tried, and how long it waits between tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRetry {
    /// Claims a timer gets before it is parked (a claim whose firing never reported back,
    /// because the process died, counts too).
    pub max_attempts: i64,
    /// Wait after the first failure; doubled after each further one.
    pub backoff: chrono::Duration,
}

impl Default for TimerRetry {
    fn default() -> Self {
        TimerRetry {
            max_attempts: 5,
            backoff: chrono::Duration::seconds(10),
        }
    }
}

/// The longest wait between two tries of a failing timer.
const MAX_BACKOFF_SECONDS: i64 = 3_600;

/// Concurrent steps a timer gives way to before it waits for its lease to end.
const TIMER_ATTEMPTS: usize = 5;

impl Engine {
    /// Fires one timer this node has claimed. The history row records the timer id as the
    /// event's input, so the audit trail says which timer fired; the instance's version
    /// check makes a second firing (after a lease ran out) a no-op, never a double step.
    pub async fn fire_timer(&self, timer: &TimerRow) -> Result<TimerFiring, EngineError> {
        let event = Event::TimerFired {
            timer_id: timer.id.clone(),
        };
        let input = BTreeMap::from([("timer".to_string(), Value::Str(timer.id.clone()))]);
        for _ in 0..TIMER_ATTEMPTS {
            let step = Step {
                event: &event,
                kind: "timer",
                actor: None,
                data: &input,
                fired_timer: Some(&timer.id),
                completes: None,
                on_behalf_of: None,
                delivery: None,
            };
            match self.apply(&timer.instance_id, step).await {
                Ok(report) => return Ok(TimerFiring::Fired(Box::new(report))),
                // A user's step won the race: reload and fire on the new state.
                Err(EngineError::Conflict { .. }) => continue,
                Err(EngineError::Step(StepError::NotFound(_)) | EngineError::NotFound { .. }) => {
                    self.store.complete_timer(&timer.id).await?;
                    return Ok(TimerFiring::Stale);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(TimerFiring::Busy)
    }

    /// Fires a claimed timer within its attempt budget: a firing that fails, or panics, is
    /// put off by a doubling backoff (and the error returned), and once the budget is spent
    /// (or already was at the claim: earlier attempts killed the node) the timer is parked.
    /// A failing database is returned as it is: the lease brings the timer back.
    pub async fn fire_claimed_timer(
        &self,
        timer: &TimerRow,
        retry: &TimerRetry,
    ) -> Result<TimerFiring, EngineError> {
        use futures_util::FutureExt as _;
        if timer.attempts > retry.max_attempts {
            let error = EngineError::Step(StepError::Incident {
                node: String::new(),
                message: format!(
                    "timer {} was claimed {} times without its firing reporting back",
                    timer.id,
                    timer.attempts - 1
                ),
            });
            self.store
                .park_timer(&timer.id, "attempts_exhausted", self.now())
                .await?;
            return Ok(TimerFiring::Parked(error));
        }
        let outcome = std::panic::AssertUnwindSafe(self.fire_timer(timer))
            .catch_unwind()
            .await;
        let error = match outcome {
            Ok(Ok(firing)) => return Ok(firing),
            Ok(Err(EngineError::Store(error))) if !error.is_conflict() => {
                return Err(EngineError::Store(error));
            }
            Ok(Err(error)) => error,
            Err(_) => EngineError::Step(StepError::Incident {
                node: String::new(),
                message: format!("the firing of timer {} panicked", timer.id),
            }),
        };
        let code = error.code();
        let now = self.now();
        if timer.attempts >= retry.max_attempts {
            self.store.park_timer(&timer.id, code, now).await?;
            return Ok(TimerFiring::Parked(error));
        }
        let doublings = u32::try_from(timer.attempts.clamp(1, 20) - 1).unwrap_or(0);
        let wait = (retry.backoff.num_seconds().max(1) << doublings).min(MAX_BACKOFF_SECONDS);
        self.store
            .retry_timer(&timer.id, code, now + chrono::Duration::seconds(wait))
            .await?;
        Err(error)
    }

    /// Starts an instance of `process@version` under the given id (the scheduler derives it
    /// from the cron occurrence, so a second start of the same occurrence is a duplicate
    /// key and fails with `conflict`). `parent` links a case started by another's
    /// `start_process` to it (`internal.rs`).
    pub async fn start_with_id(
        &self,
        instance_id: &str,
        process: &str,
        version: i64,
        actor: &Actor,
        data: BTreeMap<String, Value>,
        parent: Option<crate::core::ParentLink>,
    ) -> Result<StepReport, EngineError> {
        let def = self.definition(process, version).await?;
        let (commit, after) =
            self.plan_start_with_id(&def, version, instance_id, actor, data, parent)?;
        self.check_requires(&after).await?;
        let commit = self.commit_start(commit).await?;
        let before = InstanceState::new(instance_id, &def.id, after.started_at);
        let changes = super::incident::incident_changes(&before, &after);
        self.instances.remember(&commit.instance, def, after);
        self.sync_incidents(changes).await;
        Ok(report(commit))
    }

    /// How many instances' due timers this node fires at once.
    pub fn timer_concurrency(&self) -> usize {
        self.timer_concurrency
    }

    /// The UTC offset of the calendar `def` runs on (cron times and local dates use it).
    pub fn utc_offset(&self, def: &Definition) -> FixedOffset {
        self.calendar(def).utc_offset()
    }
}
