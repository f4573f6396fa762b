//! What a step writes: the rows of one step's commit (instance, history, tasks, timers,
//! outbox) made from the core's transition.

use super::*;

impl Engine {
    /// What a step writes. `now` is the step's instant (the one the core ran at): the history
    /// row, the instance's `updated_at` and new rows all carry it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn to_commit(
        &self,
        def: &Definition,
        version: i64,
        expected_version: Option<i64>,
        before: &InstanceState,
        transition: Transition,
        now: DateTime<FixedOffset>,
        step: &Step<'_>,
    ) -> Result<(StepCommit, InstanceState), EngineError> {
        let now = now.with_timezone(&Utc);
        let state = transition.state;
        let serialize = |source| EngineError::Serialize {
            instance: state.id.clone(),
            source,
        };
        let mut commit = StepCommit {
            instance: InstanceRow {
                id: state.id.clone(),
                process_id: def.id.clone(),
                process_version: version,
                status: state.status.as_str().to_string(),
                outcome: state.outcome.clone(),
                unit: state.unit.clone(),
                state: StateJson::of(&state).map_err(serialize)?,
                version: expected_version.unwrap_or(0) + 1,
                created_at: state.started_at.with_timezone(&Utc),
                updated_at: now,
            },
            expected_version,
            history: HistoryEntry {
                at: now,
                actor: step.actor.map(|a| a.user.clone()),
                event: step.kind.to_string(),
                node: transition.node.clone(),
                data: recount::with_due_dates(
                    history_data(step, before, &state),
                    step.kind,
                    before,
                    &state,
                ),
            },
            tasks_opened: Vec::new(),
            tasks_closed: Vec::new(),
            timers_set: Vec::new(),
            timers_cancelled: step
                .fired_timer
                .map(|t| vec![t.to_string()])
                .unwrap_or_default(),
            outbox: Vec::new(),
            tasks_assigned: Vec::new(),
            tasks_rescheduled: Vec::new(),
            completes: None,
            unchanged: Unchanged {
                status: expected_version.is_some() && before.status == state.status,
                unit: expected_version.is_some() && before.unit == state.unit,
            },
            business_key: key_change(&def.key_outlives, expected_version, before, &state),
        };
        for effect in transition.effects {
            match effect {
                Effect::OpenTask(task) => commit.tasks_opened.push(TaskRow {
                    id: task.id.clone(),
                    instance_id: state.id.clone(),
                    node_id: task.node.clone(),
                    label: task.label.clone(),
                    role: task.roles.first().cloned().unwrap_or_default(),
                    unit: task.unit.clone(),
                    assignee: task.claimed_by.clone().or_else(|| task.assignee.clone()),
                    due_at: task.due_at.map(|t| t.with_timezone(&Utc)),
                    created_at: now,
                    form: form_json(def, &task.node),
                    roles: task.roles.clone(),
                    provisional: task.provisional,
                }),
                Effect::RescheduleTask {
                    task_id,
                    due_at,
                    provisional,
                } => commit.tasks_rescheduled.push(TaskReschedule {
                    task_id,
                    due_at: due_at.map(|t| t.with_timezone(&Utc)),
                    provisional,
                }),
                Effect::AssignTask { task_id, holder } => {
                    // A task opened in this step is written with its holder already.
                    if let Some(opened) = commit.tasks_opened.iter_mut().find(|t| t.id == task_id) {
                        opened.assignee = holder;
                    } else if let Some(assigned) = commit
                        .tasks_assigned
                        .iter_mut()
                        .find(|a| a.task_id == task_id)
                    {
                        assigned.assignee = holder;
                    } else {
                        commit.tasks_assigned.push(TaskAssignment {
                            task_id,
                            assignee: holder,
                        });
                    }
                }
                Effect::CloseTask { task_id, .. } => {
                    // A task opened and closed in the same step never reaches the inbox.
                    if let Some(pos) = commit.tasks_opened.iter().position(|t| t.id == task_id) {
                        commit.tasks_opened.remove(pos);
                    } else {
                        commit.tasks_closed.push(task_id);
                    }
                }
                Effect::ScheduleTimer(timer) => commit.timers_set.push(TimerRow {
                    id: timer.id.clone(),
                    instance_id: state.id.clone(),
                    due_at: timer.due_at.with_timezone(&Utc),
                    payload: serde_json::to_value(&timer.kind).map_err(serialize)?,
                    provisional: timer.provisional,
                    attempts: 0,
                }),
                Effect::CancelTimer { timer_id } => {
                    if let Some(pos) = commit.timers_set.iter().position(|t| t.id == timer_id) {
                        commit.timers_set.remove(pos);
                    } else if !commit.timers_cancelled.contains(&timer_id) {
                        commit.timers_cancelled.push(timer_id);
                    }
                }
                Effect::Outward(outward) => commit.outbox.push(OutboxRow {
                    id: outward.id.clone(),
                    instance_id: state.id.clone(),
                    kind: outward.kind().as_str().to_string(),
                    payload: outward.to_json(),
                    created_at: now,
                }),
            }
        }
        Ok((commit, state))
    }
}

/// What the step does with the case's business key: a start that leaves the case active
/// claims it; the step that ends the case releases it, unless it ends with one of the
/// outcomes whose cases keep their key (`key_outlives`).
fn key_change(
    outlives: &[String],
    expected_version: Option<i64>,
    before: &InstanceState,
    after: &InstanceState,
) -> Option<KeyChange> {
    let key = after.key.as_ref()?;
    let holds = after.status == core::Status::Active
        || after.outcome.as_ref().is_some_and(|o| outlives.contains(o));
    match expected_version {
        None if holds => Some(KeyChange::Claim { key: key.clone() }),
        Some(_) if before.status == core::Status::Active && !holds => Some(KeyChange::Release),
        _ => None,
    }
}

/// A history row's data: the step's input, the variables it changed, and for whom the
/// actor acted when it was not for themselves.
fn history_data(
    step: &Step<'_>,
    before: &InstanceState,
    after: &InstanceState,
) -> serde_json::Value {
    let mut data = serde_json::json!({
        "input": Value::Object(step.data.clone()).to_json(),
        "changed": changed_variables(before, after),
    });
    if let Event::Correct { changes, .. } = step.event {
        data["corrections"] = correct::corrections_json(changes, before, after);
    }
    if let Some(whom) = step.on_behalf_of {
        data["on_behalf_of"] = serde_json::Value::String(whom.to_string());
    }
    if let Some(effect) = step.delivery {
        data["delivery"] = serde_json::Value::String(effect.to_string());
    }
    data
}

/// Variables whose value the step changed, with their new values (the audit trail's data diff).
fn changed_variables(before: &InstanceState, after: &InstanceState) -> serde_json::Value {
    let mut changed = serde_json::Map::new();
    for (name, value) in &after.vars {
        if before.vars.get(name) != Some(value) {
            changed.insert(name.clone(), value.to_json());
        }
    }
    for name in before.vars.keys() {
        if !after.vars.contains_key(name) {
            changed.insert(name.clone(), serde_json::Value::Null);
        }
    }
    serde_json::Value::Object(changed)
}

/// The form of a task node, for clients that render it.
fn form_json(def: &Definition, node: &str) -> serde_json::Value {
    use crate::lang::model::NodeKind;
    let Some(NodeKind::Task(task)) = def.node_index(node).map(|i| &def.nodes[i].kind) else {
        return serde_json::Value::Null;
    };
    serde_json::Value::Array(
        task.form
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name,
                    "type": f.ty.to_string(),
                    "label": f.label,
                    "required": f.required,
                })
            })
            .collect(),
    )
}
