//! `expect:` checks: instance status, outcome, open tasks, variables, effects and due dates.
//!
//! Expected values match actual ones by the fields they name: objects
//! recursively, lists and scalars by value, money by decimal value
//! (`"1025.0"` matches `"1025.00"`).

use std::collections::BTreeSet;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value as J;

use super::format::{Expect, IncidentExpect};
use crate::calendar::Calendar;
use crate::core::InstanceState;

pub(super) fn check(
    expect: &Expect,
    state: &InstanceState,
    effects: &[J],
    calendar: &Calendar,
) -> Result<(), String> {
    if let Some(status) = &expect.status
        && status != state.status.as_str()
    {
        return Err(format!(
            "expected status {status}, found {}",
            state.status.as_str()
        ));
    }
    if let Some(outcome) = &expect.outcome
        && Some(outcome) != state.outcome.as_ref()
    {
        return Err(format!(
            "expected outcome {outcome}, found {}",
            state.outcome.as_deref().unwrap_or("none")
        ));
    }
    if let Some(tasks) = &expect.tasks {
        let expected: BTreeSet<&str> = tasks.iter().map(String::as_str).collect();
        let found: BTreeSet<&str> = state.tasks.iter().map(|t| t.node.as_str()).collect();
        if expected != found {
            return Err(format!(
                "expected tasks [{}], found [{}]",
                join(&expected),
                join(&found)
            ));
        }
    }
    if let Some(want) = &expect.incident {
        check_incident(want, state)?;
    }
    if let Some(variables) = &expect.variables {
        for (name, want) in variables {
            let got = state.vars.get(name).map(|v| v.to_json()).unwrap_or(J::Null);
            if !matches(want, &got) {
                return Err(format!("expected variable {name} = {want}, found {got}"));
            }
        }
    }
    if let Some(wanted) = &expect.effects {
        let mut used = vec![false; effects.len()];
        for want in wanted {
            let hit = effects
                .iter()
                .enumerate()
                .position(|(i, got)| !used[i] && matches(want, got));
            match hit {
                Some(i) => used[i] = true,
                None => {
                    return Err(format!(
                        "expected effect {want}, emitted since the previous expect: [{}]",
                        effects
                            .iter()
                            .map(J::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        if expect.effects_exact && used.iter().any(|u| !u) {
            let extra: Vec<String> = effects
                .iter()
                .zip(&used)
                .filter(|(_, u)| !**u)
                .map(|(e, _)| e.to_string())
                .collect();
            return Err(format!(
                "unexpected effects (effects_exact): [{}]",
                extra.join(", ")
            ));
        }
    } else if expect.effects_exact && !effects.is_empty() {
        return Err(format!(
            "unexpected effects (effects_exact): [{}]",
            effects
                .iter()
                .map(J::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(due) = &expect.due {
        for (node, date) in due {
            let task = state
                .tasks
                .iter()
                .find(|t| &t.node == node)
                .ok_or_else(|| format!("expected due date of {node}, but it has no open task"))?;
            let found = task
                .due_at
                .map(|t| calendar.local_date(t).format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "none".into());
            if &found != date {
                return Err(format!("expected {node} due {date}, found {found}"));
            }
        }
    }
    Ok(())
}

fn check_incident(want: &IncidentExpect, state: &InstanceState) -> Result<(), String> {
    let found: Vec<String> = state
        .incidents
        .iter()
        .map(|i| format!("{} at {}: {}", i.code, i.node, i.message))
        .collect();
    let ok = match want {
        IncidentExpect::Any(true) => !found.is_empty(),
        IncidentExpect::Any(false) => found.is_empty(),
        IncidentExpect::At(node) => state.incidents.iter().any(|i| &i.node == node),
    };
    if ok {
        return Ok(());
    }
    let wanted = match want {
        IncidentExpect::Any(true) => "an incident".to_string(),
        IncidentExpect::Any(false) => "no incident".to_string(),
        IncidentExpect::At(node) => format!("an incident at {node}"),
    };
    Err(format!("expected {wanted}, found [{}]", found.join("; ")))
}

fn join(set: &BTreeSet<&str>) -> String {
    set.iter().copied().collect::<Vec<_>>().join(", ")
}

/// Does `got` match everything `want` names?
pub(super) fn matches(want: &J, got: &J) -> bool {
    match (want, got) {
        (J::Object(w), J::Object(g)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| matches(wv, gv))),
        (J::Object(w), _) => w.is_empty(),
        (J::Array(w), J::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| matches(a, b))
        }
        (J::Null, J::Null) => true,
        (J::Bool(a), J::Bool(b)) => a == b,
        (w, g) => match (decimal(w), decimal(g)) {
            (Some(a), Some(b)) => a == b,
            _ => scalar_text(w).is_some() && scalar_text(w) == scalar_text(g),
        },
    }
}

fn decimal(v: &J) -> Option<Decimal> {
    match v {
        J::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        J::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

fn scalar_text(v: &J) -> Option<String> {
    match v {
        J::String(s) => Some(s.clone()),
        J::Number(n) => Some(n.to_string()),
        J::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;
    use serde_json::json;

    #[test]
    fn money_matches_by_decimal_value() {
        assert!(matches(&json!("1025.0"), &json!("1025.00")));
        assert!(!matches(&json!("1025.01"), &json!("1025.00")));
    }

    #[test]
    fn objects_match_by_the_fields_named() {
        let got = json!({"type": "payment", "amount": "1305.00", "purpose": "dibao"});
        assert!(matches(&json!({"type": "payment", "amount": "1305"}), &got));
        assert!(!matches(
            &json!({"type": "payment", "installment": 1}),
            &got
        ));
        assert!(matches(
            &json!({"data": {"a": 1}}),
            &json!({"data": {"a": 1, "b": 2}})
        ));
        assert!(!matches(&json!([1, 2]), &json!([1, 2, 3])));
    }
}
