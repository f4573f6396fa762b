//! A payment drawn from a township's reserve: a `payment` effect with `reserve_reply`
//! (`docs/process-language.md` § 7). The ledger draws the whole amount from the reserve of
//! the case's unit, records the payment only when the draw succeeded, and answers the
//! case with the message named by `reserve_reply`, data `{paid: bool, amount, reason}`.
//!
//! When the policy in force for the unit on that day has no `reserve_fund` section there
//! is no reserve to draw from: the payment is made as any other and the answer is
//! `paid: true`. Everything is idempotent per effect id: the draw is keyed by it, the
//! payment too, and the answer is delivered once (delivery id `EFFECT:reserve`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use jiuzhu_engine::core::state::Status;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::runtime::internal::InternalOutcome;
use jiuzhu_engine::store::OutboxRow;
use jiuzhu_rules::Value;
use rust_decimal::Decimal;

use super::PaymentError;
use super::effect::{EffectError, EffectProblem, LedgerEffect};
use super::ledger::Ledger;
use super::reserve::ReserveError;

/// The payment field that makes a payment a draw on the township reserve: the name of
/// the message the case is answered with.
pub const RESERVE_REPLY_FIELD: &str = "reserve_reply";

/// The reason an answer gives when the reserve could not cover the payment.
pub const RESERVE_SHORT: &str = "reserve_short";

/// How a draw on the reserve ended for the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservePayment {
    /// Drawn (or no reserve to draw from) and the payment recorded.
    Paid { balance_after: Option<Decimal> },
    /// The reserve could not cover it: nothing drawn, nothing paid.
    Refused { balance: Decimal },
    /// The case ended before the draw: nothing drawn, nothing paid, nobody answered.
    CaseEnded,
}

impl Ledger {
    /// Carries out a payment effect that names `reserve_reply` (see the module docs).
    pub async fn pay_from_reserve(
        &self,
        engine: &Engine,
        entry: &OutboxRow,
        now: DateTime<Utc>,
    ) -> Result<ReservePayment, PaymentError> {
        let LedgerEffect::Payment(order) =
            LedgerEffect::parse(&entry.payload, Some(&entry.instance_id))?
        else {
            return Err(EffectError {
                effect_id: entry.id.clone(),
                field: "type",
                problem: EffectProblem::NotAPaymentEffect,
            }
            .into());
        };
        let reply = entry
            .payload
            .get(RESERVE_REPLY_FIELD)
            .and_then(serde_json::Value::as_str)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| EffectError {
                effect_id: entry.id.clone(),
                field: RESERVE_REPLY_FIELD,
                problem: EffectProblem::NotText,
            })?
            .to_owned();
        let row = self
            .store()
            .load_instance(&order.instance)
            .await?
            .ok_or_else(|| PaymentError::UnknownInstance {
                effect_id: order.id.clone(),
                instance: order.instance.clone(),
            })?;
        let delivery = format!("{}:reserve", order.id);
        if row.status != Status::Active.as_str() {
            // Answered before it ended (a redelivery), or ended meanwhile (withdrawn):
            // either way nothing more is drawn or paid.
            return Ok(ReservePayment::CaseEnded);
        }
        let unit = order.unit.clone().unwrap_or(row.unit);
        let today = self.today(now);
        let has_reserve = engine
            .policy_in_force(&unit, today)
            .is_some_and(|policy| matches!(policy.get("reserve_fund"), Some(Value::Object(_))));
        let outcome = if has_reserve {
            let draw = self
                .draw_reserve(&unit, &order.id, &order.case, order.amount, now)
                .await
                .map_err(|error| match error {
                    ReserveError::Payment(error) => error,
                    ReserveError::Refused(problem) => PaymentError::Effect(EffectError {
                        effect_id: order.id.clone(),
                        field: "amount",
                        problem: EffectProblem::Reserve(problem.to_string()),
                    }),
                })?;
            if draw.drawn {
                ReservePayment::Paid {
                    balance_after: Some(draw.balance_after),
                }
            } else {
                ReservePayment::Refused {
                    balance: draw.balance_after,
                }
            }
        } else {
            ReservePayment::Paid {
                balance_after: None,
            }
        };
        if matches!(outcome, ReservePayment::Paid { .. }) {
            self.apply_outbox(entry, now).await?;
        }
        let mut data = BTreeMap::from([
            (
                "paid".to_string(),
                Value::Bool(matches!(outcome, ReservePayment::Paid { .. })),
            ),
            ("amount".to_string(), Value::Decimal(order.amount)),
        ]);
        if matches!(outcome, ReservePayment::Refused { .. }) {
            data.insert("reason".to_string(), Value::Str(RESERVE_SHORT.to_string()));
        }
        match engine
            .deliver_message(&order.instance, &reply, data, &delivery)
            .await
        {
            InternalOutcome::Done | InternalOutcome::NotBefore(_) => Ok(outcome),
            InternalOutcome::Failed { error, retryable } => Err(PaymentError::Reserve {
                effect_id: order.id.clone(),
                error,
                retryable,
            }),
        }
    }
}

/// The `reserve_fund.ceiling` of the policy in force for `unit` on `today`; `None` when the
/// policy has no `reserve_fund` section (no limit) or no policy is in force.
pub fn reserve_ceiling(engine: &Engine, unit: &str, today: chrono::NaiveDate) -> Option<Decimal> {
    let policy = engine.policy_in_force(unit, today)?;
    match policy.get("reserve_fund")?.get("ceiling")? {
        Value::Decimal(d) => Some(*d),
        Value::Int(n) => Some(Decimal::from(*n)),
        _ => None,
    }
}

/// True when `unit` is an office of the org file: the unit of one of its users.
pub fn known_unit(engine: &Engine, unit: &str) -> bool {
    engine
        .project
        .org
        .as_ref()
        .is_some_and(|org| org.users().iter().any(|u| u.unit == unit))
}
