//! Reading `payment` and `payment_stop` effects (the outbox JSON the procedures emit) into
//! typed orders for the ledger, with every field checked before anything is written.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use super::model::{AmountProblem, Payee, to_fen};

/// The purpose of 先行救助 advances: paid at once, covered by the later approval.
pub const ADVANCE_PURPOSE: &str = "temporary_aid_advance";

/// What is wrong with a field of an effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EffectProblem {
    #[error("is missing")]
    Missing,
    #[error("must be text")]
    NotText,
    #[error("must be a decimal amount such as \"705.00\"")]
    NotAnAmount,
    #[error("amount {0}")]
    Amount(#[from] AmountProblem),
    #[error("must be a date written YYYY-MM-DD")]
    NotADate,
    #[error("must be `monthly` or `once`")]
    UnknownSchedule,
    #[error("must be a whole number from 1 to 120")]
    NotACount,
    #[error("is not a payment or payment_stop effect")]
    NotAPaymentEffect,
    /// A draw on the township reserve refused the amount.
    #[error("cannot be drawn from the reserve: {0}")]
    Reserve(String),
    #[error("installment {installment} is beyond installments {installments}")]
    InstallmentBeyondCount { installment: u32, installments: u32 },
}

/// An effect the ledger cannot apply, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("effect {effect_id:?}: `{field}` {problem}")]
pub struct EffectError {
    pub effect_id: String,
    pub field: &'static str,
    pub problem: EffectProblem,
}

/// How often a payment is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// A benefit paid every month from `from` by the monthly run.
    Monthly,
    /// One payment (or `installments` staged ones).
    Once,
}

/// A `payment` effect.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentOrder {
    /// The effect id: the idempotency key and (for one-offs) the payment reference.
    pub id: String,
    /// The instance that emitted it.
    pub instance: String,
    /// The case the money belongs to: `case` when given (a review pays for the case it
    /// reviews), else the emitting instance.
    pub case: String,
    /// The office unit, when the effect names it (else the instance's).
    pub unit: Option<String>,
    pub amount: Decimal,
    /// The program: dibao, tekun, temporary_aid, temporary_aid_advance, …
    pub purpose: String,
    pub schedule: Schedule,
    pub from: Option<NaiveDate>,
    pub at: Option<NaiveDate>,
    /// Last day of a benefit with a known end.
    pub until: Option<NaiveDate>,
    pub review_on: Option<NaiveDate>,
    /// This payment is installment k (the procedure emits one effect per installment).
    pub installment: Option<u32>,
    /// Without `installment`: split the amount into this many monthly installments.
    pub installments: Option<u32>,
    pub payee: Payee,
    /// The failed payment this one re-issues (from `payment_fix`).
    pub reissue_of: Option<String>,
}

impl PaymentOrder {
    pub fn is_advance(&self) -> bool {
        self.purpose == ADVANCE_PURPOSE
    }
}

/// A `payment_stop` effect.
#[derive(Debug, Clone, PartialEq)]
pub struct StopOrder {
    pub id: String,
    pub instance: String,
    pub case: String,
    pub unit: Option<String>,
    pub purpose: String,
    /// First day without payment; `None` stops from the next month.
    pub from: Option<NaiveDate>,
}

/// A payment effect, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerEffect {
    Payment(PaymentOrder),
    Stop(StopOrder),
}

impl LedgerEffect {
    pub fn id(&self) -> &str {
        match self {
            LedgerEffect::Payment(p) => &p.id,
            LedgerEffect::Stop(s) => &s.id,
        }
    }

    pub fn instance(&self) -> &str {
        match self {
            LedgerEffect::Payment(p) => &p.instance,
            LedgerEffect::Stop(s) => &s.instance,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            LedgerEffect::Payment(_) => "payment",
            LedgerEffect::Stop(_) => "payment_stop",
        }
    }

    /// Reads an effect: `{"type": "payment", "id": …, "instance": …, "amount": "705.00",
    /// "purpose": "dibao", "schedule": "monthly", "from": "2026-04-01", "payee": "张三"}`.
    /// `instance` may be absent when `default_instance` (the outbox row's) is given.
    pub fn parse(json: &Json, default_instance: Option<&str>) -> Result<LedgerEffect, EffectError> {
        let fields = Fields {
            json,
            id: json
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        if fields.id.is_empty() {
            return Err(fields.error("id", EffectProblem::Missing));
        }
        let instance = match fields.text("instance")? {
            Some(instance) => instance,
            None => default_instance
                .map(str::to_owned)
                .ok_or_else(|| fields.error("instance", EffectProblem::Missing))?,
        };
        let case = fields.text("case")?.unwrap_or_else(|| instance.clone());
        let unit = fields.text("unit")?;
        let purpose = fields.required_text("purpose")?;
        match fields.text("type")?.as_deref() {
            Some("payment") => {}
            Some("payment_stop") => {
                return Ok(LedgerEffect::Stop(StopOrder {
                    id: fields.id.clone(),
                    instance,
                    case,
                    unit,
                    purpose,
                    from: fields.date("from")?,
                }));
            }
            _ => return Err(fields.error("type", EffectProblem::NotAPaymentEffect)),
        }
        let schedule = match fields.text("schedule")?.as_deref() {
            None | Some("once") => Schedule::Once,
            Some("monthly") => Schedule::Monthly,
            Some(_) => return Err(fields.error("schedule", EffectProblem::UnknownSchedule)),
        };
        let from = fields.date("from")?;
        if schedule == Schedule::Monthly && from.is_none() {
            return Err(fields.error("from", EffectProblem::Missing));
        }
        let installment = fields.count("installment")?;
        let installments = fields.count("installments")?;
        if let (Some(k), Some(n)) = (installment, installments)
            && k > n
        {
            return Err(fields.error(
                "installment",
                EffectProblem::InstallmentBeyondCount {
                    installment: k,
                    installments: n,
                },
            ));
        }
        Ok(LedgerEffect::Payment(PaymentOrder {
            id: fields.id.clone(),
            instance,
            case,
            unit,
            amount: fields.amount("amount")?,
            purpose,
            schedule,
            from,
            at: fields.date("at")?,
            until: fields.date("until")?,
            review_on: fields.date("review_on")?,
            installment,
            installments,
            payee: Payee {
                name: fields.required_text("payee")?,
                id_number: fields.text("id_number")?,
                account: fields.text("account")?,
            },
            reissue_of: fields.text("reissue_of")?,
        }))
    }
}

struct Fields<'a> {
    json: &'a Json,
    id: String,
}

impl Fields<'_> {
    fn error(&self, field: &'static str, problem: EffectProblem) -> EffectError {
        EffectError {
            effect_id: self.id.clone(),
            field,
            problem,
        }
    }

    /// Present and not null.
    fn get(&self, field: &str) -> Option<&Json> {
        self.json.get(field).filter(|v| !v.is_null())
    }

    fn text(&self, field: &'static str) -> Result<Option<String>, EffectError> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(self.error(field, EffectProblem::NotText)),
        }
    }

    fn required_text(&self, field: &'static str) -> Result<String, EffectError> {
        self.text(field)?
            .ok_or_else(|| self.error(field, EffectProblem::Missing))
    }

    fn amount(&self, field: &'static str) -> Result<Decimal, EffectError> {
        // Numbers are read from their text, never through a float.
        let text = match self.get(field) {
            None => return Err(self.error(field, EffectProblem::Missing)),
            Some(Json::String(s)) => s.trim().to_owned(),
            Some(Json::Number(n)) => n.to_string(),
            Some(_) => return Err(self.error(field, EffectProblem::NotAnAmount)),
        };
        let amount = Decimal::from_str(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map_err(|_| self.error(field, EffectProblem::NotAnAmount))?;
        to_fen(amount).map_err(|p| self.error(field, p.into()))
    }

    fn date(&self, field: &'static str) -> Result<Option<NaiveDate>, EffectError> {
        let Some(text) = self.text(field)? else {
            return Ok(None);
        };
        // Dates in effects are local dates; a date-time keeps its date part.
        let date_part = text.get(..10).unwrap_or(&text);
        NaiveDate::parse_from_str(date_part, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| self.error(field, EffectProblem::NotADate))
    }

    fn count(&self, field: &'static str) -> Result<Option<u32>, EffectError> {
        let value = match self.get(field) {
            None => return Ok(None),
            Some(Json::Number(n)) => n.as_u64(),
            Some(Json::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match value {
            Some(n @ 1..=120) => Ok(Some(n as u32)),
            _ => Err(self.error(field, EffectProblem::NotACount)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    #[test]
    fn a_monthly_benefit_effect_reads_with_the_outbox_instance() {
        let effect = json!({"type": "payment", "id": "dibao-1-e21", "amount": "705.00",
            "purpose": "dibao", "schedule": "monthly", "from": "2026-04-01", "payee": "张三",
            "account": "6222000011112222", "id_number": "230502198001011234"});
        let LedgerEffect::Payment(order) =
            LedgerEffect::parse(&effect, Some("dibao-1")).expect("valid")
        else {
            panic!("a payment");
        };
        assert_eq!(order.instance, "dibao-1");
        assert_eq!(order.case, "dibao-1");
        assert_eq!(order.amount, dec!(705.00));
        assert_eq!(order.schedule, Schedule::Monthly);
        assert_eq!(order.from, NaiveDate::from_ymd_opt(2026, 4, 1));
        assert_eq!(order.payee.account.as_deref(), Some("6222000011112222"));
    }

    #[test]
    fn a_review_pays_for_the_case_it_reviews() {
        let effect = json!({"type": "payment_stop", "id": "r-e9", "instance": "dibao_review-2",
            "purpose": "dibao", "from": "2026-10-01", "case": "dibao-1"});
        let LedgerEffect::Stop(stop) = LedgerEffect::parse(&effect, None).expect("valid") else {
            panic!("a stop");
        };
        assert_eq!(stop.case, "dibao-1");
        assert_eq!(stop.instance, "dibao_review-2");
    }

    #[test]
    fn bad_fields_are_named() {
        let base = json!({"type": "payment", "id": "x-e1", "instance": "x", "amount": "10",
            "purpose": "temporary_aid", "payee": "李四"});
        let cases: [(&str, Json, &str, EffectProblem); 7] = [
            ("amount", json!("ten"), "amount", EffectProblem::NotAnAmount),
            (
                "amount",
                json!("0.001"),
                "amount",
                EffectProblem::Amount(AmountProblem::FractionOfFen),
            ),
            (
                "amount",
                json!(-5),
                "amount",
                EffectProblem::Amount(AmountProblem::Negative),
            ),
            (
                "schedule",
                json!("weekly"),
                "schedule",
                EffectProblem::UnknownSchedule,
            ),
            ("schedule", json!("monthly"), "from", EffectProblem::Missing),
            ("at", json!("next week"), "at", EffectProblem::NotADate),
            (
                "installments",
                json!(0),
                "installments",
                EffectProblem::NotACount,
            ),
        ];
        for (key, value, field, problem) in cases {
            let mut effect = base.clone();
            effect[key] = value;
            let error = LedgerEffect::parse(&effect, None).expect_err(key);
            assert_eq!((error.field, error.problem), (field, problem), "{key}");
        }
        let mut no_payee = base.clone();
        no_payee.as_object_mut().map(|m| m.remove("payee"));
        assert_eq!(
            LedgerEffect::parse(&no_payee, None).map_err(|e| e.field),
            Err("payee")
        );
        let mut notification = base;
        notification["type"] = json!("notification");
        assert_eq!(
            LedgerEffect::parse(&notification, None).map_err(|e| e.problem),
            Err(EffectProblem::NotAPaymentEffect)
        );
    }

    #[test]
    fn amounts_written_as_numbers_stay_exact() {
        let effect: Json = serde_json::from_str(
            r#"{"type":"payment","id":"a","instance":"i","amount":1305.1,"purpose":"p","payee":"n"}"#,
        )
        .expect("json");
        let LedgerEffect::Payment(order) = LedgerEffect::parse(&effect, None).expect("valid")
        else {
            panic!("a payment");
        };
        assert_eq!(order.amount.to_string(), "1305.10");
    }
}
