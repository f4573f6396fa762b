//! Township reserve draws in scenarios: a `payment` effect with `reserve_reply` is drawn
//! from the reserve of the case's unit and the case is answered, as the payments ledger
//! does in production (`adapters/src/payments/reserve_draw.rs`).
//!
//! The balances start from the file's `reserves:` fixture (`{UNIT: "500.00"}`). A unit the
//! fixture does not name starts full, at the `reserve_fund.ceiling` of the policy in force
//! (so procedures written before the reserve fund keep paying their advances). A policy
//! without a `reserve_fund` section sets no limit: the payment is made. A payment the
//! reserve cannot cover whole is not made: it is taken off the case's recorded effects
//! (`expect.effects` does not see it) and the answer says `paid: false`,
//! `reason: reserve_short`.

use std::collections::BTreeMap;
use std::str::FromStr;

use jiuzhu_rules::Value;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use super::Runner;

/// The payment field naming the answer message.
pub(super) const REPLY_FIELD: &str = "reserve_reply";

/// The `reserves:` fixture: amounts as text, zero or more, in whole fen.
pub(super) fn parse_fixture(
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Decimal>, String> {
    raw.iter()
        .map(|(unit, text)| {
            Decimal::from_str(text)
                .ok()
                .filter(|d| !d.is_sign_negative() && d.normalize().scale() <= 2)
                .map(|d| (unit.clone(), d))
                .ok_or_else(|| {
                    format!(
                        "reserves: {unit}: {text:?} is not an amount of zero or more, such as \"500.00\""
                    )
                })
        })
        .collect()
}

fn amount_of(effect: &Json) -> Option<Decimal> {
    match effect.get("amount")? {
        Json::String(text) => Decimal::from_str(text).ok(),
        Json::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

impl Runner<'_> {
    /// Draws a `reserve_reply` payment of case `case` and answers the case.
    pub(super) fn pay_from_reserve(&mut self, case: &str, effect: &Json) -> Result<(), String> {
        let reply = effect
            .get(REPLY_FIELD)
            .and_then(Json::as_str)
            .ok_or_else(|| format!("{case}: `{REPLY_FIELD}` must be a message name"))?
            .to_string();
        let amount =
            amount_of(effect).ok_or_else(|| format!("{case}: a payment without an amount"))?;
        let idx = self
            .instances
            .iter()
            .position(|(_, i)| i.state.id == case)
            .ok_or_else(|| format!("payment of unknown case {case}"))?;
        let unit = match effect.get("unit").and_then(Json::as_str) {
            Some(unit) => unit.to_string(),
            None => self.instances[idx].1.state.unit.clone(),
        };
        let section = self
            .assessor
            .policy(&unit, self.now.date_naive())
            .and_then(|policy| policy.get("reserve_fund").cloned())
            .filter(|section| matches!(section, Value::Object(_)));
        let paid = match section {
            None => true,
            Some(section) => {
                let ceiling = match section.get("ceiling") {
                    Some(Value::Decimal(d)) => *d,
                    Some(Value::Int(n)) => Decimal::from(*n),
                    _ => Decimal::ZERO,
                };
                let balance = self.reserves.entry(unit).or_insert(ceiling);
                if *balance >= amount {
                    *balance -= amount;
                    true
                } else {
                    false
                }
            }
        };
        if !paid {
            let instance = &mut self.instances[idx].1;
            let id = effect.get("id");
            if let Some(pos) = instance.effects.iter().rposition(|e| e.get("id") == id)
                && pos >= instance.seen
            {
                instance.effects.remove(pos);
            }
        }
        let mut data = BTreeMap::from([
            ("paid".to_string(), Value::Bool(paid)),
            ("amount".to_string(), Value::Decimal(amount)),
        ]);
        if !paid {
            data.insert("reason".to_string(), Value::Str("reserve_short".into()));
        }
        self.deliver_message(case, &reply, data)
    }
}
