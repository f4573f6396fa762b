//! Batch runs in scenarios: the recipients come from the scenario itself — the monthly
//! benefits its cases' `payment`/`payment_stop` effects set up, plus the file's
//! `benefits:` fixture — and each recipient's effects are recorded on the batch's case,
//! so `expect.effects` sees one payment per active recipient. The run then reports back
//! to the case (message `batch_done`), as the payments ledger does in production.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use jiuzhu_rules::Value;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::core::batch::{expand, fields};
use crate::core::{Actor, Event};
use crate::lang::model::{BATCH_DONE, BATCH_SENDER_ROLE, EffectKind};

/// A monthly benefit a scenario declares in force (`benefits:` at the top of the file),
/// as if an earlier case had set it up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenefitFixture {
    pub case: String,
    pub program: String,
    pub unit: String,
    pub payee: String,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub id_number: Option<String>,
    /// The monthly amount, as text (`"705.00"`).
    pub amount: String,
    /// First day (or any day) of the first month paid.
    pub from: NaiveDate,
    /// A day of the first month no longer paid (a stop).
    #[serde(default)]
    pub stopped_from: Option<NaiveDate>,
    #[serde(default)]
    pub household_size: Option<i64>,
    /// The members the benefit covers (default: `household_size`).
    #[serde(default)]
    pub covered: Option<i64>,
    /// The case's `area` (`urban` / `rural`), when it has one.
    #[serde(default)]
    pub area: Option<String>,
}

/// One monthly benefit as the scenario knows it.
#[derive(Debug, Clone)]
struct Benefit {
    case: String,
    program: String,
    unit: String,
    payee: String,
    account: Option<String>,
    id_number: Option<String>,
    amount: Decimal,
    /// `(year, month)` of the first month paid.
    from: (i32, u32),
    until: Option<(i32, u32)>,
    stopped: Option<(i32, u32)>,
    household_size: i64,
    covered: i64,
    area: Option<String>,
}

impl Benefit {
    fn active_in(&self, month: (i32, u32)) -> bool {
        self.from <= month
            && self.stopped.is_none_or(|stop| month < stop)
            && self.until.is_none_or(|last| month <= last)
            && self.amount > Decimal::ZERO
    }

    fn recipient(&self) -> Value {
        let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Str);
        Value::Object(BTreeMap::from([
            ("case".to_string(), Value::Str(self.case.clone())),
            ("unit".to_string(), Value::Str(self.unit.clone())),
            ("program".to_string(), Value::Str(self.program.clone())),
            ("payee".to_string(), Value::Str(self.payee.clone())),
            ("account".to_string(), text(&self.account)),
            ("id_number".to_string(), text(&self.id_number)),
            (
                "household_size".to_string(),
                Value::Int(self.household_size),
            ),
            ("amount".to_string(), Value::Decimal(self.amount)),
            ("covered".to_string(), Value::Int(self.covered)),
            ("area".to_string(), text(&self.area)),
        ]))
    }
}

fn month_of(date: NaiveDate) -> (i32, u32) {
    (date.year(), date.month())
}

fn date_field(effect: &Json, name: &str) -> Option<NaiveDate> {
    let text = effect.get(name)?.as_str()?;
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

fn text_field(effect: &Json, name: &str) -> Option<String> {
    effect.get(name)?.as_str().map(str::to_string)
}

impl super::Runner<'_> {
    /// The monthly benefits in force in the scenario: the fixture, then what the cases'
    /// effects set up and stopped, in the order they were emitted.
    fn benefits(&self) -> Vec<Benefit> {
        let mut out: Vec<Benefit> = self
            .benefits
            .iter()
            .map(|b| Benefit {
                case: b.case.clone(),
                program: b.program.clone(),
                unit: b.unit.clone(),
                payee: b.payee.clone(),
                account: b.account.clone(),
                id_number: b.id_number.clone(),
                amount: b.amount.trim().parse().unwrap_or_default(),
                from: month_of(b.from),
                until: None,
                stopped: b.stopped_from.map(month_of),
                household_size: b.household_size.unwrap_or(1),
                covered: b.covered.or(b.household_size).unwrap_or(1),
                area: b.area.clone(),
            })
            .collect();
        for (_, instance) in &self.instances {
            let household_size = match instance.state.vars.get("household") {
                Some(household) => match household.get("members") {
                    Some(Value::List(members)) => members.len() as i64,
                    _ => 1,
                },
                None => 1,
            };
            // A case for one member alone (`member`, 单人户) covers that member.
            let covered = match instance.state.vars.get("member") {
                Some(Value::Null) | None => household_size,
                Some(_) => 1,
            };
            let area = match instance.state.vars.get("area") {
                Some(Value::Str(area)) => Some(area.clone()),
                _ => None,
            };
            for effect in &instance.effects {
                let kind = effect.get("type").and_then(Json::as_str);
                let case = text_field(effect, "case").unwrap_or_else(|| instance.state.id.clone());
                let Some(program) = text_field(effect, "purpose") else {
                    continue;
                };
                if kind == Some(EffectKind::PaymentStop.as_str()) {
                    let stop = date_field(effect, "from").map(month_of);
                    for benefit in out
                        .iter_mut()
                        .filter(|b| b.case == case && b.program == program)
                    {
                        benefit.stopped = stop.or(Some((9999, 12)));
                    }
                    continue;
                }
                if kind != Some(EffectKind::Payment.as_str())
                    || text_field(effect, "schedule").as_deref() != Some("monthly")
                {
                    continue;
                }
                let Some(from) = date_field(effect, "from") else {
                    continue;
                };
                let amount = effect
                    .get("amount")
                    .and_then(|a| match a {
                        Json::String(s) => s.parse().ok(),
                        Json::Number(n) => n.to_string().parse().ok(),
                        _ => None,
                    })
                    .unwrap_or_default();
                out.retain(|b| !(b.case == case && b.program == program && b.stopped.is_some()));
                let existing = out
                    .iter_mut()
                    .find(|b| b.case == case && b.program == program);
                match existing {
                    // A change of amount: the latest figure counts.
                    Some(benefit) => benefit.amount = amount,
                    None => out.push(Benefit {
                        case,
                        program,
                        unit: text_field(effect, "unit")
                            .unwrap_or_else(|| instance.state.unit.clone()),
                        payee: text_field(effect, "payee").unwrap_or_default(),
                        account: text_field(effect, "account"),
                        id_number: text_field(effect, "id_number"),
                        amount,
                        from: month_of(from),
                        until: date_field(effect, "until").map(month_of),
                        stopped: None,
                        household_size,
                        covered,
                        area: area.clone(),
                    }),
                }
            }
        }
        out
    }

    /// Runs a `batch` request of case `parent`: each recipient's effects recorded on the
    /// case, then the report delivered to it.
    pub(super) fn run_batch(&mut self, parent: &str, request: &Json) -> Result<(), String> {
        let run_key = text_field(request, fields::RUN_KEY).unwrap_or_default();
        let node = text_field(request, fields::NODE).unwrap_or_default();
        let over = request.get(fields::OVER).cloned().unwrap_or(Json::Null);
        let programs: Vec<String> = over
            .get("benefits")
            .and_then(Json::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let unit = over.get("unit").and_then(Json::as_str).unwrap_or_default();
        let per_household = over.get("per").and_then(Json::as_str) != Some("benefit");
        let as_of = date_field(&over, "as_of").unwrap_or_else(|| self.now.date_naive());
        let idx = self
            .instances
            .iter()
            .position(|(_, i)| i.state.id == parent)
            .ok_or_else(|| format!("batch of unknown case {parent}"))?;

        let mut report = BTreeMap::from([
            ("run_key".to_string(), Value::Str(run_key.clone())),
            ("count".to_string(), Value::Int(0)),
            ("total".to_string(), Value::Decimal(Decimal::ZERO)),
            ("duplicate".to_string(), Value::Bool(false)),
        ]);
        if let Some(first) = self.batch_runs.get(&run_key) {
            report.insert("duplicate".into(), Value::Bool(true));
            report.insert("first_case".into(), Value::Str(first.clone()));
        } else {
            self.batch_runs.insert(run_key.clone(), parent.to_string());
            let mut recipients: Vec<Benefit> = self
                .benefits()
                .into_iter()
                .filter(|b| b.active_in(month_of(as_of)))
                .filter(|b| programs.contains(&b.program))
                .filter(|b| crate::core::unit_contains(unit, &b.unit) || unit.is_empty())
                .collect();
            recipients.sort_by(|a, b| (&a.case, &a.program).cmp(&(&b.case, &b.program)));
            if per_household {
                recipients.dedup_by(|later, first| later.case == first.case);
            }
            if let Some(once) = text_field(request, fields::ONCE_PER) {
                // Once per household under the key, as the ledger's `batch_once` keeps it.
                let claimed = &mut self.batch_once;
                recipients.retain(|b| claimed.insert((once.clone(), b.case.clone())));
            }
            let (mut count, mut total) = (0i64, Decimal::ZERO);
            let instance = &self.instances[idx].1;
            let mut made = Vec::new();
            for recipient in &recipients {
                let key = if per_household {
                    recipient.case.clone()
                } else {
                    format!("{}:{}", recipient.case, recipient.program)
                };
                let effects = expand(
                    &instance.def,
                    &instance.state,
                    &node,
                    self.now,
                    &run_key,
                    &key,
                    &recipient.recipient(),
                )
                .map_err(|e| format!("batch {run_key}, recipient {key}: {e}"))?;
                if !effects.is_empty() {
                    count += 1;
                }
                for effect in effects {
                    if let crate::effects::TypedEffect::Payment(payment) = &effect.effect {
                        total += payment.amount;
                    }
                    made.push(effect.to_json());
                }
            }
            self.instances[idx].1.effects.extend(made);
            report.insert("count".into(), Value::Int(count));
            report.insert("total".into(), Value::Decimal(total));
        }
        let actor = Actor {
            user: BATCH_SENDER_ROLE.to_string(),
            roles: vec![BATCH_SENDER_ROLE.to_string()],
            unit: self.instances[idx].1.state.unit.clone(),
        };
        let event = Event::Message {
            name: BATCH_DONE.to_string(),
            actor: Some(actor),
            data: report,
        };
        self.step_instance(idx, &event)
            .map_err(|e| format!("report of batch {run_key}: {e}"))
    }
}
