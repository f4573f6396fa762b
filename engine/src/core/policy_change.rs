//! A policy taking effect, told to the cases that wait for it: message
//! [`POLICY_CHANGED`] with `effective_from`, once per case and policy. The engine's
//! scheduler (`runtime/policy_change.rs`) and the scenario runner deliver it; this module
//! holds what both decide alike, purely.

use chrono::NaiveDate;
use jiuzhu_rules::Value;

use crate::core::{Assessor, InstanceState, Status};
use crate::lang::model::{Definition, NodeKind};

/// The message a case receives when a policy with a later `effective_from` takes effect
/// for its unit. Its data: `effective_from` (a date).
pub const POLICY_CHANGED: &str = "policy_changed";

/// Whether `state` takes message `name` now: an active case with a token at a receive
/// node (or an open task) with a handler for it, or a process-level `messages:` entry.
pub fn waits_for(def: &Definition, state: &InstanceState, name: &str) -> bool {
    if state.status != Status::Active {
        return false;
    }
    if def.message(name).is_some() {
        return true;
    }
    state.tokens.iter().any(|token| {
        let Some(idx) = def.node_index(&token.node) else {
            return false;
        };
        match &def.nodes[idx].kind {
            NodeKind::Receive(recv) => recv.handlers.iter().any(|h| h.name == name),
            NodeKind::Task(task) => task.on.iter().any(|h| h.name == name),
            _ => false,
        }
    })
}

/// Whether the policy that takes effect on `day` is the one in force for `unit` that day
/// (a policy of another jurisdiction, or one overridden by a more specific one, is not).
pub fn takes_effect_for(assessor: &dyn Assessor, unit: &str, day: NaiveDate) -> bool {
    match assessor.policy(unit, day) {
        Some(Value::Object(policy)) => {
            matches!(policy.get("effective_from"), Some(Value::Date(d)) if *d == day)
        }
        _ => false,
    }
}

/// The message's delivery id for a case: one per (case, policy day), so a second delivery
/// (a rerun after a crash, a second scheduler node) finds it in the case's `received`.
pub fn delivery_id(day: NaiveDate) -> String {
    format!("{POLICY_CHANGED}:{day}")
}

/// The message's data.
pub fn message_data(day: NaiveDate) -> std::collections::BTreeMap<String, Value> {
    std::collections::BTreeMap::from([("effective_from".to_string(), Value::Date(day))])
}

/// Whether any step of `def` (a receive node, a task handler or the process's own
/// `messages:`) takes message `name`.
pub fn handles(def: &Definition, name: &str) -> bool {
    def.message(name).is_some()
        || def.nodes.iter().any(|node| match &node.kind {
            NodeKind::Receive(recv) => recv.handlers.iter().any(|h| h.name == name),
            NodeKind::Task(task) => task.on.iter().any(|h| h.name == name),
            _ => false,
        })
}

/// The policy days (of `days`, in order) whose message `state` is still owed on `today`:
/// a day up to today, after the day the case started (a case started on or after it was
/// under that policy from the beginning), and not delivered yet.
pub fn owed(state: &InstanceState, days: &[NaiveDate], today: NaiveDate) -> Vec<NaiveDate> {
    let started = state.started_at.date_naive();
    days.iter()
        .copied()
        .filter(|day| *day <= today && *day > started)
        .filter(|day| {
            let id = delivery_id(*day);
            !state.received.contains(&id)
        })
        .collect()
}
