//! Every checked example of the assessment contract reproduces field by field.

use std::path::{Path, PathBuf};

use jiuzhu_rules::{InputLimits, Policy, RuleSet, assess, parse_case_text};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples")
}

#[test]
fn every_spec_example_reproduces() {
    let dir = examples_dir();
    let policy = Policy::load(&dir.join("policy.yaml")).expect("example policy loads");
    let rules = RuleSet::builtin();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".case.json"))
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 5, "the spec ships five examples");
    for case_path in cases {
        let name = case_path.to_string_lossy().replace(".case.json", "");
        let case_text = std::fs::read_to_string(&case_path).expect("case");
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{name}.expected.json")).expect("expected"),
        )
        .expect("expected json");
        // Read as `jiuzhu assess` reads a case file: strict JSON, within the limits.
        let case = parse_case_text(&case_text, &InputLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let got = assess(&rules, &policy, &case).to_json();
        for (field, want) in expected.as_object().expect("object") {
            assert_eq!(
                got.get(field),
                Some(want),
                "{name}: field {field}; got {got:#}"
            );
        }
    }
}
