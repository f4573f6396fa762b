//! What a simulation runs on: the proposed policy file (checked, with every problem at
//! `file:line:column`), the policies in force beside it, the project's rule files (the
//! programs simulated are the ones they define) and the dates.

use std::path::Path;

use chrono::{Months, NaiveDate};
use jiuzhu_rules::yaml::{Limits, YamlValue, read};
use jiuzhu_rules::{Policy, PolicyError, PolicySet, RuleSet, Value};

use crate::errors::CliError;

/// Everything the per-case evaluation needs; shared read-only by the worker threads.
pub struct Inputs {
    pub rules: RuleSet,
    /// The project's policies without the proposal (a proposal already filed in the
    /// project's folder is not its own "policy in force").
    pub in_force: PolicySet,
    pub proposed: Policy,
    /// `proposed` as the rules see it ([`Policy::to_value`]), made once for every case.
    pub proposed_value: Value,
    /// Each policy of `in_force`, in its order, as the rules see it.
    in_force_values: Vec<Value>,
    /// The proposal's file as given, for the report.
    pub proposed_file: String,
    /// The day both policies are applied to every household.
    pub as_of: NaiveDate,
    /// Refused applicants decided on or after this instant are tried under the proposal.
    pub refused_since: chrono::DateTime<chrono::Utc>,
    /// Outcomes of a case whose benefit is granted (a recipient).
    pub granted: Vec<String>,
    /// Outcomes of a refused application.
    pub refused: Vec<String>,
}

impl Inputs {
    /// The policy in force for a unit at the as-of date, with its value for the rules.
    pub fn in_force_for(&self, unit: &str) -> Option<(&Policy, &Value)> {
        let policy = self.in_force.select(unit, self.as_of)?;
        let at = self
            .in_force
            .policies()
            .iter()
            .position(|p| std::ptr::eq(p, policy))?;
        Some((policy, self.in_force_values.get(at)?))
    }

    /// Whether the stored assessment's program is one the rule files define.
    pub fn simulates(&self, program: &str) -> bool {
        self.rules.program(program).is_some()
    }

    /// The programs of the rule files, in name order.
    pub fn programs(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rules.programs().map(|p| p.program.clone()).collect();
        names.sort();
        names
    }
}

/// The options that shape [`Inputs`].
pub struct InputOptions<'a> {
    pub proposed: &'a Path,
    pub definitions: &'a Path,
    pub as_of: Option<NaiveDate>,
    pub today: chrono::DateTime<chrono::Utc>,
    pub granted: Vec<String>,
    pub refused: Vec<String>,
}

/// Loads and checks the inputs; a bad proposal is a usage error listing every problem.
pub fn load(options: InputOptions<'_>) -> Result<Inputs, CliError> {
    let file = options.proposed.display().to_string();
    let src = std::fs::read_to_string(options.proposed)
        .map_err(|e| CliError::usage("invalid_policy", format!("{file}: cannot read: {e}")))?;
    let proposed = Policy::from_yaml(&src, &file).map_err(|e| {
        CliError::usage(
            "invalid_policy",
            format!(
                "the proposed policy has problems:\n{}",
                policy_problems(&e, &file).join("\n")
            ),
        )
    })?;
    let as_of = options.as_of.unwrap_or(proposed.effective_from);
    if proposed.effective_from < as_of {
        let (line, column) = effective_from_position(&src).unwrap_or((1, 1));
        return Err(CliError::usage(
            "policy_in_past",
            format!(
                "{file}:{line}:{column}: effective_from {} is before the as-of date {as_of}: \
                 the proposal would apply to months already paid",
                proposed.effective_from
            ),
        )
        .hint("simulate as of the proposal's effective date (leave out --as-of), or date the proposal on or after the as-of date"));
    }
    let rules_dir = options.definitions.join("rules");
    let rules = if rules_dir.is_dir() {
        RuleSet::load_dir(&rules_dir)
            .map_err(|e| CliError::usage("invalid_project", e.to_string()))?
    } else {
        RuleSet::builtin()
    };
    let policies_dir = options.definitions.join("policies");
    let all = PolicySet::load_dir(&policies_dir).map_err(|errors| {
        CliError::usage(
            "invalid_project",
            errors
                .iter()
                .flat_map(|e| policy_problems(e, &policies_dir.display().to_string()))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let in_force = PolicySet::new(
        all.policies()
            .iter()
            .filter(|p| {
                !(p.jurisdiction == proposed.jurisdiction
                    && p.effective_from == proposed.effective_from)
            })
            .cloned()
            .collect(),
    );
    let refused_since = options
        .today
        .checked_sub_months(Months::new(12))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let in_force_values = in_force.policies().iter().map(Policy::to_value).collect();
    Ok(Inputs {
        rules,
        in_force,
        in_force_values,
        proposed_value: proposed.to_value(),
        proposed,
        proposed_file: file,
        as_of,
        refused_since,
        granted: options.granted,
        refused: options.refused,
    })
}

/// One line per problem, `file:line:column: key.path: message` where the position is known.
fn policy_problems(error: &PolicyError, file: &str) -> Vec<String> {
    match error {
        PolicyError::Invalid { file, problems } => problems
            .iter()
            .map(|p| format!("{file}:{}:{}: {}: {}", p.line, p.column, p.path, p.message))
            .collect(),
        PolicyError::Yaml { .. } => vec![error.to_string()],
        PolicyError::Io { .. } => vec![format!("{file}: {error}")],
    }
}

/// Where the top-level `effective_from` value is written.
fn effective_from_position(src: &str) -> Option<(u64, u64)> {
    let root = read(src, Limits { max_depth: None }).ok()?;
    let YamlValue::Map(entries) = root.value else {
        return None;
    };
    entries
        .iter()
        .find(|(key, _)| key.name == "effective_from")
        .map(|(_, value)| (value.at.line, value.at.column))
}
