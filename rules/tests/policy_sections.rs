//! Policy sections declared in data: the shipped declarations, mistakes in a
//! declaration (one each, at line:column), policy files checked against them, and
//! a project's own declarations.

use std::path::{Path, PathBuf};

use jiuzhu_rules::policy::{PolicyProblem, SectionDecl, builtin_section_files};
use jiuzhu_rules::{Policy, PolicyError, PolicySections, PolicySet, Value};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const EXAMPLE: &str = include_str!("examples/policy.yaml");
const SHIPPED: &str = include_str!("../../processes/policies/shuangyashan-2026-01-01.yaml");

fn problems(err: PolicyError) -> Vec<PolicyProblem> {
    match err {
        PolicyError::Invalid { problems, .. } => problems,
        other => panic!("expected problems, got {other}"),
    }
}

#[test]
fn every_declaration_file_is_embedded_and_reads() {
    let dir = repo().join("processes/policies/sections");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("sections dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = builtin_section_files()
        .into_iter()
        .map(String::from)
        .collect();
    embedded.sort();
    assert_eq!(embedded, on_disk, "embed every file of {}", dir.display());
    for file in &on_disk {
        let src = std::fs::read_to_string(dir.join(file)).expect("read");
        let decl = SectionDecl::from_yaml(&src, file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{}.yaml", decl.name), *file, "named after its file");
    }
    assert_eq!(PolicySections::builtin().names().count(), on_disk.len());
}

fn decl_problem(src: &str) -> PolicyProblem {
    let mut p = problems(SectionDecl::from_yaml(src, "x.yaml").expect_err("invalid"));
    assert_eq!(p.len(), 1, "one problem: {p:?}");
    p.remove(0)
}

#[test]
fn a_mistake_in_a_declaration_is_reported_at_its_place() {
    let cases: &[(&str, &str, usize, usize, &str)] = &[
        (
            "section: s\nkeys:\n  a: {type: money}\n",
            "keys.a.type",
            3,
            13,
            "unknown type",
        ),
        (
            "section: s\nkeys:\n  a: {label: x}\n",
            "keys.a.type",
            3,
            6,
            "missing key",
        ),
        (
            "section: s\nkeys:\n  a: {type: map}\n",
            "keys.a.keys",
            3,
            6,
            "missing key",
        ),
        (
            "section: s\nkeys:\n  a: {type: amount, keys: {b: {type: bool}}}\n",
            "keys.a.keys",
            3,
            27,
            "only a `map` key",
        ),
        (
            "section: s\nkeys:\n  a: {type: amount}\nchecks:\n  - {require: \"a >= b\", path: a, message: m}\n",
            "checks[0].require",
            5,
            21,
            "unknown variable `b`",
        ),
        (
            "section: s\nkeys:\n  a: {type: amount}\nchecks:\n  - {require: \"a + 1\", path: a, message: m}\n",
            "checks[0].require",
            5,
            15,
            "true/false",
        ),
        (
            "section: s\nkeys:\n  a: {type: amount}\nchecks:\n  - {require: \"a > 0\", path: c, message: m}\n",
            "checks[0].path",
            5,
            30,
            "not a declared key",
        ),
        (
            "section: s\nkeys: {a: {type: bool}}\nrequired: yes\n",
            "required",
            3,
            11,
            "true or false",
        ),
        (
            "section: s\nkeys: {a: {type: bool}}\nlable: x\n",
            "lable",
            3,
            1,
            "unknown key",
        ),
        (
            "section: jurisdiction\nkeys: {a: {type: bool}}\n",
            "section",
            1,
            10,
            "every policy file",
        ),
        ("section: s\n", "keys", 1, 1, "missing key"),
        (
            "section: s\nkeys:\n  a: {type: bool, default: maybe}\n",
            "keys.a.default",
            3,
            28,
            "true or false",
        ),
        (
            "section: s\nkeys:\n  a: {type: map, keys: {b: {type: bool}}, default: x}\n",
            "keys.a.default",
            3,
            52,
            "no default",
        ),
    ];
    for (src, path, line, column, message) in cases {
        let p = decl_problem(src);
        assert_eq!(
            (p.path.as_str(), p.line, p.column),
            (*path, *line, *column),
            "{src}: {p:?}"
        );
        assert!(p.message.contains(message), "{src}: {p:?}");
    }
}

#[test]
fn a_policy_is_checked_against_the_declarations() {
    // Wrong type, at the value's place.
    let src = SHIPPED.replace("includes_low_income: false", "includes_low_income: maybe");
    let p = problems(Policy::from_yaml(&src, "p.yaml").expect_err("invalid"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, "heating_aid.includes_low_income");
    assert_eq!(p[0].message, "must be true or false, found \"maybe\"");
    let line = SHIPPED
        .lines()
        .position(|l| l.contains("includes_low_income"))
        .expect("line")
        + 1;
    assert_eq!((p[0].line, p[0].column), (line, 24));

    // A declared check that fails, at the checked key.
    let src = SHIPPED.replace("county_ceiling_months: 6 ", "county_ceiling_months: 2 ");
    let p = problems(Policy::from_yaml(&src, "p.yaml").expect_err("invalid"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, "temporary_aid.county_ceiling_months");
    assert_eq!(p[0].message, "must be >= township_ceiling_months");
    assert_eq!(p[0].column, 26);

    // An undeclared section, and a percentage above 100.
    let src = format!(
        "{}\nbonus_aid: {{per_person: \"1\"}}\n",
        SHIPPED.replace("threshold_percent: \"3.5\"", "threshold_percent: \"350\"")
    );
    let p = problems(Policy::from_yaml(&src, "p.yaml").expect_err("invalid"));
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["bonus_aid", "price_subsidy.threshold_percent"],
        "{p:?}"
    );

    // A required section missing; an optional one absent is null.
    let p = problems(
        Policy::from_yaml("effective_from: 2026-01-01\njurisdiction: 市\n", "p.yaml")
            .expect_err("invalid"),
    );
    let mut paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["dibao", "low_income", "tekun", "temporary_aid"]);
    let policy = Policy::from_yaml(EXAMPLE, "p.yaml").expect("loads");
    let Value::Object(v) = policy.to_value() else {
        panic!("object")
    };
    assert_eq!(v.get("disability_subsidy"), Some(&Value::Null));
    assert!(matches!(v.get("dibao"), Some(Value::Object(_))));
}

#[test]
fn a_key_with_a_default_may_be_left_out() {
    // The shipped 2026-01-01 file leaves `dibao.follows_standard` out: false.
    let policy = Policy::from_yaml(SHIPPED, "p.yaml").expect("loads");
    assert_eq!(
        policy.get("dibao.follows_standard"),
        Some(&Value::Bool(false))
    );
    // Written, it is read and checked like any key, at its place.
    let src = SHIPPED.replace(
        "  severe_includes_grade3_intellectual_mental: true\n",
        "  severe_includes_grade3_intellectual_mental: true\n  follows_standard: true\n",
    );
    let policy = Policy::from_yaml(&src, "p.yaml").expect("loads");
    assert_eq!(
        policy.get("dibao.follows_standard"),
        Some(&Value::Bool(true))
    );
    let src = SHIPPED.replace(
        "  severe_includes_grade3_intellectual_mental: true\n",
        "  severe_includes_grade3_intellectual_mental: true\n  follows_standard: \"yes\"\n",
    );
    let p = problems(Policy::from_yaml(&src, "p.yaml").expect_err("invalid"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, "dibao.follows_standard");
    let line = src
        .lines()
        .position(|l| l.contains("follows_standard"))
        .expect("line")
        + 1;
    assert_eq!((p[0].line, p[0].column), (line, 21), "{p:?}");
    assert!(p[0].message.contains("true or false"), "{p:?}");
}

#[test]
fn a_project_declares_its_own_sections() {
    let dir = tempfile::tempdir().expect("tmp");
    let sections = dir.path().join("sections");
    std::fs::create_dir(&sections).expect("mkdir");
    std::fs::write(
        sections.join("water_aid.yaml"),
        "section: water_aid\nlabel: 饮水补助\nrequired: true\nkeys:\n  per_household: {type: amount}\n  since: {type: date}\n  months: {type: integer}\n  office: {type: text}\n  rate: {type: decimal}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("city.yaml"),
        "effective_from: 2026-01-01\njurisdiction: 某市\nwater_aid: {per_household: \"12.50\", since: 2026-03-01, months: 4, office: 民政局, rate: \"-0.5\"}\n",
    )
    .expect("write");
    let set = PolicySet::load_dir(dir.path()).expect("loads");
    let policy = &set.policies()[0];
    assert_eq!(
        policy.decimal("water_aid.per_household"),
        Some(Decimal::new(1250, 2))
    );
    assert_eq!(policy.get("water_aid.months"), Some(&Value::Int(4)));
    assert_eq!(
        policy.get("water_aid.office"),
        Some(&Value::Str("民政局".into()))
    );
    // The project's declarations replace the built-in ones: no dibao section needed,
    // and one is now unknown.
    std::fs::write(
        dir.path().join("other.yaml"),
        "effective_from: 2026-01-01\njurisdiction: 某市\nwater_aid: {per_household: \"1\", since: 2026-03-01, months: 1, office: x, rate: \"0\"}\ndibao: {}\n",
    )
    .expect("write");
    let errors = PolicySet::load_dir(dir.path()).expect_err("unknown section");
    assert_eq!(errors[0].lines(), ["other.yaml: dibao: unknown key"]);
    // A broken declaration stops the load, naming its file.
    std::fs::write(
        sections.join("bad.yaml"),
        "section: bad\nkeys: {a: {type: money}}\n",
    )
    .expect("write");
    let errors = PolicySet::load_dir(dir.path()).expect_err("bad declaration");
    assert!(
        errors[0]
            .to_string()
            .starts_with("sections/bad.yaml: keys.a.type"),
        "{}",
        errors[0]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Cutting, duplicating or replacing any part of a policy file gives a policy or
    /// a list of problems, never a panic.
    #[test]
    fn mutated_policy_files_never_panic(
        at in 0usize..4000,
        len in 0usize..40,
        insert in prop::sample::select(vec!["", "-1", ": ", "\n  x: 1", "{", "]", "\"", "0", "true", "\n", "  ", "dibao:", "[1, 2]", "~"]),
    ) {
        let src = SHIPPED;
        let mut cut = at.min(src.len());
        while !src.is_char_boundary(cut) { cut -= 1; }
        let mut end = (cut + len).min(src.len());
        while !src.is_char_boundary(end) { end -= 1; }
        let mutated = format!("{}{}{}", &src[..cut], insert, &src[end..]);
        match Policy::from_yaml(&mutated, "p.yaml") {
            Ok(p) => { let _ = p.to_value(); }
            Err(e) => prop_assert!(!e.lines().is_empty()),
        }
    }
}
