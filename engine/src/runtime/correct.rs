//! Corrections of a case's data: a step like any other (see `core/events/correct.rs`
//! for who may correct what), with a history row `correct` that keeps the reason and,
//! for each path, the old and the new value, masked where they are personal data.

use super::*;
use crate::core::{PathSegment, display_path, parse_path, value_at};
use crate::privacy::mask_json;

impl Engine {
    /// Corrects variables of a case: `changes` are `(path, new value)` pairs, e.g.
    /// `("household.members[1].income", …)`. Refused as `invalid_data` (with the JSON
    /// path), `forbidden`, `not_found` or `conflict` (a closed case, or a lost race).
    pub async fn correct(
        &self,
        instance_id: &str,
        actor: &Actor,
        changes: Vec<(String, Value)>,
        reason: &str,
    ) -> Result<StepReport, EngineError> {
        let values: BTreeMap<String, Value> = changes
            .iter()
            .enumerate()
            .map(|(i, (_, value))| (i.to_string(), value.clone()))
            .collect();
        self.check_input(&values)?;
        let event = Event::Correct {
            actor: actor.clone(),
            changes,
            reason: reason.to_string(),
        };
        let input = BTreeMap::from([("reason".to_string(), Value::Str(reason.trim().into()))]);
        let step = Step {
            event: &event,
            kind: "correct",
            actor: Some(actor),
            data: &input,
            fired_timer: None,
            completes: None,
            on_behalf_of: None,
            delivery: None,
        };
        self.apply(instance_id, step).await
    }
}

/// The history's account of a correction: `[{path, old, new}]`, each value masked by the
/// same rules as every screen (`privacy::mask_json`), judged by the names on its path.
pub(super) fn corrections_json(
    changes: &[(String, Value)],
    before: &InstanceState,
    after: &InstanceState,
) -> serde_json::Value {
    let rows = changes
        .iter()
        .filter_map(|(raw, _)| parse_path(raw).ok())
        .map(|segments| {
            let value = |state: &InstanceState| {
                value_at(&state.vars, &segments).map_or(serde_json::Value::Null, |v| {
                    masked_at(&segments, v.to_json())
                })
            };
            serde_json::json!({
                "path": display_path(&segments),
                "old": value(before),
                "new": value(after),
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// `value` masked as it would be at `segments` in a case's data: wrapped in the objects
/// and lists the path names, masked whole, and taken out again.
fn masked_at(segments: &[PathSegment], value: serde_json::Value) -> serde_json::Value {
    let wrapped = segments
        .iter()
        .rev()
        .fold(value, |inner, segment| match segment {
            PathSegment::Field(name) => serde_json::json!({ name.as_str(): inner }),
            PathSegment::Index(_) => serde_json::Value::Array(vec![inner]),
        });
    let mut masked = mask_json(&wrapped);
    for segment in segments {
        masked = match (segment, masked) {
            (PathSegment::Field(name), serde_json::Value::Object(mut map)) => {
                map.remove(name).unwrap_or_default()
            }
            (PathSegment::Index(_), serde_json::Value::Array(mut items)) if !items.is_empty() => {
                items.swap_remove(0)
            }
            _ => return serde_json::Value::Null,
        };
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<PathSegment> {
        parse_path(text).unwrap_or_default()
    }

    #[test]
    fn personal_values_are_masked_by_the_names_on_their_path() {
        let name = masked_at(&path("household.members[1].name"), "张三丰".into());
        assert_eq!(name, serde_json::json!("张*"));
        let applicant = masked_at(&path("applicant_name"), "李四".into());
        assert_eq!(applicant, serde_json::json!("李*"));
        let income = masked_at(&path("household.members[1].income"), "1000.00".into());
        assert_eq!(income, serde_json::json!("1000.00"));
        let bank = masked_at(
            &path("bank"),
            serde_json::json!({"account": "6222020200112233445"}),
        );
        assert_eq!(bank, serde_json::json!({"account": "***************3445"}));
    }
}
