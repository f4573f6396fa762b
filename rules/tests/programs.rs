//! Programs come from rule files: every shipped file is embedded, a case's own
//! fields are declared by its program's `case:` block, and no process id is
//! written into the engine or rules code.

use std::path::{Path, PathBuf};

use jiuzhu_rules::ruleset::builtin_rule_files;
use jiuzhu_rules::{Policy, RuleSet, parse_case, try_assess};
use serde_json::json;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_rule_file_is_embedded() {
    let mut on_disk: Vec<String> = std::fs::read_dir(repo().join("processes/rules"))
        .expect("rules dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = builtin_rule_files().into_iter().map(String::from).collect();
    embedded.sort();
    assert_eq!(embedded, on_disk);
    assert_eq!(
        RuleSet::builtin().programs().count(),
        on_disk.len(),
        "each loads"
    );
}

/// Non-test Rust of a crate: `src/` without `tests.rs` / `*_tests.rs` files and
/// without the `#[cfg(test)]` tail of a file; comments are left out.
fn code_lines(dir: &Path, out: &mut Vec<(PathBuf, usize, String)>) {
    for entry in std::fs::read_dir(dir).expect("dir").filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            code_lines(&path, out);
        } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
            let text = std::fs::read_to_string(&path).expect("read");
            for (i, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                let code = line.split("//").next().unwrap_or("");
                out.push((path.clone(), i + 1, code.to_string()));
            }
        }
    }
}

#[test]
fn no_process_id_in_engine_or_rules_code() {
    let mut lines = Vec::new();
    code_lines(&repo().join("rules/src"), &mut lines);
    code_lines(&repo().join("engine/src"), &mut lines);
    let ids = [
        "dibao",
        "tekun",
        "low_income",
        "temporary_aid",
        "heating_aid",
        "price_subsidy",
    ];
    let found: Vec<String> = lines
        .iter()
        // The one list of embedded files names them, as data.
        .filter(|(_, _, code)| !code.contains(".yaml\""))
        .filter(|(_, _, code)| ids.iter().any(|id| code.contains(id)))
        .map(|(p, n, code)| format!("{}:{n}: {}", p.display(), code.trim()))
        .collect();
    assert!(
        found.is_empty(),
        "process ids in code:\n{}",
        found.join("\n")
    );
}

fn policy() -> Policy {
    Policy::load(&repo().join("processes/policies/shuangyashan-2026-01-01.yaml")).expect("policy")
}

fn case(member: serde_json::Value, receives: serde_json::Value) -> serde_json::Value {
    json!({
        "program": "disability_subsidy", "as_of": "2026-03-02", "area": "urban",
        "member": "m1", "receives": receives,
        "household": {"members": [member, {"id": "m2", "birth_date": "1950-01-01"}], "savings": "0"}
    })
}

#[test]
fn disability_subsidy_is_a_program_of_its_rule_file() {
    let rules = RuleSet::builtin();
    let run = |c: serde_json::Value| {
        let a = try_assess(&rules, &policy(), &parse_case(&c).expect("case")).expect("assess");
        let extra = |name: &str| {
            a.extra
                .iter()
                .find(|e| e.name == name)
                .map(|e| e.value.to_string().trim_matches('"').to_string())
                .and_then(|s| s.parse::<rust_decimal::Decimal>().ok())
                .expect("extra")
                .normalize()
                .to_string()
        };
        (
            a.eligible(),
            extra("living_amount"),
            extra("care_amount"),
            a.base_amount.to_string(),
        )
    };
    let m = |grade: i64, kind: &str| json!({"id": "m1", "birth_date": "1980-01-01", "disability": {"grade": grade, "kind": kind}});
    let (eligible, living, care, total) = run(case(m(2, "mental"), json!("low_income")));
    assert!(eligible);
    assert_eq!(
        (living.as_str(), care.as_str(), total.as_str()),
        ("80", "80", "160.00")
    );
    let (_, living, care, _) = run(case(m(3, "intellectual"), json!("tekun")));
    assert_eq!((living.as_str(), care.as_str()), ("0", "80"));
    let (eligible, _, _, total) = run(case(m(4, "physical"), json!(null)));
    assert!(!eligible);
    assert_eq!(total, "0");

    // The declared fields are checked at the door, each at its path.
    let mut c = case(m(1, "visual"), json!("pension"));
    c["member"] = json!("m9");
    let errors = parse_case(&c).expect_err("bad fields");
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["$.member", "$.receives"], "{errors:?}");
    let mut c = case(m(1, "visual"), json!(null));
    c.as_object_mut().expect("object").remove("member");
    let errors = parse_case(&c).expect_err("no member");
    assert_eq!(errors[0].message, "is required for disability_subsidy");

    // A policy without the optional section: the assessment fails naming the key.
    let src = std::fs::read_to_string(
        repo()
            .join("processes/scenarios/disability_subsidy/policy-without-disability-section.yaml"),
    )
    .expect("read");
    let without = Policy::from_yaml(&src, "p.yaml").expect("loads without the section");
    let err = try_assess(
        &rules,
        &without,
        &parse_case(&case(m(1, "visual"), json!("dibao"))).expect("case"),
    )
    .expect_err("no section");
    assert!(err.to_string().contains("disability_subsidy"), "{err}");
}

#[test]
fn a_program_declared_check_refuses_the_case() {
    let c = json!({
        "program": "tekun", "as_of": "2026-03-02", "area": "urban",
        "household": {"members": [{"id": "m1", "birth_date": "1950-01-01"}, {"id": "m2", "birth_date": "1951-01-01"}], "savings": "0"}
    });
    let errors = parse_case(&c).expect_err("two members");
    assert_eq!(errors[0].path, "$.household.members");
    assert_eq!(errors[0].message, "tekun assesses exactly one person");
    let c = json!({"program": "nonesuch", "as_of": "2026-03-02", "area": "urban",
        "household": {"members": [{"id": "m1", "birth_date": "1950-01-01"}], "savings": "0"}});
    assert!(
        parse_case(&c).expect_err("unknown")[0]
            .message
            .starts_with("must be one of")
    );
}

#[test]
fn a_case_block_mistake_is_reported_at_its_place() {
    let src = "program: x\nlabel: x\ncase:\n  fields:\n    household: {type: text}\n    when: {type: money}\n  checks:\n    - {require: \"len(members) + 1\", path: \"$.household\", message: m}\nsteps: []\nresult: {eligible: \"true\", category: \"null\", standard: \"0\", household_income: \"0\", base_amount: \"0\", reasons: \"[]\"}\n";
    let problems = jiuzhu_rules::ProgramRules::from_yaml(src, "x.yaml").expect_err("invalid");
    let at: Vec<(usize, usize)> = problems.iter().map(|p| (p.line, p.column)).collect();
    assert_eq!(at, [(5, 5), (6, 18), (8, 17)], "{problems:?}");
}
