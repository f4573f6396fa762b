//! The pure core: `step(definition, state, event, now) -> Transition`.
//!
//! No IO, no clock, no `await`: everything the step needs (the calendar, the
//! assessment rules) comes in as arguments, so a step is a function of its
//! inputs and can be replayed and tested exhaustively. A refused event returns
//! an error and leaves the state untouched (the caller keeps the old state).
//!
//! Layout: this module holds the public types and `step`, which picks the event's
//! handler; `events/` has one module per event (start, complete, claim and its
//! hand-overs, message, timer); `nodes` enters each kind of node and completes it;
//! `deadlines` arms, moves and cancels deadlines and timers; `scope` is what
//! expressions see and what assignments and emitted effects do. They all add to the
//! one `Run` of a step and name this module's items through `use crate::core::*`.

pub mod batch;
mod deadlines;
pub mod effect;
mod events;
mod form;
mod nodes;
pub mod policy_change;
mod scope;
pub mod state;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveTime, TimeZone};
use jiuzhu_rules::expr::{Env, Expr};
use jiuzhu_rules::{Type, Value};

use crate::calendar::Calendar;
use crate::duration::Duration;
use crate::lang::model::{
    Assignment, Completion, Definition, EffectKind, EffectTemplate, EndStatus, NodeIdx, NodeKind,
    TaskDeadline, TimerSpec, ValueTemplate,
};
pub use effect::{Effect, Outward};
pub use events::correct::{
    MAX_CHANGES, MAX_REASON_CHARS, PathSegment, display_path, parse_path, value_at,
};
pub use events::handover::is_supervisor_role;
pub use events::retry::RULE_FAILED;
pub use state::{
    ActiveNeed, CaseIncident, DeadlineState, InstanceState, MAX_RECEIVED, OpenTask, ParentLink,
    ReceivedFull, Status, Timer, TimerKind, Token,
};

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
    /// A calendar was deployed: provisional due dates (counted through a year the
    /// calendar did not cover) are counted again. Refused (`not_found`) when none
    /// changes.
    CalendarChanged,
    /// Staff correct the case's variables (`path` as in `household.members[1].income`),
    /// giving a reason; see `events/correct.rs` for who may and what.
    Correct {
        actor: Actor,
        changes: Vec<(String, Value)>,
        reason: String,
    },
    /// An authorised user (as for a correction) runs a failed rule step again: the
    /// incident `incident` (see [`CaseIncident`]) goes and its node is entered anew.
    /// Refused (`incident`) when the step fails again; the incident stays.
    Retry {
        actor: Actor,
        incident: String,
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
    /// Several problems with the data of one event, each at its JSON path (one problem
    /// alone is an [`StepError::InvalidData`]; see [`invalid_all`]).
    #[error("{}", FieldProblem::join(.0))]
    InvalidFields(Vec<FieldProblem>),
    #[error("{0}")]
    Conflict(String),
    /// An expression or rule failed at run time: the step is refused and an incident raised.
    #[error("at node {node}: {message}")]
    Incident { node: String, message: String },
}

impl StepError {
    /// Every data problem with its path: one for [`StepError::InvalidData`], each of
    /// [`StepError::InvalidFields`], none for the other kinds.
    pub fn problems(&self) -> Vec<FieldProblem> {
        match self {
            StepError::InvalidData { path, message } => vec![FieldProblem {
                path: path.clone(),
                message: message.clone(),
            }],
            StepError::InvalidFields(problems) => problems.clone(),
            _ => Vec::new(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            StepError::Forbidden(_) => "forbidden",
            StepError::SeparationOfDuties(_) => "separation_of_duties",
            StepError::NotFound(_) => "not_found",
            StepError::InvalidData { .. } | StepError::InvalidFields(_) => "invalid_data",
            StepError::Conflict(_) => "conflict",
            StepError::Incident { .. } => "incident",
        }
    }
}

/// One problem with an event's data: its JSON path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldProblem {
    pub path: String,
    pub message: String,
}

impl FieldProblem {
    fn join(problems: &[FieldProblem]) -> String {
        problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The refusal of data with `problems` (at least one): [`StepError::InvalidData`] for one,
/// [`StepError::InvalidFields`] for several.
pub fn invalid_all(mut problems: Vec<FieldProblem>) -> StepError {
    if problems.len() == 1 {
        let FieldProblem { path, message } = problems.remove(0);
        return StepError::InvalidData { path, message };
    }
    StepError::InvalidFields(problems)
}

/// Evaluates an assessment program (the rules crate, behind a trait so the core stays pure and testable).
pub trait Assessor {
    /// `inputs` holds `household`, `area`, `as_of` (a date), `request`, `unit`.
    /// Returns the assessment as a typed object (decimals as `Value::Decimal`).
    fn assess(&self, program: &str, inputs: &BTreeMap<String, Value>)
    -> Result<Value, AssessError>;

    /// The policy figures in force for `unit` on `as_of`, shaped like the policy file
    /// (the `policy` an expression reads); `None` when no policy is in force.
    fn policy(&self, _unit: &str, _as_of: chrono::NaiveDate) -> Option<Value> {
        None
    }

    /// The days on which some policy takes effect (its `effective_from`), in order; which
    /// units a day concerns is what [`Assessor::policy`] selects on it. None by default.
    fn policy_dates(&self) -> Vec<chrono::NaiveDate> {
        Vec::new()
    }

    /// The policies (shaped as [`Assessor::policy`] gives them) whose `effective_from` is
    /// `day`, one per jurisdiction. None by default.
    fn policies_on(&self, _day: chrono::NaiveDate) -> Vec<Value> {
        Vec::new()
    }
}

/// Why an assessment could not be made (missing inputs, an invalid household, no policy
/// in force, a rule that failed). The step turns it into an incident on the case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AssessError {
    pub message: String,
}

impl AssessError {
    pub fn new(message: impl Into<String>) -> Self {
        AssessError {
            message: message.into(),
        }
    }
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
        work: Vec::new(),
        working: false,
    };
    run.refresh_builtins();
    let node = run.apply(event)?;
    // An incident belongs to its waiting token: a case that ended, or a message that
    // moved every token elsewhere, takes it along.
    let tokens = &run.st.tokens;
    run.st
        .incidents
        .retain(|i| tokens.iter().any(|t| t.id == i.token));
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
    /// What is left to do in this step, last first (see `Run::enter`).
    work: Vec<Work>,
    /// True while the outermost `enter` works `work` off.
    working: bool,
    /// Built-in variables (`now`, `unit`, `open_task_roles` …), rebuilt only when
    /// what they show changes, not on every expression evaluation.
    builtins: BTreeMap<String, Value>,
}

/// One piece of a step's work: entering a node, or what a node's entry does once its
/// downstream has run.
#[derive(Debug, Clone, Copy)]
enum Work {
    Enter(NodeIdx, u64),
    ArmDeadlines(NodeIdx),
    End(EndStatus),
}

impl<'a> Run<'a> {
    fn apply(&mut self, event: &Event) -> Result<Option<String>, StepError> {
        // A correction says itself why a closed case refuses it.
        if !matches!(event, Event::Start { .. } | Event::Correct { .. })
            && self.st.status != Status::Active
        {
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
            Event::CalendarChanged => self.recount_provisional().map(|()| None),
            Event::Correct {
                actor,
                changes,
                reason,
            } => self.correct(actor, changes, reason),
            Event::Retry { actor, incident } => self.retry(actor, incident).map(Some),
        }
    }
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
