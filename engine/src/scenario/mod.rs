//! `jiuzhu test`: scenario files run against a fresh in-memory engine with a manual clock.
//!
//! The format is the contract of `spec/scenarios.md`. Time moves only when a
//! scenario says so; every timer due up to the new time fires, in due order,
//! before the next step. Adapters are recorded: outward effects are kept and
//! checked by `expect`, never delivered — except the engine's own effects between the
//! scenario's cases (`cross_case.rs`): `start_process` starts the child in memory (named
//! `PROCESS@PARENT`), `message` steps the target case, and business keys are kept unique
//! among the scenario's active cases, as the engine does.

mod batches;
mod cross_case;
mod existing;
mod files;
mod format;
mod matching;
mod policy_change;
mod reserves;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use jiuzhu_rules::Value;

use crate::calendar::Calendar;
use crate::core::{
    self, Actor, Assessor, Context, Effect, Event, InstanceState, StepError, TaskRef,
};
use crate::duration::Duration;
use crate::lang::model::{Definition, EffectKind};
pub use files::{collect, run_file};
pub use format::{
    Expect, Handover, LoadError, Scenario, ScenarioStart, Step, StepKind, parse_scenario,
};

/// Where a scenario finds its definitions, calendars and assessment rules.
pub trait World {
    /// A definition by process id, or by a path relative to the scenario file.
    fn definition(&self, process: &str, scenario_dir: &Path) -> Result<Arc<Definition>, String>;
    fn calendar(&self, id: &str) -> Option<Calendar>;
    /// The assessor for this scenario: `policy` (resolved path) overrides the project's policies.
    fn assessor(&self, policy: Option<&Path>) -> Result<Box<dyn Assessor>, String>;
}

/// The result of one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    /// `None` when it passed; else e.g. `step 4 (complete approve): expected tasks [publicity], found [approve]`.
    pub failure: Option<String>,
}

struct Instance {
    def: Arc<Definition>,
    calendar: Calendar,
    state: InstanceState,
    /// Outward effects emitted, as JSON, and how many an `expect` has already looked at.
    effects: Vec<serde_json::Value>,
    seen: usize,
}

struct PendingStart {
    at: DateTime<FixedOffset>,
    process: String,
    data: BTreeMap<String, Value>,
    unit: String,
    parent: String,
    /// Message the parent is sent once the child started or was refused as a duplicate.
    reply: Option<String>,
    /// Message the parent is sent when the child ends.
    on_end: Option<String>,
    /// Deferred by a step after which the parent was still active: cancelled if the parent
    /// ends before it falls due (as the engine does, `runtime/internal.rs`).
    cancel_if_parent_ends: bool,
}

struct Runner<'w> {
    world: &'w dyn World,
    dir: PathBuf,
    calendar_override: Option<crate::calendar::CalendarOverride>,
    assessor: Box<dyn Assessor>,
    now: DateTime<FixedOffset>,
    instances: Vec<(String, Instance)>,
    pending_starts: Vec<PendingStart>,
    started: usize,
    /// The scenario's `benefits:` fixture, for batch runs.
    benefits: Vec<batches::BenefitFixture>,
    /// Batch runs done: run key → the case that ran it.
    batch_runs: BTreeMap<String, String>,
    /// Households paid under a batch's `once_per` key: (key, case).
    batch_once: std::collections::BTreeSet<(String, String)>,
    /// Township reserve balances: the `reserves:` fixture, less the draws made since.
    reserves: BTreeMap<String, rust_decimal::Decimal>,
    /// The scenario's own process (`process:`), whose policy-day starts
    /// (`on: policy_changed`) run as the clock passes a policy day.
    home: Option<Arc<Definition>>,
}

/// Runs one parsed scenario. `file` is the scenario's path (for relative `process`/`policy` paths).
pub fn run(
    scenario: &Scenario,
    file: &Path,
    world: &dyn World,
    default_policy: Option<&Path>,
) -> Outcome {
    let failure = run_inner(scenario, file, world, default_policy).err();
    Outcome {
        name: scenario.name.clone(),
        failure,
    }
}

fn run_inner(
    scenario: &Scenario,
    file: &Path,
    world: &dyn World,
    default_policy: Option<&Path>,
) -> Result<(), String> {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let policy = scenario.policy.as_ref().map(|p| dir.join(p));
    let assessor = world.assessor(policy.as_deref().or(default_policy))?;
    let mut runner = Runner {
        world,
        dir,
        calendar_override: scenario.calendar.clone(),
        assessor,
        now: scenario.start.at,
        instances: Vec::new(),
        pending_starts: Vec::new(),
        started: 0,
        benefits: scenario.benefits.clone(),
        batch_runs: BTreeMap::new(),
        batch_once: std::collections::BTreeSet::new(),
        reserves: scenario.reserves.clone(),
        home: None,
    };
    runner.home = world.definition(&scenario.process, &runner.dir).ok();
    let main_process = scenario
        .start
        .process
        .clone()
        .unwrap_or_else(|| scenario.process.clone());
    runner.seed_cases(&scenario.cases)?;
    runner
        .start(&main_process, &scenario.start, "main")
        .map_err(|e| format!("start: {e}"))?;
    for (i, step) in scenario.steps.iter().enumerate() {
        runner
            .step(step)
            .map_err(|e| format!("step {} ({}): {e}", i + 1, step.describe()))?;
    }
    Ok(())
}

impl Runner<'_> {
    fn start(&mut self, process: &str, start: &ScenarioStart, name: &str) -> Result<(), String> {
        if start.at > self.now {
            self.advance_to(start.at)?;
        }
        let actor = start.by.clone();
        let data = start.data.clone();
        self.start_instance(process, actor, data, name)
    }

    fn start_instance(
        &mut self,
        process: &str,
        actor: Actor,
        data: BTreeMap<String, Value>,
        name: &str,
    ) -> Result<(), String> {
        self.start_linked(process, actor, data, name, None)
            .map(|_| ())
            .map_err(String::from)
    }

    /// Starts a case, linked to the case that asked for it; its instance id.
    fn start_linked(
        &mut self,
        process: &str,
        actor: Actor,
        data: BTreeMap<String, Value>,
        name: &str,
        parent: Option<core::ParentLink>,
    ) -> Result<String, StartFailure> {
        let def = self.world.definition(process, &self.dir)?;
        let mut calendar = self
            .world
            .calendar(&def.calendar)
            .ok_or_else(|| format!("process {} names unknown calendar {}", def.id, def.calendar))?;
        if let Some(over) = &self.calendar_override {
            calendar = calendar.merged(over).map_err(|e| e.to_string())?;
        }
        // A refused start takes no number.
        let id = format!("{}-{}", def.id, self.started + 1);
        let mut state = InstanceState::new(&id, &def.id, self.now);
        state.parent = parent;
        let event = Event::Start { actor, data };
        let ctx = Context {
            calendar: &calendar,
            assessor: self.assessor.as_ref(),
        };
        let transition = core::step(&def, &state, &event, self.now, &ctx).map_err(|e| {
            StartFailure::Refused {
                code: e.code(),
                text: describe_error(&e),
            }
        })?;
        // As the engine: the required case first, the key at commit.
        self.check_requires(&transition.state)?;
        self.check_key(&def, &transition.state)?;
        self.started += 1;
        let mut instance = Instance {
            def,
            calendar,
            state: transition.state,
            effects: Vec::new(),
            seen: 0,
        };
        let outward = record(&mut instance, &transition.effects);
        self.instances.push((name.to_string(), instance));
        self.follow(outward)?;
        Ok(id)
    }

    /// Starts processes that effects ask for: now, or when the clock reaches `at`.
    fn follow(&mut self, outward: Vec<(String, serde_json::Value)>) -> Result<(), String> {
        for (parent, effect) in outward {
            let kind = effect.get("type").and_then(|t| t.as_str());
            if kind == Some(EffectKind::Message.as_str()) {
                self.message_effect(&parent, &effect)?;
            } else if kind == Some(EffectKind::Batch.as_str()) {
                self.run_batch(&parent, &effect)?;
                continue;
            } else if kind == Some(EffectKind::Payment.as_str())
                && effect.get(reserves::REPLY_FIELD).is_some()
            {
                self.pay_from_reserve(&parent, &effect)?;
                continue;
            }
            if kind != Some(EffectKind::StartProcess.as_str()) {
                continue;
            }
            let Some(process) = effect.get("process").and_then(|p| p.as_str()) else {
                continue;
            };
            if self.world.definition(process, &self.dir).is_err() {
                // Not part of this scenario's world: the effect stays recorded only.
                continue;
            }
            let data = match effect.get("data").map(Value::from_json) {
                Some(Value::Object(map)) => map,
                _ => BTreeMap::new(),
            };
            let at = match effect.get("at").and_then(|a| a.as_str()) {
                Some(text) => parse_time(text, self.now.offset()).map_err(|e| e.to_string())?,
                None => self.now,
            };
            let unit = self
                .instance_by_id(&parent)
                .map(|i| i.state.unit.clone())
                .unwrap_or_default();
            let parent_active = self
                .instance_by_id(&parent)
                .is_some_and(|i| i.state.status == crate::core::Status::Active);
            self.pending_starts.push(PendingStart {
                at,
                process: process.to_string(),
                data,
                unit,
                parent,
                reply: text(&effect, "reply"),
                on_end: text(&effect, "on_end"),
                cancel_if_parent_ends: parent_active && at > self.now,
            });
        }
        self.start_due(self.now)
    }

    fn start_due(&mut self, until: DateTime<FixedOffset>) -> Result<(), String> {
        while let Some(pos) = self.pending_starts.iter().position(|p| p.at <= until) {
            let pending = self.pending_starts.remove(pos);
            if pending.cancel_if_parent_ends
                && self
                    .instance_by_id(&pending.parent)
                    .is_some_and(|i| i.state.status != crate::core::Status::Active)
            {
                continue;
            }
            let actor = Actor {
                user: "system".into(),
                // As the engine starts it: `started_by` always admits the engine.
                roles: vec!["admin".into(), crate::lang::model::SYSTEM_ROLE.into()],
                unit: pending.unit.clone(),
            };
            self.start_child(pending, actor)?;
        }
        Ok(())
    }

    fn instance_by_id(&self, id: &str) -> Option<&Instance> {
        self.instances
            .iter()
            .map(|(_, i)| i)
            .find(|i| i.state.id == id)
    }

    fn instance_index(&self, name: Option<&str>) -> Result<usize, String> {
        let name = name.unwrap_or("main");
        self.instances
            .iter()
            .position(|(n, i)| n == name || i.state.id == name)
            .or_else(|| self.child_by_parent_name(name))
            .ok_or_else(|| format!("no instance named {name}"))
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match &step.kind {
            StepKind::Advance(target) => {
                let to = match target {
                    format::Advance::By(duration) => self.advance_target(duration)?,
                    format::Advance::To(t) => *t,
                };
                self.advance_to(to)
            }
            StepKind::Start {
                process,
                start,
                name,
            } => match (self.start(process, start, name), &step.expect_error) {
                (Ok(()), None) => Ok(()),
                (Ok(()), Some(code)) => {
                    Err(format!("expected error {code}, but the start was accepted"))
                }
                (Err(e), Some(code)) if e.starts_with(&format!("{code}:")) => Ok(()),
                (Err(e), Some(code)) => Err(format!("expected error {code}, got {e}")),
                (Err(e), None) => Err(e),
            },
            // "Claims and completes": the claim is the same core event as a `claim:` step,
            // and the two are one step here (either both happen or, refused, neither).
            StepKind::Complete { node, by, data } => {
                let claim = Event::Claim {
                    task: TaskRef::Node(node.clone()),
                    actor: by.clone(),
                };
                let complete = Event::Complete {
                    task: TaskRef::Node(node.clone()),
                    actor: by.clone(),
                    data: data.clone(),
                };
                self.deliver_all(step, &[claim, complete])
            }
            StepKind::Handover {
                action,
                node,
                by,
                to,
            } => {
                let task = TaskRef::Node(node.clone());
                let actor = by.clone();
                let event = match (action, to) {
                    (Handover::Claim, _) => Event::Claim { task, actor },
                    (Handover::Unclaim, _) => Event::Unclaim { task, actor },
                    (Handover::Reassign, Some(to)) => Event::Reassign {
                        task,
                        actor,
                        to: to.clone(),
                    },
                    (Handover::Delegate, Some(to)) => Event::Delegate {
                        task,
                        actor,
                        to: to.clone(),
                    },
                    (_, None) => return Err(format!("{} needs `to`", action.as_str())),
                };
                self.deliver(step, event)
            }
            StepKind::Correct {
                changes,
                reason,
                by,
            } => {
                let event = Event::Correct {
                    actor: by.clone(),
                    changes: changes.clone(),
                    reason: reason.clone(),
                };
                self.deliver(step, event)
            }
            StepKind::Retry { node, by } => {
                let idx = self.instance_index(step.instance.as_deref())?;
                let state = &self.instances[idx].1.state;
                let Some(incident) = state.incidents.iter().find(|i| &i.node == node) else {
                    let held: Vec<&str> = state.incidents.iter().map(|i| i.node.as_str()).collect();
                    return Err(format!(
                        "retry {node}: the case holds no incident at {node} (incidents at: [{}])",
                        held.join(", ")
                    ));
                };
                let event = Event::Retry {
                    actor: by.clone(),
                    incident: incident.id.clone(),
                };
                self.deliver(step, event)
            }
            StepKind::Message { name, by, data } => {
                let event = Event::Message {
                    name: name.clone(),
                    actor: by.clone(),
                    data: data.clone(),
                };
                self.deliver(step, event)
            }
            StepKind::Expect(expect) => {
                let idx = self.instance_index(step.instance.as_deref())?;
                let instance = &mut self.instances[idx].1;
                let result = matching::check(
                    expect,
                    &instance.state,
                    &instance.effects[instance.seen..],
                    &instance.calendar,
                );
                instance.seen = instance.effects.len();
                result
            }
        }
    }

    fn deliver(&mut self, step: &Step, event: Event) -> Result<(), String> {
        self.deliver_all(step, std::slice::from_ref(&event))
    }

    /// Applies `events` one after another as one step: all are taken, or (the first refusal
    /// is the step's error) none.
    fn deliver_all(&mut self, step: &Step, events: &[Event]) -> Result<(), String> {
        let idx = self.instance_index(step.instance.as_deref())?;
        let now = self.now;
        let instance = &mut self.instances[idx].1;
        let ctx = Context {
            calendar: &instance.calendar,
            assessor: self.assessor.as_ref(),
        };
        let mut outcome: Result<core::Transition, core::StepError> = Ok(core::Transition {
            state: instance.state.clone(),
            effects: Vec::new(),
            node: None,
        });
        for event in events {
            outcome = outcome.and_then(|so_far| {
                let mut next = core::step(&instance.def, &so_far.state, event, now, &ctx)?;
                let mut effects = so_far.effects;
                effects.append(&mut next.effects);
                next.effects = effects;
                Ok(next)
            });
        }
        match (outcome, &step.expect_error) {
            (Ok(_), Some(code)) => Err(format!("expected error {code}, but the step was accepted")),
            (Err(e), Some(code)) if e.code() == code => Ok(()),
            (Err(e), Some(code)) => {
                Err(format!("expected error {code}, got {}", describe_error(&e)))
            }
            (Err(e), None) => Err(format!("refused: {}", describe_error(&e))),
            (Ok(transition), None) => {
                instance.state = transition.state;
                let outward = record(instance, &transition.effects);
                self.follow(outward)
            }
        }
    }

    /// Applies one event to instance `idx` outside a scenario step (a batch's report).
    fn step_instance(&mut self, idx: usize, event: &Event) -> Result<(), String> {
        let now = self.now;
        let instance = &mut self.instances[idx].1;
        let ctx = Context {
            calendar: &instance.calendar,
            assessor: self.assessor.as_ref(),
        };
        let transition = core::step(&instance.def, &instance.state, event, now, &ctx)
            .map_err(|e| describe_error(&e))?;
        instance.state = transition.state;
        let outward = record(instance, &transition.effects);
        self.follow(outward)
    }

    fn advance_target(&self, duration: &Duration) -> Result<DateTime<FixedOffset>, String> {
        let calendar = match self.instances.first() {
            Some((_, instance)) => instance.calendar.clone(),
            None => Calendar::china_national(),
        };
        duration
            .add_to(self.now, &calendar)
            .map_err(|e| e.to_string())
    }

    /// Moves the clock to `to`, firing every timer due on the way in due order.
    /// Moves the clock to `to`: timers and pending starts fall due in order, and at the
    /// start of each day a policy takes effect the cases waiting for it are told
    /// (`policy_change.rs`).
    fn advance_to(&mut self, to: DateTime<FixedOffset>) -> Result<(), String> {
        if to < self.now {
            return Err(format!(
                "cannot move the clock back from {} to {to}",
                self.now
            ));
        }
        for day in self.assessor.policy_dates() {
            let Some(at) = day
                .and_time(NaiveTime::MIN)
                .and_local_timezone(*self.now.offset())
                .single()
            else {
                continue;
            };
            if at > self.now && at <= to {
                self.advance_timers(at)?;
                self.policy_takes_effect(day)?;
            }
        }
        self.advance_timers(to)
    }

    fn advance_timers(&mut self, to: DateTime<FixedOffset>) -> Result<(), String> {
        loop {
            let next_timer = self
                .instances
                .iter()
                .enumerate()
                .flat_map(|(i, (_, inst))| {
                    inst.state
                        .timers
                        .iter()
                        .map(move |t| (t.due_at, i, t.id.clone()))
                })
                .filter(|(due, _, _)| *due <= to)
                .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            let next_start = self
                .pending_starts
                .iter()
                .map(|p| p.at)
                .filter(|at| *at <= to)
                .min();
            match (next_timer, next_start) {
                (Some((due, _, _)), Some(at)) if at < due => {
                    self.now = self.now.max(at);
                    self.start_due(at)?;
                }
                (None, Some(at)) => {
                    self.now = self.now.max(at);
                    self.start_due(at)?;
                }
                (Some((due, idx, timer_id)), _) => {
                    self.now = self.now.max(due);
                    let now = self.now;
                    let instance = &mut self.instances[idx].1;
                    let ctx = Context {
                        calendar: &instance.calendar,
                        assessor: self.assessor.as_ref(),
                    };
                    let event = Event::TimerFired {
                        timer_id: timer_id.clone(),
                    };
                    let transition = core::step(&instance.def, &instance.state, &event, now, &ctx)
                        .map_err(|e| {
                            format!("timer {timer_id} at {due}: {}", describe_error(&e))
                        })?;
                    instance.state = transition.state;
                    let outward = record(instance, &transition.effects);
                    self.follow(outward)?;
                }
                (None, None) => break,
            }
        }
        self.now = to;
        Ok(())
    }
}

/// Keeps the outward effects of a transition; returns them tagged with the instance id.
fn record(instance: &mut Instance, effects: &[Effect]) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for effect in effects {
        if let Effect::Outward(o) = effect {
            let json = o.to_json();
            instance.effects.push(json.clone());
            out.push((instance.state.id.clone(), json));
        }
    }
    out
}

/// A text field of an effect.
fn text(effect: &serde_json::Value, field: &str) -> Option<String> {
    effect
        .get(field)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Why a scenario's start did not happen: the procedure refused it (a step error or a
/// business key taken, with its stable code), or the scenario cannot go on.
#[derive(Debug)]
pub(super) enum StartFailure {
    Refused { code: &'static str, text: String },
    Broken(String),
}

impl From<String> for StartFailure {
    fn from(text: String) -> Self {
        StartFailure::Broken(text)
    }
}

impl From<StartFailure> for String {
    fn from(failure: StartFailure) -> Self {
        match failure {
            StartFailure::Refused { text, .. } | StartFailure::Broken(text) => text,
        }
    }
}

fn describe_error(e: &StepError) -> String {
    format!("{}: {e}", e.code())
}

/// An ISO 8601 time with offset, or a date alone (that local day's start).
pub fn parse_time(text: &str, offset: &FixedOffset) -> Result<DateTime<FixedOffset>, TimeError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t);
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return offset
            .from_local_datetime(&d.and_time(NaiveTime::MIN))
            .single()
            .ok_or_else(|| TimeError::NotInOffset {
                text: text.to_string(),
                offset: *offset,
            });
    }
    Err(TimeError::Malformed {
        text: text.to_string(),
    })
}

/// A scenario's time that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{text} does not exist in offset {offset}")]
    NotInOffset { text: String, offset: FixedOffset },
    #[error(
        "bad time {text:?}: expected ISO 8601 with offset, e.g. 2026-03-02T09:00:00+08:00, or a date YYYY-MM-DD"
    )]
    Malformed { text: String },
}
