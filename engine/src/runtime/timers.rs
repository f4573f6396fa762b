//! What the scheduler needs from the engine: firing one claimed timer and starting a cron occurrence's instance.

use super::*;

// ---------------------------------------------------------------- scheduler support
//
// What the scheduler (`crate::scheduler`) needs from the engine: firing one claimed timer,
// starting the instance of one cron occurrence under a deterministic id, and the UTC
// offset a definition's business time runs in.

/// What became of one claimed timer.
#[derive(Debug, Clone)]
pub enum TimerFiring {
    /// The timer's event ran and was committed.
    Fired(Box<StepReport>),
    /// The instance no longer waits for this timer (a step cancelled it, the case ended,
    /// or another node fired it first): its row is gone, nothing else happened.
    Stale,
    /// Every attempt lost a race with a concurrent step on the same instance; the timer
    /// keeps its lease and is fired again when the lease ends.
    Busy,
}

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

    /// Starts an instance of `process@version` under the given id (the scheduler derives it
    /// from the cron occurrence, so a second start of the same occurrence is a duplicate
    /// key and fails with `conflict`).
    pub async fn start_with_id(
        &self,
        instance_id: &str,
        process: &str,
        version: i64,
        actor: &Actor,
        data: BTreeMap<String, Value>,
    ) -> Result<StepReport, EngineError> {
        let def = self.definition(process, version).await?;
        let (commit, after) = self.plan_start_with_id(&def, version, instance_id, actor, data)?;
        let commit = self.commit_step(commit).await?;
        self.instances.remember(&commit.instance, def, after);
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
