//! Counting provisional due dates again when a calendar covering their year is deployed.
//!
//! A due date counted in working days through a year the calendar did not cover is
//! provisional (see [`crate::calendar`]). After `deploy`, every case with a provisional
//! timer gets a `calendar_changed` step: the core counts its provisional due dates again
//! with the calendar now in force, moves their timers and task rows, and the history row
//! records each due date's old and new value. A case whose dates do not change with the
//! calendar is left alone (the core refuses the step, so no history row is written).

use super::*;

/// What [`Engine::recount_provisional`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recounted {
    /// Cases whose provisional due dates changed (one history row each).
    pub changed: Vec<String>,
    /// Cases with provisional due dates the deployed calendars leave as they were.
    pub unchanged: usize,
}

impl Engine {
    /// Steps every case with a provisional due date through `calendar_changed`.
    pub async fn recount_provisional(&self) -> Result<Recounted, EngineError> {
        let mut recounted = Recounted::default();
        let event = Event::CalendarChanged;
        let input = BTreeMap::new();
        for instance in self.store.instances_with_provisional_timers().await? {
            let step = Step {
                event: &event,
                kind: CALENDAR_CHANGED,
                actor: None,
                data: &input,
                fired_timer: None,
                completes: None,
                on_behalf_of: None,
                delivery: None,
            };
            match self.apply(&instance, step).await {
                Ok(_) => recounted.changed.push(instance),
                Err(EngineError::Step(StepError::NotFound(_))) => recounted.unchanged += 1,
                Err(error) => return Err(error),
            }
        }
        Ok(recounted)
    }
}

/// The history row's event name of a recount.
pub(super) const CALENDAR_CHANGED: &str = "calendar_changed";

/// A recount's history data also says which due dates moved: `rescheduled` lists each
/// open task, armed deadline and `timer` node (or `receive` timeout) whose due date or
/// provisional mark changed, old and new.
pub(super) fn with_due_dates(
    mut data: serde_json::Value,
    kind: &str,
    before: &InstanceState,
    after: &InstanceState,
) -> serde_json::Value {
    if kind != CALENDAR_CHANGED {
        return data;
    }
    let mut moved = Vec::new();
    for task in &after.tasks {
        if let Some(old) = before.tasks.iter().find(|t| t.id == task.id)
            && (old.due_at, old.provisional) != (task.due_at, task.provisional)
        {
            moved.push(serde_json::json!({
                "task": task.id,
                "node": task.node,
                "old_due_at": old.due_at.map(|t| t.to_rfc3339()),
                "old_provisional": old.provisional,
                "due_at": task.due_at.map(|t| t.to_rfc3339()),
                "provisional": task.provisional,
            }));
        }
    }
    for deadline in &after.deadlines {
        if let Some(old) = before.deadlines.iter().find(|d| d.id == deadline.id)
            && (old.due_at, old.provisional) != (deadline.due_at, deadline.provisional)
        {
            moved.push(serde_json::json!({
                "deadline": deadline.id,
                "old_due_at": old.due_at.to_rfc3339(),
                "old_provisional": old.provisional,
                "due_at": deadline.due_at.to_rfc3339(),
                "provisional": deadline.provisional,
            }));
        }
    }
    for timer in &after.timers {
        let crate::core::TimerKind::Node { token } = timer.kind else {
            continue;
        };
        if let Some(old) = before.timers.iter().find(|t| t.kind == timer.kind)
            && (old.due_at, old.provisional) != (timer.due_at, timer.provisional)
        {
            let node = after.tokens.iter().find(|t| t.id == token).map(|t| &t.node);
            moved.push(serde_json::json!({
                "timer": timer.id,
                "node": node,
                "old_due_at": old.due_at.to_rfc3339(),
                "old_provisional": old.provisional,
                "due_at": timer.due_at.to_rfc3339(),
                "provisional": timer.provisional,
            }));
        }
    }
    if let Some(map) = data.as_object_mut() {
        map.insert("rescheduled".into(), serde_json::Value::Array(moved));
    }
    data
}
