//! The simulation's fold: counts and money per program and unit, the largest changes in
//! a bounded heap, and the CSV of every change written as the cases go by. Its size
//! depends on the number of programs and units, never on the number of cases.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::Write;

use rust_decimal::Decimal;
use serde_json::{Value as Json, json};

use super::evaluate::{CaseResult, Change, Skip};

/// Money as the reports write it: a string with two decimals.
fn money(amount: Decimal) -> String {
    jiuzhu_rules::money(amount)
}

/// Counts and money of one program in one unit (or of everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub gaining: u64,
    pub losing: u64,
    pub losing_eligibility: u64,
    pub unchanged: u64,
    pub newly_eligible: u64,
    pub still_ineligible: u64,
    /// Recipients' monthly amounts under the policy in force and under the proposal.
    pub current_monthly: Decimal,
    pub proposed_monthly: Decimal,
    /// What the newly eligible would be paid each month.
    pub newly_eligible_monthly: Decimal,
}

impl Tally {
    fn add(&mut self, case: &CaseResult) {
        match case.change {
            Change::Gaining => self.gaining += 1,
            Change::Losing => self.losing += 1,
            Change::LosingEligibility => self.losing_eligibility += 1,
            Change::Unchanged => self.unchanged += 1,
            Change::NewlyEligible => self.newly_eligible += 1,
            Change::StillIneligible => self.still_ineligible += 1,
        }
        match case.change {
            Change::NewlyEligible => self.newly_eligible_monthly += case.proposed.monthly,
            Change::StillIneligible => {}
            _ => {
                self.current_monthly += case.current.monthly;
                self.proposed_monthly += case.proposed.monthly;
            }
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.gaining += other.gaining;
        self.losing += other.losing;
        self.losing_eligibility += other.losing_eligibility;
        self.unchanged += other.unchanged;
        self.newly_eligible += other.newly_eligible;
        self.still_ineligible += other.still_ineligible;
        self.current_monthly += other.current_monthly;
        self.proposed_monthly += other.proposed_monthly;
        self.newly_eligible_monthly += other.newly_eligible_monthly;
    }

    /// Recipients counted (every change but the refused applicants').
    pub fn recipients(&self) -> u64 {
        self.gaining + self.losing + self.losing_eligibility + self.unchanged
    }

    /// The recipients' monthly cost change.
    pub fn monthly_change(&self) -> Decimal {
        self.proposed_monthly - self.current_monthly
    }

    pub fn to_json(&self) -> Json {
        let monthly = self.monthly_change();
        json!({
            "recipients": self.recipients(),
            "gaining": self.gaining,
            "losing": self.losing,
            "losing_eligibility": self.losing_eligibility,
            "unchanged": self.unchanged,
            "refused_tried": self.newly_eligible + self.still_ineligible,
            "newly_eligible": self.newly_eligible,
            "current_monthly": money(self.current_monthly),
            "proposed_monthly": money(self.proposed_monthly),
            "monthly_change": money(monthly),
            "yearly_change": money(monthly * Decimal::from(12)),
            "newly_eligible_monthly": money(self.newly_eligible_monthly),
            "newly_eligible_yearly": money(self.newly_eligible_monthly * Decimal::from(12)),
        })
    }
}

/// One of the largest changes (masked, like the CSV).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ranked {
    size: Decimal,
    id: String,
    row: TopRow,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TopRow {
    program: String,
    unit: String,
    change: &'static str,
    current: Decimal,
    proposed: Decimal,
    applicant: String,
}

/// Examples of cases left out, by reason: a few ids each, never the cases' data.
const EXAMPLES_PER_REASON: usize = 5;

/// The running summary.
pub struct Summary {
    pub by_program_unit: BTreeMap<(String, String), Tally>,
    pub total: Tally,
    top: BinaryHeap<Reverse<Ranked>>,
    top_n: usize,
    pub outside_proposal: u64,
    pub unassessable: BTreeMap<String, (u64, Vec<String>)>,
    csv: Option<csv::Writer<Box<dyn Write + Send>>>,
    pub csv_rows: u64,
}

impl Summary {
    pub fn new(top_n: usize, csv: Option<Box<dyn Write + Send>>) -> Result<Summary, csv::Error> {
        let csv = match csv {
            Some(out) => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record([
                    "case",
                    "process",
                    "program",
                    "unit",
                    "group",
                    "change",
                    "applicant",
                    "id_number",
                    "current_eligible",
                    "current_monthly",
                    "proposed_eligible",
                    "proposed_monthly",
                    "monthly_change",
                ])?;
                Some(writer)
            }
            None => None,
        };
        Ok(Summary {
            by_program_unit: BTreeMap::new(),
            total: Tally::default(),
            top: BinaryHeap::with_capacity(top_n + 1),
            top_n,
            outside_proposal: 0,
            unassessable: BTreeMap::new(),
            csv,
            csv_rows: 0,
        })
    }

    /// Folds one page's results in, in the page's order.
    pub fn add_page(
        &mut self,
        page: Vec<Result<CaseResult, (String, Skip)>>,
    ) -> Result<(), csv::Error> {
        // Consecutive cases mostly share program and unit: one tally per run of them.
        let mut run: Option<((String, String), Tally)> = None;
        for result in page {
            let case = match result {
                Ok(case) => case,
                Err((_, Skip::NotConcerned)) => continue,
                Err((_, Skip::OutsideProposal)) => {
                    self.outside_proposal += 1;
                    continue;
                }
                Err((id, Skip::Unassessable(reason))) => {
                    let entry = self.unassessable.entry(reason).or_default();
                    entry.0 += 1;
                    if entry.1.len() < EXAMPLES_PER_REASON {
                        entry.1.push(id);
                    }
                    continue;
                }
            };
            let same = run
                .as_ref()
                .is_some_and(|((p, u), _)| *p == case.program && *u == case.unit);
            if !same {
                if let Some((key, tally)) = run.take() {
                    self.merge(key, &tally);
                }
                run = Some(((case.program.clone(), case.unit.clone()), Tally::default()));
            }
            if let Some((_, tally)) = run.as_mut() {
                tally.add(&case);
            }
            if matches!(case.change, Change::Unchanged | Change::StillIneligible) {
                continue;
            }
            self.rank(&case);
            self.write_csv(&case)?;
        }
        if let Some((key, tally)) = run {
            self.merge(key, &tally);
        }
        Ok(())
    }

    fn merge(&mut self, key: (String, String), tally: &Tally) {
        self.total.merge(tally);
        self.by_program_unit.entry(key).or_default().merge(tally);
    }

    fn rank(&mut self, case: &CaseResult) {
        if self.top_n == 0 {
            return;
        }
        let size = case.monthly_change().abs();
        if self.top.len() == self.top_n
            && self
                .top
                .peek()
                .is_some_and(|Reverse(smallest)| size <= smallest.size)
        {
            return;
        }
        self.top.push(Reverse(Ranked {
            size,
            id: case.id.clone(),
            row: TopRow {
                program: case.program.clone(),
                unit: case.unit.clone(),
                change: case.change.name(),
                current: case.current.monthly,
                proposed: case.proposed.monthly,
                applicant: case.applicant.clone(),
            },
        }));
        if self.top.len() > self.top_n {
            self.top.pop();
        }
    }

    fn write_csv(&mut self, case: &CaseResult) -> Result<(), csv::Error> {
        let Some(writer) = self.csv.as_mut() else {
            return Ok(());
        };
        writer.write_record([
            case.id.as_str(),
            &case.process,
            &case.program,
            &case.unit,
            case.group.name(),
            case.change.name(),
            &case.applicant,
            &case.id_number,
            if case.current.eligible {
                "true"
            } else {
                "false"
            },
            &money(case.current.monthly),
            if case.proposed.eligible {
                "true"
            } else {
                "false"
            },
            &money(case.proposed.monthly),
            &money(case.monthly_change()),
        ])?;
        self.csv_rows += 1;
        Ok(())
    }

    /// Flushes the CSV.
    pub fn finish(&mut self) -> Result<(), csv::Error> {
        if let Some(writer) = self.csv.as_mut() {
            writer.flush()?;
        }
        Ok(())
    }

    /// The largest changes, largest first (ties by case id).
    fn top_rows(&self) -> Vec<Json> {
        let mut ranked: Vec<&Ranked> = self.top.iter().map(|Reverse(r)| r).collect();
        ranked.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.id.cmp(&b.id)));
        ranked
            .into_iter()
            .map(|r| {
                json!({
                    "case": r.id,
                    "program": r.row.program,
                    "unit": r.row.unit,
                    "change": r.row.change,
                    "applicant": r.row.applicant,
                    "current_monthly": money(r.row.current),
                    "proposed_monthly": money(r.row.proposed),
                    "monthly_change": money(r.row.proposed - r.row.current),
                })
            })
            .collect()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Json {
        let mut programs: BTreeMap<&str, Tally> = BTreeMap::new();
        for ((program, _), tally) in &self.by_program_unit {
            programs.entry(program).or_default().merge(tally);
        }
        json!({
            "total": self.total.to_json(),
            "programs": programs
                .iter()
                .map(|(program, tally)| {
                    let mut entry = tally.to_json();
                    entry["program"] = json!(program);
                    entry
                })
                .collect::<Vec<_>>(),
            "units": self.by_program_unit
                .iter()
                .map(|((program, unit), tally)| {
                    let mut entry = tally.to_json();
                    entry["program"] = json!(program);
                    entry["unit"] = json!(unit);
                    entry
                })
                .collect::<Vec<_>>(),
            "largest_changes": self.top_rows(),
            "outside_proposal": self.outside_proposal,
            "unassessable": self.unassessable
                .iter()
                .map(|(reason, (count, examples))| {
                    json!({"reason": reason, "cases": count, "examples": examples})
                })
                .collect::<Vec<_>>(),
            "csv_rows": self.csv_rows,
        })
    }
}
