//! The scenario file format (`*.scenario.yaml`) of `spec/scenarios.md`, parsed with positions.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use jiuzhu_rules::Value;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::calendar::CalendarOverride;
use crate::core::Actor;
use crate::duration::Duration;

/// A scenario that could not be read: `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: E_SCENARIO: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub process: String,
    pub policy: Option<String>,
    pub calendar: Option<CalendarOverride>,
    pub start: ScenarioStart,
    pub steps: Vec<Step>,
    /// Monthly benefits in force besides those the scenario's cases set up (batches).
    pub benefits: Vec<super::batches::BenefitFixture>,
    /// Cases that exist before the scenario starts (`cases:`).
    pub cases: Vec<super::existing::CaseFixture>,
    /// Township reserve balances at the start (`reserves:`), by unit.
    pub reserves: BTreeMap<String, rust_decimal::Decimal>,
}

#[derive(Debug, Clone)]
pub struct ScenarioStart {
    pub at: DateTime<FixedOffset>,
    pub by: Actor,
    pub data: BTreeMap<String, Value>,
    pub process: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub kind: StepKind,
    pub instance: Option<String>,
    pub expect_error: Option<String>,
    pub line: u64,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Complete {
        node: String,
        by: Actor,
        data: BTreeMap<String, Value>,
    },
    Message {
        name: String,
        by: Option<Actor>,
        data: BTreeMap<String, Value>,
    },
    /// `claim`, `unclaim`, `reassign` or `delegate` of the open task of `node` by `by`;
    /// `to` is the user a reassign or delegate hands it to.
    Handover {
        action: Handover,
        node: String,
        by: Actor,
        to: Option<Actor>,
    },
    /// `correct:` the case's data (path → new value) by `by`, with a reason.
    Correct {
        changes: Vec<(String, Value)>,
        reason: String,
        by: Actor,
    },
    /// `retry: NODE` by `by`: the case's incident at rule node `NODE` is retried.
    Retry {
        node: String,
        by: Actor,
    },
    Advance(Advance),
    Expect(Box<Expect>),
    Start {
        process: String,
        start: ScenarioStart,
        name: String,
    },
}

/// Which change of a task's holder a step makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    Claim,
    Unclaim,
    Reassign,
    Delegate,
}

impl Handover {
    pub fn as_str(self) -> &'static str {
        match self {
            Handover::Claim => "claim",
            Handover::Unclaim => "unclaim",
            Handover::Reassign => "reassign",
            Handover::Delegate => "delegate",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Advance {
    By(Duration),
    To(DateTime<FixedOffset>),
}

#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub status: Option<String>,
    pub outcome: Option<String>,
    pub tasks: Option<Vec<String>>,
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
    pub effects: Option<Vec<serde_json::Value>>,
    pub effects_exact: bool,
    pub due: Option<BTreeMap<String, String>>,
    pub incident: Option<IncidentExpect>,
}

/// `expect.incident`: `true` (the case holds an incident), `false` (none), or a rule
/// node's id (the case waits at that node on an incident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentExpect {
    Any(bool),
    At(String),
}

impl Step {
    /// How failures name the step: `complete approve`, `advance 3wd`, `expect`.
    pub fn describe(&self) -> String {
        match &self.kind {
            StepKind::Complete { node, .. } => format!("complete {node}"),
            StepKind::Message { name, .. } => format!("message {name}"),
            StepKind::Handover { action, node, .. } => format!("{} {node}", action.as_str()),
            StepKind::Correct { changes, .. } => {
                let paths: Vec<&str> = changes.iter().map(|(p, _)| p.as_str()).collect();
                format!("correct {}", paths.join(", "))
            }
            StepKind::Retry { node, .. } => format!("retry {node}"),
            StepKind::Advance(Advance::By(d)) => format!("advance {d}"),
            StepKind::Advance(Advance::To(t)) => format!("advance to {t}"),
            StepKind::Expect(_) => "expect".to_string(),
            StepKind::Start { process, name, .. } => format!("start {process} as {name}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    process: String,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    calendar: Option<CalendarOverride>,
    /// Named actors for YAML anchors (`&clerk` … `*clerk`); not otherwise read.
    #[serde(default)]
    #[allow(dead_code)]
    actors: Option<BTreeMap<String, RawActor>>,
    start: Spanned<RawStart>,
    #[serde(default)]
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    benefits: Vec<super::batches::BenefitFixture>,
    #[serde(default)]
    cases: Vec<super::existing::CaseFixture>,
    #[serde(default)]
    reserves: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStart {
    #[serde(default)]
    at: Option<String>,
    by: RawActor,
    #[serde(default)]
    data: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    process: Option<String>,
    #[serde(default, rename = "as")]
    name: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawActor {
    user: String,
    #[serde(default)]
    roles: Vec<String>,
    unit: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default)]
    complete: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    unclaim: Option<String>,
    #[serde(default)]
    reassign: Option<String>,
    #[serde(default)]
    delegate: Option<String>,
    /// The user a `reassign` or `delegate` hands the task to.
    #[serde(default)]
    to: Option<RawActor>,
    /// A correction: path → new value.
    #[serde(default)]
    correct: Option<serde_json::Map<String, serde_json::Value>>,
    /// A correction's reason.
    #[serde(default)]
    reason: Option<String>,
    /// The rule node whose incident is retried.
    #[serde(default)]
    retry: Option<String>,
    #[serde(default)]
    advance: Option<serde_json::Value>,
    #[serde(default)]
    expect: Option<RawExpect>,
    #[serde(default)]
    start: Option<RawStart>,
    #[serde(default)]
    by: Option<RawActor>,
    #[serde(default)]
    data: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    expect_error: Option<String>,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default, rename = "as")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    tasks: Option<Vec<String>>,
    #[serde(default)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    effects: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    effects_exact: Option<bool>,
    #[serde(default)]
    due: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    incident: Option<serde_json::Value>,
}

const ERROR_CODES: [&str; 8] = [
    "forbidden",
    "separation_of_duties",
    "not_found",
    "invalid_data",
    "conflict",
    "incident",
    "duplicate",
    "no_active_benefit",
];

/// Parses a scenario file; every problem found is reported with its position.
pub fn parse_scenario(src: &str, file: &str) -> Result<Scenario, Vec<LoadError>> {
    let raw: RawScenario = serde_saphyr::from_str(src).map_err(|e| vec![yaml_error(file, &e)])?;
    let mut errors = Vec::new();
    let at = |line: u64, column: u64, message: String| LoadError {
        file: file.to_string(),
        line,
        column,
        message,
    };
    let start_loc = raw.start.referenced;
    let start = match convert_start(&raw.start.value, None) {
        Ok(s) => Some(s),
        Err(message) => {
            errors.push(at(start_loc.line(), start_loc.column(), message));
            None
        }
    };
    let offset = start
        .as_ref()
        .map(|s| *s.at.offset())
        .unwrap_or_else(|| FixedOffset::east_opt(8 * 3600).expect("valid offset"));
    let mut steps = Vec::new();
    for (i, spanned) in raw.steps.iter().enumerate() {
        let loc = spanned.referenced;
        match convert_step(&spanned.value, i, offset) {
            Ok(mut step) => {
                step.line = loc.line();
                steps.push(step);
            }
            Err(message) => errors.push(at(
                loc.line(),
                loc.column(),
                format!("step {}: {message}", i + 1),
            )),
        }
    }
    let reserves = match &raw.reserves {
        None => BTreeMap::new(),
        Some(spanned) => match super::reserves::parse_fixture(&spanned.value) {
            Ok(reserves) => reserves,
            Err(message) => {
                let loc = spanned.referenced;
                errors.push(at(loc.line(), loc.column(), message));
                BTreeMap::new()
            }
        },
    };
    match (start, errors.is_empty()) {
        (Some(start), true) => Ok(Scenario {
            name: raw.name,
            process: raw.process,
            policy: raw.policy,
            calendar: raw.calendar,
            start,
            steps,
            benefits: raw.benefits,
            cases: raw.cases,
            reserves,
        }),
        _ => Err(errors),
    }
}

fn yaml_error(file: &str, e: &serde_saphyr::Error) -> LoadError {
    let at = jiuzhu_rules::yaml::ErrorAt::of(e);
    LoadError {
        file: file.to_string(),
        line: at.line,
        column: at.column,
        message: at.message,
    }
}

fn convert_actor(raw: &RawActor) -> Actor {
    Actor {
        user: raw.user.clone(),
        roles: raw.roles.clone(),
        unit: raw.unit.clone(),
    }
}

fn convert_data(
    raw: &Option<serde_json::Map<String, serde_json::Value>>,
) -> BTreeMap<String, Value> {
    raw.as_ref()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), Value::from_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn convert_start(
    raw: &RawStart,
    default_at: Option<DateTime<FixedOffset>>,
) -> Result<ScenarioStart, String> {
    let at = match (&raw.at, default_at) {
        (Some(text), _) => DateTime::parse_from_rfc3339(text)
            .map_err(|_| format!("start.at: bad time {text:?}: expected ISO 8601 with offset, e.g. 2026-03-02T09:00:00+08:00"))?,
        (None, Some(t)) => t,
        (None, None) => return Err("start.at is required".into()),
    };
    Ok(ScenarioStart {
        at,
        by: convert_actor(&raw.by),
        data: convert_data(&raw.data),
        process: raw.process.clone(),
    })
}

fn convert_step(raw: &RawStep, index: usize, offset: FixedOffset) -> Result<Step, String> {
    let handovers = [
        (Handover::Claim, &raw.claim),
        (Handover::Unclaim, &raw.unclaim),
        (Handover::Reassign, &raw.reassign),
        (Handover::Delegate, &raw.delegate),
    ];
    let handover = handovers
        .iter()
        .find_map(|(action, node)| node.as_ref().map(|n| (*action, n.clone())));
    let kinds = [
        raw.complete.is_some(),
        raw.message.is_some(),
        raw.correct.is_some(),
        raw.retry.is_some(),
        raw.advance.is_some(),
        raw.expect.is_some(),
        raw.start.is_some(),
    ];
    let count = kinds.iter().filter(|k| **k).count()
        + handovers.iter().filter(|(_, n)| n.is_some()).count();
    if count != 1 {
        return Err("a step has exactly one of complete, message, correct, retry, claim, unclaim, reassign, delegate, advance, expect, start".into());
    }
    if let Some(code) = &raw.expect_error
        && !ERROR_CODES.contains(&code.as_str())
    {
        return Err(format!(
            "unknown error code {code:?} (one of {})",
            ERROR_CODES.join(", ")
        ));
    }
    if raw.expect_error.is_some()
        && raw.complete.is_none()
        && raw.message.is_none()
        && raw.correct.is_none()
        && raw.retry.is_none()
        && raw.start.is_none()
        && handover.is_none()
    {
        return Err(
            "expect_error goes with complete, message, correct, retry, start, claim, unclaim, reassign or delegate"
                .into(),
        );
    }
    if raw.reason.is_some() && raw.correct.is_none() {
        return Err("reason goes with correct".into());
    }
    let kind = if let Some((action, node)) = handover {
        let by = raw
            .by
            .as_ref()
            .ok_or_else(|| format!("{} needs `by` (user, roles, unit)", action.as_str()))?;
        let to = match (action, &raw.to) {
            (Handover::Reassign | Handover::Delegate, Some(to)) => Some(convert_actor(to)),
            (Handover::Reassign | Handover::Delegate, None) => {
                return Err(format!(
                    "{} needs `to` (user, roles, unit)",
                    action.as_str()
                ));
            }
            (_, Some(_)) => return Err(format!("{} takes no `to`", action.as_str())),
            (_, None) => None,
        };
        StepKind::Handover {
            action,
            node,
            by: convert_actor(by),
            to,
        }
    } else if let Some(node) = &raw.complete {
        let by = raw
            .by
            .as_ref()
            .ok_or("complete needs `by` (user, roles, unit)")?;
        StepKind::Complete {
            node: node.clone(),
            by: convert_actor(by),
            data: convert_data(&raw.data),
        }
    } else if let Some(changes) = &raw.correct {
        let by = raw
            .by
            .as_ref()
            .ok_or("correct needs `by` (user, roles, unit)")?;
        StepKind::Correct {
            changes: changes
                .iter()
                .map(|(path, value)| (path.clone(), Value::from_json(value)))
                .collect(),
            reason: raw.reason.clone().unwrap_or_default(),
            by: convert_actor(by),
        }
    } else if let Some(node) = &raw.retry {
        let by = raw
            .by
            .as_ref()
            .ok_or("retry needs `by` (user, roles, unit)")?;
        StepKind::Retry {
            node: node.clone(),
            by: convert_actor(by),
        }
    } else if let Some(name) = &raw.message {
        StepKind::Message {
            name: name.clone(),
            by: raw.by.as_ref().map(convert_actor),
            data: convert_data(&raw.data),
        }
    } else if let Some(advance) = &raw.advance {
        StepKind::Advance(convert_advance(advance, offset)?)
    } else if let Some(expect) = &raw.expect {
        StepKind::Expect(Box::new(convert_expect(expect)?))
    } else if let Some(start) = &raw.start {
        let process = start
            .process
            .clone()
            .ok_or("start inside steps needs `process`")?;
        let name = start
            .name
            .clone()
            .or_else(|| raw.name.clone())
            .unwrap_or_else(|| format!("instance{}", index + 1));
        // `at` may be left out inside steps: the current time is meant.
        let converted =
            convert_start(start, Some(DateTime::<chrono::Utc>::MIN_UTC.fixed_offset()))?;
        StepKind::Start {
            process,
            start: converted,
            name,
        }
    } else {
        return Err("empty step".into());
    };
    Ok(Step {
        kind,
        instance: raw.instance.clone(),
        expect_error: raw.expect_error.clone(),
        line: 0,
    })
}

fn convert_advance(raw: &serde_json::Value, offset: FixedOffset) -> Result<Advance, String> {
    match raw {
        serde_json::Value::String(text) => text
            .parse::<Duration>()
            .map(Advance::By)
            .map_err(|e| e.to_string()),
        serde_json::Value::Object(map) => {
            let to = map
                .get("to")
                .and_then(|v| v.as_str())
                .ok_or("advance: expected a duration (3wd, 36h, 7d) or {to: TIME}")?;
            super::parse_time(to, &offset)
                .map(Advance::To)
                .map_err(|e| e.to_string())
        }
        _ => Err("advance: expected a duration (3wd, 36h, 7d) or {to: TIME}".into()),
    }
}

fn convert_expect(raw: &RawExpect) -> Result<Expect, String> {
    if let Some(status) = &raw.status
        && !["active", "completed", "terminated"].contains(&status.as_str())
    {
        return Err(format!(
            "expect.status: {status:?} is not one of active, completed, terminated"
        ));
    }
    let due = match &raw.due {
        None => None,
        Some(map) => Some(
            map.iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(format!("expect.due.{k}: expected a date, found {other}")),
                })
                .collect::<Result<_, String>>()?,
        ),
    };
    let incident = match &raw.incident {
        None => None,
        Some(serde_json::Value::Bool(b)) => Some(IncidentExpect::Any(*b)),
        Some(serde_json::Value::String(node)) => Some(IncidentExpect::At(node.clone())),
        Some(other) => {
            return Err(format!(
                "expect.incident: expected true, false or a rule node's id, found {other}"
            ));
        }
    };
    Ok(Expect {
        status: raw.status.clone(),
        outcome: raw.outcome.clone(),
        tasks: raw.tasks.clone(),
        variables: raw.variables.clone(),
        effects: raw.effects.clone(),
        effects_exact: raw.effects_exact.unwrap_or(false),
        due,
        incident,
    })
}
