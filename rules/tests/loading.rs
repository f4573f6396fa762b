//! Loading policy and rule files: exact decimals, key paths, positions, selection.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use jiuzhu_rules::{Policy, PolicyError, PolicySet, ProgramRules, RuleSet, RulesError};
use rust_decimal::Decimal;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

const EXAMPLE: &str = include_str!("examples/policy.yaml");

#[test]
fn unquoted_numbers_are_read_from_their_text() {
    let src = EXAMPLE.replace(
        "supplement_rate: \"0.15\"",
        "supplement_rate: 0.15000000000000000001",
    );
    let p = Policy::from_yaml(&src, "policy.yaml").expect("loads");
    assert_eq!(
        p.decimal("dibao.supplement_rate").map(|d| d.to_string()),
        Some("0.15000000000000000001".to_string())
    );
    assert_eq!(p.decimal("dibao.savings_months"), Some(Decimal::from(24)));
    assert_eq!(
        p.decimal("tekun.care_divisor.self"),
        Some(Decimal::from(10))
    );
}

#[test]
fn policy_problems_name_the_file_and_key_path() {
    let src = EXAMPLE
        .replace("urban: \"700.00\"", "urban: \"-1\"")
        .replace("  ratio: \"1.5\"", "  ratio: \"1.5\"\n  bonus: 1")
        .lines()
        .filter(|l| !l.trim_start().starts_with("advance_cap:"))
        .collect::<Vec<_>>()
        .join("\n");
    let err = Policy::from_yaml(&src, "policy.yaml").expect_err("invalid");
    let lines = err.lines();
    for want in [
        "policy.yaml: dibao.standard.urban: must be >= 0",
        "policy.yaml: low_income.bonus: unknown key",
        "policy.yaml: temporary_aid.advance_cap: missing key",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "{want} in {lines:?}"
        );
    }
    assert_eq!(lines.len(), 3, "one line per problem: {lines:?}");
    assert!(matches!(
        Policy::from_yaml("a: [", "p.yaml"),
        Err(PolicyError::Yaml { .. })
    ));
}

#[test]
fn the_policy_in_force_is_chosen_by_unit_and_date() {
    let set =
        PolicySet::load_dir(&repo().join("processes/policies")).expect("shipped policies load");
    let unit = "双鸭山市/尖山区/中心站街道";
    let urban = |d: &str| {
        set.select(unit, date(d))
            .and_then(|p| p.decimal("dibao.standard.urban"))
            .map(|d| d.to_string())
    };
    assert_eq!(urban("2026-06-30").as_deref(), Some("700.00"));
    assert_eq!(urban("2026-07-01").as_deref(), Some("730.00"));
    assert_eq!(urban("2025-12-31"), None);
    assert!(set.select("佳木斯市/前进区", date("2026-07-01")).is_none());
    // A more specific jurisdiction wins over the city's, once in force.
    let mut policies = set.policies().to_vec();
    let mut district = policies[0].clone();
    district.jurisdiction = "双鸭山市/尖山区".into();
    district.effective_from = date("2026-03-01");
    assert!(district.set(
        "dibao.standard.urban",
        jiuzhu_rules::Value::Decimal(Decimal::from(750))
    ));
    policies.push(district);
    let set = PolicySet::new(policies);
    assert_eq!(
        set.select(unit, date("2026-08-01"))
            .and_then(|p| p.decimal("dibao.standard.urban")),
        Some(Decimal::from(750))
    );
    assert_eq!(
        set.select(unit, date("2026-02-01"))
            .and_then(|p| p.decimal("dibao.standard.urban"))
            .map(|d| d.to_string())
            .as_deref(),
        Some("700.00")
    );
    // A prefix must end at a segment boundary.
    assert!(set.select("双鸭山市郊", date("2026-08-01")).is_none());
}

#[test]
fn every_shipped_rule_file_loads() {
    for program in ["dibao", "low_income", "tekun", "temporary_aid"] {
        let path = repo().join(format!("processes/rules/{program}.yaml"));
        let src = std::fs::read_to_string(&path).expect("rule file");
        let rules = ProgramRules::from_yaml(&src, &format!("{program}.yaml"))
            .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(rules.program, program);
        assert!(RuleSet::builtin().program(program).is_some());
    }
}

#[test]
fn rule_file_problems_carry_file_line_and_column() {
    let src = "program: dibao\nlabel: x\nsteps:\n  - name: standard\n    value: \"policy.dibao.standrd.urban + 1\"\n  - name: t\n    table:\n      hit: firts\n      outputs: [a]\n      rules: []\nresult: {}\n";
    let problems = ProgramRules::from_yaml(src, "dibao.yaml").expect_err("invalid");
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    // The field typo is at column 12 + 13 characters into the expression.
    assert!(
        text.iter()
            .any(|t| t.starts_with("dibao.yaml:5:13: E_UNKNOWN_FIELD")
                && t.contains("did you mean `standard`?")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("dibao.yaml:8:12: E_RULE_SHAPE: unknown hit policy")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("`result` is missing `eligible`")),
        "{text:?}"
    );
}

#[test]
fn an_override_directory_replaces_a_program() {
    let dir = tempfile::tempdir().expect("temp dir");
    // An administrator raises the supplement to a flat 20 % without touching Rust.
    let src = std::fs::read_to_string(repo().join("processes/rules/dibao.yaml"))
        .expect("rule file")
        .replace("policy.dibao.supplement_rate * standard", "0.20 * standard");
    std::fs::write(dir.path().join("dibao.yaml"), src).expect("write");
    let rules = RuleSet::load_dir(dir.path()).expect("override loads");
    let policy = Policy::from_yaml(EXAMPLE, "policy.yaml").expect("policy");
    let case = jiuzhu_rules::parse_case(&serde_json::json!({
        "program": "dibao", "as_of": "2026-03-01", "area": "urban",
        "household": {"members": [{"id": "m1", "birth_date": "1950-01-01"}], "savings": "0"}
    }))
    .expect("case");
    let a = jiuzhu_rules::assess(&rules, &policy, &case);
    assert_eq!(a.to_json()["supplements"][0]["amount"], "140.00");
    assert!(
        rules.program("tekun").is_some(),
        "other programs stay as shipped"
    );

    std::fs::write(
        dir.path().join("broken.yaml"),
        "program: tekun\nlabel: x\nsteps: []\nresult: {eligible: \"1 +\"}\n",
    )
    .expect("write");
    assert!(matches!(
        RuleSet::load_dir(dir.path()),
        Err(RulesError::Invalid { .. })
    ));
}
