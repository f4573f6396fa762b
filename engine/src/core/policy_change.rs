//! A policy taking effect, told to the cases that wait for it: message
//! [`POLICY_CHANGED`] with `effective_from`, once per case and policy. The engine's
//! scheduler (`runtime/policy_change.rs`) and the scenario runner deliver it; this module
//! holds what both decide alike, purely — and the same for the starts a definition asks
//! for on each policy day (`schedules:` with `on: policy_changed`).

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use jiuzhu_rules::Value;

use crate::core::{Assessor, InstanceState, Status};
use crate::lang::model::{Definition, NodeKind, PolicyStartDecl};

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

/// The user recorded as the starter of the cases a policy day starts.
pub const POLICY_STARTER: &str = "scheduler";

/// One start a policy day asks for: the case's id and start data.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyStart {
    /// `PROCESS-SCHEDULE-YYYYMMDD-JURISDICTION` (`/` written `.`): one id per policy day
    /// and jurisdiction, so a second start is a duplicate on every database.
    pub instance_id: String,
    /// The jurisdiction of the policy taking effect.
    pub jurisdiction: String,
    pub data: BTreeMap<String, Value>,
}

/// The starts `decl` of `process` asks for on `day`: one per policy taking effect that day
/// (its jurisdiction's), the data evaluated with `policy` (that policy), `previous_policy`
/// (the one in force for its jurisdiction the day before, or null), `effective_from` (the
/// day) and `now` (the day's start in `offset`), so the data of a day never varies with
/// the moment a scheduler got round to it. An expression that fails names its field.
pub fn policy_starts(
    assessor: &dyn Assessor,
    process: &str,
    decl: &PolicyStartDecl,
    day: NaiveDate,
    offset: FixedOffset,
) -> Result<Vec<PolicyStart>, String> {
    let mut out = Vec::new();
    for policy in assessor.policies_on(day) {
        let jurisdiction = match policy.get("jurisdiction") {
            Some(Value::Str(j)) => j.clone(),
            _ => String::new(),
        };
        if !takes_effect_for(assessor, &jurisdiction, day) {
            // Overridden by a more specific file of the same jurisdiction and day.
            continue;
        }
        let previous = day
            .pred_opt()
            .and_then(|before| assessor.policy(&jurisdiction, before))
            .unwrap_or(Value::Null);
        let instance_id = format!(
            "{process}-{}-{}-{}",
            decl.id,
            day.format("%Y%m%d"),
            jurisdiction.replace('/', ".")
        );
        let now: DateTime<FixedOffset> = day
            .and_time(NaiveTime::MIN)
            .and_local_timezone(offset)
            .single()
            .ok_or_else(|| format!("{day} has no midnight in {offset}"))?;
        let env: BTreeMap<String, Value> = BTreeMap::from([
            ("now".to_string(), Value::DateTime(now)),
            ("started_at".to_string(), Value::DateTime(now)),
            ("process".to_string(), Value::Str(process.to_string())),
            ("instance_id".to_string(), Value::Str(instance_id.clone())),
            (
                "started_by".to_string(),
                Value::Str(POLICY_STARTER.to_string()),
            ),
            ("unit".to_string(), Value::Str(jurisdiction.clone())),
            ("effective_from".to_string(), Value::Date(day)),
            ("policy".to_string(), policy.clone()),
            ("previous_policy".to_string(), previous),
        ]);
        let mut data = BTreeMap::new();
        for (field, template) in &decl.data {
            let value = crate::core::scope::render_template(template, &env)
                .map_err(|e| format!("schedule {} data `{field}`: {e}", decl.id))?;
            data.insert(field.clone(), value);
        }
        out.push(PolicyStart {
            instance_id,
            jurisdiction,
            data,
        });
    }
    Ok(out)
}
