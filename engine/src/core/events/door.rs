//! Data checked at the door: a start's or a message's data against the rule programs'
//! case format (a `household` variable or field) and the shapes of personal data (ID
//! numbers, bank accounts, names, birth dates: `jiuzhu_rules::validate`), every problem
//! at once, before anything is stored.

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

    /// [`Run::door_problems`] of every field of a message's data that its form declares.
    pub(in crate::core) fn message_door(
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
