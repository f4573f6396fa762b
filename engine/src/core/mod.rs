//! The pure core: `step(definition, state, event, now) -> Transition`.
//!
//! No IO, no clock, no `await`: everything the step needs (the calendar, the
//! assessment rules) comes in as arguments, so a step is a function of its
//! inputs and can be replayed and tested exhaustively. A refused event returns
//! an error and leaves the state untouched (the caller keeps the old state).

pub mod effect;
mod form;
mod handover;
pub mod state;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveTime, TimeZone};
use jiuzhu_rules::expr::{Env, Expr};
use jiuzhu_rules::{Type, Value};

use crate::calendar::Calendar;
use crate::duration::Duration;
use crate::lang::model::{
    Assignment, Completion, Definition, EffectTemplate, EndStatus, NodeIdx, NodeKind, TimerSpec,
    ValueTemplate,
};
pub use effect::{Effect, Outward};
pub use handover::is_supervisor_role;
pub use state::{DeadlineState, InstanceState, OpenTask, Status, Timer, TimerKind, Token};

/// Who acts: a user with roles in a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: String,
    pub roles: Vec<String>,
    pub unit: String,
}

/// Which open task an event addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRef {
    Id(String),
    /// The open task of this node that the actor may act on (for several — votes — the one assigned to them).
    Node(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Start {
        actor: Actor,
        data: BTreeMap<String, Value>,
    },
    /// The actor takes the task: nobody else may complete it until it is released.
    Claim {
        task: TaskRef,
        actor: Actor,
    },
    /// The holder, or a supervisor of the unit, releases a claimed task.
    Unclaim {
        task: TaskRef,
        actor: Actor,
    },
    /// A supervisor of the unit hands the task to `to`.
    Reassign {
        task: TaskRef,
        actor: Actor,
        to: Actor,
    },
    /// The holder hands the task to a named colleague `to` (e.g. while on leave).
    Delegate {
        task: TaskRef,
        actor: Actor,
        to: Actor,
    },
    Complete {
        task: TaskRef,
        actor: Actor,
        data: BTreeMap<String, Value>,
    },
    Message {
        name: String,
        actor: Option<Actor>,
        data: BTreeMap<String, Value>,
    },
    TimerFired {
        timer_id: String,
    },
}

/// The outcome of a step: the new state and what must happen because of it.
#[derive(Debug, Clone)]
pub struct Transition {
    pub state: InstanceState,
    pub effects: Vec<Effect>,
    /// The node the event acted on, for the audit trail.
    pub node: Option<String>,
}

/// Why an event was refused. `code()` is the stable code scenarios and the API use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    SeparationOfDuties(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{path}: {message}")]
    InvalidData { path: String, message: String },
    #[error("{0}")]
    Conflict(String),
    /// An expression or rule failed at run time: the step is refused and an incident raised.
    #[error("at node {node}: {message}")]
    Incident { node: String, message: String },
}

impl StepError {
    pub fn code(&self) -> &'static str {
        match self {
            StepError::Forbidden(_) => "forbidden",
            StepError::SeparationOfDuties(_) => "separation_of_duties",
            StepError::NotFound(_) => "not_found",
            StepError::InvalidData { .. } => "invalid_data",
            StepError::Conflict(_) => "conflict",
            StepError::Incident { .. } => "incident",
        }
    }
}

/// Evaluates an assessment program (the rules crate, behind a trait so the core stays pure and testable).
pub trait Assessor {
    /// `inputs` holds `household`, `area`, `as_of` (a date), `request`, `unit`.
    /// Returns the assessment as a typed object (decimals as `Value::Decimal`).
    fn assess(&self, program: &str, inputs: &BTreeMap<String, Value>) -> Result<Value, String>;
}

/// What a step may consult besides the definition and the state.
pub struct Context<'a> {
    pub calendar: &'a Calendar,
    pub assessor: &'a dyn Assessor,
}

/// Most node entries one event may cause; a definition that loops without
/// waiting is stopped here instead of hanging the engine.
const MAX_ENTRIES_PER_STEP: usize = 10_000;

/// Applies one event to an instance.
pub fn step(
    def: &Definition,
    state: &InstanceState,
    event: &Event,
    now: DateTime<FixedOffset>,
    ctx: &Context<'_>,
) -> Result<Transition, StepError> {
    let mut run = Run {
        builtins: BTreeMap::new(),
        def,
        st: state.clone(),
        now,
        ctx,
        effects: Vec::new(),
        entries: 0,
    };
    run.refresh_builtins();
    let node = run.apply(event)?;
    Ok(Transition {
        state: run.st,
        effects: run.effects,
        node,
    })
}

/// True when a user in `actor_unit` may act on something of `unit` (same unit or below it).
pub fn unit_contains(actor_unit: &str, unit: &str) -> bool {
    unit == actor_unit
        || (unit.starts_with(actor_unit) && unit[actor_unit.len()..].starts_with('/'))
}

struct Run<'a> {
    def: &'a Definition,
    st: InstanceState,
    now: DateTime<FixedOffset>,
    ctx: &'a Context<'a>,
    effects: Vec<Effect>,
    entries: usize,
    /// Built-in variables (`now`, `unit`, `open_task_roles` …), rebuilt only when
    /// what they show changes, not on every expression evaluation.
    builtins: BTreeMap<String, Value>,
}

/// Variables visible to an expression: context extras, built-ins, then the instance's variables.
struct Scope<'s> {
    extras: &'s [(&'s str, &'s Value)],
    builtins: &'s BTreeMap<String, Value>,
    vars: &'s BTreeMap<String, Value>,
}

impl Env for Scope<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        self.extras
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .or_else(|| self.builtins.get(name))
            .or_else(|| self.vars.get(name))
    }
}

impl<'a> Run<'a> {
    fn apply(&mut self, event: &Event) -> Result<Option<String>, StepError> {
        if !matches!(event, Event::Start { .. }) && self.st.status != Status::Active {
            return Err(StepError::NotFound(format!(
                "instance {} is {}",
                self.st.id,
                self.st.status.as_str()
            )));
        }
        match event {
            Event::Start { actor, data } => {
                self.start(actor, data)?;
                Ok(None)
            }
            Event::Claim { task, actor } => self.claim(task, actor).map(Some),
            Event::Unclaim { task, actor } => self.unclaim(task, actor).map(Some),
            Event::Reassign { task, actor, to } => self.reassign(task, actor, to).map(Some),
            Event::Delegate { task, actor, to } => self.delegate(task, actor, to).map(Some),
            Event::Complete { task, actor, data } => {
                let idx = self.find_task(task, actor)?;
                let node = self.st.tasks[idx].node.clone();
                self.complete_task(idx, actor, data)?;
                Ok(Some(node))
            }
            Event::Message { name, actor, data } => self.message(name, actor.as_ref(), data),
            Event::TimerFired { timer_id } => self.timer_fired(timer_id),
        }
    }

    // ----- events -------------------------------------------------------

    fn start(&mut self, actor: &Actor, data: &BTreeMap<String, Value>) -> Result<(), StepError> {
        self.st.started_at = self.now;
        self.st.started_by = actor.user.clone();
        self.st.unit = actor.unit.clone();
        for (key, value) in data {
            if key == "unit" {
                // A case may be started for the actor's unit or one below it (a county
                // user starting a case for a township), never for a unit beside or above.
                match value {
                    Value::Str(unit) if !unit.is_empty() => {
                        if !unit_contains(&actor.unit, unit) {
                            return Err(StepError::Forbidden(format!(
                                "{} acts for {} and may not start a case for {unit}",
                                actor.user, actor.unit
                            )));
                        }
                        self.st.unit = unit.clone();
                    }
                    _ => return Err(invalid("$.unit", "must be a unit path")),
                }
                continue;
            }
            let Some(decl) = self.def.variable(key) else {
                return Err(invalid(
                    &format!("$.{key}"),
                    "unknown field: not a variable of this process",
                ));
            };
            let typed = value
                .clone()
                .coerce(&decl.ty, &format!("$.{key}"))
                .map_err(|e| invalid(&e.path, &e.message))?;
            self.st.vars.insert(key.clone(), typed);
        }
        for decl in &self.def.variables {
            if self.st.vars.contains_key(&decl.name) {
                continue;
            }
            if let Some(default) = &decl.default {
                self.st.vars.insert(decl.name.clone(), default.clone());
            } else if decl.required {
                return Err(invalid(&format!("$.{}", decl.name), "required"));
            } else {
                // Declared but not given: null, so `coalesce(contact, …)` and
                // `is_null(…)` work instead of the step failing on a missing name.
                self.st.vars.insert(decl.name.clone(), Value::Null);
            }
        }
        self.refresh_builtins();
        for i in 0..self.def.deadlines.len() {
            if self.def.deadlines[i].start.is_none() {
                self.arm_deadline(i)?;
            }
        }
        let token = self.new_token(self.def.start);
        self.enter(self.def.start, token)
    }

    fn find_task(&self, task: &TaskRef, actor: &Actor) -> Result<usize, StepError> {
        match task {
            TaskRef::Id(id) => self
                .st
                .tasks
                .iter()
                .position(|t| &t.id == id)
                .ok_or_else(|| StepError::NotFound(format!("no open task {id}"))),
            TaskRef::Node(node) => {
                let candidates: Vec<usize> = self
                    .st
                    .tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| &t.node == node)
                    .map(|(i, _)| i)
                    .collect();
                if candidates.is_empty() {
                    return Err(StepError::NotFound(format!("no open task of node {node}")));
                }
                // Prefer the task assigned to or claimed by this actor, then an unassigned one.
                candidates
                    .iter()
                    .copied()
                    .find(|&i| {
                        let t = &self.st.tasks[i];
                        t.assignee.as_deref() == Some(&actor.user)
                            || t.claimed_by.as_deref() == Some(&actor.user)
                    })
                    .or_else(|| {
                        candidates
                            .iter()
                            .copied()
                            .find(|&i| self.st.tasks[i].assignee.is_none())
                    })
                    .or_else(|| candidates.first().copied())
                    .ok_or_else(|| StepError::NotFound(format!("no open task of node {node}")))
            }
        }
    }

    fn authorize_task(&self, idx: usize, actor: &Actor) -> Result<(), StepError> {
        let task = &self.st.tasks[idx];
        if !task.roles.iter().any(|r| actor.roles.contains(r)) {
            return Err(StepError::Forbidden(format!(
                "task {} needs role {}; {} has {}",
                task.node,
                task.roles.join(" or "),
                actor.user,
                actor.roles.join(", ")
            )));
        }
        if !unit_contains(&actor.unit, &task.unit) {
            return Err(StepError::Forbidden(format!(
                "task {} belongs to {}; {} acts for {}",
                task.node, task.unit, actor.user, actor.unit
            )));
        }
        if let Some(assignee) = &task.assignee
            && assignee != &actor.user
        {
            return Err(StepError::Forbidden(format!(
                "task {} is assigned to {assignee}",
                task.node
            )));
        }
        if let Some(claimer) = &task.claimed_by
            && claimer != &actor.user
        {
            return Err(StepError::Conflict(format!(
                "task {} is claimed by {claimer}",
                task.node
            )));
        }
        self.check_separation(idx, actor)
    }

    /// Separation of duties: `actor` completed none of the nodes this task must be kept apart from.
    fn check_separation(&self, idx: usize, actor: &Actor) -> Result<(), StepError> {
        let task = &self.st.tasks[idx];
        let node_idx = self.node_idx(&task.node)?;
        if let NodeKind::Task(decl) = &self.def.nodes[node_idx].kind {
            for &other in &decl.separate_from {
                let other_id = &self.def.nodes[other].id;
                if self
                    .st
                    .completed_by
                    .get(other_id)
                    .is_some_and(|users| users.contains(&actor.user))
                {
                    return Err(StepError::SeparationOfDuties(format!(
                        "{} completed {other_id} and may not also complete {}",
                        actor.user, task.node
                    )));
                }
            }
        }
        Ok(())
    }

    fn complete_task(
        &mut self,
        idx: usize,
        actor: &Actor,
        data: &BTreeMap<String, Value>,
    ) -> Result<(), StepError> {
        self.authorize_task(idx, actor)?;
        let task = self.st.tasks[idx].clone();
        let node_idx = self.node_idx(&task.node)?;
        let NodeKind::Task(decl) = &self.def.nodes[node_idx].kind else {
            return Err(StepError::NotFound(format!("{} is not a task", task.node)));
        };
        let form = {
            let scope = self.scope(&[]);
            form::check(&decl.form, data, &scope, "form")
                .map_err(|e| self.eval_or_invalid(e, &task.node))?
        };
        self.st
            .completed_by
            .entry(task.node.clone())
            .or_default()
            .push(actor.user.clone());
        self.close_task(idx, false);

        if let Some(multi) = &decl.multi {
            let mut vote = match &form {
                Value::Object(map) => map.clone(),
                _ => BTreeMap::new(),
            };
            vote.insert("by".into(), Value::Str(actor.user.clone()));
            let list = self
                .st
                .vars
                .entry(multi.collect.clone())
                .or_insert(Value::List(Vec::new()));
            match list {
                Value::List(items) => items.push(Value::Object(vote)),
                other => *other = Value::List(vec![Value::Object(vote)]),
            }
            let done = self.eval_bool(&multi.complete_when, &[], &task.node)?;
            if !done {
                return Ok(());
            }
            // Decided: the remaining votes are cancelled; a late vote finds no task.
            let rest: Vec<usize> = (0..self.st.tasks.len())
                .filter(|&i| self.st.tasks[i].token == task.token)
                .collect();
            for i in rest.into_iter().rev() {
                self.close_task(i, true);
            }
        } else if self.st.tasks.iter().any(|t| t.token == task.token) {
            return Ok(());
        }
        self.remove_token(task.token);
        self.complete_node(node_idx, task.token, &[("form", &form)])
    }

    fn message(
        &mut self,
        name: &str,
        actor: Option<&Actor>,
        data: &BTreeMap<String, Value>,
    ) -> Result<Option<String>, StepError> {
        // A receive node, or an open task with an interrupting `on:` handler,
        // waiting for this message takes it first.
        let def = self.def;
        let handlers_of = |idx: NodeIdx| match &def.nodes[idx].kind {
            NodeKind::Receive(recv) => Some(&recv.handlers),
            NodeKind::Task(task) => Some(&task.on),
            _ => None,
        };
        let waiting = self.st.tokens.iter().find_map(|token| {
            let idx = def.node_index(&token.node)?;
            let handler = handlers_of(idx)?.iter().find(|h| h.name == name)?;
            Some((token.id, idx, handler))
        });
        if let Some((token, node_idx, handler)) = waiting {
            self.authorize_message(name, &handler.roles, actor)?;
            let node_id = def.nodes[node_idx].id.clone();
            let payload = self.check_message_form(&handler.form, data, &node_id)?;
            // An interrupted task (all of it, for a multi-instance node) is cancelled.
            for i in (0..self.st.tasks.len()).rev() {
                if self.st.tasks[i].token == token {
                    self.close_task(i, true);
                }
            }
            self.cancel_node_timers(token);
            self.remove_token(token);
            self.finish(
                &handler.completion,
                token,
                &node_id,
                &[("message", &payload)],
            )?;
            return Ok(Some(node_id));
        }
        let Some(decl) = self.def.message(name) else {
            return Err(StepError::NotFound(format!(
                "no step of {} waits for message {name}",
                self.st.id
            )));
        };
        self.authorize_message(name, &decl.roles, actor)?;
        let payload = self.check_message_form(&decl.form, data, name)?;
        let extras = [("message", &payload)];
        self.assign(&decl.set, &extras, name)?;
        self.emit(&decl.emit, &extras, name)?;
        for (deadline, duration) in &decl.reschedule {
            self.reschedule_deadline(*deadline, duration)?;
        }
        if let Some(target) = decl.goto {
            // Interrupting: every open task, waiting token and node timer goes.
            for i in (0..self.st.tasks.len()).rev() {
                self.close_task(i, true);
            }
            let node_timers: Vec<String> = self
                .st
                .timers
                .iter()
                .filter(|t| matches!(t.kind, TimerKind::Node { .. }))
                .map(|t| t.id.clone())
                .collect();
            for id in node_timers {
                self.cancel_timer(&id);
            }
            self.st.tokens.clear();
            self.st.joins.clear();
            let token = self.new_token(target);
            self.enter(target, token)?;
        }
        Ok(None)
    }

    fn timer_fired(&mut self, timer_id: &str) -> Result<Option<String>, StepError> {
        let Some(pos) = self.st.timers.iter().position(|t| t.id == timer_id) else {
            return Err(StepError::NotFound(format!("no pending timer {timer_id}")));
        };
        let timer = self.st.timers.remove(pos);
        match timer.kind {
            TimerKind::Node { token } => {
                let Some(node_id) = self
                    .st
                    .tokens
                    .iter()
                    .find(|t| t.id == token)
                    .map(|t| t.node.clone())
                else {
                    return Ok(None);
                };
                let node_idx = self.node_idx(&node_id)?;
                self.remove_token(token);
                match &self.def.nodes[node_idx].kind {
                    NodeKind::Timer(_) => self.complete_node(node_idx, token, &[])?,
                    NodeKind::Receive(recv) => {
                        if let Some((_, completion)) = &recv.timeout {
                            self.finish(completion, token, &node_id, &[])?;
                        }
                    }
                    _ => {}
                }
                Ok(Some(node_id))
            }
            TimerKind::TaskReminder { task } => {
                let Some(open) = self.st.task(&task).cloned() else {
                    return Ok(None);
                };
                let fields = BTreeMap::from([
                    ("template".to_string(), Value::Str("task_reminder".into())),
                    (
                        "to_role".to_string(),
                        Value::List(open.roles.iter().cloned().map(Value::Str).collect()),
                    ),
                    ("task".to_string(), Value::Str(open.node.clone())),
                    ("task_label".to_string(), Value::Str(open.label.clone())),
                    (
                        "due_at".to_string(),
                        open.due_at.map(Value::DateTime).unwrap_or(Value::Null),
                    ),
                ]);
                self.push_outward(crate::lang::model::EffectKind::Notification, fields);
                Ok(Some(open.node))
            }
            TimerKind::TaskDue { task } => {
                let Some(open) = self.st.task(&task).cloned() else {
                    return Ok(None);
                };
                let node_idx = self.node_idx(&open.node)?;
                if let NodeKind::Task(decl) = &self.def.nodes[node_idx].kind
                    && let Some(target) = decl.deadline.as_ref().and_then(|d| d.escalate_to.clone())
                {
                    let fields = BTreeMap::from([
                        ("to_role".to_string(), Value::Str(target)),
                        ("task".to_string(), Value::Str(open.node.clone())),
                        ("task_label".to_string(), Value::Str(open.label.clone())),
                        (
                            "reason".to_string(),
                            Value::Str(format!("{} 超过办理时限", open.label)),
                        ),
                    ]);
                    self.push_outward(crate::lang::model::EffectKind::Escalation, fields);
                }
                Ok(Some(open.node))
            }
            TimerKind::DeadlineReminder { deadline } => {
                let Some(i) = self.def.deadlines.iter().position(|d| d.id == deadline) else {
                    return Ok(None);
                };
                let decl = &self.def.deadlines[i];
                self.emit(&decl.remind, &[], &decl.id)?;
                Ok(None)
            }
            TimerKind::DeadlineDue { deadline } => {
                let Some(i) = self.def.deadlines.iter().position(|d| d.id == deadline) else {
                    return Ok(None);
                };
                if let Some(state) = self.st.deadlines.iter_mut().find(|d| d.id == deadline) {
                    state.overdue = true;
                }
                let decl = &self.def.deadlines[i];
                self.assign(&decl.overdue_set, &[], &decl.id)?;
                self.emit(&decl.overdue_emit, &[], &decl.id)?;
                Ok(None)
            }
        }
    }

    // ----- graph walking ------------------------------------------------

    /// Enters a node with a token; runs on until every token waits or the case ends.
    fn enter(&mut self, node_idx: NodeIdx, token: u64) -> Result<(), StepError> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES_PER_STEP {
            return Err(StepError::Incident {
                node: self.def.nodes[node_idx].id.clone(),
                message: format!(
                    "more than {MAX_ENTRIES_PER_STEP} nodes entered in one step: a loop that never waits"
                ),
            });
        }
        if self.st.status != Status::Active {
            return Ok(());
        }
        let node = &self.def.nodes[node_idx];
        let node_id = node.id.clone();
        match &node.kind {
            NodeKind::Task(decl) => {
                let unit = match &decl.unit {
                    Some(expr) => self.eval_string(expr, &[], &node_id)?,
                    None => self.st.unit.clone(),
                };
                let due_at = match &decl.deadline {
                    Some(deadline) => Some(self.add(&deadline.due, self.now, &node_id)?),
                    None => None,
                };
                let assignees: Vec<Option<String>> = if let Some(multi) = &decl.multi {
                    let items = self.eval(&multi.for_each, &[], &node_id)?;
                    let Value::List(items) = items else {
                        return Err(incident(&node_id, "for_each did not yield a list"));
                    };
                    if items.is_empty() {
                        return Err(incident(
                            &node_id,
                            "for_each yielded an empty list: nobody to act",
                        ));
                    }
                    self.st
                        .vars
                        .insert(multi.collect.clone(), Value::List(Vec::new()));
                    items
                        .into_iter()
                        .map(|item| match item {
                            Value::Str(user) => Ok(Some(user)),
                            other => Err(incident(
                                &node_id,
                                &format!("for_each item {other} is not a user id"),
                            )),
                        })
                        .collect::<Result<_, _>>()?
                } else if let Some(expr) = &decl.assignee {
                    vec![Some(self.eval_string(expr, &[], &node_id)?)]
                } else {
                    vec![None]
                };
                self.st.tokens.push(Token {
                    id: token,
                    node: node_id.clone(),
                });
                for assignee in assignees {
                    let id = self.st.next_id('t');
                    let task = OpenTask {
                        id: id.clone(),
                        node: node_id.clone(),
                        label: node.name.clone(),
                        token,
                        roles: decl.roles.clone(),
                        unit: unit.clone(),
                        assignee,
                        claimed_by: None,
                        opened_at: self.now,
                        due_at,
                    };
                    self.st.tasks.push(task.clone());
                    self.refresh_builtins();
                    self.effects.push(Effect::OpenTask(task));
                    if let (Some(deadline), Some(due)) = (&decl.deadline, due_at) {
                        if let Some(lead) = &deadline.remind_before {
                            let at = self.subtract(lead, due, &node_id)?;
                            if at > self.now {
                                self.schedule(at, TimerKind::TaskReminder { task: id.clone() });
                            }
                        }
                        self.schedule(due, TimerKind::TaskDue { task: id });
                    }
                }
                Ok(())
            }
            NodeKind::Rule(decl) => {
                let mut inputs = BTreeMap::new();
                for (name, expr) in &decl.inputs {
                    inputs.insert(name.clone(), self.eval(expr, &[], &node_id)?);
                }
                for (name, default) in [
                    ("household", "household"),
                    ("area", "area"),
                    ("request", "request"),
                ] {
                    if !inputs.contains_key(name)
                        && let Some(v) = self.st.vars.get(default)
                    {
                        inputs.insert(name.to_string(), v.clone());
                    }
                }
                inputs
                    .entry("as_of".into())
                    .or_insert(Value::Date(self.now.date_naive()));
                inputs.insert("unit".into(), Value::Str(self.st.unit.clone()));
                let result =
                    self.ctx
                        .assessor
                        .assess(&decl.program, &inputs)
                        .map_err(|message| {
                            incident(&node_id, &format!("assessment {}: {message}", decl.program))
                        })?;
                self.complete_node(node_idx, token, &[("result", &result)])
            }
            NodeKind::Compute | NodeKind::Choice => self.complete_node(node_idx, token, &[]),
            NodeKind::Parallel { branches } => {
                let branches = branches.clone();
                for branch in branches {
                    let t = self.new_token(branch);
                    self.enter(branch, t)?;
                }
                Ok(())
            }
            NodeKind::Join { expected, .. } => {
                let expected = *expected;
                let count = self.st.joins.entry(node_id.clone()).or_insert(0);
                *count += 1;
                if *count >= expected {
                    self.st.joins.remove(&node_id);
                    self.complete_node(node_idx, token, &[])
                } else {
                    Ok(())
                }
            }
            NodeKind::Timer(spec) => {
                let due = self.timer_due(spec, &node_id)?;
                self.st.tokens.push(Token {
                    id: token,
                    node: node_id,
                });
                self.schedule(due, TimerKind::Node { token });
                Ok(())
            }
            NodeKind::Receive(recv) => {
                self.st.tokens.push(Token {
                    id: token,
                    node: node_id.clone(),
                });
                if let Some((spec, _)) = &recv.timeout {
                    let due = self.timer_due(spec, &node_id)?;
                    self.schedule(due, TimerKind::Node { token });
                }
                Ok(())
            }
            NodeKind::End { status } => {
                let status = *status;
                self.finish(&node.completion, token, &node_id, &[])?;
                self.end(status);
                Ok(())
            }
        }
    }

    /// Runs a node's completion (assignments, effects, outcome, deadlines) and moves on.
    fn complete_node(
        &mut self,
        node_idx: NodeIdx,
        token: u64,
        extras: &[(&str, &Value)],
    ) -> Result<(), StepError> {
        let node_id = self.def.nodes[node_idx].id.clone();
        let completion = &self.def.nodes[node_idx].completion;
        for i in 0..self.def.deadlines.len() {
            let decl = &self.def.deadlines[i];
            if decl.stop.contains(&node_idx) {
                self.disarm_deadline(&decl.id.clone());
            }
        }
        self.finish(completion, token, &node_id, extras)?;
        for i in 0..self.def.deadlines.len() {
            if self.def.deadlines[i].start == Some(node_idx)
                && !self
                    .st
                    .deadlines
                    .iter()
                    .any(|d| d.id == self.def.deadlines[i].id)
            {
                self.arm_deadline(i)?;
            }
        }
        Ok(())
    }

    fn finish(
        &mut self,
        completion: &Completion,
        token: u64,
        node_id: &str,
        extras: &[(&str, &Value)],
    ) -> Result<(), StepError> {
        self.assign(&completion.set, extras, node_id)?;
        self.emit(&completion.emit, extras, node_id)?;
        if let Some(outcome) = &completion.outcome {
            self.st.outcome = Some(outcome.clone());
            self.refresh_builtins();
        }
        for transition in &completion.next {
            let taken = match &transition.condition {
                None => true,
                Some(cond) => self.eval_bool(cond, extras, node_id)?,
            };
            if taken {
                return self.enter(transition.target, token);
            }
        }
        if completion.next.is_empty() {
            return Ok(());
        }
        Err(incident(
            node_id,
            "no condition of `next` held and there is no default",
        ))
    }

    fn end(&mut self, status: EndStatus) {
        self.st.status = match status {
            EndStatus::Completed => Status::Completed,
            EndStatus::Terminated => Status::Terminated,
        };
        for i in (0..self.st.tasks.len()).rev() {
            self.close_task(i, true);
        }
        let timers: Vec<String> = self.st.timers.iter().map(|t| t.id.clone()).collect();
        for id in timers {
            self.cancel_timer(&id);
        }
        for deadline in &mut self.st.deadlines {
            deadline.active = false;
        }
        self.st.tokens.clear();
        self.st.joins.clear();
    }

    // ----- deadlines ----------------------------------------------------

    fn arm_deadline(&mut self, i: usize) -> Result<(), StepError> {
        let decl = &self.def.deadlines[i];
        let due_at = self.add(&decl.due, self.now, &decl.id)?;
        self.st.deadlines.push(DeadlineState {
            id: decl.id.clone(),
            armed_at: self.now,
            due_at,
            active: true,
            overdue: false,
        });
        self.schedule_deadline_timers(i, due_at)
    }

    fn schedule_deadline_timers(
        &mut self,
        i: usize,
        due_at: DateTime<FixedOffset>,
    ) -> Result<(), StepError> {
        let decl = &self.def.deadlines[i];
        let id = decl.id.clone();
        if let Some(lead) = &decl.remind_before {
            let at = self.subtract(lead, due_at, &id)?;
            if at > self.now {
                self.schedule(
                    at,
                    TimerKind::DeadlineReminder {
                        deadline: id.clone(),
                    },
                );
            }
        }
        self.schedule(due_at, TimerKind::DeadlineDue { deadline: id });
        Ok(())
    }

    fn disarm_deadline(&mut self, id: &str) {
        if let Some(d) = self.st.deadlines.iter_mut().find(|d| d.id == id) {
            d.active = false;
        }
        self.cancel_deadline_timers(id);
    }

    fn cancel_deadline_timers(&mut self, id: &str) {
        let timers: Vec<String> =
            self.st
                .timers
                .iter()
                .filter(|t| match &t.kind {
                    TimerKind::DeadlineReminder { deadline }
                    | TimerKind::DeadlineDue { deadline } => deadline == id,
                    _ => false,
                })
                .map(|t| t.id.clone())
                .collect();
        for timer in timers {
            self.cancel_timer(&timer);
        }
    }

    fn reschedule_deadline(&mut self, i: usize, duration: &Duration) -> Result<(), StepError> {
        let id = self.def.deadlines[i].id.clone();
        let Some(pos) = self
            .st
            .deadlines
            .iter()
            .position(|d| d.id == id && d.active)
        else {
            return Ok(());
        };
        let armed_at = self.st.deadlines[pos].armed_at;
        let due_at = self.add(duration, armed_at, &id)?;
        self.st.deadlines[pos].due_at = due_at;
        self.st.deadlines[pos].overdue = false;
        self.cancel_deadline_timers(&id);
        self.schedule_deadline_timers(i, due_at)
    }

    // ----- helpers ------------------------------------------------------

    fn node_idx(&self, id: &str) -> Result<NodeIdx, StepError> {
        self.def
            .node_index(id)
            .ok_or_else(|| incident(id, "the state names a node this definition does not have"))
    }

    fn new_token(&mut self, _node: NodeIdx) -> u64 {
        self.st.next_seq()
    }

    fn remove_token(&mut self, token: u64) {
        self.st.tokens.retain(|t| t.id != token);
    }

    fn close_task(&mut self, idx: usize, cancelled: bool) {
        let task = self.st.tasks.remove(idx);
        self.refresh_builtins();
        let timers: Vec<String> = self
            .st
            .timers
            .iter()
            .filter(|t| match &t.kind {
                TimerKind::TaskReminder { task: id } | TimerKind::TaskDue { task: id } => {
                    id == &task.id
                }
                _ => false,
            })
            .map(|t| t.id.clone())
            .collect();
        for timer in timers {
            self.cancel_timer(&timer);
        }
        self.effects.push(Effect::CloseTask {
            task_id: task.id,
            cancelled,
        });
    }

    fn schedule(&mut self, due_at: DateTime<FixedOffset>, kind: TimerKind) {
        let id = self.st.next_id('w');
        let timer = Timer { id, due_at, kind };
        self.st.timers.push(timer.clone());
        self.effects.push(Effect::ScheduleTimer(timer));
    }

    fn cancel_timer(&mut self, id: &str) {
        self.st.timers.retain(|t| t.id != id);
        self.effects.push(Effect::CancelTimer {
            timer_id: id.to_string(),
        });
    }

    fn cancel_node_timers(&mut self, token: u64) {
        let timers: Vec<String> = self
            .st
            .timers
            .iter()
            .filter(|t| t.kind == TimerKind::Node { token })
            .map(|t| t.id.clone())
            .collect();
        for id in timers {
            self.cancel_timer(&id);
        }
    }

    fn timer_due(
        &self,
        spec: &TimerSpec,
        node_id: &str,
    ) -> Result<DateTime<FixedOffset>, StepError> {
        match spec {
            TimerSpec::After(duration) => self.add(duration, self.now, node_id),
            TimerSpec::Until(expr) => match self.eval(expr, &[], node_id)? {
                Value::DateTime(t) => Ok(t),
                Value::Date(d) => {
                    let local = d.and_time(NaiveTime::MIN);
                    self.now
                        .offset()
                        .from_local_datetime(&local)
                        .single()
                        .ok_or_else(|| {
                            incident(node_id, "timer date does not exist in the local time zone")
                        })
                }
                other => Err(incident(
                    node_id,
                    &format!("`until` gave {}, not a date", other.type_name()),
                )),
            },
        }
    }

    fn add(
        &self,
        d: &Duration,
        t: DateTime<FixedOffset>,
        node_id: &str,
    ) -> Result<DateTime<FixedOffset>, StepError> {
        d.add_to(t, self.ctx.calendar)
            .map_err(|e| incident(node_id, &e.to_string()))
    }

    /// The instant `d` before `t` (reminder lead times): working days count back by the calendar.
    fn subtract(
        &self,
        d: &Duration,
        t: DateTime<FixedOffset>,
        node_id: &str,
    ) -> Result<DateTime<FixedOffset>, StepError> {
        use crate::duration::DurationUnit;
        let amount = d.amount();
        let back = match d.unit() {
            DurationUnit::WorkingDays => {
                return self
                    .ctx
                    .calendar
                    .subtract_working_days(t, amount)
                    .map_err(|e| incident(node_id, &e.to_string()));
            }
            DurationUnit::Days => t.checked_sub_days(chrono::Days::new(u64::from(amount))),
            DurationUnit::Hours => {
                t.checked_sub_signed(chrono::TimeDelta::hours(i64::from(amount)))
            }
            DurationUnit::Minutes => {
                t.checked_sub_signed(chrono::TimeDelta::minutes(i64::from(amount)))
            }
            DurationUnit::Months => t.checked_sub_months(chrono::Months::new(amount)),
            DurationUnit::Years => amount
                .checked_mul(12)
                .and_then(|m| t.checked_sub_months(chrono::Months::new(m))),
        };
        back.ok_or_else(|| incident(node_id, &format!("{d} before {t} is out of range")))
    }

    fn refresh_builtins(&mut self) {
        self.builtins = self.compute_builtins();
    }

    fn compute_builtins(&self) -> BTreeMap<String, Value> {
        let mut roles: Vec<Value> = Vec::new();
        for task in &self.st.tasks {
            for role in &task.roles {
                let role = Value::Str(role.clone());
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
        BTreeMap::from([
            ("instance_id".to_string(), Value::Str(self.st.id.clone())),
            ("process".to_string(), Value::Str(self.st.process.clone())),
            ("unit".to_string(), Value::Str(self.st.unit.clone())),
            (
                "started_at".to_string(),
                Value::DateTime(self.st.started_at),
            ),
            ("now".to_string(), Value::DateTime(self.now)),
            (
                "started_by".to_string(),
                Value::Str(self.st.started_by.clone()),
            ),
            (
                "outcome".to_string(),
                self.st
                    .outcome
                    .clone()
                    .map(Value::Str)
                    .unwrap_or(Value::Null),
            ),
            ("open_task_roles".to_string(), Value::List(roles)),
        ])
    }

    /// What an expression sees: `extras` (form, message, result …), then built-ins, then variables.
    fn scope<'s>(&'s self, extras: &'s [(&'s str, &'s Value)]) -> Scope<'s> {
        Scope {
            extras,
            builtins: &self.builtins,
            vars: &self.st.vars,
        }
    }

    fn eval(
        &self,
        expr: &Expr,
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<Value, StepError> {
        let scope = self.scope(extras);
        expr.eval(&scope)
            .map_err(|e| incident(node_id, &format!("`{}`: {e}", expr.source())))
    }

    fn eval_bool(
        &self,
        expr: &Expr,
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<bool, StepError> {
        match self.eval(expr, extras, node_id)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            other => Err(incident(
                node_id,
                &format!("`{}` gave {}, not a bool", expr.source(), other.type_name()),
            )),
        }
    }

    fn eval_string(
        &self,
        expr: &Expr,
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<String, StepError> {
        match self.eval(expr, extras, node_id)? {
            Value::Str(s) => Ok(s),
            other => Err(incident(
                node_id,
                &format!(
                    "`{}` gave {}, not a string",
                    expr.source(),
                    other.type_name()
                ),
            )),
        }
    }

    fn assign(
        &mut self,
        set: &[Assignment],
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<(), StepError> {
        for assignment in set {
            let value = self.eval(&assignment.value, extras, node_id)?;
            let ty = self
                .def
                .variable(&assignment.variable)
                .map(|d| d.ty.clone())
                .unwrap_or(Type::Any);
            let value = value
                .coerce(&ty, &format!("$.{}", assignment.variable))
                .map_err(|e| incident(node_id, &e.to_string()))?;
            self.st.vars.insert(assignment.variable.clone(), value);
        }
        Ok(())
    }

    fn emit(
        &mut self,
        emit: &[EffectTemplate],
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<(), StepError> {
        for template in emit {
            if let Some(cond) = &template.condition
                && !self.eval_bool(cond, extras, node_id)?
            {
                continue;
            }
            let mut fields = BTreeMap::new();
            for (name, value) in &template.fields {
                fields.insert(name.clone(), self.render(value, extras, node_id)?);
            }
            self.push_outward(template.kind, fields);
        }
        Ok(())
    }

    fn push_outward(
        &mut self,
        kind: crate::lang::model::EffectKind,
        mut fields: BTreeMap<String, Value>,
    ) {
        let id = self.st.next_id('e');
        fields
            .entry("instance".into())
            .or_insert_with(|| Value::Str(self.st.id.clone()));
        self.effects
            .push(Effect::Outward(Outward { id, kind, fields }));
    }

    fn render(
        &self,
        template: &ValueTemplate,
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<Value, StepError> {
        let scope = self.scope(extras);
        render_template(template, &scope).map_err(|message| incident(node_id, &message))
    }

    fn authorize_message(
        &self,
        name: &str,
        roles: &[String],
        actor: Option<&Actor>,
    ) -> Result<(), StepError> {
        if roles.is_empty() {
            return Ok(());
        }
        let Some(actor) = actor else {
            return Err(StepError::Forbidden(format!(
                "message {name} needs a sender with role {}",
                roles.join(" or ")
            )));
        };
        if !roles.iter().any(|r| actor.roles.contains(r)) {
            return Err(StepError::Forbidden(format!(
                "message {name} needs role {}; {} has {}",
                roles.join(" or "),
                actor.user,
                actor.roles.join(", ")
            )));
        }
        if !unit_contains(&actor.unit, &self.st.unit) {
            return Err(StepError::Forbidden(format!(
                "case {} belongs to {}; {} acts for {}",
                self.st.id, self.st.unit, actor.user, actor.unit
            )));
        }
        Ok(())
    }

    fn check_message_form(
        &self,
        fields: &[crate::lang::model::FieldDecl],
        data: &BTreeMap<String, Value>,
        node_id: &str,
    ) -> Result<Value, StepError> {
        let scope = self.scope(&[]);
        form::check(fields, data, &scope, "message").map_err(|e| self.eval_or_invalid(e, node_id))
    }

    fn eval_or_invalid(&self, e: form::FormError, node_id: &str) -> StepError {
        match e {
            form::FormError::Invalid { path, message } => StepError::InvalidData { path, message },
            form::FormError::Eval(message) => incident(node_id, &message),
        }
    }
}

/// Evaluates a YAML value template: literals as written, `=expressions` in `env`.
fn render_template(template: &ValueTemplate, env: &dyn Env) -> Result<Value, String> {
    Ok(match template {
        ValueTemplate::Literal(v) => v.clone(),
        ValueTemplate::Expr(e) => e
            .eval(env)
            .map_err(|err| format!("`{}`: {err}", e.source()))?,
        ValueTemplate::List(items) => Value::List(
            items
                .iter()
                .map(|i| render_template(i, env))
                .collect::<Result<_, _>>()?,
        ),
        ValueTemplate::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), render_template(v, env)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn invalid(path: &str, message: &str) -> StepError {
    StepError::InvalidData {
        path: path.to_string(),
        message: message.to_string(),
    }
}

fn incident(node: &str, message: &str) -> StepError {
    StepError::Incident {
        node: node.to_string(),
        message: message.to_string(),
    }
}
