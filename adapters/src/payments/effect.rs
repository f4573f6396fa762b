//! Reading `payment` and `payment_stop` effects (the outbox JSON the procedures emit) into
//! typed orders for the ledger, with every field checked before anything is written.

use chrono::NaiveDate;
use jiuzhu_engine::effects::{FieldType, Outward, TypedEffect, TypedError, parse_outbox};
use jiuzhu_engine::store::OutboxRow;
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
        let id = json
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        let outward =
            Outward::from_json(json, default_instance).map_err(|e| typed_error(&id, &e))?;
        LedgerEffect::from_typed(&outward)
    }

    /// Reads an outbox row through the engine's one parse of effects
    /// ([`jiuzhu_engine::effects::parse_outbox`]).
    pub fn from_outbox(row: &OutboxRow) -> Result<LedgerEffect, EffectError> {
        let outward = parse_outbox(row).map_err(|e| typed_error(&row.id, &e))?;
        LedgerEffect::from_typed(&outward)
    }

    /// The ledger's order for a typed `payment` or `payment_stop` effect, with the checks
    /// the ledger adds to the schema's: whole fen, at least zero, a known schedule, a
    /// start for a monthly benefit, a payee, installments from 1 to 120.
    pub fn from_typed(outward: &Outward) -> Result<LedgerEffect, EffectError> {
        let error = |field: &'static str, problem: EffectProblem| EffectError {
            effect_id: outward.id.clone(),
            field,
            problem,
        };
        if outward.id.is_empty() {
            return Err(error("id", EffectProblem::Missing));
        }
        if outward.instance.is_empty() {
            return Err(error("instance", EffectProblem::Missing));
        }
        let text = |value: &Option<String>| value.as_ref().map(|s| s.trim().to_owned());
        match &outward.effect {
            TypedEffect::PaymentStop(stop) => Ok(LedgerEffect::Stop(StopOrder {
                id: outward.id.clone(),
                instance: outward.instance.clone(),
                case: text(&stop.case).unwrap_or_else(|| outward.instance.clone()),
                unit: text(&stop.unit),
                purpose: stop.purpose.trim().to_owned(),
                from: stop.from,
            })),
            TypedEffect::Payment(payment) => {
                let schedule = match payment.schedule.as_deref().map(str::trim) {
                    None | Some("once") => Schedule::Once,
                    Some("monthly") => Schedule::Monthly,
                    Some(_) => return Err(error("schedule", EffectProblem::UnknownSchedule)),
                };
                if schedule == Schedule::Monthly && payment.from.is_none() {
                    return Err(error("from", EffectProblem::Missing));
                }
                let count = |field: &'static str, value: Option<i64>| match value {
                    None => Ok(None),
                    Some(n @ 1..=120) => Ok(u32::try_from(n).ok()),
                    Some(_) => Err(error(field, EffectProblem::NotACount)),
                };
                let installment = count("installment", payment.installment)?;
                let installments = count("installments", payment.installments)?;
                if let (Some(k), Some(n)) = (installment, installments)
                    && k > n
                {
                    return Err(error(
                        "installment",
                        EffectProblem::InstallmentBeyondCount {
                            installment: k,
                            installments: n,
                        },
                    ));
                }
                let amount = to_fen(payment.amount).map_err(|p| error("amount", p.into()))?;
                let payee =
                    text(&payment.payee).ok_or_else(|| error("payee", EffectProblem::Missing))?;
                Ok(LedgerEffect::Payment(PaymentOrder {
                    id: outward.id.clone(),
                    instance: outward.instance.clone(),
                    case: text(&payment.case).unwrap_or_else(|| outward.instance.clone()),
                    unit: text(&payment.unit),
                    amount,
                    purpose: payment.purpose.trim().to_owned(),
                    schedule,
                    from: payment.from,
                    at: payment.at,
                    until: payment.until,
                    review_on: payment.review_on,
                    installment,
                    installments,
                    payee: Payee {
                        name: payee,
                        id_number: text(&payment.id_number),
                        account: text(&payment.account),
                    },
                    reissue_of: text(&payment.reissue_of),
                }))
            }
            _ => Err(error("type", EffectProblem::NotAPaymentEffect)),
        }
    }
}

/// The engine's reading error as the ledger names it: the field and what it must be.
fn typed_error(effect_id: &str, error: &TypedError) -> EffectError {
    let (field, problem) = match error {
        TypedError::UnknownType(_) | TypedError::KindMismatch { .. } | TypedError::NotAnObject => {
            ("type", EffectProblem::NotAPaymentEffect)
        }
        TypedError::Missing { field, .. } => (*field, EffectProblem::Missing),
        TypedError::Malformed {
            field, expected, ..
        } => (
            *field,
            if *expected == FieldType::Amount.name() {
                EffectProblem::NotAnAmount
            } else if *expected == FieldType::Date.name()
                || *expected == FieldType::DateOrInstant.name()
            {
                EffectProblem::NotADate
            } else if *expected == FieldType::Count.name() {
                EffectProblem::NotACount
            } else {
                EffectProblem::NotText
            },
        ),
        // Not raised by the lenient read of outbox rows.
        TypedError::Unknown { .. } => ("type", EffectProblem::NotAPaymentEffect),
    };
    EffectError {
        effect_id: effect_id.to_owned(),
        field,
        problem,
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
        // A well-formed effect of another kind is not the ledger's.
        let notification = json!({"type": "notification", "id": "x-e2", "instance": "x",
            "template": "dibao_approved", "to": "applicant"});
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
