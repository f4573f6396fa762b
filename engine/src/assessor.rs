//! Connects the core's rule steps to the rules crate: builds a case from
//! process variables, picks the policy in force for the case's unit and date,
//! and returns the assessment (with its trace) as a typed value.

use std::collections::BTreeMap;

use jiuzhu_rules::Value;
use jiuzhu_rules::assessment::try_assess;
use jiuzhu_rules::case::parse_case_for;
use jiuzhu_rules::limits::InputLimits;
use jiuzhu_rules::policy::{Policy, PolicySet};
use jiuzhu_rules::ruleset::RuleSet;
use jiuzhu_rules::validate::household_for_rules;

use crate::core::{AssessError, Assessor};
use crate::lang::scope::assessment_type;

/// Where the policy parameters come from.
pub enum Policies {
    /// One file for every case (`jiuzhu test --policy`, a scenario's `policy:`).
    Fixed(Box<Policy>),
    /// The project's files: the one in force for the case's unit and date.
    Set(PolicySet),
}

/// The assessor the engine uses: declarative rule files plus policy parameters.
pub struct RulesAssessor {
    pub rules: RuleSet,
    pub policies: Policies,
}

impl Assessor for RulesAssessor {
    fn assess(
        &self,
        program: &str,
        inputs: &BTreeMap<String, Value>,
    ) -> Result<Value, AssessError> {
        self.assess_program(program, inputs)
            .map_err(AssessError::new)
    }

    fn policy(&self, unit: &str, as_of: chrono::NaiveDate) -> Option<Value> {
        let policy = match &self.policies {
            Policies::Fixed(policy) => Some(policy.as_ref()),
            Policies::Set(set) => set.select(unit, as_of),
        };
        policy.map(Policy::to_value)
    }

    fn policy_dates(&self) -> Vec<chrono::NaiveDate> {
        match &self.policies {
            Policies::Fixed(_) => Vec::new(),
            Policies::Set(set) => {
                let mut dates: Vec<_> = set.policies().iter().map(|p| p.effective_from).collect();
                dates.sort();
                dates.dedup();
                dates
            }
        }
    }

    fn policies_on(&self, day: chrono::NaiveDate) -> Vec<Value> {
        match &self.policies {
            Policies::Fixed(_) => Vec::new(),
            Policies::Set(set) => set
                .policies()
                .iter()
                .filter(|p| p.effective_from == day)
                .map(Policy::to_value)
                .collect(),
        }
    }
}

impl RulesAssessor {
    /// [`Assessor::assess`], its problems described for the case's incident.
    fn assess_program(
        &self,
        program: &str,
        inputs: &BTreeMap<String, Value>,
    ) -> Result<Value, String> {
        let as_of = match inputs.get("as_of") {
            Some(Value::Date(d)) => *d,
            Some(Value::DateTime(t)) => t.date_naive(),
            other => return Err(format!("as_of must be a date, found {other:?}")),
        };
        let mut case = serde_json::Map::new();
        case.insert("program".into(), program.into());
        case.insert("as_of".into(), as_of.format("%Y-%m-%d").to_string().into());
        for key in ["area", "household"] {
            let value = inputs
                .get(key)
                .ok_or_else(|| format!("the case has no {key}"))?;
            let json = value.to_json();
            // The members' names and ID numbers are the process's, not the rules'.
            let json = if key == "household" {
                household_for_rules(&json)
            } else {
                json
            };
            case.insert(key.into(), json);
        }
        // The program's own fields (`request`, `member` …), as the rule node gives
        // them; the case's checks then say whether its program takes each one.
        for (name, value) in inputs {
            if !matches!(name.as_str(), "as_of" | "unit" | "area" | "household") {
                case.insert(name.clone(), value.to_json());
            }
        }
        let case = parse_case_for(
            &serde_json::Value::Object(case),
            &InputLimits::default(),
            &self.rules,
        )
        .map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let unit = inputs
            .get("unit")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let policy = match &self.policies {
            Policies::Fixed(policy) => policy.as_ref(),
            Policies::Set(set) => set
                .select(unit, as_of)
                .ok_or_else(|| format!("no policy in force for {unit} on {as_of}"))?,
        };
        let assessment = try_assess(&self.rules, policy, &case).map_err(|e| e.to_string())?;
        let json = assessment.to_json_with_trace();
        Value::from_json(&json)
            .coerce(&assessment_type(), "$.assessment")
            .map_err(|e| e.to_string())
    }
}
