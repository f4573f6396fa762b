//! Assessment inputs (engine migration 13): for every case with an outcome, a narrow row
//! of just what re-assessing it reads — the state's household, area, request, applicant
//! name, bank account and assessment program — beside the instance columns
//! `simulate-policy` pages by. A decided case's state carries its assessment with the full
//! trace (about 14 KB); the simulation reads some 400 bytes of it. The row is written by
//! the transaction that writes the instance (so it is never stale) and leaves with the
//! instance when the case is archived. An outcome, once set, is never taken back, so an
//! instance without one has no row.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::group_write::{Param, WriteTx};
use super::shared::{self, PreparedStep};
use super::{StepCommit, StoreError};

/// The variables of a state the simulation reads.
#[derive(Deserialize)]
struct State<'a> {
    #[serde(borrow, default)]
    vars: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Vars<'a> {
    #[serde(borrow, default)]
    household: Option<&'a RawValue>,
    #[serde(borrow, default)]
    area: Option<&'a RawValue>,
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
    #[serde(borrow, default)]
    applicant_name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    bank: Option<&'a RawValue>,
    #[serde(borrow, default)]
    assessment: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Assessment<'a> {
    #[serde(borrow, default)]
    program: Option<&'a RawValue>,
}

/// The inputs of a state as stored: the JSON text of
/// `[household, area, request, applicant_name, bank, assessment.program]`, each `null`
/// where the state has none (or a value of the wrong shape: an assessment that is not an
/// object has no program); `None` when the state is not JSON. The values are copied as
/// written in the state, so they read back exactly as the state's own.
pub fn inputs_of_state(state: &str) -> Option<String> {
    let parsed: State<'_> = serde_json::from_str(state).ok()?;
    // A part of the wrong shape (vars or an assessment that is not an object) reads as
    // having none of its values, as a path through it does in the database.
    // (serde would also read a struct from an array, by position: only objects count.)
    let vars: Option<Vars<'_>> = parsed
        .vars
        .filter(|v| is_object(v))
        .and_then(|v| serde_json::from_str(v.get()).ok());
    let vars = vars.as_ref();
    let assessment: Option<Assessment<'_>> = vars
        .and_then(|v| v.assessment)
        .filter(|a| is_object(a))
        .and_then(|a| serde_json::from_str(a.get()).ok());
    let values = [
        vars.and_then(|v| v.household),
        vars.and_then(|v| v.area),
        vars.and_then(|v| v.request),
        vars.and_then(|v| v.applicant_name),
        vars.and_then(|v| v.bank),
        assessment.and_then(|a| a.program),
    ];
    let mut out = String::with_capacity(
        values
            .iter()
            .flatten()
            .map(|v| v.get().len() + 1)
            .sum::<usize>()
            + 32,
    );
    out.push('[');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(value.map_or("null", |v| v.get()));
    }
    out.push(']');
    Some(out)
}

/// Whether a raw JSON value is an object.
fn is_object(value: &RawValue) -> bool {
    value.get().trim_start().starts_with('{')
}

const UPSERT_HEAD: &str =
    "assessment_inputs (instance_id, process_id, status, outcome, unit, updated_at, inputs)";
const UPSERT_TAIL: &str = " ON CONFLICT (instance_id) DO UPDATE SET process_id = excluded.process_id, \
     status = excluded.status, outcome = excluded.outcome, unit = excluded.unit, \
     updated_at = excluded.updated_at, inputs = excluded.inputs";

/// Writes the assessment inputs of the prepared steps whose instance has an outcome, in
/// the group's transaction. Of several steps of one instance in a group, the last one's
/// row is written (the steps are in instance order, one instance's in their own order).
pub(crate) async fn write_inputs<T: WriteTx>(
    tx: &mut T,
    steps: &[StepCommit],
    prepared: &[PreparedStep],
) -> Result<(), StoreError> {
    let mut rows: Vec<(&StepCommit, Option<String>)> = Vec::new();
    for link in prepared {
        let step = &steps[link.index];
        if step.instance.outcome.is_none() {
            continue;
        }
        let inputs = inputs_of_state(step.instance.state.as_str());
        match rows.last_mut() {
            Some(last) if last.0.instance.id == step.instance.id => *last = (step, inputs),
            _ => rows.push((step, inputs)),
        }
    }
    let mut sql = (0, String::new());
    for chunk in rows.chunks(T::ROWS_PER_STATEMENT) {
        if sql.0 != chunk.len() {
            let mut text = shared::multi_row_insert(UPSERT_HEAD, 7, chunk.len());
            text.push_str(UPSERT_TAIL);
            sql = (chunk.len(), text);
        }
        let params: Vec<Param<'_>> = chunk
            .iter()
            .flat_map(|(step, inputs)| {
                let instance = &step.instance;
                [
                    Param::Text(&instance.id),
                    Param::Text(&instance.process_id),
                    Param::Text(&instance.status),
                    Param::MaybeText(instance.outcome.as_deref()),
                    Param::Text(&instance.unit),
                    Param::Int(shared::ms(instance.updated_at)),
                    Param::MaybeText(inputs.as_deref()),
                ]
            })
            .collect();
        tx.execute(&sql.1, &params).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inputs_are_the_states_own_values_in_order() {
        let state = r#"{"id":"c1","vars":{"area":"urban","household":{"members":[{"id":"a","income":"12.50"}]},
            "bank":{"account":"622"},"other":[1,2,{"x":null}],"applicant_name":"张三",
            "assessment":{"program":"dibao","trace":[{"step":"x"}]},"request":null}}"#;
        let inputs = inputs_of_state(state).expect("JSON");
        let read: serde_json::Value = serde_json::from_str(&inputs).expect("inputs are JSON");
        assert_eq!(
            read,
            serde_json::json!([
                {"members": [{"id": "a", "income": "12.50"}]},
                "urban",
                null,
                "张三",
                {"account": "622"},
                "dibao"
            ])
        );
    }

    #[test]
    fn missing_or_misshapen_values_are_null_and_text_that_is_not_json_has_none() {
        assert_eq!(
            inputs_of_state(r#"{"vars":{}}"#).as_deref(),
            Some("[null,null,null,null,null,null]")
        );
        assert_eq!(
            inputs_of_state(r#"{"broken":true}"#).as_deref(),
            Some("[null,null,null,null,null,null]")
        );
        assert_eq!(
            inputs_of_state(r#"{"vars":{"area":"rural","assessment":"old"}}"#).as_deref(),
            Some(r#"[null,"rural",null,null,null,null]"#)
        );
        assert_eq!(
            inputs_of_state(r#"{"vars":[1]}"#).as_deref(),
            Some("[null,null,null,null,null,null]")
        );
        assert_eq!(inputs_of_state("{not json"), None);
    }
}
