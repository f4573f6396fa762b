//! `jiuzhu correct CASE --set PATH=JSON … --reason TEXT --as USER`: corrects a case's data
//! as a step of the case (the engine decides who may correct what; docs/procedures.md).
//! The output shows each path's old and new value as the history keeps them: masked where
//! personal.

use anyhow::Result;
use clap::Args;
use jiuzhu_rules::Value;

use crate::errors::CliError;
use crate::lifecycle::{Session, fail};
use crate::views::resolve_instance;

#[derive(Args)]
pub struct CorrectArgs {
    /// The case id, its short form or a unique part of it.
    case: String,
    /// A new value: `PATH=JSON`, e.g. `applicant_name='"张秀英"'` or
    /// `household.members[1].income[0].monthly='"800.00"'`; a value that is not JSON is
    /// taken as a string. Repeat for several.
    #[arg(long = "set", value_name = "PATH=JSON", required = true)]
    set: Vec<String>,
    /// Why (required; kept in the case's history).
    #[arg(long)]
    reason: String,
    /// The user correcting (an id of org.yaml).
    #[arg(long = "as", value_name = "USER")]
    user: String,
}

/// `PATH=JSON` as a path and a value (text that is not JSON is a string).
fn parse_set(text: &str) -> Result<(String, Value), CliError> {
    let Some((path, json)) = text.split_once('=') else {
        return Err(
            CliError::usage("invalid_input", format!("--set {text}: expected PATH=JSON"))
                .hint("e.g. --set household.savings='\"5000.00\"'"),
        );
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(CliError::usage(
            "invalid_input",
            format!("--set {text}: the path is empty"),
        ));
    }
    let value = serde_json::from_str::<serde_json::Value>(json)
        .map(|j| Value::from_json(&j))
        .unwrap_or_else(|_| Value::Str(json.to_string()));
    Ok((path.to_string(), value))
}

pub async fn run(session: &Session, args: &CorrectArgs) -> Result<i32> {
    let changes = args
        .set
        .iter()
        .map(|s| parse_set(s))
        .collect::<Result<Vec<_>, _>>()?;
    let actor = session.actor(&args.user)?;
    let instance = resolve_instance(&session.engine.store, &args.case).await?;
    let report = match session
        .engine
        .correct(&instance, &actor, changes, &args.reason)
        .await
    {
        Ok(report) => report,
        Err(e) => return Ok(fail(&e)),
    };
    println!(
        "{} {} corrected (version {})",
        report.instance.id, report.instance.status, report.instance.version
    );
    // What the history row keeps, already masked where personal.
    let history = session.engine.store.history(&instance).await?;
    if let Some(row) = history.last().filter(|row| row.event == "correct") {
        for change in row.data["corrections"].as_array().into_iter().flatten() {
            println!(
                "  {}: {} -> {}",
                change["path"].as_str().unwrap_or_default(),
                change["old"],
                change["new"]
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_a_path_and_a_json_value_or_a_string() {
        let (path, value) = parse_set("household.savings=5000").expect("parses");
        assert_eq!(path, "household.savings");
        assert_eq!(value, Value::Int(5000));
        let (_, text) = parse_set("applicant_name=张秀英").expect("parses");
        assert_eq!(text, Value::Str("张秀英".into()));
        let (_, quoted) = parse_set("applicant_name=\"a=b\"").expect("parses");
        assert_eq!(quoted, Value::Str("a=b".into()));
        assert_eq!(
            parse_set("no-equals").map(|_| ()).unwrap_err().code,
            "invalid_input"
        );
        assert_eq!(
            parse_set("=1").map(|_| ()).unwrap_err().code,
            "invalid_input"
        );
    }
}
