//! The persistent state of one instance, as the pure core reads and writes it.
//!
//! State is plain data: it serialises to JSON for the store and is re-typed
//! against the definition's declared variables when loaded, so decimals and
//! dates come back exact.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use jiuzhu_rules::{Type, Value};
use serde::{Deserialize, Serialize};

use crate::lang::model::Definition;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Completed,
    Terminated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Completed => "completed",
            Status::Terminated => "terminated",
        }
    }
}

/// A position of execution waiting at a node (task, timer, receive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: u64,
    pub node: String,
}

/// An open user task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenTask {
    pub id: String,
    pub node: String,
    pub label: String,
    pub token: u64,
    pub roles: Vec<String>,
    pub unit: String,
    /// Only this user may complete it (multi-instance votes, explicit assignees).
    pub assignee: Option<String>,
    /// The user who claimed it; others get `conflict` until it is released.
    pub claimed_by: Option<String>,
    pub opened_at: DateTime<FixedOffset>,
    pub due_at: Option<DateTime<FixedOffset>>,
    /// `due_at` was counted through a year the calendar does not cover (暂定).
    #[serde(default, skip_serializing_if = "is_false")]
    pub provisional: bool,
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

/// Why a timer exists; what happens when it fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimerKind {
    /// A `timer` node or a `receive` node's timeout, for the token waiting there.
    Node {
        token: u64,
    },
    TaskReminder {
        task: String,
    },
    TaskDue {
        task: String,
    },
    DeadlineReminder {
        deadline: String,
    },
    DeadlineDue {
        deadline: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub id: String,
    pub due_at: DateTime<FixedOffset>,
    #[serde(flatten)]
    pub kind: TimerKind,
    /// `due_at` was counted through a year the calendar does not cover.
    #[serde(default, skip_serializing_if = "is_false")]
    pub provisional: bool,
    /// Where the count of a provisional `timer` node's (or `receive` timeout's) `after`
    /// started, so `CalendarChanged` can count it again; set only on those timers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_from: Option<DateTime<FixedOffset>>,
}

/// An armed instance-wide deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineState {
    pub id: String,
    pub armed_at: DateTime<FixedOffset>,
    pub due_at: DateTime<FixedOffset>,
    /// False once disarmed by a `stop` node or the end of the case.
    pub active: bool,
    pub overdue: bool,
    /// `due_at` was counted through a year the calendar does not cover.
    #[serde(default, skip_serializing_if = "is_false")]
    pub provisional: bool,
}

/// Everything the engine remembers about one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    pub id: String,
    pub process: String,
    pub status: Status,
    pub outcome: Option<String>,
    pub unit: String,
    pub started_at: DateTime<FixedOffset>,
    pub started_by: String,
    #[serde(with = "value_map")]
    pub vars: BTreeMap<String, Value>,
    pub tokens: Vec<Token>,
    pub tasks: Vec<OpenTask>,
    pub timers: Vec<Timer>,
    /// Arrivals counted at each join node.
    pub joins: BTreeMap<String, usize>,
    pub deadlines: Vec<DeadlineState>,
    /// Users who completed each node (for separation of duties).
    pub completed_by: BTreeMap<String, Vec<String>>,
    /// Counter for ids of tasks, timers, tokens and effects, unique within the instance.
    pub seq: u64,
    /// Rule steps that failed: each one's token waits at its rule node until the step is
    /// retried (`Event::Retry`), usually after a correction of the case's data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<CaseIncident>,
    /// The business key this case holds among its process's active cases (`key:`),
    /// computed at start; released when the case ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The approved case of another process the start needs (`requires_active:`), as
    /// computed at start: the runtime looks it up before it stores the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<ActiveNeed>,
    /// The case whose `start_process` started this one, and what it asked to be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentLink>,
    /// Ids of other cases' `message` effects this case took, so a redelivery (after a
    /// crash between the step and the outbox's acknowledgement) is recognised and skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub received: Vec<String>,
}

/// A rule step that failed on a case (no policy in force, a household the rules refuse
/// …): its token waits at the node, and the incident is listed until a retry passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseIncident {
    /// `{instance}-i{seq}`: what `jiuzhu retry` and the API's retry take.
    pub id: String,
    pub token: u64,
    pub node: String,
    /// `rule_failed`.
    pub code: String,
    pub message: String,
    pub at: DateTime<FixedOffset>,
}

/// What `requires_active:` asks for at start: an approved case of `process` whose
/// variables hold the ID number `id_number`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveNeed {
    pub process: String,
    pub id_number: String,
}

/// The case that started this one (`start_process`), kept on the child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    /// The parent's instance id.
    pub case: String,
    /// The message the parent is sent when this case ends (`on_end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_end: Option<String>,
}

/// Most messages of other cases one case takes (`received`): a loop of cases messaging
/// each other cannot grow a state without limit; the message past it is refused
/// (`too_many_messages`) and the sender's effect becomes an incident.
pub const MAX_RECEIVED: usize = 1_000;

/// A case has taken [`MAX_RECEIVED`] messages already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedFull {
    pub limit: usize,
}

impl InstanceState {
    /// Records that this case took message effect `effect` of another case; refused when
    /// it has taken [`MAX_RECEIVED`] already.
    pub fn record_received(&mut self, effect: &str) -> Result<(), ReceivedFull> {
        if self.received.len() >= MAX_RECEIVED {
            return Err(ReceivedFull {
                limit: MAX_RECEIVED,
            });
        }
        self.received.push(effect.to_string());
        Ok(())
    }

    /// An empty state before the start event; `step` fills it.
    pub fn new(id: &str, process: &str, now: DateTime<FixedOffset>) -> Self {
        InstanceState {
            id: id.to_string(),
            process: process.to_string(),
            status: Status::Active,
            outcome: None,
            unit: String::new(),
            started_at: now,
            started_by: String::new(),
            vars: BTreeMap::new(),
            tokens: Vec::new(),
            tasks: Vec::new(),
            timers: Vec::new(),
            joins: BTreeMap::new(),
            deadlines: Vec::new(),
            completed_by: BTreeMap::new(),
            seq: 0,
            incidents: Vec::new(),
            key: None,
            requires: None,
            parent: None,
            received: Vec::new(),
        }
    }

    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// Reads a stored state (its JSON text) back and restores the declared types of its
    /// variables (decimals and dates are stored as strings).
    pub fn from_json(json: &str, def: &Definition) -> Result<Self, serde_json::Error> {
        // Straight from the text: no JSON tree first.
        let mut state: InstanceState = serde_json::from_str(json)?;
        state.retype(def);
        Ok(state)
    }

    /// Coerces every declared variable to its declared type; leaves values it cannot convert as they are.
    pub fn retype(&mut self, def: &Definition) {
        for decl in &def.variables {
            if let Some(value) = self.vars.get_mut(&decl.name) {
                if decl.ty == Type::Any {
                    continue;
                }
                if let Ok(typed) = value.clone().coerce(&decl.ty, &format!("$.{}", decl.name)) {
                    *value = typed;
                }
            }
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A new id unique within the instance and across instances: `{instance}-{kind}{seq}`
    /// (`t` task, `w` timer, `e` effect). Effect ids are idempotency keys.
    pub fn next_id(&mut self, kind: char) -> String {
        let seq = self.next_seq();
        format!("{}-{kind}{seq}", self.id)
    }

    pub fn task(&self, id: &str) -> Option<&OpenTask> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// A state that no run of its definition can reach: a broken invariant, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance {instance}: {problem}")]
pub struct InvariantViolation {
    pub instance: String,
    pub problem: String,
}

impl InstanceState {
    /// Checks the invariants every reachable state keeps: tokens rest only at nodes that
    /// wait (a task node with its open task, a timer or receive node); every task has its
    /// token; every timer belongs to a live token, task or armed deadline; an active
    /// instance waits somewhere and an ended one waits nowhere. Property tests and the
    /// crash test check stored states with it.
    pub fn check_invariants(&self, def: &Definition) -> Result<(), InvariantViolation> {
        use crate::lang::model::NodeKind;
        use std::collections::BTreeSet;
        let violation = |problem: String| InvariantViolation {
            instance: self.id.clone(),
            problem,
        };
        let tokens: BTreeSet<u64> = self.tokens.iter().map(|t| t.id).collect();
        if tokens.len() != self.tokens.len() {
            return Err(violation("duplicate token ids".into()));
        }
        for token in &self.tokens {
            let idx = def
                .node_index(&token.node)
                .ok_or_else(|| violation(format!("token at unknown node {}", token.node)))?;
            match &def.nodes[idx].kind {
                NodeKind::Task(_) => {
                    if !self.tasks.iter().any(|t| t.token == token.id) {
                        return Err(violation(format!(
                            "token at task node {} without an open task",
                            token.node
                        )));
                    }
                }
                NodeKind::Timer(_) | NodeKind::Receive(_) | NodeKind::Batch(_) => {}
                // A rule step that failed waits for its retry.
                NodeKind::Rule(_) if self.incidents.iter().any(|i| i.token == token.id) => {}
                other => {
                    return Err(violation(format!(
                        "token resting at a node that does not wait: {} {other:?}",
                        token.node
                    )));
                }
            }
        }
        for incident in &self.incidents {
            if !self
                .tokens
                .iter()
                .any(|t| t.id == incident.token && t.node == incident.node)
            {
                return Err(violation(format!(
                    "incident {} has no token at its node",
                    incident.id
                )));
            }
        }
        let mut task_ids = BTreeSet::new();
        for task in &self.tasks {
            if !task_ids.insert(&task.id) {
                return Err(violation(format!("duplicate task id {}", task.id)));
            }
            if !self
                .tokens
                .iter()
                .any(|t| t.id == task.token && t.node == task.node)
            {
                return Err(violation(format!(
                    "task {} has no token at its node",
                    task.id
                )));
            }
        }
        for timer in &self.timers {
            let ok = match &timer.kind {
                TimerKind::Node { token } => tokens.contains(token),
                TimerKind::TaskReminder { task } | TimerKind::TaskDue { task } => {
                    self.tasks.iter().any(|t| &t.id == task)
                }
                TimerKind::DeadlineReminder { deadline } | TimerKind::DeadlineDue { deadline } => {
                    self.deadlines.iter().any(|d| &d.id == deadline && d.active)
                }
            };
            if !ok {
                return Err(violation(format!("dangling timer {timer:?}")));
            }
        }
        match self.status {
            Status::Active if self.tokens.is_empty() => {
                Err(violation("active instance waits nowhere".into()))
            }
            Status::Completed | Status::Terminated
                if !(self.tokens.is_empty() && self.tasks.is_empty() && self.timers.is_empty()) =>
            {
                Err(violation(
                    "ended instance still has tokens, tasks or timers".into(),
                ))
            }
            _ => Ok(()),
        }
    }
}

mod value_map {
    use std::collections::BTreeMap;

    use jiuzhu_rules::Value;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<String, Value>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let json: serde_json::Map<String, serde_json::Value> =
            map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
        json.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Value>, D::Error> {
        let json = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        Ok(json
            .iter()
            .map(|(k, v)| (k.clone(), Value::from_json(v)))
            .collect())
    }
}

#[cfg(test)]
mod received_tests {
    use super::*;

    #[test]
    fn the_messages_a_case_takes_are_bounded() {
        let now = DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").expect("time");
        let mut state = InstanceState::new("c-1", "p", now);
        for i in 0..MAX_RECEIVED {
            assert_eq!(state.record_received(&format!("x-e{i}")), Ok(()));
        }
        assert_eq!(
            state.record_received("x-e-last"),
            Err(ReceivedFull {
                limit: MAX_RECEIVED
            })
        );
        assert_eq!(state.received.len(), MAX_RECEIVED);
    }
}
