//! Data checked at the door: a start's, a message's or a task completion's data, and the
//! values a correction sets, against the rule programs' case format (a `household`
//! variable or field), the shapes of personal data (ID numbers, bank accounts, names,
//! birth dates: `jiuzhu_rules::validate`) and money that cannot be negative (a decimal
//! whose name says it is an amount), every problem at once, before anything is stored.

use jiuzhu_rules::validate::{check_household, check_personal_fields};

use crate::core::*;
use crate::lang::scope::household_type;

impl Run<'_> {
    /// The problems of one field `key` of an event's data, declared of type `ty`; `path`
    /// is its JSON path. Empty when it passes (its type is checked after, by coercion).
    pub(in crate::core) fn door_problems(
        &self,
        key: &str,
        ty: &Type,
        value: &Value,
        path: &str,
    ) -> Vec<FieldProblem> {
        let today = self.now.date_naive();
        let amount = match value {
            Value::Decimal(d) => Some(*d),
            Value::Int(i) => Some(rust_decimal::Decimal::from(*i)),
            // Money travels as text in JSON.
            Value::Str(text) => text.trim().parse::<rust_decimal::Decimal>().ok(),
            _ => None,
        };
        if *ty == Type::Decimal
            && is_money_name(key)
            && amount.is_some_and(|d| d < rust_decimal::Decimal::ZERO)
        {
            return vec![FieldProblem {
                path: path.to_string(),
                message: "an amount of money is never negative".into(),
            }];
        }
        let json = value.to_json();
        let found = if *ty == household_type() && !matches!(value, Value::Null) {
            check_household(&json, path, today)
        } else {
            // The field's own name says what it holds (`applicant_name`), so it is
            // checked as a member of an object of its name.
            let mut wrapped = serde_json::Map::new();
            wrapped.insert(key.to_string(), json);
            let parent = path.strip_suffix(&format!(".{key}")).unwrap_or("$");
            check_personal_fields(&serde_json::Value::Object(wrapped), parent, today)
        };
        found
            .into_iter()
            .map(|e| FieldProblem {
                path: e.path,
                message: e.message,
            })
            .collect()
    }

    /// [`Run::door_problems`] of every field of a message's or a completion's data that
    /// its form declares.
    pub(in crate::core) fn fields_door(
        &self,
        fields: &[crate::lang::model::FieldDecl],
        data: &BTreeMap<String, Value>,
    ) -> Result<(), StepError> {
        let mut problems = Vec::new();
        for field in fields {
            if let Some(value) = data.get(&field.name) {
                let path = format!("$.{}", field.name);
                problems.extend(self.door_problems(&field.name, &field.ty, value, &path));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(invalid_all(problems))
        }
    }
}

/// Whether a decimal field named `key` holds money (`amount`, `monthly_amount`, `total`,
/// `savings`, `monthly`): those are never negative. Other decimals (a price rise in
/// percent) may be.
pub(in crate::core) fn is_money_name(key: &str) -> bool {
    key.ends_with("amount") || matches!(key, "total" | "savings" | "monthly" | "fee")
}
