//! One case under both policies: its stored household read from the state text, assessed
//! at the as-of date under the policy in force for its unit and under the proposal, and
//! classified. Pure and synchronous: pages of cases are evaluated on worker threads.

use jiuzhu_engine::privacy;
use jiuzhu_engine::store::search::id_numbers;
use jiuzhu_engine::store::simulate::DecidedCase;
use jiuzhu_rules::{Assessment, CaseScope, Policy, parse_case, try_assess_scoped};
use rust_decimal::Decimal;

use super::inputs::Inputs;

/// Which population a case belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Receiving a benefit (a granted outcome).
    Recipient,
    /// Refused within the last year.
    Refused,
}

impl Group {
    pub fn name(self) -> &'static str {
        match self {
            Group::Recipient => "recipient",
            Group::Refused => "refused",
        }
    }
}

/// What the proposal does to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Gaining,
    Losing,
    LosingEligibility,
    NewlyEligible,
    Unchanged,
    /// A refused applicant the proposal does not make eligible.
    StillIneligible,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Gaining => "gaining",
            Change::Losing => "losing",
            Change::LosingEligibility => "losing_eligibility",
            Change::NewlyEligible => "newly_eligible",
            Change::Unchanged => "unchanged",
            Change::StillIneligible => "still_ineligible",
        }
    }
}

/// Eligibility and the monthly amount paid (zero when not eligible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amounts {
    pub eligible: bool,
    pub monthly: Decimal,
}

impl Amounts {
    fn of(assessment: &Assessment) -> Amounts {
        let eligible = assessment.eligible();
        Amounts {
            eligible,
            monthly: if eligible {
                assessment.monthly_amount()
            } else {
                Decimal::ZERO
            },
        }
    }
}

/// One simulated case; names and ID numbers are already masked.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub id: String,
    pub process: String,
    pub program: String,
    pub unit: String,
    pub group: Group,
    pub change: Change,
    pub current: Amounts,
    pub proposed: Amounts,
    pub applicant: String,
    pub id_number: String,
}

impl CaseResult {
    /// What the proposal changes in the monthly amount paid.
    pub fn monthly_change(&self) -> Decimal {
        self.proposed.monthly - self.current.monthly
    }
}

/// Why a case was not simulated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Neither a granted nor a recently refused case, or no assessment of a program the
    /// rule files define: not part of the simulation at all.
    NotConcerned,
    /// The proposal's jurisdiction does not cover the case's unit.
    OutsideProposal,
    /// The case could not be assessed (the reason names no personal data).
    Unassessable(String),
}

/// The variables the store cut out of a case's state, in the order of
/// [`DecidedCase::vars`]: household, area, request, applicant name, bank account, the
/// assessment's program.
type Vars = (
    Option<serde_json::Value>,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
    Option<String>,
    Option<serde_json::Value>,
    Option<String>,
);

/// The case's stored inputs, ready to assess.
pub struct Prepared {
    pub group: Group,
    pub program: String,
    case: serde_json::Value,
    applicant: Option<String>,
    bank: Option<serde_json::Value>,
}

/// Reads what the simulation needs from the case's state, or says why it is left out.
pub fn prepare(inputs: &Inputs, row: &DecidedCase, explain: bool) -> Result<Prepared, Skip> {
    let group = if inputs.granted.contains(&row.outcome) {
        Group::Recipient
    } else if inputs.refused.contains(&row.outcome) && row.updated_at >= inputs.refused_since {
        Group::Refused
    } else if explain {
        Group::Recipient
    } else {
        return Err(Skip::NotConcerned);
    };
    let unreadable = || Skip::Unassessable("unreadable_state".into());
    let (household, area, request, applicant_name, bank, program): Vars =
        serde_json::from_str(row.vars.as_deref().ok_or_else(unreadable)?)
            .map_err(|_| unreadable())?;
    let Some(program) = program else {
        return Err(Skip::NotConcerned);
    };
    if !inputs.simulates(&program) {
        return Err(Skip::NotConcerned);
    }
    let (Some(household), Some(area)) = (household, area) else {
        return Err(Skip::Unassessable("no_household".into()));
    };
    let mut case = serde_json::Map::new();
    case.insert("program".into(), program.clone().into());
    case.insert(
        "as_of".into(),
        inputs.as_of.format("%Y-%m-%d").to_string().into(),
    );
    case.insert("area".into(), area);
    case.insert("household".into(), household);
    if let Some(request) = request.filter(|r| !r.is_null()) {
        case.insert("request".into(), request);
    }
    Ok(Prepared {
        group,
        program,
        case: serde_json::Value::Object(case),
        applicant: applicant_name,
        bank,
    })
}

/// Both assessments of a prepared case: with their traces for `--explain` (`trace`), and
/// without for the report, which reads only eligibility and amounts (the figures are the
/// same either way; building the trace was most of an assessment's work).
pub fn assess_both(
    inputs: &Inputs,
    unit: &str,
    prepared: &Prepared,
    trace: bool,
) -> Result<(Assessment, Assessment), Skip> {
    if !covers(&inputs.proposed, unit) {
        return Err(Skip::OutsideProposal);
    }
    let case =
        parse_case(&prepared.case).map_err(|_| Skip::Unassessable("invalid_household".into()))?;
    let (_, in_force) = inputs
        .in_force_for(unit)
        .ok_or_else(|| Skip::Unassessable("no_policy_in_force".into()))?;
    // The case's variables are made once for both policies.
    let scope = CaseScope::new(&case);
    let current = try_assess_scoped(&inputs.rules, in_force, &case, &scope, trace)
        .map_err(|_| Skip::Unassessable("rule_error".into()))?;
    let proposed = try_assess_scoped(&inputs.rules, &inputs.proposed_value, &case, &scope, trace)
        .map_err(|_| Skip::Unassessable("rule_error".into()))?;
    Ok((current, proposed))
}

/// Simulates one decided case.
pub fn evaluate(inputs: &Inputs, row: DecidedCase) -> Result<CaseResult, (String, Skip)> {
    let prepared = prepare(inputs, &row, false).map_err(|skip| (row.id.clone(), skip))?;
    let (current, proposed) =
        assess_both(inputs, &row.unit, &prepared, false).map_err(|skip| (row.id.clone(), skip))?;
    let current = Amounts::of(&current);
    let proposed = Amounts::of(&proposed);
    let change = classify(prepared.group, current, proposed);
    let id_number = prepared
        .bank
        .as_ref()
        .and_then(|bank| id_numbers(bank).into_iter().next())
        .map(|n| privacy::mask_id_number(&n))
        .unwrap_or_default();
    Ok(CaseResult {
        id: row.id,
        process: row.process_id,
        program: prepared.program,
        unit: row.unit,
        group: prepared.group,
        change,
        current,
        proposed,
        applicant: prepared
            .applicant
            .as_deref()
            .map(privacy::mask_name)
            .unwrap_or_default(),
        id_number,
    })
}

fn classify(group: Group, current: Amounts, proposed: Amounts) -> Change {
    match group {
        Group::Refused if proposed.eligible && !current.eligible => Change::NewlyEligible,
        Group::Refused => Change::StillIneligible,
        Group::Recipient if current.eligible && !proposed.eligible => Change::LosingEligibility,
        Group::Recipient if proposed.monthly > current.monthly => Change::Gaining,
        Group::Recipient if proposed.monthly < current.monthly => Change::Losing,
        Group::Recipient if proposed.eligible && !current.eligible => Change::Gaining,
        Group::Recipient => Change::Unchanged,
    }
}

/// Whether the policy's jurisdiction is the unit or a whole-segment prefix of it.
fn covers(policy: &Policy, unit: &str) -> bool {
    let unit = unit.trim_matches('/');
    let j = policy.jurisdiction.as_str();
    unit == j
        || unit
            .strip_prefix(j)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amounts(eligible: bool, monthly: i64) -> Amounts {
        Amounts {
            eligible,
            monthly: Decimal::from(monthly),
        }
    }

    #[test]
    fn changes_are_classified_by_group_eligibility_and_amount() {
        let r = Group::Recipient;
        let table = [
            (r, amounts(true, 100), amounts(true, 130), Change::Gaining),
            (r, amounts(true, 130), amounts(true, 100), Change::Losing),
            (
                r,
                amounts(true, 100),
                amounts(false, 0),
                Change::LosingEligibility,
            ),
            (r, amounts(true, 0), amounts(true, 0), Change::Unchanged),
            (r, amounts(false, 0), amounts(true, 0), Change::Gaining),
            (r, amounts(false, 0), amounts(false, 0), Change::Unchanged),
            (
                Group::Refused,
                amounts(false, 0),
                amounts(true, 20),
                Change::NewlyEligible,
            ),
            (
                Group::Refused,
                amounts(false, 0),
                amounts(false, 0),
                Change::StillIneligible,
            ),
            (
                Group::Refused,
                amounts(true, 20),
                amounts(true, 30),
                Change::StillIneligible,
            ),
        ];
        for (group, current, proposed, expected) in table {
            assert_eq!(
                classify(group, current, proposed),
                expected,
                "{current:?} → {proposed:?}"
            );
        }
    }
}
