//! `jiuzhu simulate-policy --explain CASE`: one case's assessment steps under the policy in
//! force and under the proposal, side by side (personal fields masked).

use anyhow::{Result, anyhow};
use jiuzhu_engine::privacy;
use jiuzhu_engine::store::Store;
use jiuzhu_engine::store::search::Resolved;
use jiuzhu_rules::Assessment;
use serde_json::{Value as Json, json};

use super::evaluate::{Skip, assess_both, prepare};
use super::inputs::Inputs;
use crate::errors::CliError;

/// The explanation of one case, as text or pretty JSON.
pub async fn run(store: &Store, inputs: &Inputs, fragment: &str, as_json: bool) -> Result<String> {
    let id = match store.resolve_instance_id(fragment).await? {
        Resolved::One(id) => id,
        Resolved::None => {
            return Err(anyhow!(CliError::refused(
                "not_found",
                format!("no case {fragment}")
            )));
        }
        Resolved::Ambiguous(ids) => {
            return Err(anyhow!(CliError::usage(
                "ambiguous",
                format!("{fragment} matches several cases: {}", ids.join(", "))
            )));
        }
    };
    let row = store
        .case_for_simulation(&id)
        .await?
        .ok_or_else(|| anyhow!(CliError::refused("not_found", format!("no case {id}"))))?;
    let refusal = |skip: Skip| {
        let message = match skip {
            Skip::NotConcerned => format!(
                "case {id} holds no assessment of a program the rule files define ({})",
                inputs.programs().join(", ")
            ),
            Skip::OutsideProposal => format!(
                "case {id} (unit {}) is outside the proposal's jurisdiction {}",
                row.unit, inputs.proposed.jurisdiction
            ),
            Skip::Unassessable(reason) => format!("case {id} cannot be assessed: {reason}"),
        };
        anyhow!(CliError::refused("not_simulated", message))
    };
    let prepared = prepare(inputs, &row, true).map_err(refusal)?;
    let (current, proposed) = assess_both(inputs, &row.unit, &prepared, true).map_err(refusal)?;
    let in_force = inputs
        .in_force
        .select(&row.unit, inputs.as_of)
        .map(|p| p.source.clone())
        .unwrap_or_default();
    if as_json {
        let out = json!({
            "case": id,
            "process": row.process_id,
            "program": prepared.program,
            "unit": row.unit,
            "as_of": inputs.as_of.to_string(),
            "current": {"policy": in_force, "assessment": privacy::mask_json(&current.to_json_with_trace())},
            "proposed": {"policy": inputs.proposed_file, "assessment": privacy::mask_json(&proposed.to_json_with_trace())},
        });
        Ok(format!("{}\n", serde_json::to_string_pretty(&out)?))
    } else {
        Ok(side_by_side(
            &id,
            &prepared.program,
            &in_force,
            inputs,
            &current,
            &proposed,
        ))
    }
}

/// One line per step: its label, the value under each policy, and a mark where they differ.
fn side_by_side(
    id: &str,
    program: &str,
    in_force: &str,
    inputs: &Inputs,
    current: &Assessment,
    proposed: &Assessment,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "case {id} ({program}) as of {}", inputs.as_of);
    let _ = writeln!(
        out,
        "{:<40} {:>22} {:>22}",
        "step",
        format!("current ({in_force})"),
        format!("proposed ({})", inputs.proposed_file)
    );
    let value = |j: &Json| match j {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let steps_current = current.trace();
    let steps_proposed = proposed.trace();
    for (i, step) in steps_current.iter().enumerate() {
        let name = match &step.member {
            Some(member) => format!("{} {}[{member}]", step.label, step.name),
            None => format!("{} {}", step.label, step.name),
        };
        let now = value(&step.value.to_json());
        // Both runs walk the same rule file over the same household: the same steps in
        // the same order; a step only one of them has shows as missing.
        let then = steps_proposed
            .get(i)
            .filter(|p| p.name == step.name && p.member == step.member)
            .map(|p| value(&p.value.to_json()))
            .unwrap_or_else(|| "—".into());
        let mark = if now == then { " " } else { "*" };
        let _ = writeln!(out, "{mark} {name:<38} {now:>22} {then:>22}");
    }
    let a = current.to_json();
    let b = proposed.to_json();
    for field in [
        "eligible",
        "category",
        "standard",
        "monthly_amount",
        "reasons",
    ] {
        let now = value(&a[field]);
        let then = value(&b[field]);
        let mark = if now == then { " " } else { "*" };
        let _ = writeln!(out, "{mark} {field:<38} {now:>22} {then:>22}");
    }
    out
}
