//! The assessment of assess.md: runs a program's rules for a case under a policy
//! and shapes the result (money as two-decimal strings, rounded once, half away
//! from zero; nothing paid when not eligible).

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value as Json, json};

use crate::case::{Case, InputError};
use crate::policy::Policy;
use crate::ruleset::{CaseScope, ExtraFormat, RuleSet, RulesError, TraceEntry};
use crate::value::Value;

/// One member's supplement (加发).
#[derive(Debug, Clone, PartialEq)]
pub struct Supplement {
    pub member: String,
    pub categories: Vec<String>,
    pub amount: Decimal,
}

/// A program-specific output field (`care_tier`, `approval_level`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraField {
    pub name: String,
    pub label: String,
    pub format: ExtraFormat,
    pub value: Value,
}

/// The outcome of an assessment. Amounts are exact; rounding happens only when
/// written out ([`Assessment::to_json`], [`money`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub program: String,
    pub as_of: chrono::NaiveDate,
    eligible: bool,
    category: Option<String>,
    pub standard: Decimal,
    pub household_income: Decimal,
    pub members: usize,
    pub base_amount: Decimal,
    pub supplements: Vec<Supplement>,
    pub reasons: Vec<String>,
    pub extra: Vec<ExtraField>,
    trace: Vec<TraceEntry>,
}

/// Money as written in JSON: rounded to 0.01 half away from zero, two decimals.
pub fn money(amount: Decimal) -> String {
    let mut rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded.to_string()
}

impl Assessment {
    pub fn eligible(&self) -> bool {
        self.eligible
    }

    pub fn category(&self) -> Option<&str> {
        self.category.as_deref()
    }

    /// `base_amount + Σ supplements`, exact (round with [`money`] to pay it).
    pub fn monthly_amount(&self) -> Decimal {
        self.supplements
            .iter()
            .fold(self.base_amount, |total, s| total.saturating_add(s.amount))
    }

    /// Household income / members, exact.
    pub fn per_capita_income(&self) -> Decimal {
        if self.members == 0 {
            return Decimal::ZERO;
        }
        self.household_income / Decimal::from(self.members)
    }

    /// The tekun care tier (`self`, `semi`, `full`), if the program reports one.
    pub fn care_tier(&self) -> Option<&str> {
        self.extra_value("care_tier").and_then(Value::as_str)
    }

    /// The temporary_aid approval level (`township`, `county`, `committee`).
    pub fn approval_level(&self) -> Option<&str> {
        self.extra_value("approval_level").and_then(Value::as_str)
    }

    pub fn extra_value(&self, name: &str) -> Option<&Value> {
        self.extra.iter().find(|x| x.name == name).map(|x| &x.value)
    }

    /// Every step that ran, with its inputs and result.
    pub fn trace(&self) -> &[TraceEntry] {
        &self.trace
    }

    /// The assessment object of assess.md.
    pub fn to_json(&self) -> Json {
        let mut out = Map::new();
        out.insert("program".into(), json!(self.program));
        out.insert(
            "as_of".into(),
            json!(self.as_of.format("%Y-%m-%d").to_string()),
        );
        out.insert("eligible".into(), json!(self.eligible));
        out.insert(
            "category".into(),
            self.category.as_ref().map_or(Json::Null, |c| json!(c)),
        );
        out.insert("standard".into(), json!(money(self.standard)));
        out.insert(
            "per_capita_income".into(),
            json!(money(self.per_capita_income())),
        );
        out.insert("base_amount".into(), json!(money(self.base_amount)));
        out.insert(
            "supplements".into(),
            Json::Array(
                self.supplements
                    .iter()
                    .map(|s| json!({"member": s.member, "categories": s.categories, "amount": money(s.amount)}))
                    .collect(),
            ),
        );
        out.insert("monthly_amount".into(), json!(money(self.monthly_amount())));
        out.insert("reasons".into(), json!(self.reasons));
        for x in &self.extra {
            let value = match (x.format, &x.value) {
                (ExtraFormat::Money, v) => {
                    json!(money(crate::expr::number(v).unwrap_or(Decimal::ZERO)))
                }
                (ExtraFormat::Text, Value::Null) => Json::Null,
                (ExtraFormat::Text, v) => json!(v.to_string()),
            };
            out.insert(x.name.clone(), value);
        }
        Json::Object(out)
    }

    /// [`Assessment::to_json`] plus the `trace` array.
    pub fn to_json_with_trace(&self) -> Json {
        let mut out = self.to_json();
        if let Json::Object(map) = &mut out {
            map.insert(
                "trace".into(),
                Json::Array(self.trace.iter().map(TraceEntry::to_json).collect()),
            );
        }
        out
    }
}

/// A policy applies to a case from its `effective_from` on.
pub fn check_policy_applies(policy: &Policy, case: &Case) -> Result<(), InputError> {
    if case.as_of < policy.effective_from {
        return Err(InputError {
            path: "$.as_of".into(),
            message: format!(
                "{} is before the policy's effective_from {} ({} is not in force)",
                case.as_of, policy.effective_from, policy.source
            ),
        });
    }
    Ok(())
}

/// Runs the assessment, or says why the rules could not be evaluated.
pub fn try_assess(rules: &RuleSet, policy: &Policy, case: &Case) -> Result<Assessment, RulesError> {
    try_assess_in(rules, &policy.to_value(), case, true)
}

/// [`try_assess`] under a policy given as its [`Policy::to_value`] (made once for many
/// cases), with the trace or (`trace` false) without it: the same figures, an empty
/// [`Assessment::trace`], and none of the copies an explanation needs.
pub fn try_assess_in(
    rules: &RuleSet,
    policy: &Value,
    case: &Case,
    trace: bool,
) -> Result<Assessment, RulesError> {
    try_assess_scoped(rules, policy, case, &CaseScope::new(case), trace)
}

/// [`try_assess_in`] with the case's variables made once ([`CaseScope::new`] of `case`)
/// for every policy it is assessed under: the same assessment.
pub fn try_assess_scoped(
    rules: &RuleSet,
    policy: &Value,
    case: &Case,
    scope: &CaseScope,
    trace: bool,
) -> Result<Assessment, RulesError> {
    let program = case.program.as_str();
    let rules = rules
        .program(program)
        .ok_or_else(|| RulesError::UnknownProgram {
            program: program.to_string(),
        })?;
    let e = rules.evaluate_scoped(policy, scope, trace)?;
    // The contract: not eligible means no category, nothing paid, no supplements,
    // whatever a rule file computes; and only members with an amount are listed.
    let eligible = e.eligible && e.reasons.is_empty();
    let supplements = if eligible {
        e.supplements
            .into_iter()
            .filter(|(_, _, amount)| *amount > Decimal::ZERO)
            .map(|(member, categories, amount)| Supplement {
                member,
                categories,
                amount,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Assessment {
        program: program.to_string(),
        as_of: case.as_of,
        eligible,
        category: if eligible { e.category } else { None },
        standard: e.standard,
        household_income: e.household_income,
        members: case.household.members.len(),
        base_amount: if eligible {
            e.base_amount.max(Decimal::ZERO)
        } else {
            Decimal::ZERO
        },
        supplements,
        reasons: e.reasons,
        extra: e
            .extra
            .into_iter()
            .map(|(name, label, format, value)| ExtraField {
                name,
                label,
                format,
                value,
            })
            .collect(),
        trace: e.trace,
    })
}

/// Runs the assessment. A rule set that fails at run time (it passed its load-time
/// checks, so this means data the rules did not foresee) yields an ineligible
/// assessment with the reason `rule_error` and the failure in its trace; use
/// [`try_assess`] to get the error itself.
pub fn assess(rules: &RuleSet, policy: &Policy, case: &Case) -> Assessment {
    match try_assess(rules, policy, case) {
        Ok(a) => a,
        Err(err) => Assessment {
            program: case.program.clone(),
            as_of: case.as_of,
            eligible: false,
            category: None,
            // No figure can be trusted from rules that failed.
            standard: Decimal::ZERO,
            household_income: Decimal::ZERO,
            members: case.household.members.len(),
            base_amount: Decimal::ZERO,
            supplements: Vec::new(),
            reasons: vec!["rule_error".into()],
            extra: Vec::new(),
            trace: vec![TraceEntry {
                name: "error".into(),
                label: "规则执行错误".into(),
                member: None,
                matched: Vec::new(),
                inputs: Default::default(),
                value: Value::Str(err.to_string()),
            }],
        },
    }
}
